# portalloc.sim: will this workload run out of ports, when, why, and what fixes it (issue 11).
#
# Rules: the simulator drives the model's socket API (portalloc.Host) and never decides a port itself;
# see engine.py. Public API: Scenario.load / Scenario.from_dict, simulate(scenario) -> Result,
# Result.to_dict(), examples() / example(name) for the bundled scenarios (sim/examples/*.toml).
"""Simulate workloads over the model kernel: `portalloc.sim.simulate(Scenario.load(path))`."""

from __future__ import annotations

import time
from collections.abc import Callable
from importlib import resources
from typing import Any

from portalloc.sim.engine import Engine, TraceRecorder
from portalloc.sim.pool import map_jobs
from portalloc.sim.result import Result, build_result, check_fixes, fix_outcome
from portalloc.sim.scenario import Scenario, ScenarioError, parse_value

#: The bundled example run when no scenario file is given.
DEFAULT_EXAMPLE = "proxy-one-backend"


def simulate(scenario: Scenario, *, fixes: bool = True, recorder: TraceRecorder | None = None,
             progress: Callable[[float, float], None] | None = None,
             params: dict[str, Any] | None = None, direct: bool = True, workers: int = 1) -> Result:
    """Run ``scenario`` on model hosts. With ``fixes`` (default), when connections fail, each applicable fix
    is checked by simulating its variant (Result.fixes), in up to ``workers`` local processes when more than
    one (the rows are the same). ``recorder`` records fleet host 0's socket calls as
    a trace; ``progress(t, duration)`` is called once per simulated second. ``direct=False`` keeps every
    connection on the Socket API (the engine's direct path gives the same result, docs/simulate.md)."""
    t0 = time.perf_counter()
    run = Engine(scenario, recorder=recorder, progress=progress, direct=direct).run()
    result = build_result(run, time.perf_counter() - t0, params)
    if fixes and result.runs_out:
        result.fixes = check_fixes(result, lambda variants: fix_outcomes(variants, workers, result.notes,
                                                                          direct=direct))
    result.wall_s = time.perf_counter() - t0
    return result


def fix_outcome_of(scenario_dict: dict[str, Any], direct: bool = True) -> dict[str, Any]:
    """Simulate one fix's variant (given as Scenario.to_dict(), so a worker process can take it): its
    fix_outcome."""
    return fix_outcome(simulate(Scenario.from_dict(scenario_dict), fixes=False, direct=direct))


def fix_outcomes(variants: list[Scenario], workers: int = 1, notes: list[str] | None = None, *,
                 direct: bool = True, done: Callable[[], None] | None = None) -> list[dict[str, Any]]:
    """fix_outcome of each variant, in order: one by one in this process, or in up to ``workers`` local
    processes (sim/pool.py; where those fail, in this process, with a line added to ``notes``). ``done()``
    is called as each variant finishes."""
    outcomes, note = map_jobs(fix_outcome_of, [(v.to_dict(), direct) for v in variants], workers, done)
    if note is not None and notes is not None:
        notes.append(f"fix checks: {note}")
    return outcomes


def list_examples() -> dict[str, str]:
    """The bundled example scenarios: name -> its description line."""
    out = {}
    for entry in sorted(resources.files("portalloc.sim.examples").iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".toml"):
            sc = Scenario.from_dict(_toml(entry.read_text(encoding="utf-8")))
            out[entry.name[:-5]] = sc.description
    return out


def example(name: str) -> Scenario:
    """A bundled example scenario by name (ScenarioError naming the known ones otherwise)."""
    known = list_examples()
    if name not in known:
        shown = name if len(name) <= 40 else name[:37] + "..."
        raise ScenarioError(f"--example: no bundled example {shown!r}; known: {', '.join(known)}")
    entry = resources.files("portalloc.sim.examples").joinpath(f"{name}.toml")
    sc = Scenario.from_dict(_toml(entry.read_text(encoding="utf-8")))
    return sc if sc.name else Scenario.from_dict({**sc.to_dict(), "name": name})


def _toml(text: str) -> dict[str, Any]:
    import tomllib

    return tomllib.loads(text)


__all__ = ["DEFAULT_EXAMPLE", "Result", "Scenario", "ScenarioError", "TraceRecorder", "example", "fix_outcomes",
           "list_examples", "parse_value", "simulate"]
