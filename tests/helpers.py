# Shared helpers for the kernel-conformance tests (test_vectors.py, test_seeds.py).
#
# Everything here drives a host through the public socket API only, so the same code runs on the model
# (portalloc.Host) and on the real kernel (portalloc.live.LiveHost). Results are recorded as outcome
# strings ("ok", "bind:EADDRINUSE", "connect:EADDRNOTAVAIL") so a test can compare a whole sequence of
# calls at once and a failure message shows what the backend actually did.
"""Test helpers: listeners, connect/bind loops with outcome recording, TIME_WAIT set-up, ss filters."""

from __future__ import annotations

import errno
import os
import socket
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from portalloc.constants import (
    IP_BIND_ADDRESS_NO_PORT,
    IP_LOCAL_PORT_RANGE,
    IPV6_V6ONLY,
    SO_BINDTODEVICE,
    SO_REUSEPORT,
    pack_local_port_range,
)

#: How many times more examples each hypothesis test draws under HYPOTHESIS_PROFILE=explore (conftest.py).
EXPLORE_FACTOR = 5 if os.environ.get("HYPOTHESIS_PROFILE") == "explore" else 1


def examples(n: int) -> int:
    """``n`` hypothesis examples; five times as many under the explore profile (new random draws)."""
    return n * EXPLORE_FACTOR


#: The default listeners of linux.md section 12 (outside the default test range 40000-40009).
A = ("127.0.0.1", 5000)
B = ("127.0.0.1", 5001)
C = ("127.0.0.1", 5002)
A6 = ("::1", 5000)
#: The default test range (10 ports, even count) and its halves.
LOW, HIGH = 40000, 40009
RANGE = frozenset(range(LOW, HIGH + 1))
EVENS = frozenset(p for p in RANGE if p % 2 == 0)
ODDS = frozenset(p for p in RANGE if p % 2 == 1)

OK = "ok"
#: The outcome strings of the two usual refusals, and the loopback address the vectors use.
NOTAVAIL = "connect:EADDRNOTAVAIL"
BIND_INUSE = "bind:EADDRINUSE"
LO = "127.0.0.1"


def ename(code: int | None) -> str:
    """``EADDRINUSE`` for 98 (the name used in outcome strings)."""
    if code is None:
        return "E?"
    return errno.errorcode.get(code, f"E{code}")


def outcome(fn: Callable[..., Any], *args: Any) -> str:
    """Call ``fn(*args)``; return "ok" or the errno name of the OSError it raised."""
    try:
        fn(*args)
    except OSError as exc:
        return ename(exc.errno)
    return OK


def set_opts(
    sock: Any,
    *,
    reuseaddr: bool = False,
    reuseport: bool = False,
    no_port: bool = False,
    port_range: tuple[int, int] | None = None,
    v6only: bool | None = None,
    device: bytes | None = None,
) -> Any:
    """Apply the sharing-relevant socket options; returns the socket."""
    if reuseaddr:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuseport:
        sock.setsockopt(socket.SOL_SOCKET, SO_REUSEPORT, 1)
    if no_port:
        sock.setsockopt(socket.SOL_IP, IP_BIND_ADDRESS_NO_PORT, 1)
    if port_range is not None:
        sock.setsockopt(socket.SOL_IP, IP_LOCAL_PORT_RANGE, pack_local_port_range(*port_range))
    if v6only is not None:
        sock.setsockopt(socket.IPPROTO_IPV6, IPV6_V6ONLY, int(v6only))
    if device is not None:
        sock.setsockopt(socket.SOL_SOCKET, SO_BINDTODEVICE, device)
    return sock


def new_socket(host: Any, family: int = socket.AF_INET, kind: int = socket.SOCK_STREAM, *, uid: int = 0,
               **opts: Any) -> Any:
    """A socket of ``host`` with options applied (see set_opts)."""
    return set_opts(host.socket(family, kind, uid=uid), **opts)


def family_of(addr: tuple[Any, ...]) -> int:
    return socket.AF_INET6 if ":" in addr[0] else socket.AF_INET


def listener(host: Any, addr: tuple[str, int], *, backlog: int = 4096, **opts: Any) -> Any:
    """A TCP socket bound to ``addr`` and listening (options first, see set_opts)."""
    s = new_socket(host, family_of(addr), socket.SOCK_STREAM, **opts)
    s.bind(addr)
    s.listen(backlog)
    return s


def bound(host: Any, addr: tuple[str, int], kind: int = socket.SOCK_STREAM, *, uid: int = 0,
          **opts: Any) -> Any:
    """A socket bound to ``addr`` (raises the bind error)."""
    s = new_socket(host, family_of(addr), kind, uid=uid, **opts)
    try:
        s.bind(addr)
    except OSError:
        s.close()
        raise
    return s


def try_bind(host: Any, keep: list[Any], addr: tuple[str, int], kind: int = socket.SOCK_STREAM, *,
             uid: int = 0, **opts: Any) -> str:
    """Bind a new socket to ``addr``; return "ok" (the socket is appended to ``keep``) or the errno name."""
    s = new_socket(host, family_of(addr), kind, uid=uid, **opts)
    res = outcome(s.bind, addr)
    if res == OK:
        keep.append(s)
    else:
        s.close()
    return res


@dataclass
class Attempts:
    """What a loop of socket/[bind]/connect calls did.

    ``outcomes[i]`` is "ok", "bind:<ERRNO>" or "connect:<ERRNO>" for attempt i; ``ports`` are the local
    ports of the successful attempts in order; ``bound`` the port getsockname() showed right after
    bind() for every attempt that bound (None when there was no bind); ``socks`` keeps the successful
    sockets open (hold a reference for as long as the sockets must stay alive).
    """

    outcomes: list[str] = field(default_factory=list)
    ports: list[int] = field(default_factory=list)
    bound: list[int | None] = field(default_factory=list)
    socks: list[Any] = field(default_factory=list)

    @property
    def ok(self) -> int:
        return self.outcomes.count(OK)

    def errors(self) -> list[str]:
        return [o for o in self.outcomes if o != OK]


def connect_many(
    host: Any,
    n: int,
    dst: tuple[str, int],
    *,
    kind: int = socket.SOCK_STREAM,
    bind: tuple[str, int] | None = None,
    uid: int = 0,
    **opts: Any,
) -> Attempts:
    """``n`` times: new socket (options), optional ``bind(bind)``, ``connect(dst)``.

    Sockets whose bind or connect failed are closed at once.
    """
    res = Attempts()
    fam = family_of(dst)
    for _ in range(n):
        s = new_socket(host, fam, kind, uid=uid, **opts)
        if bind is not None:
            try:
                s.bind(bind)
            except OSError as exc:
                res.outcomes.append("bind:" + ename(exc.errno))
                res.bound.append(None)
                s.close()
                continue
            res.bound.append(s.getsockname()[1])
        else:
            res.bound.append(None)
        try:
            s.connect(dst)
        except OSError as exc:
            res.outcomes.append("connect:" + ename(exc.errno))
            s.close()
            continue
        res.outcomes.append(OK)
        res.ports.append(s.getsockname()[1])
        res.socks.append(s)
    return res


def one_connect_each(host: Any, dsts: list[tuple[str, int]]) -> tuple[list[int], list[Any]]:
    """A listener on every destination, then one connect() to each: the source ports taken, and everything
    that must stay open (listeners and attempts)."""
    keep: list[Any] = [listener(host, d) for d in dsts]
    ports: list[int] = []
    for d in dsts:
        r = connect_many(host, 1, d)
        ports += r.ports
        keep.append(r)
    return ports, keep


def bind_many(host: Any, n: int, addr: tuple[str, int], *, kind: int = socket.SOCK_STREAM,
              **opts: Any) -> Attempts:
    """``n`` times: new socket (options), ``bind(addr)``; successful sockets stay open."""
    res = Attempts()
    for _ in range(n):
        s = new_socket(host, family_of(addr), kind, **opts)
        try:
            s.bind(addr)
        except OSError as exc:
            res.outcomes.append("bind:" + ename(exc.errno))
            res.bound.append(None)
            s.close()
            continue
        port = s.getsockname()[1]
        res.outcomes.append(OK)
        res.bound.append(port)
        res.ports.append(port)
        res.socks.append(s)
    return res


def accept_one(host: Any, lst: Any, *, tries: int = 200) -> Any:
    """Accept one pending connection on ``lst`` (non-blocking accept, bounded polling with host.sleep)."""
    for _ in range(tries):
        try:
            conn, _peer = lst.accept()
            return conn
        except BlockingIOError:
            host.sleep(0.005)
    raise AssertionError("no connection became acceptable on the listener")


def accept_any(host: Any, listeners: list[Any], *, tries: int = 200) -> tuple[int, Any]:
    """Accept one pending connection from whichever of ``listeners`` has it; returns (index, conn)."""
    for _ in range(tries):
        for i, lst in enumerate(listeners):
            try:
                conn, _peer = lst.accept()
                return i, conn
            except BlockingIOError:
                continue
        host.sleep(0.005)
    raise AssertionError("no connection became acceptable on any listener")


def rows(host: Any, *, proto: str = "tcp", state: str | None = None, ports: Iterable[int] | None = None,
         local_port: int | None = None) -> list[Any]:
    """host.sockets() filtered by protocol, ss state name, and local port (a set, or one port)."""
    wanted = set(ports) if ports is not None else None
    out = []
    for r in host.sockets():
        if r.proto != proto or (state is not None and r.state != state):
            continue
        if wanted is not None and r.local[1] not in wanted:
            continue
        if local_port is not None and r.local[1] != local_port:
            continue
        out.append(r)
    return out


def wait_states(host: Any, state: str, ports: Iterable[int], count: int, *,
                timeout: float = 2.0) -> list[Any]:
    """Poll host.sockets() until ``count`` TCP rows in ``state`` have a local port in ``ports`` (bounded).

    Returns immediately when the condition already holds (the model, and loopback almost always), so it
    adds no delay to timing-sensitive vectors.
    """
    ports = set(ports)
    waited = 0.0
    while True:
        found = rows(host, state=state, ports=ports)
        if len(found) >= count or waited >= timeout:
            return found
        host.sleep(0.01)
        waited += 0.01


def client_closes_first(host: Any, lst: Any, dst: tuple[str, int], n: int, *, server_closes: bool = True,
                        **opts: Any) -> tuple[list[int], list[Any]]:
    """``n`` client connections to ``dst`` (accepted on ``lst``); the client closes first.

    With ``server_closes`` the server then closes its accepted socket → client TIME_WAIT. Without, the
    server keeps its end open → orphaned client in FIN_WAIT2 (a timewait sock with substate FIN_WAIT2).
    Returns (client ports, the accepted sockets still open).
    """
    ports: list[int] = []
    kept: list[Any] = []
    fam = family_of(dst)
    for _ in range(n):
        c = new_socket(host, fam, socket.SOCK_STREAM, **opts)
        c.connect(dst)
        ports.append(c.getsockname()[1])
        conn = accept_one(host, lst)
        c.close()
        if server_closes:
            conn.close()
        else:
            kept.append(conn)
    return ports, kept


def server_closes_first(host: Any, lst: Any, dst: tuple[str, int]) -> Any:
    """One connection to ``dst``; the server's accepted socket closes first (→ server-side TIME_WAIT)."""
    c = new_socket(host, family_of(dst), socket.SOCK_STREAM)
    c.connect(dst)
    conn = accept_one(host, lst)
    conn.close()
    c.close()
    return c


def even_then_odd(ports: list[int], evens: Iterable[int], odds: Iterable[int]) -> bool:
    """True iff ``ports`` is a permutation of evens+odds with every even one before every odd one."""
    evens, odds = set(evens), set(odds)
    k = len(evens)
    return set(ports[:k]) == evens and set(ports[k:]) == odds and len(ports) == k + len(odds)


def parities(ports: Iterable[int]) -> str:
    """'e'/'o' string of the ports' parities (readable in assertion messages)."""
    return "".join("e" if p % 2 == 0 else "o" for p in ports)


TRACES = Path(__file__).parent / "traces"


def trace_file_params() -> list[Any]:
    """Every checked-in trace (the section-12 vectors, then the regressions) as pytest params; a regression
    whose first line starts with ``# open:`` is a strict xfail until the model is fixed."""
    params = []
    for path in sorted(TRACES.glob("tv*.jsonl")) + sorted((TRACES / "regressions").glob("*.jsonl")):
        first = path.read_text().splitlines()[:1]
        marks = []
        if first and first[0].startswith("# open:"):
            marks.append(pytest.mark.xfail(reason=first[0][2:], strict=True))
        params.append(pytest.param(path, id=str(path.relative_to(TRACES)), marks=marks))
    return params
