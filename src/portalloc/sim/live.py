# `portalloc simulate --live`: run a small scenario on the real kernel (LiveHost, a private network
# namespace, real time) and on the model, and compare the counts.
#
# Rules: (1) only 127.0.0.0/8 (and ::1) addresses, for the host, its sources and its destinations (the
# safety rules of this project allow no others); one host, no NAT, at most `max_duration` seconds of real
# time. (2) The same engine drives both hosts: the live run differs only in its host factory and in that
# its clock is real (sleeps are real waits). (3) Counts are compared exactly; a count that depends on the
# time of a sample (the per-second TIME_WAIT peak) is sampled after the events of that second on both, so
# it is exact too unless a close falls within milliseconds of a sample (scenarios keep holds away from
# whole seconds).
"""Compare a scenario's counts on the model and on the live kernel."""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from typing import Any

from portalloc.constants import DEFAULT_ADDRESSES
from portalloc.sim.engine import Engine
from portalloc.sim.result import Result, build_result
from portalloc.sim.scenario import Scenario


class LiveCheckError(ValueError):
    """The scenario cannot run live (addresses, size) or the live kernel is unavailable: one line."""


def _loopback(addr: str) -> bool:
    ip = ipaddress.ip_interface(addr).ip if "/" in addr else ipaddress.ip_address(addr)
    return ip.is_loopback


def check_live_scenario(sc: Scenario, max_duration: float) -> None:
    """LiveCheckError unless the scenario is small and loopback-only."""
    if sc.hosts != 1 or sc.nat is not None:
        raise LiveCheckError("--live runs one host without a NAT; drop [fleet] and [nat]")
    if sc.duration > max_duration:
        raise LiveCheckError(f"--live runs in real time: duration must be at most {max_duration:g} s, "
                             f"not {sc.duration:g}")
    for a in sc.addresses or DEFAULT_ADDRESSES:
        if not _loopback(a):
            raise LiveCheckError(f"--live: host address {a} is not in 127.0.0.0/8 or ::1 (the only addresses a live "
                                 "run may use)")
    for w in sc.workloads:
        for addr, port in w.to:
            if not _loopback(addr):
                raise LiveCheckError(f"--live: workload {w.name} destination {addr}:{port} is not in 127.0.0.0/8 "
                                     "or ::1")
        for s in w.sources:
            if not _loopback(s):
                raise LiveCheckError(f"--live: workload {w.name} source {s} is not in 127.0.0.0/8 or ::1")
        if w.technique == "connectx":
            raise LiveCheckError("--live: technique connectx is not run live here")


def live_host_factory(sc: Scenario) -> Callable[[int], Any]:
    """Fleet host 0 as a LiveHost with the scenario's addresses and sysctls."""
    from portalloc.live import LiveHost

    def make(i: int) -> Any:
        kwargs: dict[str, Any] = {"sysctls": dict(sc.sysctls), "wait_cap": 2.0}
        if sc.addresses is not None:
            kwargs["addresses"] = sc.addresses
        return LiveHost("linux-live", **kwargs)
    return make


def run_live(sc: Scenario) -> Result:
    """The scenario on the live kernel, in real time (LiveCheckError when no namespace can be made)."""
    from portalloc.live import LiveUnavailable

    try:
        run = Engine(sc, host_factory=live_host_factory(sc), realtime=True).run()
    except LiveUnavailable as exc:
        raise LiveCheckError(f"--live: {exc}") from None
    return build_result(run)


def _rows(model: Result, live: Result) -> list[dict[str, Any]]:
    rows = []

    def add(name: str, m: Any, lv: Any) -> None:
        rows.append({"count": name, "model": m, "live": lv, "equal": m == lv})

    add("attempts", model.attempts, live.attempts)
    add("connected", model.connected, live.connected)
    for e in sorted(set(model.failed) | set(live.failed)):
        add(f"failed {e}", model.failed.get(e, 0), live.failed.get(e, 0))
    add("first failure (whole second)", None if model.first_failure_s is None else int(model.first_failure_s),
        None if live.first_failure_s is None else int(live.first_failure_s))
    add("peak in use", model.peak["in_use"], live.peak["in_use"])
    add("peak TIME_WAIT", model.peak["time_wait"], live.peak["time_wait"])
    return rows


def compare_live(sc: Scenario, *, max_duration: float = 60.0,
                 progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Run ``sc`` on the model and live; the report: rows of counts, whether all are equal, both documents."""
    check_live_scenario(sc, max_duration)
    from portalloc.sim import simulate

    if progress:
        progress("simulating on the model")
    model = simulate(sc, fixes=False)
    if progress:
        progress(f"running {sc.duration:g} s of real time on the live kernel (private namespace)")
    live = run_live(sc)
    from portalloc.live.host import kernel_release

    rows = _rows(model, live)
    return {"scenario": sc.name, "live_kernel": kernel_release(), "match": all(r["equal"] for r in rows),
            "rows": rows, "model": model.to_dict(), "live": live.to_dict(),
            "notes": ["the live run's clock is real: counts are compared, not ports (the kernel's are random)"]}
