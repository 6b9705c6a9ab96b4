# Comparing the outcomes of a trace on two backends, honestly.
#
# Rules: (1) only results are compared ("ok" / errno names); ports never are (they are random).
# (2) A deterministic outcome is compared exactly: no tolerance, no equivalence classes. (3) With several
# runs per backend (model: different seeds; live: fresh namespaces), an op whose result differs between
# runs of either backend is nondeterministic; it and every later op of the trace are excluded (after a
# random choice the two backends' states may legitimately differ), and the count is reported.
#
# Theory of operation: compare() walks two single runs to the first differing result. compare_runs()
# walks op by op over K runs per side: while both sides agree among their own runs it compares the two
# single results; the first op where a side varies ends the comparison (cutoff).
"""First divergence between model and live outcomes; nondeterminism-aware multi-run comparison."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from portalloc.trace.format import Op
from portalloc.trace.runner import Outcome


@dataclass(frozen=True)
class Divergence:
    """The first op whose deterministic result differs: the model's and the live outcome there."""

    index: int
    model: Outcome
    live: Outcome

    @property
    def op(self) -> Op:
        """The op where the backends part."""
        return self.model.op

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {"index": self.index, "line": self.op.line, "op": self.op.to_json(),
                "model": self.model.result, "live": self.live.result,
                "model_detail": self.model.detail, "live_detail": self.live.detail}


@dataclass(frozen=True)
class Nondeterminism:
    """The first op whose result varied between runs of one backend (the comparison stops there)."""

    index: int
    op: Op
    model: tuple[str, ...]
    live: tuple[str, ...]

    @property
    def disjoint(self) -> bool:
        """True when no run of the model gave any result a live run gave (worth a look by hand)."""
        return not set(self.model) & set(self.live)

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {"index": self.index, "line": self.op.line, "op": self.op.to_json(),
                "model": list(self.model), "live": list(self.live)}


@dataclass(frozen=True)
class Comparison:
    """Result of comparing K model runs with K live runs of one trace.

    ``compared`` ops were compared (their results were stable on both sides), ``agreed`` of them agreed
    (all of them unless ``divergence``); ``excluded`` ops were left out as nondeterministic (the first
    varying op and every later one; ``nondeterministic`` describes that op). After a divergence the rest
    of the trace is neither compared nor excluded (``skipped``).
    """

    ops: int
    compared: int
    excluded: int = 0
    divergence: Divergence | None = None
    nondeterministic: Nondeterminism | None = None
    skipped: int = 0
    runs: tuple[int, int] = field(default=(1, 1))

    @property
    def agreed(self) -> int:
        """Compared ops whose results agreed."""
        return self.compared - (1 if self.divergence else 0)

    @property
    def ok(self) -> bool:
        """True when no deterministic outcome diverged."""
        return self.divergence is None

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {"ops": self.ops, "compared": self.compared, "agreed": self.agreed, "excluded": self.excluded,
                "skipped": self.skipped, "runs": list(self.runs),
                "divergence": self.divergence.to_json() if self.divergence else None,
                "nondeterministic": self.nondeterministic.to_json() if self.nondeterministic else None}


def compare(model_outcomes: Sequence[Outcome], live_outcomes: Sequence[Outcome]) -> Divergence | None:
    """The first op whose result differs between one model run and one live run, or ``None``.

    Both lists must come from the same trace (same length). Ports are not compared.
    """
    if len(model_outcomes) != len(live_outcomes):
        raise ValueError(f"outcome lists differ in length ({len(model_outcomes)} vs {len(live_outcomes)}); "
                         "they are not runs of the same trace")
    for i, (m, lv) in enumerate(zip(model_outcomes, live_outcomes, strict=True)):
        if m.result != lv.result:
            return Divergence(i, m, lv)
    return None


def _distinct(values: Sequence[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(values))


def compare_runs(model_runs: Sequence[Sequence[Outcome]],
                 live_runs: Sequence[Sequence[Outcome]]) -> Comparison:
    """Compare K model runs with K' live runs of one trace (see :class:`Comparison`)."""
    if not model_runs or not live_runs:
        raise ValueError("need at least one run per backend")
    n = len(model_runs[0])
    if any(len(r) != n for r in (*model_runs, *live_runs)):
        raise ValueError("all runs must have one outcome per op of the same trace")
    runs = (len(model_runs), len(live_runs))
    for i in range(n):
        m = _distinct([r[i].result for r in model_runs])
        lv = _distinct([r[i].result for r in live_runs])
        if len(m) > 1 or len(lv) > 1:
            nd = Nondeterminism(i, model_runs[0][i].op, m, lv)
            return Comparison(n, i, n - i, None, nd, 0, runs)
        if m != lv:
            return Comparison(n, i + 1, 0, Divergence(i, model_runs[0][i], live_runs[0][i]), None, n - i - 1,
                              runs)
    return Comparison(n, n, 0, None, None, 0, runs)
