# The trace commands of the command line: replay, diff, verify (registered on the app in cli/main.py).
#
# Rules: (1) these are plain functions with typer-annotated parameters; cli/main.py registers them with
# `app.command("replay")(replay)` etc. (2) Never a traceback for a user's mistake or a missing backend:
# a bad trace file prints "<file>:<line>: <what is wrong>" and exits 2 (the TraceError comes from the
# one validation layer, trace/format.py, and cli/main.py's group prints it: no try/except here); an
# unavailable live backend prints the LiveUnavailable reason and exits 2; a dead live agent prints its
# reason and exits 2.
# (3) Exit codes: 0 = ran and agreed (diff/verify) or every `expect` held (replay); 1 = a divergence
# (diff, verify), a live agent failure during verify, or an unmet `expect` (replay); 2 = could not run.
# (4) --json prints exactly one JSON document on stdout; tables and notes go to stdout, progress
# (cli/progress.py) always to stderr. (5) Options are checked before any work (cli/options.py): an
# unknown or empty --kernel, --live with --seed or --kernel, a --save-failures path that exists as a
# file or cannot be written: one line, exit 2, before a run whose results would be lost.
"""CLI commands over portalloc.trace: ``replay``, ``diff`` and ``verify``."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.markup import escape
from rich.table import Table

from portalloc.cli.console import output_console
from portalloc.cli.options import check_kernel, check_output_dir
from portalloc.cli.options import fail as _fail
from portalloc.cli.progress import progress
from portalloc.trace.compare import Comparison
from portalloc.trace.differential import (
    RUNS,
    TraceResult,
    default_model_kernel,
    minimize,
    run_differential,
    signature,
)
from portalloc.trace.differential import verify as run_verify
from portalloc.trace.format import dumps_trace, load_trace
from portalloc.trace.runner import Outcome, build_host, run_trace


def _live_unavailable(exc: Exception) -> NoReturn:
    _fail(f"the live backend is unavailable: {exc}")


def _style(result: str) -> str:
    return "green" if result == "ok" else ("bold magenta" if result.startswith("crash:") else "yellow")


def _columns(table: Table, *cols: tuple[str, bool]) -> None:
    """Add columns given as (header, right-justified)."""
    for name, right in cols:
        table.add_column(name, justify="right" if right else "left")


def _port(o: Outcome | None) -> str:
    return "" if o is None or o.port is None else str(o.port)


# --- replay ----------------------------------------------------------------------------------------------


def replay(
    trace: Annotated[Path, typer.Argument(help="Trace file (JSON Lines, see docs/traces.md).")],
    kernel: Annotated[str | None, typer.Option("--kernel", help="Model kernel profile (default: the "
                                               "trace header's, else the newest).")] = None,
    live: Annotated[bool, typer.Option("--live", help="Run on the real kernel in a private network "
                                       "namespace (needs root) instead of the model.")] = False,
    seed: Annotated[int | None, typer.Option("--seed", help="Model seed (default: the header's, else 0).")
                    ] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print the outcomes as one JSON document.")] = False,
) -> None:
    """Replay TRACE on the model (or --live) and print the outcome of every op.

    Exit 1 when an op's "expect" is not met, 2 when the trace or the backend cannot be used.
    """
    if live and kernel is not None:
        _fail("--kernel and --live exclude each other (the live backend is the running kernel)")
    if live and seed is not None:
        _fail("--seed and --live exclude each other (the live kernel's random choices have no seed)")
    check_kernel(kernel)
    t = load_trace(trace)
    backend = "live" if live else "model"
    try:
        from portalloc.live import LiveAgentError, LiveUnavailable
    except ImportError as exc:    # pragma: no cover - the live package ships with portalloc
        _fail(f"cannot import the live backend: {exc}")
    try:
        host = build_host(t, backend, kernel=kernel, seed=seed)
    except LiveUnavailable as exc:
        _live_unavailable(exc)
    try:
        with host, progress(len(t.ops), "replay") as bar:
            outcomes = run_trace(t, host, on_outcome=lambda _o: bar.advance())
    except LiveAgentError as exc:
        _fail(f"the live agent failed: {exc}")
    kname = "live " + getattr(host, "kernel_release", "") if live else host.kernel
    unmet = [o for o in outcomes if o.expected is False]
    if json_out:
        doc = {"trace": str(trace), "backend": backend, "kernel": kname,
               "outcomes": [o.to_json() for o in outcomes], "unmet_expectations": len(unmet)}
        print(json.dumps(doc, indent=2))
    else:
        con = output_console()
        table = Table(title=f"{escape(str(trace))} on {escape(kname)}", title_justify="left")
        _columns(table, ("#", True), ("line", True), ("op", False), ("result", False), ("port", True),
                 ("expect", False))
        for o in outcomes:
            exp = o.op.expect
            mark = "" if exp is None else ("[green]✓[/]" if o.expected else
                                           f"[bold red]✗ {escape('|'.join(exp))}[/]")
            table.add_row(str(o.index), str(o.line), escape(o.op.describe()),
                          f"[{_style(o.result)}]{escape(o.result)}[/]", _port(o), mark)
        con.print(table)
        for o in outcomes:
            if o.result.startswith("crash:"):
                con.print(f"[bold magenta]line {o.line}: backend crashed:[/] {escape(o.detail)}")
        if unmet:
            con.print(f"[bold red]{len(unmet)} op(s) did not give the expected outcome[/]")
    if unmet:
        raise typer.Exit(1)


# --- diff ------------------------------------------------------------------------------------------------


def _context_table(r: TraceResult, start: int, stop: int, mark: int | None) -> Table:
    table = Table(title_justify="left")
    _columns(table, ("#", True), ("line", True), ("op", False), ("model", False), ("port", True),
             ("live", False), ("port ", True))
    for i in range(start, stop):
        m = r.model_runs[0][i]
        lv = r.live_runs[0][i]
        style = "bold" if i == mark else None
        table.add_row(str(i), str(m.line), escape(m.op.describe()), f"[{_style(m.result)}]{escape(m.result)}[/]",
                      _port(m), f"[{_style(lv.result)}]{escape(lv.result)}[/]", _port(lv), style=style)
    return table


def _diff_json(r: TraceResult, c: Comparison, path: Path, kernel: str) -> dict[str, Any]:
    return {"trace": str(path), "model_kernel": kernel, "comparison": c.to_json(),
            "model": [o.to_json() for o in r.model_runs[0]], "live": [o.to_json() for o in r.live_runs[0]],
            "seconds": round(r.seconds, 3)}


def diff(
    trace: Annotated[Path, typer.Argument(help="Trace file (JSON Lines, see docs/traces.md).")],
    kernel: Annotated[str | None, typer.Option("--kernel", help="Model kernel profile (default: the trace "
                                               "header's, else the profile matching the running kernel).")
                      ] = None,
    runs: Annotated[int, typer.Option("--runs", min=1, max=20, help="Runs per backend; an op whose result "
                                      "varies between runs is nondeterministic and ends the comparison.")
                    ] = RUNS,
    context: Annotated[int, typer.Option("--context", min=0, help="Ops shown before the divergence.")] = 5,
    json_out: Annotated[bool, typer.Option("--json", help="Print the comparison as one JSON document.")] = False,
) -> None:
    """Run TRACE on the model and on the live kernel; show the first divergence (exit 1) or agree (exit 0)."""
    check_kernel(kernel)
    t = load_trace(trace)
    from portalloc.live import LiveUnavailable

    kname = kernel or default_model_kernel(t)
    try:
        with progress(None, "diff") as bar:
            bar.note(f"{len(t)} ops, {runs} run(s) per backend")
            r = run_differential(t, runs=runs, kernel=kname)
    except LiveUnavailable as exc:
        _live_unavailable(exc)
    if r.error is not None or r.comparison is None:
        _fail(r.error or "the differential run failed")
    c = r.comparison
    if json_out:
        print(json.dumps(_diff_json(r, c, trace, kname), indent=2))
        if c.divergence is not None:
            raise typer.Exit(1)
        return
    con = output_console()
    head = f"{escape(str(trace))}: {len(t)} ops, model {escape(kname)} vs live, {runs} run(s) each"
    con.print(head)
    if c.nondeterministic is not None:
        nd = c.nondeterministic
        con.print(f"[cyan]op #{nd.index} (line {nd.op.line}, {escape(nd.op.describe())}) is nondeterministic: "
                  f"model gave {escape('/'.join(nd.model))}, live gave {escape('/'.join(nd.live))}; it and the "
                  f"{c.excluded - 1} op(s) after it are not compared[/]")
    if c.divergence is None:
        con.print(f"[bold green]agree[/] on all {c.compared} deterministic op(s)")
        return
    d = c.divergence
    con.print(f"[bold red]diverge[/] at op #{d.index} (line {d.op.line}): {escape(d.op.describe())}: "
              f"model [bold]{escape(d.model.result)}[/], live [bold]{escape(d.live.result)}[/] "
              f"(the {c.agreed} op(s) before it agree)")
    con.print(_context_table(r, max(0, d.index - context), d.index + 1, d.index))
    if d.model.detail:
        con.print(f"model: {escape(d.model.detail)}")
    if d.live.detail:
        con.print(f"live:  {escape(d.live.detail)}")
    raise typer.Exit(1)


# --- verify ----------------------------------------------------------------------------------------------


def _save(r: TraceResult, directory: Path, stem: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    c = r.comparison
    notes = [f"verify trace {r.label}"]
    if c is not None and c.divergence is not None:
        d = c.divergence
        notes.append(f"diverges at op #{d.index} ({d.op.describe()}): model {d.model.result}, "
                     f"live {d.live.result}")
    path = directory / f"{stem}.jsonl"
    path.write_text(dumps_trace(r.trace, notes), encoding="utf-8")
    return path


def _minimize_all(divergent: list[TraceResult], directory: Path, runs: int, kernel: str | None, workers: int,
                  per_kind: int) -> list[tuple[str, str]]:
    """Minimize up to ``per_kind`` divergent traces per signature, ``workers`` at a time; (label, path)."""
    chosen: list[TraceResult] = []
    count: dict[Any, int] = {}
    for r in divergent:
        sig = signature(r)
        if count.get(sig, 0) < per_kind:
            count[sig] = count.get(sig, 0) + 1
            chosen.append(r)
    out: list[tuple[str, str]] = []
    with progress(len(chosen), "minimize") as bar, \
            ThreadPoolExecutor(max_workers=workers, thread_name_prefix="minimize") as pool:
        futures = {pool.submit(minimize, r, runs=runs, kernel=kernel, max_seconds=60.0): r for r in chosen}
        for fut in as_completed(futures):
            r = futures[fut]
            m = fut.result()
            out.append((r.label, str(_save(m, directory, f"verify-{r.label.replace(':', '-')}.min"))))
            bar.advance()
    return out


def verify(
    traces: Annotated[int, typer.Option("--traces", min=1, help="Number of random traces.")] = 100,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the trace generator (same seed, same traces).")
                    ] = 0,
    runs: Annotated[int, typer.Option("--runs", min=1, max=20, help="Runs per backend and trace.")] = RUNS,
    kernel: Annotated[str | None, typer.Option("--kernel", help="Model kernel profile (default: the "
                                               "traces' linux-6.18).")] = None,
    workers: Annotated[int, typer.Option("--workers", min=1, max=32, help="Traces run concurrently.")] = 4,
    save_failures: Annotated[Path | None, typer.Option("--save-failures", help="Directory for the divergent "
                                                       "traces (and their minimized forms).")] = None,
    minimize_failures: Annotated[bool, typer.Option("--minimize/--no-minimize", help="With --save-failures, "
                                                    "also save minimized traces.")] = True,
    per_kind: Annotated[int, typer.Option("--minimize-per-kind", min=1, help="Divergences minimized per kind "
                                          "(same op and results).")] = 3,
    json_out: Annotated[bool, typer.Option("--json", help="Print the summary as one JSON document.")] = False,
) -> None:
    """Generate random traces, run each on the model and the live kernel, and report the agreement.

    Exit 1 on any divergence (or live agent failure), 2 when the live backend is unavailable.
    """
    from portalloc.live import LiveUnavailable

    check_kernel(kernel)
    if save_failures is not None:
        check_output_dir(save_failures, "--save-failures")
    try:
        with progress(traces, "verify") as bar:
            bad = 0

            def seen(r: TraceResult) -> None:
                nonlocal bad
                bad += r.diverged or r.error is not None
                bar.note(f"{bad} divergent")
                bar.advance()

            summary = run_verify(traces, seed=seed, runs=runs, kernel=kernel, workers=workers, on_result=seen)
    except LiveUnavailable as exc:
        _live_unavailable(exc)
    saved: dict[str, list[str]] = {}
    if save_failures is not None:
        for r in summary.divergent:
            saved[r.label] = [str(_save(r, save_failures, f"verify-{r.label.replace(':', '-')}"))]
        for r in summary.errors:
            saved[r.label] = [str(_save(r, save_failures, f"verify-{r.label.replace(':', '-')}.error"))]
        if minimize_failures and summary.divergent:
            for label, path in _minimize_all(summary.divergent, save_failures, runs, kernel, workers,
                                             per_kind):
                saved[label].append(path)
    failed = bool(summary.divergent or summary.errors)
    if json_out:
        doc = summary.to_json()
        for item in doc["divergences"]:
            item["saved"] = saved.get(item["label"], [])
        print(json.dumps(doc, indent=2))
        if failed:
            raise typer.Exit(1)
        return
    con = output_console()
    table = Table(title=f"verify: seed {seed}, {runs} run(s) per backend", title_justify="left", show_header=False)
    table.add_column("what")
    table.add_column("value", justify="right")
    pct = f"{100 * summary.agreement:.3f} %"
    for what, value in (("traces", summary.traces), ("ops", summary.ops), ("ops compared", summary.compared),
                        ("agreement on deterministic outcomes", pct),
                        ("nondeterministic outcomes excluded", summary.excluded),
                        ("traces with a nondeterministic op", summary.nondeterministic_traces),
                        ("  of which model and live sets disjoint", summary.disjoint_nondeterministic),
                        ("divergent traces", len(summary.divergent)), ("live agent failures", len(summary.errors)),
                        ("run time", f"{summary.seconds:.1f} s")):
        table.add_row(what, str(value))
    con.print(table)
    reach = Table(title="compared ops: reach", title_justify="left")
    reach.add_column("op kind")
    reach.add_column("compared", justify="right")
    reach.add_column("bind/connect address class")
    reach.add_column("compared", justify="right")
    kinds, classes = sorted(summary.by_kind.items()), sorted(summary.by_class.items())
    for i in range(max(len(kinds), len(classes))):
        k = kinds[i] if i < len(kinds) else ("", "")
        c = classes[i] if i < len(classes) else ("", "")
        reach.add_row(k[0], str(k[1]), c[0], str(c[1]))
    con.print(reach)
    if summary.divergent:
        dt = Table(title="divergent traces", title_justify="left")
        for col in ("trace", "op", "model", "live", "saved"):
            dt.add_column(col)
        for r in summary.divergent:
            d = r.comparison.divergence if r.comparison else None
            assert d is not None
            dt.add_row(r.label, f"#{d.index} {escape(d.op.describe())}", escape(d.model.result),
                       escape(d.live.result), escape("\n".join(saved.get(r.label, []))))
        con.print(dt)
    for r in summary.errors:
        con.print(f"[bold red]{escape(r.label)}:[/] {escape(r.error or '')}")
    if failed:
        raise typer.Exit(1)


__all__: Sequence[str] = ("replay", "diff", "verify")


def _main() -> None:  # pragma: no cover - manual use before the lead registers the commands
    app = typer.Typer(add_completion=False, no_args_is_help=True)
    app.command("replay")(replay)
    app.command("diff")(diff)
    app.command("verify")(verify)
    app(sys.argv[1:])


if __name__ == "__main__":  # pragma: no cover
    _main()
