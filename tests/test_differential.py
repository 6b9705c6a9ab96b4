# Differential tests: the same traces on the model and on the live kernel (marked `live`).
#
# Why: the kernel is the reference. A random trace (hypothesis) or a section-12 vector trace
# (tests/traces/tvNN.jsonl) is replayed 3 times on each backend (model seeds / fresh namespaces) and the
# deterministic outcomes must be identical (portalloc.trace.compare_runs: an op whose result varies
# between runs on either side ends the comparison; nothing else is tolerated). On a divergence the
# failing trace is minimized (bounded) and printed as a trace file, ready for tests/traces/regressions/.
#
# Random traces come from seeded_traces() (a hypothesis-drawn seed, verify's distribution: traces()
# starts with simpler examples and found divergences at less than half the rate in its first 100).
# Budget: ~100 random traces (about 0.35 s each: 6 hosts, at most 2.5 s of real sleep in 30 % of
# them) plus the checked-in traces (~20 s) — well under 5 minutes. Shrinking is left to
# portalloc.trace.minimize (bounded) instead of hypothesis, whose shrinker would replay live traces for
# minutes. Skipped, with the LiveUnavailable reason, where no network namespace can be made.
"""Model vs live kernel on random traces and on the section-12 vector traces."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, settings

from helpers import examples, trace_file_params
from portalloc.trace import TraceResult, dumps_trace, load_trace, minimize, run_differential
from portalloc.trace.strategies import seeded_traces

pytestmark = pytest.mark.live

RUNS = 3


@pytest.fixture(scope="module", autouse=True)
def live_available() -> None:
    """Skip the module, with the reason, when the live backend cannot run here."""
    try:
        from portalloc.live import LiveHost, LiveUnavailable
    except ImportError as exc:  # pragma: no cover
        pytest.skip(f"live backend not importable: {exc}")
    try:
        LiveHost("linux-live").close()
    except LiveUnavailable as exc:
        pytest.skip(f"live kernel unavailable: {exc}")


def _report(r: TraceResult) -> str:
    """A failure message: the divergence, the minimized trace and the context of both runs."""
    assert r.comparison is not None and r.comparison.divergence is not None
    d = r.comparison.divergence
    m = minimize(r, runs=RUNS, max_tries=60, max_seconds=30.0)
    md = m.comparison.divergence if m.comparison and m.comparison.divergence else d
    rows = "\n".join(f"  #{o.index:<3} {o.op.describe():50} model={o.result:14} live={lv.result}"
                     for o, lv in zip(m.model_runs[0][: md.index + 1], m.live_runs[0][: md.index + 1],
                                      strict=True))
    return (f"model and live kernel diverge at op #{d.index} (line {d.op.line}) {d.op.describe()}: "
            f"model {d.model.result}, live {d.live.result}\n"
            f"minimized ({len(m.trace)} ops):\n{rows}\n--- minimized trace ---\n"
            f"{dumps_trace(m.trace, [f'model {md.model.result}, live {md.live.result}'])}")


@settings(max_examples=examples(100), deadline=None, phases=(Phase.explicit, Phase.reuse, Phase.generate),
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(t=seeded_traces())
def test_random_traces_agree(t: Any) -> None:
    """Random traces: every deterministic outcome is the same on the model and on the live kernel."""
    r = run_differential(t, runs=RUNS)
    assert r.error is None, r.error
    assert r.comparison is not None
    if r.comparison.divergence is not None:
        raise AssertionError(_report(r))




@pytest.mark.parametrize("path", trace_file_params())
def test_trace_files_agree(path: Path) -> None:
    """Section-12 vectors and regressions: model == live on deterministic outcomes, and every "expect"
    holds on every run of both backends."""
    r = run_differential(load_trace(path), runs=RUNS)
    assert r.error is None, r.error
    assert r.comparison is not None
    if r.comparison.divergence is not None:
        raise AssertionError(_report(r))
    for side, runs in (("model", r.model_runs), ("live", r.live_runs)):
        unmet = sorted({(o.line, o.op.describe(), o.result, "|".join(o.op.expect or ()))
                        for run in runs for o in run if o.expected is False})
        assert not unmet, f"{side}: {unmet}"
