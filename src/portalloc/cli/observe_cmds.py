# `portalloc doctor` and `portalloc exporter`: the true headroom of a real host, per destination.
#
# Rules: read-only (the doctor never writes a sysctl or touches a socket); bad input is one line on stderr
# and exit status 2; `--json` prints {"sysctls", "headroom", "findings"} (plus source, kernel, interfaces, notes);
# `--watch S` refreshes a rich Live view in place every S seconds, at most WATCH_ROUNDS times.
"""CLI: doctor (headroom table + findings) and exporter (Prometheus metrics per scrape)."""

from __future__ import annotations

import json as _json
import time

import typer
from rich.console import Console, Group
from rich.table import Table

from portalloc.cli.console import output_console
from portalloc.cli.options import fail as _fail
from portalloc.live import LiveUnavailable

#: Bound on --watch refreshes (a day at 1 s would be 86,400; stop well before).
WATCH_ROUNDS = 10_000


def _parse_endpoint(text: str, what: str) -> tuple[str, int]:
    import ipaddress

    from portalloc.endpoint import split_endpoint

    shown = text if len(text) <= 60 else text[:57] + "..."
    try:
        host, port = split_endpoint(text)
    except ValueError as exc:
        _fail(f"{what} {shown!r}: {exc}")
    if not 0 < port < 65536:
        _fail(f"{what} {shown!r}: the port must be 1-65535")
    try:
        ipaddress.ip_address(host)
    except ValueError:
        _fail(f"{what} {shown!r}: not an IP address before the port")
    return host, port


def _reader(netns: str | None, from_file: str | None):  # type: ignore[no-untyped-def]
    from portalloc.observe import read_host, read_ss_file

    def read():  # type: ignore[no-untyped-def]
        if from_file is not None:
            return read_ss_file(from_file)
        return read_host(netns)

    return read


def _render(snap, rows, found, top: int):  # type: ignore[no-untyped-def]
    lo, hi = snap.port_range
    table = Table(title=f"portalloc doctor: headroom per destination (range {lo}-{hi}, read from {snap.source})")
    shown = sorted(rows, key=lambda r: r.headroom)[:top]
    inferred = any(r.inferred for r in shown)
    for col, right in (("proto", False), ("src", False), ("destination", False), ("in use", True),
                       ("TW", True), ("TW reusable", True), ("bind-locked", True), ("reserved", True),
                       ("limit", True), ("headroom", True)) + ((("inferred", False),) if inferred else ()):
        table.add_column(col, justify="right" if right else "left", overflow="fold")
    for r in shown:
        style = "red" if r.headroom <= 0.1 * r.limit else "yellow" if r.headroom <= 0.5 * r.limit else "green"
        cells = [r.proto, r.src, f"{r.dst}:{r.dport}", str(r.in_use), str(r.time_wait), str(r.reusable_time_wait),
                 str(r.bind_locked), str(r.reserved), str(r.limit), f"[{style}]{r.headroom}[/]"]
        if inferred:
            cells.append("bind() before connect()" if r.inferred else "")
        table.add_row(*cells)
    ft = Table(title="findings", show_lines=True)
    ft.add_column("severity")
    ft.add_column("what")
    ft.add_column("fix")
    colour = {"critical": "red", "warning": "yellow", "info": "cyan"}
    for f in found:
        ft.add_row(f"[{colour[f.severity]}]{f.severity}[/]", f.detail, f.fix)
    parts: list[Table | str] = [table]
    if len(rows) > top:
        parts.append(f"({len(rows) - top} more destinations; --top N shows more)")
    parts.append(ft if found else "[green]no findings[/]")
    parts.extend(f"[dim]note: {n}[/]" for n in snap.notes)
    return Group(*parts)


def doctor(
    netns: str = typer.Option(None, "--netns", help="Read this network namespace (a name from `ip netns list`, "
                                                    "or a path such as /proc/PID/ns/net)."),
    from_file: str = typer.Option(None, "--from", help="Read a saved `ss -tanpeH` or `ss -uanpeH` dump."),
    dst: list[str] = typer.Option(None, "--dst", help="Only these destinations (IP:PORT; repeat the option)."),  # noqa: B008
    top: int = typer.Option(20, "--top", min=1, max=100_000, help="Rows to show (lowest headroom first)."),
    json: bool = typer.Option(False, "--json", help="Print JSON: sysctls, headroom rows, findings."),
    watch: float = typer.Option(None, "--watch", min=0.2, max=3600, help="Refresh every SECONDS, in place."),
) -> None:
    """The true headroom of this host per destination: further connect() calls that would get a source
    port now, computed by the model from the real socket table, with findings and their fixes."""
    from portalloc.observe import ReadError
    from portalloc.observe.findings import findings
    from portalloc.observe.snapshot import no_gc

    if netns is not None and from_file is not None:
        _fail("give --netns or --from, not both")
    asked = [_parse_endpoint(d, "--dst") for d in (dst or [])]
    read = _reader(netns, from_file)

    def once():  # type: ignore[no-untyped-def]
        with no_gc():            # one burst of objects (100k sockets): no collector passes in between
            return _once()

    def _once():  # type: ignore[no-untyped-def]
        try:
            snap = read()
        except ReadError as exc:
            _fail(str(exc))
        except PermissionError as exc:
            _fail(f"{exc.strerror or exc}: reading another namespace needs root")
        rows = snap.headroom(asked or None)
        return snap, rows, findings(snap, rows)

    if json:
        snap, rows, found = once()
        print(_json.dumps(snap.to_json(rows, found), indent=2))
        return
    console = output_console()
    if watch is None:
        console.print(_render(*once(), top))
        return
    from rich.live import Live

    with Live(_render(*once(), top), console=console, refresh_per_second=4) as live:
        try:
            for _ in range(WATCH_ROUNDS):
                time.sleep(watch)
                live.update(_render(*once(), top))
        except KeyboardInterrupt:
            pass


def exporter(
    listen: str = typer.Option("127.0.0.1:9797", "--listen", help="ADDR:PORT to serve /metrics on."),
    netns: str = typer.Option(None, "--netns", help="Read this network namespace (name or /proc/PID/ns/net)."),
    top: int = typer.Option(20, "--top", min=1, max=10_000,
                            help="Destinations with their own series; the rest are summed under dst=\"other\"."),
) -> None:
    """Serve Prometheus metrics of the per-destination headroom, computed on every scrape."""
    from portalloc.observe.exporter import serve

    where = _parse_endpoint(listen, "--listen")
    if netns is not None:
        from portalloc.observe.read import ReadError, _netns_path

        try:
            _netns_path(netns)
        except ReadError as exc:
            _fail(str(exc))
    try:
        import prometheus_client  # noqa: F401
    except ImportError:
        _fail("prometheus-client is not installed: pip install 'portalloc[observe]'")
    Console(stderr=True).print(f"serving http://{where[0]}:{where[1]}/metrics (Ctrl-C stops)")
    try:
        serve(where, _reader(netns, None), top)
    except OSError as exc:
        _fail(f"cannot listen on {listen}: {exc.strerror}")
    except KeyboardInterrupt:
        pass


def print_scale(console: Console) -> None:
    """The doctor's figure: read + rebuild + headroom, and one exporter scrape, on ~100k TIME_WAITs."""
    try:
        from portalloc.observe.bench import doctor_scale

        with console.status("doctor on ~100,000 TIME_WAITs in a namespace..."):
            d = doctor_scale()
    except (ImportError, LiveUnavailable, OSError) as exc:
        console.print(f"doctor scale: unavailable: {exc}")
        return
    t3 = Table(title=f"portalloc doctor / exporter on {d['sockets']:,} sockets ({d['time_wait']:,} TIME_WAIT)")
    t3.add_column("step")
    t3.add_column("seconds", justify="right")
    for name, key in (("read (sock_diag, other namespace)", "read_seconds"),
                      ("rebuild in the model", "rebuild_seconds"),
                      ("headroom (model query)", "headroom_seconds"), ("findings", "findings_seconds"),
                      ("doctor total (best of 3)", "doctor_seconds"),
                      ("one exporter scrape (best of 3)", "exporter_scrape_seconds")):
        v = d.get(key)
        t3.add_row(name, "n/a" if v is None else f"{v:.2f}")
    console.print(t3)
