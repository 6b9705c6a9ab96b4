# End to end: a real Prometheus server scrapes `portalloc exporter`, and the headroom series read back through
# Prometheus' HTTP API equals the doctor's value.
#
# Everything with a socket runs inside namespaces this test creates: the sockets under study live in a
# LiveHost agent's private namespace; the exporter and Prometheus run in `ip netns add portalloc-test-<pid>`
# (deleted in a finally block), the exporter reading the agent's namespace via /proc/<pid>/ns/net; the API
# query runs there too (`ip netns exec`). Bounded: scrape_interval 1 s, at most WAIT seconds of polling.
# Skips with the reason without root, iproute2 or /usr/bin/prometheus.
"""Live: Prometheus scrapes the exporter; portalloc_port_headroom == doctor headroom."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest

from portalloc.observe import read_host

pytestmark = pytest.mark.live

PROMETHEUS = "/usr/bin/prometheus"
WAIT = 25.0
SRC = str(Path(__file__).resolve().parent.parent / "src")


def _query(ns: str, expr: str) -> list[dict[str, Any]]:
    code = ("import json,sys,urllib.parse,urllib.request;"
            "u='http://127.0.0.1:9090/api/v1/query?query='+urllib.parse.quote(sys.argv[1]);"
            "print(urllib.request.urlopen(u,timeout=3).read().decode())")
    out = subprocess.run(["ip", "netns", "exec", ns, sys.executable, "-c", code, expr], capture_output=True,
                         text=True, timeout=10)
    if out.returncode:
        return []
    data = json.loads(out.stdout)
    return list(data.get("data", {}).get("result", []))


def test_prometheus_reads_the_doctors_headroom() -> None:
    if not os.path.exists(PROMETHEUS):
        pytest.skip(f"{PROMETHEUS} missing (Debian package `prometheus`)")
    if shutil.which("ip") is None:
        pytest.skip("iproute2 `ip` missing")
    if os.geteuid() != 0:
        pytest.skip("needs root (ip netns add, setns)")
    from portalloc.live import LiveHost, LiveUnavailable

    try:
        host = LiveHost(sysctls={"net.ipv4.ip_local_port_range": "40000 40063", "net.ipv4.tcp_tw_reuse": 0})
    except LiveUnavailable as exc:
        pytest.skip(f"live kernel unavailable: {exc}")
    ns = f"portalloc-test-{os.getpid()}"
    procs: list[subprocess.Popen[bytes]] = []
    tmp = tempfile.mkdtemp(prefix="portalloc-prom-")
    keep: list[Any] = []
    try:
        lst = host.socket()
        lst.bind(("127.0.0.1", 5000))
        lst.listen(1024)
        keep.append(lst)
        for i in range(12):
            c = host.socket()
            c.connect(("127.0.0.1", 5000))
            if i % 2:
                s, _ = lst.accept()
                c.close()
                s.close()
            else:
                keep.append(c)
        subprocess.run(["ip", "netns", "add", ns], check=True, timeout=10)
        subprocess.run(["ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up"], check=True, timeout=10)
        env = dict(os.environ, PYTHONPATH=SRC)
        log = open(os.path.join(tmp, "exporter.log"), "wb")  # noqa: SIM115 - closed with the process
        procs.append(subprocess.Popen(
            ["ip", "netns", "exec", ns, sys.executable, "-m", "portalloc.cli.main", "exporter",
             "--listen", "127.0.0.1:9797", "--netns", f"/proc/{host.pid}/ns/net", "--top", "5"],
            env=env, stdout=log, stderr=subprocess.STDOUT))
        config = os.path.join(tmp, "prometheus.yml")
        with open(config, "w") as f:
            f.write("global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n"
                    "  - job_name: portalloc\n    static_configs:\n      - targets: ['127.0.0.1:9797']\n")
        plog = open(os.path.join(tmp, "prometheus.log"), "wb")  # noqa: SIM115
        procs.append(subprocess.Popen(
            ["ip", "netns", "exec", ns, PROMETHEUS, f"--config.file={config}",
             f"--storage.tsdb.path={os.path.join(tmp, 'data')}", "--web.listen-address=127.0.0.1:9090"],
            stdout=plog, stderr=subprocess.STDOUT))
        deadline = time.monotonic() + WAIT
        series: list[dict[str, Any]] = []
        while time.monotonic() < deadline and not series:
            time.sleep(1.0)
            series = _query(ns, 'portalloc_port_headroom{dst="127.0.0.1",dport="5000"}')
        assert series, f"no headroom series within {WAIT} s; exporter log: " \
                       f"{Path(tmp, 'exporter.log').read_text()[-500:]}"
        value = int(float(series[0]["value"][1]))
        rows = read_host(f"/proc/{host.pid}/ns/net").headroom([("127.0.0.1", 5000)])
        assert value == rows[0].headroom
        assert rows[0].in_use == 6 and rows[0].time_wait == 6
        tw = _query(ns, 'portalloc_time_wait_sockets{dst="127.0.0.1",dport="5000"}')
        assert tw and int(float(tw[0]["value"][1])) == 6
    finally:
        for p in procs:
            p.kill()
            p.wait(timeout=10)
        subprocess.run(["ip", "netns", "del", ns], timeout=10, capture_output=True)
        host.close()
        shutil.rmtree(tmp, ignore_errors=True)
