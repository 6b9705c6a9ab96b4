# The connectx technique, written once, over a pluggable "network" (a socket factory plus three questions).
#
# Theory (Cloudflare, "How to stop running out of ephemeral ports and start to love long-lived
# connections", 2022, code cloudflare/cloudflare-blog 2022-02-connectx/connectx.py, commit 232b432):
#
# TCP. bind(src, 0) alone reserves a port on src for EVERY destination (inet_csk_get_port: the socket
#   might listen()), so a source address gives one range of connections in total. With
#   IP_BIND_ADDRESS_NO_PORT (Linux 4.2, 90c337da1524) bind() records only the address and connect()
#   picks the port in __inet_hash_connect(), which checks the whole 4-tuple: each source then gives one
#   range of connections PER DESTINATION. SO_REUSEADDR is set as connectx.py sets it, so a later
#   explicit bind(*, port) can share the port. When connect() says EADDRNOTAVAIL (every port of the
#   range is busy toward this destination) we go on with the next source, least used first.
#   With ``ports`` the range is narrowed per socket by IP_LOCAL_PORT_RANGE (Linux 6.3, 91d0b78c5177).
#   Before 6.8 connect() walks that range with step 2 then the other parity, which is slow when it is
#   nearly full; Cloudflare's 2024 post ("connect() - why are you so slow?") shifts small windows
#   instead. Since 6.8 (207184853dbd) a per-socket range is walked with step 1 from a random offset,
#   so the full range is best. Windows are tried from a random one, all of them, so exhaustion is exact.
#
# UDP has no IP_BIND_ADDRESS_NO_PORT. connectx.py's technique, done here the same way:
#   1. pick a port: a uniformly random start in the range, then linear with wrap-around, skipping
#      ip_local_reserved_ports and any port where an exact 4-tuple lookup already finds a socket;
#   2. "SO_REUSEADDR as a lock": SO_REUSEADDR=1, bind(src, port), then SO_REUSEADDR=0. While it is
#      cleared no other cooperating binder can join (src, port) (udp_lib_lport_inuse needs both
#      sk_reuse set), so nobody can slip in between our check and our connect();
#   3. look the 4-tuple up again: the kernel's best match must be OUR socket (compared by identity,
#      SO_COOKIE on Linux). Anything else (a connected socket on the same 4-tuple, or an unconnected one
#      on *:port or src:port that would share our datagrams = "overshadowing") is a conflict: drop the
#      socket and go on with the next port;
#   4. connect(), then SO_REUSEADDR=1 again to leave the critical section.
#   The technique is cooperative: a socket that never sets SO_REUSEADDR keeps its port to itself, which
#   is safe (our bind fails with EADDRINUSE and we skip the port).
#
# Rules: the technique is written once; a Net supplies sockets (real ones, or a portalloc model Host's),
# the system port range and reserved ports, the capability probes (setsockopt answering ENOPROTOOPT,
# never a version string for an option), the exact UDP lookup and a socket's identity. Exhaustion is
# OSError(EADDRNOTAVAIL) for both protocols (connectx.py says EAGAIN for UDP; one errno is simpler to
# handle) and its message says how many sources and ports were tried. Any other error is raised as is.
"""The connectx algorithm over an abstract network (real kernel or portalloc model)."""

from __future__ import annotations

import errno
import ipaddress
import random
import socket
from collections.abc import Hashable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

from portalloc.connectx.pool import SourcePool
from portalloc.constants import IP_BIND_ADDRESS_NO_PORT, IP_LOCAL_PORT_RANGE, pack_local_port_range

#: Shifting-window size before 6.8: BIND 9 (04c81b55d2) and Cloudflare's 2024 post use ~1000 ports.
DEFAULT_WINDOW = 1000


@dataclass(frozen=True)
class Capabilities:
    """What the kernel behind a Net offers (probed, cached by the Net)."""

    #: setsockopt(IP_BIND_ADDRESS_NO_PORT) works (Linux 4.2+).
    bind_address_no_port: bool
    #: setsockopt(IP_LOCAL_PORT_RANGE) works (Linux 6.3+).
    local_port_range: bool
    #: connect() walks a per-socket range with step 1 (Linux 6.8+, 207184853dbd).
    local_range_step_one: bool


class Net(Protocol):
    """Where connectx runs: a socket factory and the kernel facts the technique needs."""

    rng: random.Random

    def socket(self, family: int, kind: int) -> Any:
        """A new socket with the ``socket.socket`` methods setsockopt/bind/connect/close/settimeout."""

    def capabilities(self) -> Capabilities:
        """The probed capabilities of this kernel."""

    def port_range(self) -> tuple[int, int]:
        """net.ipv4.ip_local_port_range."""

    def reserved_ports(self) -> frozenset[int]:
        """net.ipv4.ip_local_reserved_ports."""

    def udp_holder(self, family: int, local: tuple[str, int], remote: tuple[str, int]) -> Hashable | None:
        """The identity of the socket the kernel's exact UDP lookup returns for this 4-tuple, or None."""

    def identity(self, sock: Any) -> Hashable:
        """The identity of ``sock`` as :meth:`udp_holder` reports it."""


class ConnectxUnsupported(OSError):
    """The kernel lacks an option the requested technique needs (errno ENOPROTOOPT)."""


def family_of(pool: SourcePool) -> int:
    """AF_INET or AF_INET6 for the pool's sources."""
    return socket.AF_INET if pool.version == 4 else socket.AF_INET6


def check_destination(dst: tuple[Any, ...], pool: SourcePool) -> tuple[Any, ...]:
    """``dst`` as a sockaddr of the pool's family (a hostname is not resolved: pass an address)."""
    if not isinstance(dst, tuple) or len(dst) < 2:
        raise TypeError(f"dst must be a (host, port) tuple, got {dst!r}")
    version = ipaddress.ip_address(dst[0]).version
    if version != pool.version:
        raise ValueError(f"destination {dst[0]} is IPv{version} but the pool's sources are IPv{pool.version}")
    return dst


def exhausted(proto: str, dst: tuple[Any, ...], sources: int, ports: int, attempts: int) -> OSError:
    """The EADDRNOTAVAIL raised when every source and port toward ``dst`` is taken."""
    return OSError(errno.EADDRNOTAVAIL,
                   f"connectx: every {proto.upper()} source and port toward {dst[0]}:{dst[1]} is taken "
                   f"(tried {sources} source address{'es' if sources != 1 else ''} x {ports} ports, "
                   f"{attempts} attempts)")


def port_space(pool: SourcePool, net: Net) -> tuple[int, int]:
    """The ports the technique uses: the pool's window, else the system range."""
    return pool.ports if pool.ports is not None else net.port_range()


def tcp_windows(pool: SourcePool, caps: Capabilities) -> list[tuple[int, int] | None]:
    """The IP_LOCAL_PORT_RANGE values to try on each source (``[None]``: leave the option unset)."""
    if pool.ports is None:
        return [None]
    if not caps.local_port_range:
        raise ConnectxUnsupported(
            errno.ENOPROTOOPT,
            "connectx: SourcePool(ports=...) needs IP_LOCAL_PORT_RANGE (Linux 6.3+, commit 91d0b78c5177) and "
            "this kernel refuses it (ENOPROTOOPT); use ports=None and set net.ipv4.ip_local_port_range")
    lo, hi = pool.ports
    size = pool.window if pool.window is not None else (hi - lo + 1 if caps.local_range_step_one else DEFAULT_WINDOW)
    windows: list[tuple[int, int] | None] = []
    for start in range(lo, hi + 1, size):
        end = min(start + size - 1, hi)
        # Before 6.8 __inet_hash_connect rounds an odd range size down to even and can miss one port of
        # the window, so an odd window (other than one port) is split into an even one and a single port.
        if not caps.local_range_step_one and (end - start) % 2 == 0 and end > start:
            windows += [(start, end - 1), (end, end)]
        else:
            windows.append((start, end))
    return windows


@dataclass
class TcpAttempt:
    """One prepared TCP socket: options set, bound to ``source`` without a port, not yet connected."""

    source: str
    sock: Any


class TcpPlan:
    """The TCP attempts for one connectx() call, in order; drivers connect each until one succeeds.

    Iterating yields prepared sockets; the driver closes a socket whose connect() failed. After the last
    attempt, :meth:`exhausted` is the error to raise.
    """

    def __init__(self, dst: tuple[Any, ...], pool: SourcePool, net: Net) -> None:
        self.dst = check_destination(dst, pool)
        self.pool = pool
        self.net = net
        self.family = family_of(pool)
        caps = net.capabilities()
        if not caps.bind_address_no_port:
            raise ConnectxUnsupported(
                errno.ENOPROTOOPT,
                "connectx: IP_BIND_ADDRESS_NO_PORT (Linux 4.2+, commit 90c337da1524) is refused by this kernel "
                "(ENOPROTOOPT); without it a bound source address gives one port range in total")
        self.windows = tcp_windows(pool, caps)
        self.attempts = 0
        self.sources_tried = 0

    def __iter__(self) -> Iterator[TcpAttempt]:
        for source in self.pool.order():
            self.sources_tried += 1
            first = self.net.rng.randrange(len(self.windows))
            for k in range(len(self.windows)):
                window = self.windows[(first + k) % len(self.windows)]
                self.attempts += 1
                yield TcpAttempt(source, self._prepare(source, window))

    def _prepare(self, source: str, window: tuple[int, int] | None) -> Any:
        sock = self.net.socket(self.family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.setsockopt(socket.SOL_IP, IP_BIND_ADDRESS_NO_PORT, 1)
            if window is not None:
                sock.setsockopt(socket.SOL_IP, IP_LOCAL_PORT_RANGE, pack_local_port_range(*window))
            sock.bind((source, 0))
        except OSError as exc:
            sock.close()
            if exc.errno == errno.EADDRNOTAVAIL:
                raise OSError(errno.EADDRNOTAVAIL,
                              f"connectx: source {source} is not an address of this host ({exc.strerror})") from exc
            raise
        return sock

    def won(self, attempt: TcpAttempt) -> Any:
        """Account the connected socket to its source and return it."""
        self.pool.acquired(attempt.source, attempt.sock)
        return attempt.sock

    def exhausted(self) -> OSError:
        """EADDRNOTAVAIL after every source and window failed."""
        lo, hi = port_space(self.pool, self.net)
        return exhausted("tcp", self.dst, self.sources_tried, hi - lo + 1, self.attempts)


def udp_connect(dst: tuple[Any, ...], pool: SourcePool, net: Net) -> Any:
    """connectx for UDP: the first free (source, port) toward ``dst``, least-used source first."""
    dst = check_destination(dst, pool)
    family = family_of(pool)
    lo, hi = port_space(pool, net)
    reserved = net.reserved_ports()
    size = hi - lo + 1
    attempts = sources_tried = 0
    for source in pool.order():
        sources_tried += 1
        start = net.rng.randrange(size)
        for i in range(size):
            port = lo + (start + i) % size
            if port in reserved or net.udp_holder(family, (source, port), dst) is not None:
                continue
            attempts += 1
            sock = _udp_locked_connect(net, family, source, port, dst)
            if sock is not None:
                pool.acquired(source, sock)
                return sock
    raise exhausted("udp", dst, sources_tried, size, attempts)


def _udp_locked_connect(net: Net, family: int, source: str, port: int, dst: tuple[Any, ...]) -> Any | None:
    """Steps 2-4 of the UDP technique on (source, port); None when the port turns out to be taken."""
    sock = net.socket(family, socket.SOCK_DGRAM)
    try:
        me = net.identity(sock)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((source, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:     # a non-cooperating owner, or a caller inside its lock
                sock.close()
                return None
            if exc.errno == errno.EADDRNOTAVAIL:
                raise OSError(errno.EADDRNOTAVAIL,
                              f"connectx: source {source} is not an address of this host ({exc.strerror})") from exc
            raise
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 0)        # take the lock
        holder = net.udp_holder(family, (source, port), dst)
        if holder is None:
            raise ConnectxUnsupported(
                errno.ENOPROTOOPT,
                "connectx: the exact UDP sock_diag lookup does not find our own bound socket "
                "(kernel without CONFIG_INET_UDP_DIAG / the udp_diag module?)")
        if holder != me:
            sock.close()
            return None
        sock.connect(dst)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)        # leave the critical section
        return sock
    except BaseException:
        sock.close()
        raise
