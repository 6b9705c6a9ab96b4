# `portalloc compare`: one scenario, or one trace file, run on several kernel profiles, side by side.
#
# Rules: (1) `compare` is a plain function with typer-annotated parameters; cli/main.py registers it with
# `app.command("compare")(compare)`. (2) A scenario is a function (kernel, seed) -> list of (metric, value)
# pairs whose values are JSON-ready (int, str, list, dict); the table renders them, --json prints them as
# they are. Rows are metrics in the order the first kernel reported them; columns are kernels.
# (3) Bad input — an unknown scenario, kernel or unreadable trace — is one line on stderr listing the
# valid choices, exit 2, never a traceback. A kernel that cannot run a scenario (no such sysctl or
# option) shows why in its column instead of failing the whole comparison.
# (4) Scenarios run on the model only (simulated time, fixed seed): the same command prints the same
# table. Their sizes are chosen so each finishes in seconds on any profile; where a published figure needs
# the full default range the scenario uses it (seed-article, even-ports, reuse-distance). A run over
# several kernels shows progress per kernel on stderr (cli/progress.py), --json included.
"""The ``compare`` command: scenarios and traces on several kernel profiles, as one table or JSON."""

from __future__ import annotations

import errno
import json as _json
import socket
import statistics
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from portalloc.cli.console import output_console
from portalloc.cli.options import check_kernel
from portalloc.cli.options import fail as _fail
from portalloc.cli.progress import progress
from portalloc.constants import IP_BIND_ADDRESS_NO_PORT
from portalloc.model.host import Host
from portalloc.trace import Trace, TraceError, build_host, load_trace, run_trace
from portalloc.workload import fill_until_failure

Value = Any
Rows = list[tuple[str, Value]]

ADDRESSES = ("127.0.0.1/8", "::1/128", "192.0.2.1/24")
SOURCE = "192.0.2.1"
REMOTE_NET = "198.51.100.0/24"
DST_A = ("198.51.100.7", 80)
DST_B = ("198.51.100.8", 80)


class Unsupported(Exception):
    """The kernel profile lacks something the scenario needs (a sysctl, an option)."""


def _range(host: Host) -> tuple[int, int]:
    """The ephemeral range (inclusive), whatever the OS calls it (the profile's RangeSysctls)."""
    names = host.profile.range_sysctls.names
    try:
        got = host.profile.range_sysctls.read(tuple(host.sysctl(n) for n in names))
    except OSError as exc:
        raise Unsupported(f"no ephemeral port range sysctl readable for this profile ({_err(exc)})") from None
    if got is None:
        raise Unsupported(f"{names[0]} does not read as a port range")
    return got


def _set_range(host: Host, lo: int, hi: int) -> None:
    try:
        for name, text in host.profile.range_sysctls.writes(lo, hi).items():
            host.sysctl(name, text)
    except OSError as exc:
        raise Unsupported(f"cannot set the range {lo}-{hi} ({_err(exc)})") from None
    if _range(host) != (lo, hi):
        raise Unsupported(f"the range {lo}-{hi} was not accepted (reads {_range(host)})")


def _host(kernel: str, seed: int, peer: str = "accept", port_range: tuple[int, int] | None = None) -> Host:
    host = Host(kernel, seed=seed, addresses=ADDRESSES)
    host.set_peer(REMOTE_NET, peer)
    if port_range is not None:
        _set_range(host, *port_range)
    return host


def _err(exc: OSError) -> str:
    return errno.errorcode.get(exc.errno or 0, str(exc.errno))


def _steps(ports: list[int], num: int) -> list[int] | str:
    steps = sorted({(b - a) % num for a, b in zip(ports, ports[1:], strict=False)})
    return steps if len(steps) <= 10 else f"{len(steps):,} different"


def _parity(ports: list[int]) -> dict[str, int]:
    even = sum(1 for p in ports if p % 2 == 0)
    return {"even": even, "odd": len(ports) - even}


# --- scenarios ------------------------------------------------------------------------------------------


def seed_article(kernel: str, seed: int) -> Rows:
    """The 2014 article: connect to one destination until the range runs out, then to a second one."""
    host = _host(kernel, seed)
    lo, hi = _range(host)
    num = hi - lo + 1
    a = fill_until_failure(host, DST_A, num + 10, extra=2)
    b = fill_until_failure(host, DST_B, num + 10, extra=2)
    a_ports, b_ports = a.ports, b.ports
    return [
        ("ephemeral port range", f"{lo}-{hi}"),
        ("ports in the range", num),
        ("first 8 ports → A", a_ports[:8]),
        ("port steps → A (first 1,000, mod range)", _steps(a_ports[:1000], num)),
        ("parity → A (first 1,000)", _parity(a_ports[:1000])),
        ("connect() → A", a.outcomes()),
        ("connect() → B", b.outcomes()),
        ("B reuses A's ports", set(b_ports) <= set(a_ports)),
        ("established sockets", a.connected + b.connected),
    ]


def bind_before_connect(kernel: str, seed: int) -> Rows:
    """bind(ip, 0) + connect() to two destinations, against IP_BIND_ADDRESS_NO_PORT (range 40000-40299)."""
    rows: Rows = [("ephemeral port range", "40000-40299 (300 ports)")]
    for label, no_port in (("bind(ip, 0) + connect()", False), ("IP_BIND_ADDRESS_NO_PORT", True)):
        host = _host(kernel, seed, port_range=(40000, 40299))
        keep = []
        for dst, name in ((DST_A, "A"), (DST_B, "B")):
            out: Counter[str] = Counter()
            for _ in range(310):
                s = host.socket()
                step = "setsockopt"
                try:
                    if no_port:
                        s.setsockopt(socket.SOL_IP, IP_BIND_ADDRESS_NO_PORT, 1)
                    step = "bind"
                    s.bind((SOURCE, 0))
                    step = "connect"
                    s.connect(dst)
                except OSError as exc:
                    out[f"{step} {_err(exc)}"] += 1
                    s.close()
                    continue
                out["ok"] += 1
                keep.append(s)
            rows.append((f"{label} → {name}", dict(out)))
        rows.append((f"{label}: connections in total", len(keep)))
    return rows


def even_ports(kernel: str, seed: int) -> Rows:
    """Parity of connect() ports (one destination; many destinations) and of bind(ip, 0) ports."""
    host = _host(kernel, seed)
    lo, hi = _range(host)
    fill = fill_until_failure(host, DST_A, 1000)
    one, keep = fill.ports, fill.sockets
    many = []
    for j in range(1000):
        s = host.socket()
        if s.connect_ex((DST_B[0], 10000 + j)) == 0:
            many.append(s.getsockname()[1])
            keep.append(s)
    bound = []
    for _ in range(200):
        s = host.socket()
        try:
            s.bind(("127.0.0.2", 0))
        except OSError:
            s.close()
            continue
        bound.append(s.getsockname()[1])
        keep.append(s)
    low_parity = "even" if lo % 2 == 0 else "odd"
    return [
        ("ephemeral port range", f"{lo}-{hi} ({hi - lo + 1:,} ports, low {low_parity})"),
        ("connect() ×1,000 → one destination", _parity(one)),
        ("first 24 parities → one destination", "".join("e" if p % 2 == 0 else "o" for p in one[:24])),
        ("connect() → 1,000 destinations", _parity(many)),
        ("bind(ip, 0) ×200", _parity(bound)),
    ]


def tw_loop(kernel: str, seed: int) -> Rows:
    """79e9fed46038's loop: loopback connect, accept, client closes first, server after (client TIME_WAIT);
    range 40000-40499, one iteration every 4 ms (a port comes back after 2 s), at most 2,000."""
    host = _host(kernel, seed, port_range=(40000, 40499))
    try:
        reuse = host.sysctl("net.ipv4.tcp_tw_reuse")
    except OSError:
        reuse = "n/a"
    lst = host.socket()
    lst.bind(("127.0.0.1", 5000))
    lst.listen(4096)
    made, error = 0, "none"
    for _ in range(2000):
        c = host.socket()
        e = c.connect_ex(("127.0.0.1", 5000))
        if e:
            error = errno.errorcode.get(e, str(e))
            break
        conn, _ = lst.accept()
        c.close()
        conn.close()
        made += 1
        host.sleep(0.004)
    tw = sum(1 for r in host.sockets() if r.state == "TIME-WAIT")
    return [
        ("ephemeral port range", "40000-40499 (500 ports)"),
        ("tcp_tw_reuse (default)", reuse),
        ("iterations completed (of 2,000)", made),
        ("then", error),
        ("simulated seconds", round(host.time, 3)),
        ("TIME_WAITs taken over", host.stats.get("tw_reused", 0)),
        ("TIME_WAIT sockets at the end", tw),
    ]


def reuse_distance(kernel: str, seed: int) -> Rows:
    """ca7af0402550: connect()+close() 30,000 times to one destination (peer closes first, no TIME_WAIT)."""
    host = _host(kernel, seed, peer="close_first")
    lo, hi = _range(host)
    num = hi - lo + 1
    ports = []
    for _ in range(30_000):
        s = host.socket()
        s.connect(DST_A)
        ports.append(s.getsockname()[1])
        s.close()
    adv = [(b - a) % num for a, b in zip(ports, ports[1:], strict=False)]
    last: dict[int, int] = {}
    dists = []
    for k, p in enumerate(ports):
        if p in last:
            dists.append(k - last[p])
        last[p] = k
    distinct = _steps(ports, num)
    mean = statistics.fmean(adv)
    return [
        ("ephemeral port range", f"{lo}-{hi}"),
        ("distinct port advances", distinct),
        ("mean advance", round(mean, 2)),
        ("range / mean advance (connections per turn)", round(num / mean, 1) if mean else "-"),
        ("shortest distance between two uses of a port", min(dists) if dists else "no reuse"),
        ("median distance between two uses of a port", statistics.median(dists) if dists else "no reuse"),
        ("ports reused within 30,000 connections", len(dists)),
    ]


@dataclass(frozen=True)
class Scenario:
    run: Callable[[str, int], Rows]
    summary: str


SCENARIOS: dict[str, Scenario] = {
    "seed-article": Scenario(seed_article, "the 2014 'Bind before connect' article: connect to one "
                             "destination until the default range runs out, then to a second (first ports, "
                             "steps, counts)"),
    "bind-before-connect": Scenario(bind_before_connect, "bind(ip, 0)+connect() to two destinations vs "
                                    "IP_BIND_ADDRESS_NO_PORT, 300-port range"),
    "even-ports": Scenario(even_ports, "parity of connect() ports (one and many destinations) and of "
                           "bind(ip, 0) ports, default range"),
    "tw-loop": Scenario(tw_loop, "79e9fed46038: loopback connect/close loop, client in TIME_WAIT, until "
                        "failure (500 ports, 4 ms per iteration)"),
    "reuse-distance": Scenario(reuse_distance, "ca7af0402550: 30,000 connect+close to one destination, how "
                               "far apart the same port comes back"),
}


# --- running and printing ---------------------------------------------------------------------------------


def _parse_kernels(text: str) -> list[str]:
    names = [k.strip() for k in text.split(",") if k.strip()]
    if not names:
        _fail("--kernels is empty; give a comma-separated list such as linux-4.1,linux-6.18 "
              "(see `portalloc kernels`)")
    for name in names:
        check_kernel(name, "--kernels")
    return names


def _render(v: Value) -> str:
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, int):
        return f"{v:,}"
    if isinstance(v, dict):
        return "  ".join(f"{k} {_render(x)}" for k, x in v.items()) or "-"
    if isinstance(v, list | tuple):
        return " ".join(_render(x) if not isinstance(x, int) else str(x) for x in v) or "-"
    return str(v)


def _run_scenario(name: str, kernels: list[str], seed: int) -> dict[str, Rows]:
    out: dict[str, Rows] = {}
    with progress(len(kernels), f"compare {name}") as bar:
        for k in kernels:
            bar.note(k)
            try:
                out[k] = SCENARIOS[name].run(k, seed)
            except Unsupported as exc:
                out[k] = [("unsupported", str(exc))]
            bar.advance()
    return out


def _run_trace(path: str, kernels: list[str], seed: int | None) -> tuple[str, dict[str, Rows]]:
    trace = load_trace(Path(path))       # a TraceError is one line and exit 2 (cli/main.py)
    out: dict[str, Rows] = {}
    with progress(len(kernels), "compare") as bar:
        for k in kernels:
            bar.note(k)
            out[k] = _trace_rows(trace, k, seed)
            bar.advance()
    return f"trace {path} ({len(trace.ops)} ops)", out


def _trace_rows(trace: Trace, kernel: str, seed: int | None) -> Rows:
    """One kernel's column for a trace: each op's result, then the counts."""
    try:
        host = build_host(trace, "model", kernel=kernel, seed=seed)
    except TraceError as exc:
        return [("unsupported", str(exc))]
    rows: Rows = []
    outcomes = run_trace(trace, host)
    for o in outcomes:
        cell = o.result + (f" :{o.port}" if o.port and o.result == "ok" else "")
        if o.expected is False:
            cell += f" (expected {'|'.join(o.op.expect or ())})"
        rows.append((f"#{o.index} {o.op.describe()}", cell))
    results = Counter("ok" if o.result == "ok" else "error" for o in outcomes)
    rows += [("ops ok", results["ok"]), ("ops failed", results["error"]),
             ("unmet expectations", sum(1 for o in outcomes if o.expected is False))]
    return rows


def _names_a_file(target: str) -> bool:
    """Whether ``target`` is an existing file (False for a name the OS refuses: too long, a NUL byte)."""
    try:
        return Path(target).is_file()
    except (OSError, ValueError):
        return False


def _table(title: str, results: dict[str, Rows]) -> Table:
    table = Table(title=title, show_lines=False)
    table.add_column("metric / op", style="bold", overflow="fold")
    for k in results:
        table.add_column(k, overflow="fold")
    metrics: list[str] = []
    for rows in results.values():
        for m, _ in rows:
            if m not in metrics:
                metrics.append(m)
    cells = {k: dict(rows) for k, rows in results.items()}
    for m in metrics:
        table.add_row(escape(m), *(escape(_render(cells[k][m])) if m in cells[k] else "" for k in results))
    return table




def compare(
    target: Annotated[str | None, typer.Argument(
        help="A built-in scenario (see --list) or a trace file (JSON Lines, docs/traces.md).")] = None,
    kernels: Annotated[str, typer.Option(
        "--kernels", "-k", help="Comma-separated kernel profiles (see `portalloc kernels`).")
    ] = "linux-4.1,linux-6.18",
    json: Annotated[bool, typer.Option("--json", help="Print one JSON document instead of a table.")] = False,
    list_: Annotated[bool, typer.Option("--list", help="List the built-in scenarios and exit.")] = False,
    seed: Annotated[int | None, typer.Option(
        "--seed", help="Model seed (scenarios: default 1; traces: default the header's, else 0).")] = None,
) -> None:
    """Run one scenario (or trace file) on several kernel profiles and show the results side by side.

    Rows are metrics (or trace ops), columns are kernels. Everything runs on the model, so a given seed
    always prints the same table.
    """
    if list_ and target is not None:
        _fail(f"--list lists every scenario and takes no scenario or trace; run `portalloc compare --list` "
              f"or `portalloc compare {target}`")
    if list_:
        if json:
            print(_json.dumps({n: s.summary for n, s in SCENARIOS.items()}, indent=2))
            return
        table = Table(title="portalloc compare: built-in scenarios")
        table.add_column("scenario", style="bold")
        table.add_column("what it runs")
        for n, s in SCENARIOS.items():
            table.add_row(n, s.summary)
        output_console().print(table)
        return
    choices = ", ".join(SCENARIOS)
    if target is None:
        _fail(f"give a scenario ({choices}) or a trace file; --list describes the scenarios")
    names = _parse_kernels(kernels)
    run_seed: int | None
    if target in SCENARIOS:
        kind, title = "scenario", f"{target}: {SCENARIOS[target].summary}"
        run_seed = 1 if seed is None else seed
        results = _run_scenario(target, names, run_seed)
    elif _names_a_file(target) or target.endswith((".jsonl", ".json")):
        kind, run_seed = "trace", seed
        title, results = _run_trace(target, names, seed)
    else:
        shown = repr(target) if len(target) <= 64 else f"{target[:40]!r}... ({len(target)} characters)"
        _fail(f"unknown scenario {shown} and no such trace file; choose one of: {choices} "
              "(or give a .jsonl trace file)")
    if json:
        doc = {"target": target, "kind": kind, "title": title, "seed": run_seed, "kernels": names,
               "results": {k: [{"metric": m, "value": v} for m, v in rows] for k, rows in results.items()}}
        print(_json.dumps(doc, indent=2, default=str))
        return
    output_console().print(_table(title, results))
