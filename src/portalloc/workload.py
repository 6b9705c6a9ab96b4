# Workloads written once: fill a destination until connect() fails, then count the failures.
#
# Rules:
# - Programs against HostAPI (model/api.py), so the same loop runs on the model and on a LiveHost. Every
#   connect() is a fresh socket's connect_ex(); a connected socket is kept open (its port stays taken), a
#   failed one is closed.
# - The live agent (live/agent.py op_bench_fill) keeps its own copy of the fill loop: it runs inside the
#   namespace with only the standard library and portalloc.constants importable (see live/host.py
#   _AGENT_CODE), so it cannot import this module.
# - Timing is optional and measures connect_ex() alone (perf_counter around the call), as the benchmarks
#   compare it with the live kernel's.
"""fill_until_failure and count_failures: the connect loops of compare, story and bench."""

from __future__ import annotations

import errno
import socket
import time
from collections import Counter
from dataclasses import dataclass, field

from portalloc.model.api import HostAPI, SocketAPI


def errno_name(code: int) -> str:
    """``EADDRNOTAVAIL`` for 99; the number as text for an errno Python does not name."""
    return errno.errorcode.get(code, str(code))


@dataclass
class Fill:
    """What fill_until_failure saw: the connected sockets (kept open), their ports, every errno."""

    sockets: list[SocketAPI] = field(default_factory=list)
    ports: list[int] = field(default_factory=list)        # empty when ports were not recorded
    errors: list[int] = field(default_factory=list)       # the failures' errnos, in order
    seconds: list[float] = field(default_factory=list)    # per successful connect_ex(), when timed

    @property
    def connected(self) -> int:
        """How many connect() calls succeeded."""
        return len(self.sockets)

    @property
    def first_error(self) -> int:
        """The errno of the first failure (0: the limit came first)."""
        return self.errors[0] if self.errors else 0

    def outcomes(self) -> dict[str, int]:
        """Counts by outcome: "ok" and the failures' errno names."""
        counts: Counter[str] = Counter()
        if self.sockets:
            counts["ok"] = len(self.sockets)
        for e in self.errors:
            counts[errno_name(e)] += 1
        return dict(counts)

    def close(self) -> None:
        """Close every connected socket."""
        for s in self.sockets:
            s.close()
        self.sockets.clear()


def fill_until_failure(host: HostAPI, dst: tuple[str, int], limit: int, *, extra: int = 0,
                       family: int = socket.AF_INET, kind: int = socket.SOCK_STREAM, ports: bool = True,
                       timed: bool = False) -> Fill:
    """Connect fresh sockets to ``dst`` (kept open) until one fails, at most ``limit`` attempts; after the
    first failure make up to ``extra`` more attempts (each failure counts; a later success is kept too).

    ``ports``: record each connected socket's local port (a getsockname() per connect); ``timed``: record
    the seconds of each successful connect_ex()."""
    fill = Fill()
    pc = time.perf_counter
    failures = 0
    for _ in range(limit):
        s = host.socket(family, kind)
        if timed:
            t = pc()
            err = s.connect_ex(dst)
            t = pc() - t
        else:
            err = s.connect_ex(dst)
        if err:
            s.close()
            fill.errors.append(err)
            failures += 1
            if failures > extra:
                break
            continue
        fill.sockets.append(s)
        if ports:
            fill.ports.append(int(s.getsockname()[1]))
        if timed:
            fill.seconds.append(t)
    return fill


@dataclass
class Failures:
    """What count_failures saw: how many attempts failed as expected, the first other outcome, the time."""

    failed: int = 0
    other: int | None = None        # the first errno (0: a success) that was not the expected one
    seconds: float = 0.0            # total seconds inside connect_ex(), when timed


def count_failures(host: HostAPI, dst: tuple[str, int], count: int, *, expect: int = errno.EADDRNOTAVAIL,
                   stop: bool = False, timed: bool = False) -> Failures:
    """Make ``count`` connect() attempts toward ``dst`` from fresh sockets (each closed at once) and count
    those that fail with ``expect``; with ``stop`` the first other outcome ends the loop."""
    out = Failures()
    pc = time.perf_counter
    for _ in range(count):
        s = host.socket()
        if timed:
            t = pc()
            err = s.connect_ex(dst)
            out.seconds += pc() - t
        else:
            err = s.connect_ex(dst)
        s.close()
        if err == expect:
            out.failed += 1
            continue
        if out.other is None:
            out.other = err
        if stop:
            break
    return out
