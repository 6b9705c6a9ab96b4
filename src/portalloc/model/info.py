# What `Host.sockets()` returns: an `ss`-like snapshot row.
#
# Both backends produce exactly this type, so a model snapshot and a live snapshot compare field
# by field. States use the names `ss` prints (ESTAB, TIME-WAIT, FIN-WAIT-2, ...); addresses are
# (host, port) with the host as the kernel would print it ("127.0.0.1", "::1", "0.0.0.0", "::").
"""The socket-table row shared by the model and the live backend."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, order=True)
class SocketInfo:
    """One row of the socket table, like a line of ``ss -tuna``.

    ``proto`` is ``"tcp"`` or ``"udp"``; ``family`` is 4 or 6 (the socket's own family, so a dual-stack
    IPv6 socket connected to a v4-mapped peer still says 6); ``state`` is the ``ss`` state name
    (UDP sockets are ``UNCONN`` or ``ESTAB``; a TCP socket that is only bound is ``UNCONN`` as ``ss``
    shows it); ``remote`` is ``None`` when there is no peer; ``uid`` is the owner; ``options`` are the
    names of the sharing-relevant options set on the socket (``SO_REUSEADDR``, ``SO_REUSEPORT``, ...);
    ``timer`` is the seconds left on a TIME-WAIT or orphaned FIN-WAIT-2 timer.
    """

    proto: str
    family: int
    state: str
    local: tuple[str, int]
    remote: tuple[str, int] | None
    uid: int = 0
    options: frozenset[str] = field(default_factory=frozenset)
    timer: float | None = field(default=None, compare=False)
