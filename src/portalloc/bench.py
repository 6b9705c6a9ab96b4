# Benchmarks of the model (and, for the ratio, of the live kernel). Figures, never pass/fail.
#
# Rules: each figure is measured the same way on every run; none fails on a slow machine. The three model
# figures are the ones issue #2 asks for: (1) connect()+accept()+close() per second at low occupancy, the
# same loop the live figure times inside a namespace; (2) the time to fill 1024-65535 toward ONE
# destination and then make as many connects that must fail, with the probe count the kernel's loop
# would have made; (3) peak memory for a large number of live connections spread over 1,000 destinations.
# With the live kernel: the same loopback loop timed on it, and `fill_versus_kernel`, connect() as a range
# fills toward one destination, model against kernel slice by slice (the regime where the kernel walks ports).
"""portalloc's benchmark figures."""

from __future__ import annotations

import gc
import time
import tracemalloc
from collections.abc import Callable
from typing import Any

from portalloc.model.host import Host
from portalloc.workload import count_failures, fill_until_failure

WIDE = {"net.ipv4.ip_local_port_range": "1024 65535", "net.ipv4.ip_unprivileged_port_start": 1024}


def connect_close_rate(count: int = 20_000, seed: int = 1, repeats: int = 3) -> dict[str, Any]:
    """Loopback connect()+accept()+close() per second on the model, at low occupancy: the best of ``repeats``
    runs (as timeit reports; a shared machine only ever slows a run down), each on a fresh host.

    The listener is 127.0.0.1:5000; the client closes first and the server after, so each connection leaves
    a client TIME_WAIT; simulated time advances 61 s every 2,000 connections so occupancy stays low.
    """
    runs = []
    for _ in range(max(1, repeats)):
        host = Host("linux", seed=seed)
        lst = host.socket()
        lst.bind(("127.0.0.1", 5000))
        lst.listen(4096)
        t0 = time.perf_counter()
        for i in range(count):
            c = host.socket()
            c.connect(("127.0.0.1", 5000))
            a, _ = lst.accept()
            c.close()
            a.close()
            if i % 2000 == 1999:
                host.sleep(61)
        runs.append(count / (time.perf_counter() - t0))
    return {"ops_per_sec": max(runs), "runs_ops_per_sec": runs, "count": count}


def fill_one_destination(seed: int = 1) -> dict[str, Any]:
    """Fill 1024-65535 toward one remote destination, then make 64,512 more connects that must fail."""
    host = Host("linux", seed=seed, addresses=("127.0.0.1/8", "10.0.0.2/8"), sysctls=WIDE)
    n = 65535 - 1024 + 1
    t0 = time.perf_counter()
    fill = fill_until_failure(host, ("10.9.9.9", 443), n, ports=False)
    t_fill = time.perf_counter() - t0
    probes_fill = host.stats["connect_probes"]
    failed = count_failures(host, ("10.9.9.9", 443), n).failed
    t_all = time.perf_counter() - t0
    return {"connected": fill.connected, "failed_eaddrnotavail": failed, "fill_seconds": t_fill, "total_seconds": t_all,
            "kernel_probes_fill": probes_fill, "kernel_probes_total": host.stats["connect_probes"]}


def memory_for_connections(connections: int = 1_000_000, destinations: int = 1000, seed: int = 1) -> dict[str, Any]:
    """Peak Python memory (tracemalloc) while ``connections`` live connections exist over ``destinations``."""
    gc.collect()
    tracemalloc.start()
    t0 = time.perf_counter()
    host = Host("linux", seed=seed, addresses=("127.0.0.1/8", "10.0.0.2/8"), sysctls=WIDE)
    keep = []
    per = max(1, connections // destinations)
    made = 0
    for d in range(destinations):
        dst = (f"10.{1 + d // 250}.{d % 250}.1", 443)
        for _ in range(per):
            if made >= connections:
                break
            s = host.socket()
            s.connect(dst)
            keep.append(s)
            made += 1
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    dt = time.perf_counter() - t0
    return {"connections": made, "destinations": destinations, "peak_mib": peak / 2**20,
            "bytes_per_connection": peak / max(1, made), "seconds": dt}


def live_rate(count: int = 5000, repeats: int = 3) -> dict[str, Any]:
    """The live kernel's loopback connect()+accept()+close() rate (best of ``repeats`` runs, each in a fresh
    namespace), or the reason it cannot be measured."""
    try:
        from portalloc.live import LiveUnavailable
        from portalloc.live.bench import live_connect_rate
    except ImportError as exc:  # pragma: no cover - the package ships live/
        return {"unavailable": str(exc)}
    try:
        return live_connect_rate(count, repeats=repeats)
    except LiveUnavailable as exc:
        return {"unavailable": str(exc)}


def model_fill(low: int = 40000, size: int = 16384, fails: int = 2000, parts: int = 4,
               seed: int = 1) -> dict[str, Any]:
    """The model's side of ``fill_versus_kernel``: the same loop as the agent's ``bench_fill``, on the model."""
    host = Host("linux", seed=seed, sysctls={"net.ipv4.ip_local_port_range": f"{low} {low + size - 1}",
                                             "net.core.somaxconn": 65535})
    listener = host.socket()
    listener.bind(("127.0.0.1", 5000))
    listener.listen(65535)
    fill = fill_until_failure(host, ("127.0.0.1", 5000), size, ports=False, timed=True)
    slices = [0.0] * parts
    for i, t in enumerate(fill.seconds):
        slices[min(parts - 1, i * parts // size)] += t
    failures = count_failures(host, ("127.0.0.1", 5000), fails, stop=True, timed=True)
    return {"range": size, "connected": fill.connected, "first_error": fill.first_error, "slice_seconds": slices,
            "failed": failures.failed, "fail_seconds": failures.seconds,
            "kernel_probes": host.stats["connect_probes"]}


def fill_size(wanted: int = 16384) -> int:
    """The range size the live fill can use here: ``wanted``, or less so the clients' descriptors fit under
    RLIMIT_NOFILE's hard limit (rounded down to 1,024 ports; 0 when not even that fits)."""
    import resource

    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    room = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard - 256)
    return max(0, room // 1024 * 1024)


def fill_versus_kernel(low: int = 40000, size: int | None = None, fails: int = 2000, parts: int = 4,
                       repeats: int = 2) -> dict[str, Any]:
    """connect() as a range fills toward ONE loopback destination, model against the live kernel.

    Both fill ``size`` ports (``low``..; by default 16,384, or what ``fill_size`` says fits under the
    open-files limit) toward a listener that never accepts, then make ``fails`` connects that must fail
    (EADDRNOTAVAIL); each connect() is timed. Reported per ``parts`` slices of the fill (µs per connect in
    each) and for the failures, each the best of ``repeats`` runs (fresh host, fresh namespace), and as
    model-over-kernel speed ratios. The kernel walks the range port by port (even ports first, so once they
    are used up every connect walks them all); the model answers the same search with a few bitset
    operations. ``live`` holds the reason when the kernel cannot be measured (no root, no namespaces).
    """
    size = fill_size() or 16384 if size is None else size
    runs = max(1, repeats)

    def per_connect(r: dict[str, Any]) -> list[float]:
        n = r["range"] / parts
        return [s / n * 1e6 for s in r["slice_seconds"]] + [r["fail_seconds"] / max(1, r["failed"]) * 1e6]

    def best(results: list[dict[str, Any]]) -> list[float]:
        return [min(col) for col in zip(*(per_connect(r) for r in results), strict=True)]

    model_runs = [model_fill(low, size, fails, parts) for _ in range(runs)]
    out: dict[str, Any] = {"model": model_runs[0]}
    try:
        from portalloc.live import LiveUnavailable
        from portalloc.live.bench import live_fill
    except ImportError as exc:  # pragma: no cover - the package ships live/
        out["live"] = {"unavailable": str(exc)}
        return out
    try:
        live_runs = [live_fill(low, size, fails, parts) for _ in range(runs)]
    except (LiveUnavailable, OSError) as exc:     # no namespace, or too few descriptors for this range
        out["live"] = {"unavailable": str(exc)}
        return out
    out["live"] = live_runs[0]
    m, k = best(model_runs), best(live_runs)
    out["us_per_connect"] = {"model": m, "kernel": k, "runs": runs}
    out["model_speedup"] = [kk / mm if mm else 0.0 for mm, kk in zip(m, k, strict=True)]
    return out


def run_all(connections: int = 1_000_000, live: bool = True,
            progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Every figure, in order; ``progress`` is told which one starts."""
    say = progress or (lambda _msg: None)
    out: dict[str, Any] = {}
    say("connect+accept+close at low occupancy")
    out["connect_close"] = connect_close_rate()
    say("fill 1024-65535 toward one destination, then fail as many")
    out["fill_one_destination"] = fill_one_destination()
    say(f"memory for {connections:,} connections over 1,000 destinations")
    out["memory"] = memory_for_connections(connections)
    if live:
        say("live kernel connect rate (private namespace)")
        out["live"] = live_rate()
        if "ops_per_sec" in out["live"]:
            out["model_to_kernel_ratio"] = out["connect_close"]["ops_per_sec"] / out["live"]["ops_per_sec"]
        say("filling a range toward one destination: model and live kernel")
        out["fill_versus_kernel"] = fill_versus_kernel()
    return out
