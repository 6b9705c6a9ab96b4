# The doctor's headroom as a user would trust it: predicted == measured, exactly, on the real kernel.
#
# Each case builds a real state with real sockets in a private namespace (a LiveHost agent: connections,
# TIME_WAITs, bind-before-connect, a bound-only socket, reserved ports, a narrow range 40000-40063,
# tcp_tw_reuse 0/1/2), reads that namespace the way `portalloc doctor --netns /proc/PID/ns/net` does,
# asks for the headroom (the model, rebuilt from the read table), and then connects toward each destination
# from fresh sockets until EADDRNOTAVAIL. The count must equal the prediction for every destination.
# Only 127/8 addresses. Needs root (skips with the reason otherwise).
"""Live: doctor headroom == connects until EADDRNOTAVAIL, in every case."""

from __future__ import annotations

import errno
import time
from typing import Any

import pytest

from portalloc.observe import read_host

pytestmark = pytest.mark.live

RANGE = "40000 40063"
D1, D2, D3 = ("127.0.0.1", 5000), ("127.0.0.1", 5001), ("127.0.0.2", 5000)


def _live(sysctls: dict[str, Any]) -> Any:
    try:
        from portalloc.live import LiveHost, LiveUnavailable
    except ImportError as exc:  # pragma: no cover
        pytest.skip(f"live backend not importable: {exc}")
    try:
        return LiveHost(sysctls=sysctls)
    except LiveUnavailable as exc:
        pytest.skip(f"live kernel unavailable (needs root and unshare): {exc}")


def _build(host: Any, keep: list[Any], *, established: int, time_waits: int, bind_first: int,
           bound_only: bool) -> None:
    """Listeners on 0.0.0.0:5000 and :5001; ``established`` open connections to D1; ``time_waits`` client
    TIME_WAITs toward D1 (client closes first); ``bind_first`` bind(127.0.0.1, 0)+connect to D2 kept open;
    a socket only bound to 127.0.0.3:40020."""
    for port in (5000, 5001):
        lst = host.socket()
        lst.bind(("0.0.0.0", port))
        lst.listen(4096)
        keep.append(lst)
    listener = keep[0]
    for _ in range(established):
        c = host.socket()
        c.connect(D1)
        keep.append(c)
    for _ in range(time_waits):
        c = host.socket()
        c.connect(D1)
        s, _ = listener.accept()
        c.close()
        s.close()
    for _ in range(bind_first):
        c = host.socket()
        c.bind(("127.0.0.1", 0))
        c.connect(D2)
        keep.append(c)
    if bound_only:
        b = host.socket()
        b.bind(("127.0.0.3", 40020))
        keep.append(b)


def _measure(host: Any, dst: tuple[str, int], keep: list[Any], bound: int = 200) -> int:
    """Fresh sockets connect toward ``dst`` until EADDRNOTAVAIL (each keeps its connection)."""
    for n in range(bound):
        c = host.socket()
        err = c.connect_ex(dst)
        if err:
            assert err == errno.EADDRNOTAVAIL, f"connect to {dst} failed with {errno.errorcode[err]}"
            c.close()
            return n
        keep.append(c)
    raise AssertionError(f"more than {bound} connects toward {dst}")


CASES = {
    "tw_reuse=0, reserved, bind-before-connect, bound-only": (
        {"net.ipv4.tcp_tw_reuse": 0, "net.ipv4.ip_local_reserved_ports": "40010-40013"},
        dict(established=10, time_waits=8, bind_first=3, bound_only=True), 0.0),
    "tw_reuse=1, TIME_WAITs older than the 1 s delay": (
        {"net.ipv4.tcp_tw_reuse": 1},
        dict(established=6, time_waits=12, bind_first=2, bound_only=False), 1.3),
    "tw_reuse=2 (loopback), young TIME_WAITs (delay 60 s)": (
        {"net.ipv4.tcp_tw_reuse": 2, "net.ipv4.tcp_tw_reuse_delay": 60000},
        dict(established=4, time_waits=20, bind_first=0, bound_only=True), 0.0),
    "tw_reuse=0, range nearly full toward one destination": (
        {"net.ipv4.tcp_tw_reuse": 0, "net.ipv4.ip_local_reserved_ports": "40060-40063"},
        dict(established=40, time_waits=10, bind_first=4, bound_only=True), 0.0),
}


@pytest.mark.parametrize("name", list(CASES))
def test_doctor_headroom_equals_connects_until_eaddrnotavail(name: str) -> None:
    sysctls, plan, wait = CASES[name]
    with _live({"net.ipv4.ip_local_port_range": RANGE, **sysctls}) as host:
        keep: list[Any] = []
        _build(host, keep, **plan)
        if wait:
            time.sleep(wait)
        snap = read_host(f"/proc/{host.pid}/ns/net")
        assert snap.source == "sock_diag"
        if plan["bound_only"]:
            # bit 13 (TCP_BOUND_INACTIVE, 91051f003948, 6.8+): the bound-only socket is dumped, state CLOSE
            assert any(r.proto == "tcp" and r.state == "UNCONN" and r.local == ("127.0.0.3", 40020)
                       for r in snap.rows)
        rows = {(r.dst, r.dport): r for r in snap.headroom([D1, D2, D3])}
        assert set(rows) == {D1, D2, D3}
        assert rows[D1].in_use == plan["established"] and rows[D1].time_wait == plan["time_waits"]
        if plan["bind_first"]:
            assert rows[D2].inferred, "bind-before-connect sockets must be flagged as inferred"
        measured = {dst: _measure(host, dst, keep) for dst in (D1, D2, D3)}
        predicted = {dst: rows[dst].headroom for dst in (D1, D2, D3)}
        assert predicted == measured, f"{name}: rows {list(rows.values())}"


def test_doctor_reads_a_named_namespace_from_the_cli() -> None:
    """`portalloc doctor --netns NAME --json` on a namespace made with `ip netns add` (deleted afterwards):
    its own sysctls are read (a range written there), its own interface addresses (one added to its lo), and an
    idle destination has the whole range."""
    import json
    import os
    import shutil
    import subprocess

    from typer.testing import CliRunner

    from portalloc.cli.main import app

    if os.geteuid() != 0 or shutil.which("ip") is None:
        pytest.skip("needs root and iproute2 (ip netns add)")
    ns = f"portalloc-test-doctor-{os.getpid()}"
    try:
        subprocess.run(["ip", "netns", "add", ns], check=True, timeout=10)
        subprocess.run(["ip", "netns", "exec", ns, "sysctl", "-qw", f"net.ipv4.ip_local_port_range={RANGE}"],
                       check=True, timeout=10)
        for cmd in (["link", "set", "lo", "up"], ["addr", "add", "127.3.4.5/32", "dev", "lo"]):
            subprocess.run(["ip", "-n", ns, *cmd], check=True, timeout=10)
        res = CliRunner().invoke(app, ["doctor", "--netns", ns, "--dst", "127.0.0.1:5000", "--json"])
        assert res.exit_code == 0, res.output
        doc = json.loads(res.output)
        assert doc["sysctls"]["net.ipv4.ip_local_port_range"] == RANGE
        assert sorted(doc["interfaces"]) == ["127.0.0.1/8", "127.3.4.5/32", "::1/128"]
        (row,) = doc["headroom"]
        assert (row["limit"], row["headroom"], row["in_use"]) == (64, 64, 0)
    finally:
        subprocess.run(["ip", "netns", "del", ns], timeout=10, capture_output=True)
