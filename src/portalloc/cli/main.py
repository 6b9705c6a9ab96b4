# The `portalloc` command line.
#
# Rules: every command prints with rich (or JSON with --json) and exits 0 on success, 1 when what it checks
# does not hold, 2 on bad input — with a one-line message that says what is wrong and how to fix it, never
# a traceback. Commands written elsewhere (replay, diff, verify, compare) are registered here; a broken
# in-tree module fails loudly at import (only a command needing a missing optional third-party extra is
# left out of `--help`). Progress of anything that can run over 2 s goes to stderr (cli/progress.py).
#
# Theory of operation: the app's click group is _OneLineErrors, whose main() runs click in
# non-standalone mode and turns every usage error (unknown option, bad value, missing argument: typer
# would draw a 5-6 line box) and every TraceError that escapes a command into ONE line on stderr,
# "error: <command>: <what is wrong> (see `<command> --help`)", exit status 2. The entry point and
# typer's CliRunner both go through it (both call the group's main()).
"""portalloc CLI: kernels, demo, bench (and replay/diff/verify/compare)."""

from __future__ import annotations

import importlib
import json as _json
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

import typer
from rich.console import Console
from rich.table import Table
from typer.core import TyperGroup

from portalloc import __version__
from portalloc.cli.options import print_error
from portalloc.cli.progress import progress
from portalloc.kernels import describe
from portalloc.trace.format import TraceError


def _exit_with_error(message: str, code: int = 2) -> NoReturn:
    """Outside click (the group's main): one error line, then exit with ``code``."""
    print_error(message)
    sys.exit(code)


def _click_class(name: str) -> type[Exception] | None:
    """click's exception class ``name`` as this typer uses it (typer >= 0.2x vendors click as typer._click)."""
    found = next((c for c in typer.BadParameter.__mro__ if c.__name__ == name), None)
    if found is None:
        found = getattr(sys.modules[typer.BadParameter.__module__], name, None)
    return found


class _Never(Exception):
    """Stands for an exception class this click does not have (never raised)."""


_UsageError: type[Exception] = _click_class("UsageError") or _Never
_ClickException: type[Exception] = _click_class("ClickException") or _Never
#: click >= 8.2 raises this (a UsageError) for a bare `portalloc`: it shows the help, exit 0 here.
_NoArgsIsHelpError: type[Exception] = _click_class("NoArgsIsHelpError") or _Never


def _message(exc: Exception) -> str:
    fmt = getattr(exc, "format_message", None)
    return str(fmt()) if callable(fmt) else str(exc)


class _OneLineErrors(TyperGroup):
    """The app's group: usage errors and trace errors become one line on stderr and exit status 2."""

    def main(self, args: Sequence[str] | None = None, prog_name: str | None = None,
             complete_var: str | None = None, standalone_mode: bool = True, windows_expand_args: bool = True,
             **extra: Any) -> Any:
        """Run the CLI; in standalone mode (the entry point, CliRunner) exit with the command's status."""
        try:
            rv = super().main(args=args, prog_name=prog_name or "portalloc", complete_var=complete_var,
                              standalone_mode=False, windows_expand_args=windows_expand_args, **extra)
        except _NoArgsIsHelpError as exc:
            if not standalone_mode:
                raise
            ctx = getattr(exc, "ctx", None)
            print(ctx.get_help() if ctx is not None else str(exc))
            sys.exit(0)
        except _UsageError as exc:
            if not standalone_mode:
                raise
            ctx = getattr(exc, "ctx", None)
            where = ctx.command_path if ctx is not None else "portalloc"
            _exit_with_error(f"{where}: {_message(exc)} (see `{where} --help`)")
        except _ClickException as exc:
            if not standalone_mode:
                raise
            _exit_with_error(_message(exc), getattr(exc, "exit_code", 2))
        except TraceError as exc:
            if not standalone_mode:
                raise
            _exit_with_error(str(exc))
        except typer.Abort:
            if not standalone_mode:
                raise
            _exit_with_error("aborted", 1)
        if not standalone_mode:
            return rv
        sys.exit(rv if isinstance(rv, int) else 0)


app = typer.Typer(
    name="portalloc",
    help="TCP/UDP local-port allocation, executable: a faithful kernel model, the live kernel, and tests "
         "that hold one to the other.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    cls=_OneLineErrors,
)
console = Console()


def _version(value: bool) -> None:
    if value:
        from portalloc.compiled import core_kind

        console.print(f"portalloc {__version__}, model core: {core_kind()}")
        raise typer.Exit()


@app.callback()
def main(version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                      help="Print the version and which model core runs (compiled or pure "
                                           "Python), and exit.")) -> None:
    """TCP/UDP local-port allocation, executable."""


@app.command()
def kernels(json: bool = typer.Option(False, "--json", help="Print JSON instead of a table.")) -> None:
    """List the kernel profiles, each with what it changes and its sources."""
    rows = describe()
    if json:
        print(_json.dumps([{"name": n, "description": d, "sources": list(s)} for n, d, s in rows], indent=2))
        return
    table = Table(title="Kernel profiles (Host(kernel=NAME); linux-X.Y resolves to the newest switch <= X.Y)")
    table.add_column("name", style="bold")
    table.add_column("what this version changes")
    table.add_column("sources (commits)", overflow="fold")
    for name, desc, sources in rows:
        table.add_row(name, desc.split(": ", 1)[-1], ", ".join(sources[1:]) or sources[0])
    console.print(table)


@app.command()
def demo(json: bool = typer.Option(False, "--json", help="Print JSON instead of a table.")) -> None:
    """Replay the story of the 2014 "Bind before connect" article on the model, claim by claim."""
    from portalloc.story import chapters

    results = []
    with console.status("running the story on the model..."):
        for ch in chapters():
            results.append(ch)
    if json:
        print(_json.dumps([ch.__dict__ for ch in results], indent=2))
    else:
        table = Table(title="'Bind before connect' (2014), replayed on portalloc's model", show_lines=True)
        table.add_column("", width=2)
        table.add_column("claim")
        table.add_column("kernel")
        table.add_column("what the model did")
        for ch in results:
            table.add_row("[green]✓[/]" if ch.ok else "[red]✗[/]", f"[bold]{ch.title}[/]\n{ch.claim}",
                          ch.kernel, ch.result)
        console.print(table)
    if not all(ch.ok for ch in results):
        raise typer.Exit(1)


@app.command()
def bench(
    json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
    connections: int = typer.Option(1_000_000, "--connections", min=1000, max=5_000_000,
                                    help="Connections the model holds open for its memory figure "
                                         "(the figure is the model's, not the kernel's)."),
    live: bool = typer.Option(True, "--live/--no-live", help="Also time the real kernel in a namespace."),
    sim: bool = typer.Option(True, "--sim/--no-sim", help="Also run the simulator's benchmark: 1,000,000 "
                             "connections (5,000/s for 200 s toward 40 destinations), about a minute."),
) -> None:
    """Benchmark the model (figures only; nothing here fails on a slow machine)."""
    from portalloc.bench import run_all

    with progress((5 if live else 3) + (1 if sim else 0), "bench") as bar:
        started = [False]

        def phase(msg: str) -> None:
            if started[0]:
                bar.advance()
            started[0] = True
            bar.note(msg)

        res = run_all(connections, live, progress=phase)
        if sim:
            from portalloc.sim.bench import sim_benchmark

            phase("simulate: 1,000,000 connections (5,000/s for 200 s toward 40 destinations)")
            res["simulate"] = sim_benchmark()
        bar.advance()
    if json:
        print(_json.dumps(res, indent=2))
        return
    table = Table(title="portalloc bench")
    table.add_column("figure")
    table.add_column("value", justify="right")
    cc, fill, mem = res["connect_close"], res["fill_one_destination"], res["memory"]
    table.add_row(f"model: loopback connect+accept+close per second (best of {len(cc['runs_ops_per_sec'])})",
                  f"{cc['ops_per_sec']:,.0f}")
    table.add_row("model: fill 1024-65535 toward one destination",
                  f"{fill['connected']:,} in {fill['fill_seconds']:.2f} s")
    table.add_row("model: then connects failing EADDRNOTAVAIL",
                  f"{fill['failed_eaddrnotavail']:,} (total {fill['total_seconds']:.2f} s)")
    table.add_row("kernel probes counted for the fill / in total",
                  f"{fill['kernel_probes_fill']:,} / {fill['kernel_probes_total']:,}")
    table.add_row(f"model: peak memory, {mem['connections']:,} connections / {mem['destinations']:,} destinations",
                  f"{mem['peak_mib']:,.0f} MiB ({mem['bytes_per_connection']:,.0f} B each)")
    if "live" in res:
        lv = res["live"]
        if "ops_per_sec" in lv:
            table.add_row(f"live kernel {lv['kernel']}: the same loop (best of {len(lv['runs_ops_per_sec'])})",
                          f"{lv['ops_per_sec']:,.0f}")
            table.add_row("model / kernel", f"{res['model_to_kernel_ratio']:.2f}x")
        else:
            table.add_row("live kernel", f"unavailable: {lv['unavailable']}")
    if "simulate" in res:
        sb = res["simulate"]
        table.add_row(f"simulate: {sb['connections']:,} connections ({sb['failed']:,} failed), wall time",
                      f"{sb['wall_s']:,.1f} s")
        table.add_row("simulate: connections per wall second", f"{sb['connections_per_wall_s']:,}")
        table.add_row("simulate: simulated seconds per wall second", f"{sb['simulated_s_per_wall_s']:,.2f}")
        table.add_row("simulate: peak memory (process RSS)", f"{sb['peak_rss_mib']:,.0f} MiB")
        table.add_row("simulate: the model ran as", sb["core"])
    console.print(table)
    fvk = res.get("fill_versus_kernel")
    if fvk and "us_per_connect" in fvk:
        size, parts = fvk["model"]["range"], len(fvk["model"]["slice_seconds"])
        t2 = Table(title=f"connect() while {size:,} ports fill toward one destination, then fail "
                         f"(µs per connect, best of {fvk['us_per_connect']['runs']}; kernel {fvk['live']['kernel']})")
        for col in ("phase", "model µs", "kernel µs", "model speed-up"):
            t2.add_column(col, justify="right" if col != "phase" else "left")
        phases = [f"ports {i * size // parts:,}-{(i + 1) * size // parts:,} taken" for i in range(parts)]
        phases.append(f"{fvk['model']['failed']:,} connects failing EADDRNOTAVAIL")
        us = fvk["us_per_connect"]
        for name, m, k, r in zip(phases, us["model"], us["kernel"], fvk["model_speedup"], strict=True):
            t2.add_row(name, f"{m:,.1f}", f"{k:,.1f}", f"{r:.1f}x")
        console.print(t2)
    elif fvk:
        console.print(f"fill versus kernel: live kernel unavailable: {fvk['live']['unavailable']}")
    if live:  # the doctor / exporter figure (portalloc.observe)
        importlib.import_module("portalloc.cli.observe_cmds").print_scale(console)


def _register_optional(module: str, names: dict[str, str], extras: Sequence[str] = ()) -> None:
    """Register the commands ``names`` (command -> function) of the in-tree ``module``.

    A module that fails to import is a broken install and raises, loudly; the only exception is a missing
    optional third-party package named in ``extras`` (e.g. ``("prometheus_client",)``): then the commands
    are left out of ``--help``. A function missing from the module raises AttributeError.
    """
    try:
        mod = importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name is not None and exc.name.split(".")[0] in extras:
            return
        raise
    for command, attr in names.items():
        fn: Any = getattr(mod, attr)
        app.command(command)(fn)


_register_optional("portalloc.cli.trace_cmds", {"replay": "replay", "diff": "diff", "verify": "verify"})
_register_optional("portalloc.cli.compare_cmd", {"compare": "compare"})
_register_optional("portalloc.cli.observe_cmds", {"doctor": "doctor", "exporter": "exporter"})
_register_optional("portalloc.cli.simulate_cmd", {"simulate": "simulate_command"})


if __name__ == "__main__":  # pragma: no cover
    app()
