# The compiled core (portalloc/compiled.py) answers exactly what its source answers.
#
# Rules: mypyc compiles the hot modules from the same source, so there is no second implementation to hold to
# the first; what can differ is the compiler's semantics (native classes, integers, run-time type checks). The same
# jobs run in this process (the compiled core, where this install has one) and in a child process with
# PORTALLOC_PURE=1 (the .py files): random traces of portalloc verify's distribution replayed on model hosts of
# Linux, RFC 6056, the BSDs and Windows (their stacks extend the compiled CoreStack in pure Python), random
# simulator scenarios on both the direct and the Socket API path, the benchmark's scenario, and two bundled
# examples with their fixes checked. Every op's result and port, the counters, the final socket tables and the
# simulator's whole document must be equal. The guard's staleness rule is checked on a copy of the sources.
"""The compiled core against its own source, run as pure Python."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from helpers import examples
from portalloc import compiled
from test_sim_direct import direct_scenarios

TESTS = Path(__file__).resolve().parent

#: Trace replays cover every stack: the compiled Linux Stack and the pure-Python BSD and Windows ones.
TRACE_KERNELS = ("linux-6.18", "linux-5.12", "linux-4.6", "linux-3.10", "rfc6056-3", "freebsd-14", "openbsd",
                 "macos", "windows")


def _answers(jobs: list[list[Any]]) -> list[Any]:
    """Each job's full answer, as JSON values: ["trace", seed, kernel] or ["scenario", dict, fixes, direct]."""
    from portalloc import get_profile
    from portalloc.kernels.sysctls import specs_for
    from portalloc.sim import Scenario, example, simulate
    from portalloc.trace import run_trace
    from portalloc.trace.generate import random_trace
    from portalloc.trace.runner import build_host

    out: list[Any] = []
    for job in jobs:
        if job[0] == "trace":
            trace = random_trace(job[1])
            profile = get_profile(job[2])      # the generator writes the newest Linux's sysctls
            known = specs_for(profile) if profile.stack == "linux" else {}
            trace.header["sysctls"] = {k: v for k, v in trace.header.get("sysctls", {}).items() if k in known}
            host: Any = build_host(trace, kernel=job[2])
            ops = [(o.result, o.port) for o in run_trace(trace, host)]
            table = sorted((r.proto, r.state, str(r.local), str(r.remote)) for r in host.sockets())
            out.append([ops, host.stats, table, round(host.time, 9)])
        else:
            kind, spec, fixes, direct = job
            if kind == "example":
                name, duration = spec
                sc = dataclasses.replace(example(name), duration=duration)
            else:
                sc = Scenario.from_dict(spec)
            doc = simulate(sc, fixes=fixes, direct=direct).to_dict()
            doc.pop("wall_s", None)
            for row in doc.get("fixes") or []:
                row.pop("wall_s", None)
            out.append(doc)
    return json.loads(json.dumps(out, default=str))


def _pure_answers(jobs: list[list[Any]]) -> list[Any]:
    """_answers in a child process that runs the .py files (PORTALLOC_PURE=1)."""
    code = ("import json, sys; sys.path.insert(0, sys.argv[1]); from test_compiled import _answers; "
            "from portalloc import compiled; assert compiled.core_kind().startswith('pure'); "
            "print(json.dumps(_answers(json.load(sys.stdin))))")
    env = {**os.environ, compiled.PURE_ENV: "1"}
    done = subprocess.run([sys.executable, "-c", code, str(TESTS)], input=json.dumps(jobs), env=env,
                          capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    return list(json.loads(done.stdout))


def _needs_compiled() -> None:
    if not compiled.is_compiled():
        pytest.skip(f"this install runs {compiled.core_kind()}: nothing compiled to compare")


def test_a_built_core_is_the_one_that_runs() -> None:
    """Where the build compiled the core (CI sets PORTALLOC_EXPECT_COMPILED=1, gcc being there), every module of
    COMPILED_MODULES is loaded from its extension file; otherwise the reason is named."""
    kind = compiled.core_kind()
    if os.environ.get("PORTALLOC_EXPECT_COMPILED") == "1":
        assert kind == "compiled (mypyc)"
    if not kind.startswith("compiled"):
        pytest.skip(f"this install runs {kind}")
    for name in compiled.COMPILED_MODULES:
        module = sys.modules.get(name) or __import__(name, fromlist=["_"])
        assert not str(module.__file__).endswith(".py"), name


@settings(max_examples=examples(3), deadline=None)
@given(seeds=st.lists(st.integers(0, 2**32 - 1), min_size=len(TRACE_KERNELS) * 2,
                      max_size=len(TRACE_KERNELS) * 2),
       scenarios=st.lists(direct_scenarios(), min_size=4, max_size=4))
def test_compiled_core_answers_what_its_source_answers(seeds: list[int], scenarios: list[dict[str, Any]]) -> None:
    _needs_compiled()
    jobs: list[list[Any]] = [["trace", seed, TRACE_KERNELS[i % len(TRACE_KERNELS)]] for i, seed in enumerate(seeds)]
    jobs += [["scenario", sc, False, direct] for sc in scenarios for direct in (True, False)]
    assert _answers(jobs) == _pure_answers(jobs)


def test_compiled_core_runs_the_bench_and_examples_as_its_source() -> None:
    _needs_compiled()
    from portalloc.sim.bench import benchmark_spec

    spec = benchmark_spec(duration=70)        # 350,000 connections, TIME_WAITs expiring from t = 60 s
    jobs: list[list[Any]] = [["scenario", spec, False, True],
                             ["example", ["proxy-one-backend", 40], True, True],
                             ["example", ["envoy-upstream-bind-config", 20], True, True]]
    mine, pure = _answers(jobs), _pure_answers(jobs)
    assert mine[0]["attempts"] == 350_000 and not mine[0]["failed"]
    assert mine[1]["failed"] and mine[1]["fixes"], "the example runs out and its fixes are checked"
    assert mine == pure


def test_an_edited_source_runs_as_pure_python(tmp_path: Path) -> None:
    """The guard: a build manifest that matches the sources allows the compiled modules; one changed byte in any
    of them, or no manifest, does not (and says which module and how to rebuild)."""
    root = tmp_path / "portalloc"
    for name in compiled.COMPILED_MODULES:
        src = compiled.source_path(name)
        dst = compiled.source_path(name, root)
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dst)
    assert compiled.stale_reason(root) == "no compiled build"
    manifest = {"modules": compiled.source_hashes(root=root), "mypy": "test"}
    (root / compiled.BUILD_MANIFEST).write_text(json.dumps(manifest))
    assert compiled.stale_reason(root) is None
    edited = compiled.source_path("portalloc.model.tables", root)
    edited.write_text(edited.read_text() + "\n")
    reason = compiled.stale_reason(root)
    assert reason is not None and "portalloc.model.tables" in reason and "pip install -e ." in reason


def test_pure_is_forced_by_the_environment() -> None:
    """PORTALLOC_PURE=1 loads every compiled module from its .py file, whatever lies beside it."""
    code = ("import sys, portalloc.sim.engine, portalloc.model.stack; from portalloc import compiled; "
            "print(compiled.core_kind()); print(all(sys.modules[m].__file__.endswith('.py') "
            "for m in compiled.COMPILED_MODULES))")
    done = subprocess.run([sys.executable, "-c", code], env={**os.environ, compiled.PURE_ENV: "1"},
                          capture_output=True, text=True, timeout=120, check=True)
    assert done.stdout.split("\n")[:2] == ["pure Python (PORTALLOC_PURE is set)", "True"]
