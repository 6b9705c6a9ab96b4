# portalloc.connectx: a connect() that reaches the whole 4-tuple space (TCP and UDP, sync and asyncio).
#
# Theory and citations: core.py (the technique, written once), kernel.py (real sockets), model.py (a
# portalloc model Host), docs/connectx.md (which technique when, kernel versions). This module holds only
# the drivers: connectx() connects the prepared TCP sockets one after the other with blocking connect();
# connectx_async() does the same with loop.sock_connect() on non-blocking sockets (port selection happens
# inside connect(), synchronously, so EADDRNOTAVAIL comes back at once and the loop never waits for it);
# the UDP technique makes only immediate syscalls and netlink round trips, run with asyncio.to_thread.
# With host=<portalloc.Host> both drivers run the same plan on the model (which never blocks).
"""connectx(): connect from a pool of source addresses without running out of ports early."""

from __future__ import annotations

import asyncio
import errno
from typing import TYPE_CHECKING, Any

from portalloc.connectx.core import ConnectxUnsupported, Net, TcpPlan, udp_connect
from portalloc.connectx.pool import SourcePool

if TYPE_CHECKING:
    from portalloc.model.host import Host

__all__ = ["SourcePool", "connectx", "connectx_async", "ConnectxUnsupported", "net_for"]

_NETS: dict[int, Net] = {}


def net_for(host: Host | None = None) -> Net:
    """The Net connectx uses: the running kernel for ``None``, else one per portalloc model Host."""
    if host is None:
        from portalloc.connectx.kernel import KERNEL
        return KERNEL
    from portalloc.connectx.model import ModelNet
    from portalloc.model.host import Host
    if not isinstance(host, Host):
        raise TypeError(f"host must be a portalloc.Host (the model) or None (this kernel), not {type(host).__name__}")
    net = getattr(host, "_connectx_net", None)
    if net is None:
        net = ModelNet(host)
        host._connectx_net = net  # type: ignore[attr-defined]
    return net


def _check_proto(proto: str) -> str:
    if proto not in ("tcp", "udp"):
        raise ValueError(f"proto must be 'tcp' or 'udp', not {proto!r}")
    return proto


def connectx(dst: tuple[Any, ...], pool: SourcePool, proto: str = "tcp", timeout: float | None = 5.0,
             *, host: Host | None = None) -> Any:
    """A socket connected to ``dst`` from one of ``pool``'s sources, least-used source first.

    TCP: IP_BIND_ADDRESS_NO_PORT, so each source gives a full port range PER DESTINATION; the pool's
    ``ports`` become IP_LOCAL_PORT_RANGE windows. UDP: an explicit port under SO_REUSEADDR, checked
    with an exact sock_diag lookup under Cloudflare's SO_REUSEADDR lock. ``timeout`` bounds the TCP
    handshake (the socket is left in blocking mode with that timeout, as ``socket.create_connection``
    leaves it). With ``host=`` a portalloc model ``Host``, the same logic runs on the model and returns a
    model socket.

    Raises ``OSError(EADDRNOTAVAIL)`` when every source and port toward ``dst`` is taken (the message
    says how many were tried), :class:`ConnectxUnsupported` (ENOPROTOOPT) when the kernel lacks an option
    the technique needs, and any other connect() error (ECONNREFUSED, timeout) as it comes.
    """
    net = net_for(host)
    if _check_proto(proto) == "udp":
        return udp_connect(dst, pool, net)
    plan = TcpPlan(dst, pool, net)
    for attempt in plan:
        try:
            attempt.sock.settimeout(timeout)
            attempt.sock.connect(plan.dst)
        except OSError as exc:
            attempt.sock.close()
            if exc.errno == errno.EADDRNOTAVAIL:
                continue
            raise
        return plan.won(attempt)
    raise plan.exhausted()


async def connectx_async(dst: tuple[Any, ...], pool: SourcePool, proto: str = "tcp",
                         timeout: float | None = 5.0, *, host: Host | None = None) -> Any:
    """:func:`connectx` for asyncio: never blocks the event loop; any number of tasks may share a pool.

    The TCP socket is returned in non-blocking mode (ready for ``loop.sock_*`` or
    ``asyncio.open_connection(sock=...)``); a UDP socket is returned as :func:`connectx` makes it.
    """
    if host is not None:
        return connectx(dst, pool, proto, timeout, host=host)     # the model answers at once
    if _check_proto(proto) == "udp":
        return await asyncio.to_thread(udp_connect, dst, pool, net_for(None))
    loop = asyncio.get_running_loop()
    plan = TcpPlan(dst, pool, net_for(None))
    for attempt in plan:
        try:
            attempt.sock.setblocking(False)
            await asyncio.wait_for(loop.sock_connect(attempt.sock, plan.dst), timeout)
        except BaseException as exc:
            attempt.sock.close()
            if isinstance(exc, OSError) and exc.errno == errno.EADDRNOTAVAIL:
                continue
            raise
        return plan.won(attempt)
    raise plan.exhausted()
