# Benchmark of the real kernel's connect() path, for comparison with the model's speed.
#
# Rules: runs in a fresh private namespace (a LiveHost), on loopback only; the loop is timed inside the
# agent (no pipe round trips in the measurement); bounded by `count` (at most 200,000) and by
# `max_seconds` (the loop stops early and reports the connections it made).
"""``live_connect_rate``: connect()+accept()+close() per second on the running kernel."""

from __future__ import annotations

from typing import Any

from portalloc.live.host import LiveHost

#: Upper bound for ``count``.
MAX_COUNT = 200_000


def live_connect_rate(count: int = 2000, max_seconds: float = 20.0, repeats: int = 1) -> dict[str, Any]:
    """Time ``count`` loopback connect()+close() pairs (server side accepts and closes) in a fresh namespace,
    ``repeats`` times (a new namespace each time); the best run is the figure.

    The listener is 127.0.0.1:5000 (outside the ephemeral range), the range is the wide default
    ``32768 60999`` and ``tcp_tw_reuse`` keeps its default. Returns ``{"ops_per_sec": float (best run),
    "runs_ops_per_sec": [float], "count": int, "kernel": str}`` where ``count`` is the number actually done
    in the best run.
    """
    if not isinstance(count, int) or isinstance(count, bool) or not 1 <= count <= MAX_COUNT:
        raise ValueError(f"count must be an int in 1..{MAX_COUNT}, not {count!r}")
    if not 0 < max_seconds <= 120:
        raise ValueError("max_seconds must be in (0, 120]")
    if not 1 <= repeats <= 10:
        raise ValueError("repeats must be 1-10")
    runs = []
    for _ in range(repeats):
        # A fresh namespace per run, as the model's runs each get a fresh Host: no TIME_WAIT carried over.
        with LiveHost("linux-live", sysctls={"net.ipv4.ip_local_port_range": "32768 60999"}) as host:
            runs.append(host._call("bench", count, 5000, float(max_seconds), timeout=max_seconds + 30.0))
            kernel = host.kernel_release
    best = max(runs, key=lambda r: float(r["ops_per_sec"]))
    return {"ops_per_sec": float(best["ops_per_sec"]), "runs_ops_per_sec": [float(r["ops_per_sec"]) for r in runs],
            "count": int(best["count"]), "kernel": kernel}


def live_fill(low: int = 40000, size: int = 16384, fails: int = 2000, parts: int = 4,
              max_seconds: float = 120.0) -> dict[str, Any]:
    """Fill ``size`` ports (``low``..) toward one loopback listener on the running kernel, then make ``fails``
    connects that must fail with EADDRNOTAVAIL; connect() timed inside a fresh namespace's agent.

    The listener never accepts (its children wait in a 65535-deep queue), so the clients hold one descriptor
    each: ``size`` must stay under the open-files limit. Returns the agent's figures (see Agent.op_bench_fill)
    and the kernel release.
    """
    if not 2 <= size <= 60000 or not 1024 <= low <= 65535 - size + 1:
        raise ValueError(f"the range {low}+{size} must lie within 1024-65535 and hold 2-60000 ports")
    sysctls = {"net.ipv4.ip_local_port_range": f"{low} {low + size - 1}", "net.core.somaxconn": 65535}
    with LiveHost("linux-live", sysctls=sysctls) as host:
        result = host._call("bench_fill", 5000, fails, parts, float(max_seconds), timeout=max_seconds + 60.0)
        return dict(result, kernel=host.kernel_release)
