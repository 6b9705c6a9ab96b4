# `portalloc simulate`: will this workload run out of ports, when, why, and what fixes it (issue 11).
#
# Rules: the contract is issue 11's: `portalloc simulate [SCENARIO.toml] [--kernel K] [--seed N]
# [--vary KEY=V1,V2,...]... [--workers N | --dask ADDRESS] [--json] [--plot FILE.png] [--live]`, plus
# `--list` and `--example NAME`. Bad input (a scenario error, an unknown example, a malformed --vary, a
# missing optional dependency) is one line on stderr and exit status 2, never a traceback. Progress goes to
# stderr (rich when stderr is a terminal, a plain line every few seconds otherwise); stdout holds the
# tables, or exactly one JSON document with --json (a list of documents for --vary).
#
# Theory of operation: the scenario comes from the file, or a bundled example (sim/examples). --kernel and
# --seed override it; --vary builds the grid of variants (Scenario.with_param) and runs them here, in local
# processes (--workers, ProcessPoolExecutor) or on a Dask cluster (--dask, distributed.Client.map); a
# variant travels as its scenario dict and comes back as its result document. A single run also checks
# the fixes (each one simulated), in local processes too (--workers, default one per CPU up to one per fix:
# each fix is a whole simulation of its own, so the rows are the same however they run). --live runs the
# scenario on the real kernel too (LiveHost, 127.0.0.0/8 only, real time) and compares the counts.
"""The `portalloc simulate` command."""

from __future__ import annotations

import itertools
import json as _json
import os
import re
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from portalloc.cli.console import output_console
from portalloc.cli.options import check_output_file, fail
from portalloc.cli.progress import ProgressReporter, progress
from portalloc.sim import (
    DEFAULT_EXAMPLE,
    Result,
    Scenario,
    ScenarioError,
    example,
    fix_outcomes,
    list_examples,
    parse_value,
    simulate,
)
from portalloc.sim.engine import TraceRecorder
from portalloc.sim.pool import map_jobs
from portalloc.sim.result import check_fixes, fix_outcome

out = output_console()
err = Console(stderr=True)
#: Live runs are real time: keep them short.
MAX_LIVE_DURATION = 60.0
#: Variants in one --vary grid.
MAX_VARIANTS = 256
#: Processes for the fix checks when --workers is not given (at most one per CPU; there are at most 6 fixes).
MAX_FIX_WORKERS = 8


#: Suffixes matplotlib writes (--plot).
PLOT_SUFFIXES = (".png", ".svg", ".pdf", ".jpg", ".jpeg", ".webp", ".tif", ".tiff", ".eps", ".ps")
#: Dask scheduler addresses: [SCHEME://]HOST:PORT (distributed's form).
_DASK_ADDRESS_RE = re.compile(r"^(?:inproc://\S{1,200}|(?:(?:tcp|tls|ws|wss|ucx)://)?(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]+):\d{1,5})$")


class _Bad(Exception):
    """Bad input: one line, exit status 2."""


# ---------------------------------------------------------------------------------------------- variants

def run_variant(scenario_dict: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
    """Run one grid variant (in this process, a worker process or a Dask worker): its result document."""
    return simulate(Scenario.from_dict(scenario_dict), fixes=False, params=params).to_dict()


def _grid(base: Scenario, vary: list[str]) -> list[tuple[dict[str, Any], Scenario]]:
    axes: list[tuple[str, list[Any]]] = []
    for spec in vary:
        key, sep, values = spec.partition("=")
        if not sep or not key.strip() or not values.strip():
            raise _Bad(f"--vary {spec!r}: give KEY=V1,V2,... (e.g. --vary rate=400,500,600)")
        axes.append((key.strip(), [parse_value(v.strip()) for v in values.split(",") if v.strip()]))
    combos = list(itertools.product(*[[(k, v) for v in vals] for k, vals in axes]))
    if len(combos) > MAX_VARIANTS:
        raise _Bad(f"--vary makes {len(combos)} variants; at most {MAX_VARIANTS}")
    grid = []
    for combo in combos:
        sc = base
        for k, v in combo:
            try:
                sc = sc.with_param(k, v)
            except ScenarioError as exc:
                raise _Bad(f"--vary {k}={v}: {exc}") from None
        grid.append((dict(combo), sc))
    return grid


def _run_grid(grid: list[tuple[dict[str, Any], Scenario]], workers: int, dask: str | None,
              bar: ProgressReporter) -> list[dict[str, Any]]:
    jobs = [(sc.to_dict(), params) for params, sc in grid]
    if dask:
        try:
            from distributed import Client
        except ImportError:
            raise _Bad("--dask needs the dask extra: pip install 'portalloc[dask]'") from None
        try:
            client = Client(dask, timeout="10s")
        except Exception as exc:  # noqa: BLE001 - distributed raises many kinds; each is one line here
            raise _Bad(f"--dask {dask}: cannot reach the scheduler ({exc})") from None
        try:
            from distributed import as_completed

            futures = client.map(run_variant, [j[0] for j in jobs], [j[1] for j in jobs], pure=False)
            bar.phase("variants (dask)", len(jobs))
            for _ in as_completed(futures):
                bar.advance()
            return list(client.gather(futures))
        finally:
            client.close()
    if workers > 1:
        bar.phase(f"variants ({workers} processes)", len(jobs))
        docs, note = map_jobs(run_variant, jobs, workers, bar.advance)
        if note is not None:
            err.print(f"note: --workers: {note}", highlight=False, soft_wrap=True)
        return docs
    results = []
    for i, (d, params) in enumerate(jobs):
        sc = Scenario.from_dict(d)
        bar.phase(f"variant {i + 1}/{len(jobs)} (simulated s)", sc.duration)
        bar.note(" ".join(f"{k}={v}" for k, v in params.items()))
        results.append(simulate(sc, fixes=False, params=params, progress=_simulated(bar)).to_dict())
    return results


def _simulated(bar: ProgressReporter) -> Any:
    """The engine's progress callback ``(t, duration)`` feeding ``bar`` with simulated seconds."""
    return lambda t, duration: bar.update(t)


# ---------------------------------------------------------------------------------------------- printing

def _failed_text(failed: dict[str, int]) -> str:
    return ", ".join(f"{n:,} {e}" for e, n in sorted(failed.items(), key=lambda x: -x[1])) or "0"


def _print_result(r: Result, origin: str) -> None:
    d = r.to_dict()
    sc = r.scenario
    out.print(f"[bold]{sc.name or 'scenario'}[/] ({origin}) on {sc.kernel}, seed {sc.seed}, {sc.duration:g} simulated s"
              + (f", {sc.hosts} hosts" if sc.hosts > 1 else ""), highlight=False)
    if sc.description:
        out.print(f"  {sc.description}", highlight=False)
    if sc.incident:
        out.print(f"  [dim]incident: {sc.incident}[/]", highlight=False)
    t = Table(title="Summary", show_header=False)
    t.add_column("figure", overflow="fold")
    t.add_column("value", justify="right", overflow="fold")
    t.add_row("connections attempted", f"{r.attempts:,}")
    t.add_row("connected", f"{r.connected:,}")
    t.add_row("failed", _failed_text(r.failed))
    t.add_row("first failure", "none" if r.first_failure_s is None else f"t = {r.first_failure_s:.3f} s")
    t.add_row("peak open connections", f"{r.peak['in_use']:,}")
    t.add_row("peak TIME_WAIT", f"{r.peak['time_wait']:,}")
    t.add_row("ephemeral range", f"{r.range_size:,} ports" if r.range_size else "-")
    t.add_row("wall time", f"{r.wall_s:.2f} s")
    out.print(t)
    if r.per_destination:
        pt = Table(title="Per source and destination (top 10)")
        for col in ("source -> destination", "connected", "failed", "peak open", "peak TIME_WAIT", "free now"):
            pt.add_column(col, justify="left" if col.startswith("source") else "right", overflow="fold")
        for row in d["per_destination"][:10]:
            pt.add_row(f"{row['source']} -> {row['destination']}:{row['port']}", f"{row['connected']:,}",
                       _failed_text(row["failed"]), f"{row['peak_in_use']:,}", f"{row['peak_time_wait']:,}",
                       "-" if row["free_ports"] is None else f"{row['free_ports']:,}")
        out.print(pt)
    colour = "red" if r.runs_out else "green"
    for line in r.findings:
        out.print(f"[{colour}]{line}[/]", highlight=False)
    if r.checks:
        ct = Table(title="Cross-checks")
        ct.add_column("check", overflow="fold")
        ct.add_column("expected", justify="right", overflow="fold")
        ct.add_column("measured", justify="right", overflow="fold")
        ct.add_column("", overflow="fold")
        for c in r.checks:
            if c["check"] == "threshold":
                ct.add_row(f"{c['workload']}: {c['what']}", f"runs out: {c['predicted_runs_out']} "
                           f"(threshold {c['threshold_per_s']:,.1f}/s, rate {c['rate_per_s']:,.1f}/s)",
                           f"runs out: {c['observed_runs_out']}",
                           {True: "[green]agrees[/]", False: "[red]disagrees[/]", None: ""}[c.get("agrees")])
            else:
                ct.add_row(c["what"], f"{c['expected']:,.1f}",
                           "-" if c.get("measured") is None else f"{c['measured']:,.1f}",
                           c.get("note", f"ratio {c['ratio']:.3f}" if c.get("ratio") else ""))
        out.print(ct)
    if r.fixes:
        ft = Table(title="Fixes (each checked by simulating the variant)")
        ft.add_column("fix", overflow="fold")
        ft.add_column("change", overflow="fold")
        ft.add_column("outcome", overflow="fold")
        for f in r.fixes:
            if not f["checked"]:
                ft.add_row(f["fix"], f["change"], f"[dim]not checked: {f['why_not']}[/]")
            elif f["fixes_it"]:
                ft.add_row(f["fix"], f["change"], f"[green]no failure[/] (peak TIME_WAIT {f['peak_time_wait']:,})")
            else:
                ft.add_row(f["fix"], f["change"], f"[red]still fails[/] at {f['first_failure_s']:.3f} s "
                           f"({f['failed']:,} failed)")
        out.print(ft)
    if r.nat:
        out.print(f"NAT {r.nat['kind']}: {r.nat['documented_limit']}; capacity {r.nat['capacity_per_key']:,} per "
                  f"{r.nat['counted_per']}; {r.nat['refused']:,} refused. Documented limits, not "
                  f"source-verified algorithms: {', '.join(r.nat['docs'])}", highlight=False)
    for n in r.notes:
        out.print(f"[dim]note: {n}[/]", highlight=False)


def _print_grid(docs: list[dict[str, Any]]) -> None:
    t = Table(title="Variants")
    keys = list(docs[0].get("params", {})) if docs else []
    for k in keys:
        t.add_column(k, overflow="fold")
    for c in ("attempts", "connected", "failed", "first failure", "peak in use", "peak TIME_WAIT"):
        t.add_column(c, justify="right", overflow="fold")
    for d in docs:
        p = d.get("params", {})
        t.add_row(*[str(p.get(k)) for k in keys], f"{d['attempts']:,}", f"{d['connected']:,}",
                  _failed_text(d["failed"]),
                  "none" if d["first_failure_s"] is None else f"{d['first_failure_s']:.3f} s",
                  f"{d['peak']['in_use']:,}", f"{d['peak']['time_wait']:,}")
    out.print(t)


# ---------------------------------------------------------------------------------------------- the command

def simulate_command(
    scenario: Annotated[Path | None, typer.Argument(help="A scenario TOML file (default: the bundled example "
                                                         f"{DEFAULT_EXAMPLE!r}).")] = None,
    kernel: str | None = typer.Option(None, "--kernel", help="Kernel profile (overrides the scenario's kernel)."),
    seed: int | None = typer.Option(None, "--seed", help="Seed (overrides the scenario's)."),
    vary: Annotated[list[str] | None, typer.Option(
        "--vary", help="KEY=V1,V2,...: run the grid of variants side by side (repeatable). KEY: kernel, seed, "
                       "duration, hosts, sysctls.<name>, nat.<knob>, a workload field, or <workload name>.<field>.")
    ] = None,
    workers: int | None = typer.Option(None, "--workers", min=1, max=256,
                                       help="Run --vary variants, or the fix checks, in N local processes "
                                            "(default: --vary variants in this one; fix checks in one per CPU)."),
    dask: str | None = typer.Option(None, "--dask", help="Run --vary variants on the Dask cluster at ADDRESS "
                                    "(pip install 'portalloc\\[dask]')."),
    json: bool = typer.Option(False, "--json", help="Print one JSON document (a list for --vary)."),
    plot: Annotated[Path | None, typer.Option("--plot", help="Draw ports in use and TIME_WAIT per destination "
                                              "over time to FILE.png (needs matplotlib: pip install "
                                              "'portalloc\\[sim]').")] = None,
    live: bool = typer.Option(False, "--live", help="Also run the scenario on the real kernel in a private "
                              "namespace (root; 127.0.0.0/8 only; real time) and compare the counts."),
    show_list: bool = typer.Option(False, "--list", help="List the bundled examples."),
    example_name: str | None = typer.Option(None, "--example", help="Run the bundled example NAME."),
    trace: Annotated[Path | None, typer.Option("--trace", help="Write the socket calls of host 0 as a trace "
                                               "(JSON Lines) that `portalloc replay` runs.")] = None,
    trace_limit: int = typer.Option(1_000_000, "--trace-limit", min=10, help="Most ops written by --trace."),
    fixes: bool = typer.Option(True, "--fixes/--no-fixes", help="Check the fixes by simulating each one."),
) -> None:
    """Will this workload run out of ports, when, why, and what fixes it: simulate it on the model kernel."""
    try:
        _simulate(scenario, kernel, seed, vary or [], workers, dask, json, plot, live, show_list, example_name,
                  trace, trace_limit, fixes)
    except (_Bad, ScenarioError) as exc:
        fail(exc)


def _check_options(scenario_path: Path | None, vary: list[str], workers: int | None, dask: str | None,
                   plot: Path | None, live: bool, show_list: bool, example_name: str | None,
                   trace: Path | None, fixes: bool) -> None:
    """Refuse conflicting or malformed options before anything runs (exit 2, one line)."""
    if show_list:
        given = [name for name, on in (("a scenario file", scenario_path is not None),
                                       ("--example", example_name is not None), ("--vary", bool(vary)),
                                       ("--workers", workers is not None), ("--dask", dask is not None),
                                       ("--plot", plot is not None), ("--live", live),
                                       ("--trace", trace is not None)) if on]
        if given:
            raise _Bad(f"--list only lists the examples; drop {', '.join(given)} (or drop --list)")
        return
    if scenario_path is not None and example_name is not None:
        raise _Bad("give a scenario file or --example, not both")
    if example_name is not None and not example_name.strip():
        raise _Bad("--example is empty; --list shows the bundled examples")
    if dask is not None and workers is not None:
        raise _Bad("give --workers or --dask, not both")
    if (workers or 1) > 1 and not vary and (live or not fixes):
        raise _Bad("--workers runs --vary variants or the fix checks in parallel; "
                   + ("--live runs neither: drop --workers" if live else
                      "with --no-fixes add --vary KEY=V1,V2 or drop --workers"))
    if dask is not None:
        if not vary:
            raise _Bad("--dask runs --vary variants on a cluster; add --vary KEY=V1,V2 or drop --dask")
        if not _DASK_ADDRESS_RE.match(dask):
            shown = dask if len(dask) <= 40 else dask[:37] + "..."
            raise _Bad(f"--dask {shown!r}: give the scheduler address as [tcp://]HOST:PORT, e.g. tcp://127.0.0.1:8786")
    if live and vary:
        raise _Bad("--live compares one run; drop --vary or --live")
    if plot is not None:
        if vary:
            raise _Bad("--plot draws one run; drop --vary or --plot")
        if live:
            raise _Bad("--plot draws a model run; drop --live or --plot")
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            raise _Bad("--plot needs matplotlib: pip install 'portalloc[sim]' (the summary works without it)") \
                from None
        check_output_file(plot, "--plot", PLOT_SUFFIXES)
    if trace is not None:
        if vary or live:
            raise _Bad("--trace records one model run; drop --vary/--live or --trace")
        check_output_file(trace, "--trace")


def _simulate(scenario_path: Path | None, kernel: str | None, seed: int | None, vary: list[str],
              workers: int | None,
              dask: str | None, json: bool, plot: Path | None, live: bool, show_list: bool,
              example_name: str | None, trace: Path | None, trace_limit: int, fixes: bool) -> None:
    _check_options(scenario_path, vary, workers, dask, plot, live, show_list, example_name, trace, fixes)
    if show_list:
        ex = list_examples()
        if json:
            print(_json.dumps([{"name": n, "description": dsc} for n, dsc in ex.items()], indent=2))
            return
        t = Table(title="Bundled examples (portalloc simulate --example NAME)")
        t.add_column("name", style="bold", overflow="fold")
        t.add_column("what it shows", overflow="fold")
        for n, dsc in ex.items():
            t.add_row(n + (" (default)" if n == DEFAULT_EXAMPLE else ""), dsc)
        out.print(t)
        return
    if scenario_path is not None:
        try:
            sc = Scenario.load(scenario_path)
        except OSError as exc:
            raise _Bad(f"{scenario_path}: cannot read it ({exc.strerror or exc})") from None
        origin = str(scenario_path)
    else:
        name = example_name or DEFAULT_EXAMPLE
        sc = example(name)
        origin = f"bundled example {name!r}" + ("" if example_name else "; --list shows the others")
    if kernel is not None:
        sc = sc.with_param("kernel", kernel)
    if seed is not None:
        sc = sc.with_param("seed", seed)
    grid = _grid(sc, vary) if vary else []
    if live:
        _live(sc, json)
        return
    if scenario_path is None and example_name is None and not json:
        err.print(f"no scenario file given: running the bundled example {DEFAULT_EXAMPLE!r} (--list shows all)",
                  highlight=False, soft_wrap=True)
    if vary:
        with progress(len(grid), "simulate --vary") as bar:
            docs = _run_grid(grid, workers or 1, dask, bar)
        if json:
            print(_json.dumps(docs, indent=2))
        else:
            _print_grid(docs)
        return
    recorder = TraceRecorder(trace_limit) if trace is not None else None
    with progress(sc.duration, "simulating (simulated s)") as bar:
        result = simulate(sc, fixes=False, recorder=recorder, progress=_simulated(bar))
        if fixes and result.runs_out:
            fix_workers = workers if workers is not None else min(os.cpu_count() or 1, MAX_FIX_WORKERS)

            def run_variants(variants: list[Scenario]) -> list[dict[str, Any]]:
                if fix_workers > 1 and len(variants) > 1:
                    bar.phase(f"checking {len(variants)} fixes ({min(fix_workers, len(variants))} processes)",
                              len(variants))
                    return fix_outcomes(variants, fix_workers, result.notes, done=bar.advance)
                outcomes = []
                for v in variants:
                    bar.phase("checking a fix (simulated s)", v.duration)
                    outcomes.append(fix_outcome(simulate(v, fixes=False, progress=_simulated(bar))))
                return outcomes
            result.fixes = check_fixes(result, run_variants)
    if recorder is not None:
        assert trace is not None
        try:
            trace.write_text(recorder.dumps(), encoding="utf-8")
        except OSError as exc:
            raise _Bad(f"--trace {trace}: cannot write it ({exc.strerror or exc})") from None
    if plot is not None:
        from portalloc.sim.plot import draw

        try:
            draw(result, plot)
        except OSError as exc:
            raise _Bad(f"--plot {plot}: cannot write it ({exc.strerror or exc})") from None
    if json:
        print(_json.dumps(result.to_dict(), indent=2))
    else:
        _print_result(result, origin)
        if trace is not None:
            out.print(f"trace: {trace} ({len(recorder.ops) if recorder else 0:,} ops); "
                      f"replay it with `portalloc replay {trace}`", highlight=False)
        if plot is not None:
            out.print(f"plot: {plot}", highlight=False)


def _live(sc: Scenario, json: bool) -> None:
    from portalloc.sim.live import LiveCheckError, compare_live

    try:
        report = compare_live(sc, max_duration=MAX_LIVE_DURATION,
                              progress=None if json else lambda msg: err.print(msg, highlight=False))
    except LiveCheckError as exc:
        raise _Bad(str(exc)) from None
    if json:
        print(_json.dumps(report, indent=2))
    else:
        t = Table(title=f"{sc.name or 'scenario'}: model against the live kernel ({report['live_kernel']}), "
                        f"{sc.duration:g} s of real time")
        t.add_column("count", overflow="fold")
        t.add_column("model", justify="right", overflow="fold")
        t.add_column("live", justify="right", overflow="fold")
        t.add_column("", overflow="fold")
        for row in report["rows"]:
            t.add_row(row["count"], str(row["model"]), str(row["live"]),
                      "[green]equal[/]" if row["equal"] else "[red]differs[/]")
        out.print(t)
        for n in report["notes"]:
            out.print(f"[dim]note: {n}[/]", highlight=False)
    if not report["match"]:
        raise typer.Exit(1)


def main() -> None:  # pragma: no cover - `python -m portalloc.cli.simulate_cmd`
    typer.run(simulate_command)


if __name__ == "__main__":  # pragma: no cover
    main()
    sys.exit(0)
