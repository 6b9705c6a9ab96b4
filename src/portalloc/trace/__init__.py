# portalloc.trace: socket-operation traces replayed on the model and on the live kernel.
#
# Rules: a trace is data (JSON Lines, docs/traces.md); running it never needs anything but a host
# object with the Host API; comparing two backends compares results only, never ports, and excludes
# (and counts) what is nondeterministic instead of loosening the comparison. hypothesis is imported only
# by portalloc.trace.strategies.
#
# Theory of operation: format.py parses and validates (TraceError with line numbers), runner.py replays
# (one Outcome per op), compare.py finds the first divergence, differential.py runs both backends K times
# and drives `verify`, generate.py makes random traces.
"""Traces: load, replay and compare socket-operation sequences on the model and on the live kernel."""

from __future__ import annotations

from portalloc.trace.compare import Comparison, Divergence, Nondeterminism, compare, compare_runs
from portalloc.trace.differential import (
    TraceResult,
    VerifySummary,
    minimize,
    run_differential,
    verify,
)
from portalloc.trace.format import Op, Trace, TraceError, dumps_trace, load_trace, trace_from_dicts
from portalloc.trace.generate import GenConfig, random_trace
from portalloc.trace.runner import OK, Outcome, build_host, outcome_name, run_trace

__all__ = [
    "OK",
    "Comparison",
    "Divergence",
    "GenConfig",
    "Nondeterminism",
    "Op",
    "Outcome",
    "Trace",
    "TraceError",
    "TraceResult",
    "VerifySummary",
    "build_host",
    "compare",
    "compare_runs",
    "dumps_trace",
    "load_trace",
    "minimize",
    "outcome_name",
    "random_trace",
    "run_differential",
    "run_trace",
    "trace_from_dicts",
    "verify",
]
