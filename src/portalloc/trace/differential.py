# Differential runs: one trace on the model (K seeds) and on the live kernel (K fresh namespaces).
#
# Rules: (1) every live run gets a fresh LiveHost that is closed before the function returns, success or
# not; live runs of one trace run concurrently (threads; each LiveHost is its own agent process), so a
# trace's real sleeps are paid once, not K times. (2) LiveUnavailable propagates untouched (callers say
# why and exit 2); a LiveAgentError is recorded on the TraceResult as `error`, never hidden.
# (3) verify() is bounded: N traces, each bounded in ops and sleep by the generator, each request bounded
# by LiveHost's timeouts. (4) minimize() only keeps a smaller trace if it still diverges on the same op
# kind with the same pair of results, and stops after `max_tries` differential runs; its result is
# confirmed like any other (else the original is returned). (5) A divergence is reported only after
# CONFIRM more runs per backend still show it (run_differential's docstring says why).
#
# Theory of operation: run_differential = K x run_trace on each backend + compare_runs. verify() draws
# trace i from random.Random(f"{seed}:{i}") and runs `workers` traces at a time in a thread pool.
"""Model-vs-live differential runs of traces, the verify loop and a trace minimizer."""

from __future__ import annotations

import ipaddress
import random
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from portalloc.trace.compare import Comparison, compare_runs
from portalloc.trace.format import Op, Trace, TraceError
from portalloc.trace.generate import GenConfig, random_trace
from portalloc.trace.runner import Outcome, build_host, run_trace

#: Default number of runs per backend (model seeds / live namespaces).
RUNS = 3
#: Extra runs per backend that confirm a divergence before it is reported.
CONFIRM = 10


@dataclass
class TraceResult:
    """One trace's differential run: the runs of each backend and their comparison (or the error)."""

    trace: Trace
    model_runs: list[list[Outcome]]
    live_runs: list[list[Outcome]]
    comparison: Comparison | None
    seconds: float
    error: str | None = None
    label: str = ""

    @property
    def diverged(self) -> bool:
        """True when a deterministic outcome differs between the backends."""
        return self.comparison is not None and self.comparison.divergence is not None


def model_runs(trace: Trace, runs: int = RUNS, *, kernel: str | None = None, seed: int = 0) -> list[list[Outcome]]:
    """``runs`` replays of ``trace`` on fresh model hosts with seeds ``seed, seed+1, ...``."""
    out = []
    for i in range(runs):
        host = build_host(trace, "model", kernel=kernel, seed=seed + i)
        with host:
            out.append(run_trace(trace, host))
    return out


def _one_live(trace: Trace) -> list[Outcome]:
    host = build_host(trace, "live")
    try:
        return run_trace(trace, host)
    finally:
        host.close()


def live_runs(trace: Trace, runs: int = RUNS) -> list[list[Outcome]]:
    """``runs`` replays of ``trace`` on fresh LiveHosts, at most 5 at a time (raises LiveUnavailable)."""
    if runs == 1:
        return [_one_live(trace)]
    with ThreadPoolExecutor(max_workers=min(runs, 5), thread_name_prefix="live-run") as pool:
        futures = [pool.submit(_one_live, trace) for _ in range(runs)]
        return [f.result() for f in futures]


def default_model_kernel(trace: Trace | None = None) -> str:
    """The model profile to compare with the running kernel: the trace header's kernel if any, else the
    newest profile not newer than the running kernel (``"linux"`` when that cannot be told)."""
    if trace is not None and trace.header.get("kernel"):
        return str(trace.header["kernel"])
    from portalloc import kernels
    from portalloc.live import kernel_release

    try:
        major, minor = (int(x) for x in kernel_release().split(".")[:2])
    except ValueError:
        return "linux"
    best = "linux"
    for name in kernels():
        try:
            ma, mi = (int(x) for x in name.removeprefix("linux-").split(".")[:2])
        except ValueError:
            continue
        if (ma, mi) <= (major, minor):
            best = name
    return best


def run_differential(trace: Trace, *, runs: int = RUNS, kernel: str | None = None, seed: int | None = None,
                     label: str = "", confirm: int = CONFIRM) -> TraceResult:
    """Run ``trace`` ``runs`` times on each backend and compare (see compare_runs).

    A divergence found in the first ``runs`` runs is confirmed with ``confirm`` more runs per backend
    and the comparison is made again over all of them: an op with two outcomes of nearly equal chance
    looks stable in 3 runs with probability 1/4 per backend, and must not be reported as a divergence
    just because each backend happened to repeat a different one. A deterministic divergence stays one.

    ``kernel`` is the model profile (default :func:`default_model_kernel`); model seeds start at ``seed``
    (default: the header's seed, else 0). Raises LiveUnavailable and TraceError (a header a backend
    rejects); a dead live agent is recorded in ``error``.
    """
    t0 = time.monotonic()
    kernel = kernel or default_model_kernel(trace)
    base = seed if seed is not None else int(trace.header.get("seed", 0))
    from portalloc.live import LiveAgentError

    m = model_runs(trace, runs, kernel=kernel, seed=base)
    try:
        lv = live_runs(trace, runs)
        c = compare_runs(m, lv)
        if c.divergence is not None and confirm > 0:
            m += model_runs(trace, confirm, kernel=kernel, seed=base + runs)
            lv += live_runs(trace, confirm)
            c = compare_runs(m, lv)
    except LiveAgentError as exc:
        return TraceResult(trace, m, [], None, time.monotonic() - t0, f"live agent failed: {exc}", label)
    return TraceResult(trace, m, lv, c, time.monotonic() - t0, None, label)


def address_class(addr: str) -> str:
    """The class of an op's address, as the kernel tells them apart (the reach table of ``verify``)."""
    a = ipaddress.ip_address(addr)
    if isinstance(a, ipaddress.IPv6Address) and a.ipv4_mapped is not None:
        inner = address_class(str(a.ipv4_mapped))
        return "v4-mapped " + {"0.0.0.0": "wildcard", "127.0.0.1": "127.0.0.1"}.get(inner, inner)
    if a.is_unspecified:
        return "0.0.0.0" if a.version == 4 else "::"
    if str(a) in ("127.0.0.1", "::1"):
        return str(a)
    if a.version == 4 and a == ipaddress.IPv4Address("255.255.255.255"):
        return "limited broadcast"
    if a.version == 4 and a.is_loopback:
        return "127/8 broadcast" if a.packed[1:] == b"\xff\xff\xff" else "other 127/8"
    if a.is_multicast:
        return "multicast (needs scope)" if a.version == 6 and (a.packed[1] & 0x0F) in (1, 2) else "multicast"
    if a.is_link_local:
        return "link-local (no scope)"
    return "other"


@dataclass
class VerifySummary:
    """Totals of a verify run (see :func:`verify`)."""

    traces: int = 0
    ops: int = 0
    compared: int = 0
    agreed: int = 0
    excluded: int = 0
    nondeterministic_traces: int = 0
    disjoint_nondeterministic: int = 0
    divergent: list[TraceResult] = field(default_factory=list)
    errors: list[TraceResult] = field(default_factory=list)
    seconds: float = 0.0
    runs: int = RUNS
    seed: int = 0
    by_kind: Counter[str] = field(default_factory=Counter)         # compared ops per op kind
    by_class: Counter[str] = field(default_factory=Counter)        # compared bind/connect ops per address class

    @property
    def agreement(self) -> float:
        """Share of compared (deterministic) outcomes that agreed, 0..1 (1.0 when none were compared)."""
        return self.agreed / self.compared if self.compared else 1.0

    def add(self, r: TraceResult) -> None:
        """Count one trace's result."""
        self.traces += 1
        self.ops += len(r.trace)
        if r.error is not None or r.comparison is None:
            self.errors.append(r)
            return
        c = r.comparison
        for op in r.trace.ops[:c.compared]:
            self.by_kind[op.kind] += 1
            if "addr" in op.args:
                self.by_class[f"{op.kind} {address_class(op['addr'])}"] += 1
        self.compared += c.compared
        self.agreed += c.agreed
        self.excluded += c.excluded
        if c.nondeterministic is not None:
            self.nondeterministic_traces += 1
            self.disjoint_nondeterministic += c.nondeterministic.disjoint
        if c.divergence is not None:
            self.divergent.append(r)

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "traces": self.traces, "ops": self.ops, "ops_compared": self.compared, "agreed": self.agreed,
            "agreement": round(self.agreement, 6), "nondeterministic_excluded": self.excluded,
            "nondeterministic_traces": self.nondeterministic_traces,
            "disjoint_nondeterministic": self.disjoint_nondeterministic,
            "divergent_traces": len(self.divergent), "errors": len(self.errors),
            "seconds": round(self.seconds, 2), "runs": self.runs, "seed": self.seed,
            "compared_by_kind": dict(sorted(self.by_kind.items())),
            "compared_by_address_class": dict(sorted(self.by_class.items())),
            "divergences": [{"label": r.label, **(r.comparison.divergence.to_json()
                                                   if r.comparison and r.comparison.divergence else {})}
                            for r in self.divergent],
            "error_messages": [{"label": r.label, "error": r.error} for r in self.errors],
        }


def verify_traces(n: int, seed: int = 0, cfg: GenConfig | None = None) -> Iterator[tuple[str, Trace]]:
    """The ``n`` random traces of a verify run with ``seed``, as (label, trace)."""
    for i in range(n):
        label = f"{seed}:{i}"
        yield label, random_trace(random.Random(label), cfg)


def verify(n: int, *, seed: int = 0, runs: int = RUNS, kernel: str | None = None, workers: int = 4,
           cfg: GenConfig | None = None, on_result: Callable[[TraceResult], None] | None = None) -> VerifySummary:
    """Generate ``n`` random traces and run each differentially; ``on_result`` sees each result as it
    completes (in completion order). Raises LiveUnavailable before any trace when live cannot run."""
    from portalloc.live import LiveHost

    LiveHost("linux-live").close()            # fail fast, with the reason, when live is unavailable
    summary = VerifySummary(runs=runs, seed=seed)
    t0 = time.monotonic()

    def one(label: str, trace: Trace) -> TraceResult:
        try:
            return run_differential(trace, runs=runs, kernel=kernel, label=label)
        except TraceError as exc:        # a header the backend rejects: a generator bug, reported
            return TraceResult(trace, [], [], None, 0.0, str(exc), label)

    with ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="verify") as pool:
        pending: list[Future[TraceResult]] = []
        todo = verify_traces(n, seed, cfg)
        done_all = False
        while pending or not done_all:
            while not done_all and len(pending) < 2 * max(1, workers):
                nxt = next(todo, None)
                if nxt is None:
                    done_all = True
                    break
                pending.append(pool.submit(one, *nxt))
            if not pending:
                break
            fut = pending.pop(0)
            r = fut.result()
            summary.add(r)
            if on_result is not None:
                on_result(r)
    summary.seconds = time.monotonic() - t0
    return summary


# --- minimizing a divergent trace ------------------------------------------------------------------------


def _drop(ops: list[Op], drop: set[int]) -> list[Op]:
    """``ops`` without the indices in ``drop`` and without every op that uses a name they introduced."""
    gone: set[str] = set()
    out = []
    for i, op in enumerate(ops):
        port = op.get("port")
        uses = {op.sock, port.get("same_as") if isinstance(port, dict) else None} - {None}
        if i in drop or uses & gone:
            if op.new_name:
                gone.add(op.new_name)
            continue
        out.append(op)
    return out


def signature(r: TraceResult) -> tuple[str, str, str] | None:
    """(op kind, model result, live result) of a result's divergence, or None."""
    if r.comparison is None or r.comparison.divergence is None:
        return None
    d = r.comparison.divergence
    return d.op.kind, d.model.result, d.live.result


def minimize(result: TraceResult, *, runs: int = RUNS, kernel: str | None = None, max_tries: int = 150,
             max_seconds: float = 120.0) -> TraceResult:
    """A smaller trace that still diverges the same way (same op kind and results), by dropping chunks
    of ops (with everything that depends on them) and then trailing ops after the divergence."""
    want = signature(result)
    if want is None:
        return result
    best = result
    tries = 0
    t0 = time.monotonic()

    def attempt(ops: list[Op]) -> TraceResult | None:
        nonlocal tries
        tries += 1
        try:
            cand = best.trace.with_ops(ops)
        except TraceError:
            return None
        r = run_differential(cand, runs=runs, kernel=kernel, label=best.label, confirm=0)
        return r if signature(r) == want else None

    # The ops after the divergence never matter.
    d = best.comparison.divergence if best.comparison else None
    if d is not None and d.index + 1 < len(best.trace):
        r = attempt(list(best.trace.ops[: d.index + 1]))
        if r is not None:
            best = r
    chunk = max(1, len(best.trace) // 2)
    while chunk >= 1 and tries < max_tries and time.monotonic() - t0 < max_seconds:
        ops = list(best.trace.ops)
        improved = False
        start = 0
        while start < len(ops) and tries < max_tries and time.monotonic() - t0 < max_seconds:
            cand_ops = _drop(ops, set(range(start, min(len(ops), start + chunk))))
            r = attempt(cand_ops) if len(cand_ops) < len(ops) else None
            if r is not None:
                best, ops, improved = r, list(r.trace.ops), True
            else:
                start += chunk
        if not improved:
            chunk //= 2
    if best is result:
        return result
    final = run_differential(best.trace, runs=runs, kernel=kernel, label=best.label)   # confirmed
    return final if signature(final) == want else result
