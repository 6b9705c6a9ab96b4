# Scale figure for `portalloc bench`: the doctor and one exporter scrape on a namespace holding ~100,000
# sockets, mostly TIME_WAIT.
#
# Rules: the sockets are made in a fresh private namespace (a LiveHost agent) by its timed connect+accept+
# close loop (op "bench"), client closing first, so every loop leaves one client TIME_WAIT that holds no
# descriptor (the open-files limit is not a bound). tcp_tw_reuse=0 keeps them, the range 1024-65535 and
# several destination ports give room; tcp_max_tw_buckets is raised inside that namespace only. Bounded by
# `max_seconds` per batch. Figures only: nothing fails on a slow machine.
"""doctor_scale(): time read + rebuild + headroom, and one exporter scrape, on ~100k sockets."""

from __future__ import annotations

import time
from typing import Any

from portalloc.live.host import LiveHost
from portalloc.observe.read import read_host

#: TIME_WAITs per destination port: few enough that the kernel's port walk stays short (a range filling toward one
#: destination slows every connect), many destination ports instead.
PER_DESTINATION = 10_000


def doctor_scale(count: int = 100_000, max_seconds: float = 40.0) -> dict[str, Any]:
    """Make ``count`` TIME_WAITs in a namespace, then time ``read_host`` + ``headroom`` (the doctor) and
    one exporter scrape (``generate_latest`` of the collector). Returns the figures in seconds."""
    if not 1 <= count <= 250_000:
        raise ValueError("count must be 1-250,000")
    sysctls = {"net.ipv4.ip_local_port_range": "1024 65535", "net.ipv4.tcp_tw_reuse": 0,
               "net.ipv4.tcp_max_tw_buckets": 262144}
    with LiveHost("linux-live", sysctls=sysctls) as host:
        made, port = 0, 500           # listeners below the range (the agent runs as root)
        t0 = time.perf_counter()
        while made < count and time.perf_counter() - t0 < max_seconds:
            n = min(PER_DESTINATION, count - made)
            left = max(1.0, max_seconds - (time.perf_counter() - t0))
            res = host._call("bench", n, port, left, timeout=left + 30.0)
            made += int(res["count"])
            port += 1
        make_seconds = time.perf_counter() - t0
        path = f"/proc/{host.pid}/ns/net"
        t = time.perf_counter()
        snap = read_host(path)
        read_s = time.perf_counter() - t
        t = time.perf_counter()
        model = snap.to_model()
        model_s = time.perf_counter() - t
        t = time.perf_counter()
        rows = snap.headroom(host=model)
        query_s = time.perf_counter() - t
        scrape_s = None
        try:
            from prometheus_client import CollectorRegistry, generate_latest

            from portalloc.observe.exporter import HeadroomCollector

            registry = CollectorRegistry()
            registry.register(HeadroomCollector(lambda: read_host(path), 20))  # type: ignore[arg-type]
            t = time.perf_counter()
            generate_latest(registry)
            scrape_s = time.perf_counter() - t
        except ImportError:
            pass
        return {"sockets": len(snap.rows), "time_wait": sum(r.state == "TIME-WAIT" for r in snap.rows),
                "destinations": len(rows), "make_seconds": make_seconds, "read_seconds": read_s,
                "rebuild_seconds": model_s, "headroom_seconds": query_s,
                "doctor_seconds": read_s + model_s + query_s, "exporter_scrape_seconds": scrape_s,
                "kernel": host.kernel_release}
