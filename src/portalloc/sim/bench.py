# The simulator's benchmark (issue 11): 1,000,000 connections, 5,000/s for 200 s toward 40 destinations,
# the client closing, no failures. Figures only, never pass/fail: connections per wall second, simulated
# seconds per wall second, peak memory (the process's peak resident set, from getrusage), and which core ran
# (portalloc/compiled.py: the mypyc-compiled modules, or pure Python and why).
"""Benchmark of portalloc.sim (shown by `portalloc bench`)."""

from __future__ import annotations

import resource
import time
from typing import Any

from portalloc.compiled import core_kind
from portalloc.sim.scenario import Scenario


def benchmark_spec(rate: float = 5000, duration: float = 200, destinations: int = 40) -> dict[str, Any]:
    """The benchmark's scenario as a scenario dict: ``rate`` x ``duration`` connections spread over
    ``destinations``."""
    return {
        "name": "bench", "duration": duration, "seed": 1,
        "host": {"kernel": "linux-6.18", "addresses": ["10.0.0.1/16"]},
        "workload": [{"name": "bench", "to": [f"10.1.{i // 250}.{i % 250 + 1}:443" for i in range(destinations)],
                      "rate": rate, "hold": 0.05, "closes": "client"}],
    }


def benchmark_scenario(rate: float = 5000, duration: float = 200, destinations: int = 40) -> Scenario:
    """The benchmark's scenario (benchmark_spec) as a Scenario."""
    return Scenario.from_dict(benchmark_spec(rate, duration, destinations))


def sim_benchmark(rate: float = 5000, duration: float = 200, destinations: int = 40) -> dict[str, Any]:
    """Run the benchmark scenario once; its figures."""
    from portalloc.sim import simulate

    sc = benchmark_scenario(rate, duration, destinations)
    t0 = time.perf_counter()
    res = simulate(sc, fixes=False)
    wall = time.perf_counter() - t0
    return {"connections": res.attempts, "failed": sum(res.failed.values()), "simulated_s": duration,
            "wall_s": round(wall, 3), "connections_per_wall_s": round(res.attempts / wall),
            "simulated_s_per_wall_s": round(duration / wall, 3),
            "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
            "peak_time_wait": res.peak["time_wait"], "core": core_kind()}
