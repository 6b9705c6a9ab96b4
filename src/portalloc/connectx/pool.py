# SourcePool: the source addresses (and optionally the port window) that connectx() spreads over.
#
# Rules: the pool only decides ORDER and keeps COUNTS; it never opens a socket. Order is "least used
# first": the number of sockets this pool has handed out on an address and that are still open, ties broken
# by a rotating cursor so that sequential callers spread evenly. Counts are kept under one lock, so any
# number of threads (and asyncio tasks, which run the accounting on the loop's thread) may share a pool.
# A socket is "released" when it is closed through connectx's socket class, or when it is garbage
# collected (weakref.finalize), whichever comes first; a release runs once.
"""SourcePool: a set of local source addresses, least-used first, with an optional port window."""

from __future__ import annotations

import ipaddress
import threading
import weakref
from collections.abc import Iterable

#: Cap on the addresses a CIDR may expand to (a /16 of sources is already far beyond any real pool).
MAX_SOURCES = 65536


def _expand(sources: str | Iterable[str]) -> list[str]:
    """The pool's addresses in order: a CIDR string gives every address of the network (a /31 or /32
    gives all its addresses; wider IPv4 networks drop the network and broadcast addresses)."""
    if isinstance(sources, str):
        net = ipaddress.ip_network(sources, strict=False)
        if net.num_addresses > MAX_SOURCES:
            raise ValueError(f"{sources} has {net.num_addresses} addresses; a pool takes at most {MAX_SOURCES}")
        hosts = list(net.hosts()) if net.num_addresses > 2 else list(net)
        return [str(a) for a in (hosts or list(net))]
    out = [str(ipaddress.ip_address(s)) for s in sources]
    if len(set(out)) != len(out):
        raise ValueError(f"duplicate source address in {out}")
    return out


class SourcePool:
    """Source addresses for :func:`portalloc.connectx.connectx`, least-used first.

    ``sources``: a list of IP addresses, or one network in CIDR notation (``"127.0.0.0/30"`` gives
    127.0.0.1 and 127.0.0.2; a /31 or /32 gives all of its addresses). All must have one family.
    ``ports``: ``(lo, hi)``, inclusive, the local ports to use; ``None`` takes the system's
    ``ip_local_port_range``. For TCP the window is applied with IP_LOCAL_PORT_RANGE (Linux 6.3+), which
    can only narrow the system range. ``window``: for TCP on kernels whose connect() walks a per-socket
    range with step 2 (6.3 to 6.7), the size of the shifting windows (default 1000, as BIND 9 and
    Cloudflare's 2024 post use); ``None`` chooses: the full range where the kernel walks it with step 1
    (6.8+), else shifting windows.
    """

    def __init__(self, sources: str | Iterable[str], ports: tuple[int, int] | None = None,
                 *, window: int | None = None) -> None:
        self.sources: tuple[str, ...] = tuple(_expand(sources))
        if not self.sources:
            raise ValueError("a SourcePool needs at least one source address")
        versions = {ipaddress.ip_address(s).version for s in self.sources}
        if len(versions) != 1:
            raise ValueError("all sources of a pool must have one family (all IPv4 or all IPv6)")
        self.version: int = versions.pop()
        if ports is not None:
            lo, hi = (int(p) for p in ports)
            if not 1 <= lo <= hi <= 65535:
                raise ValueError(f"ports must be (lo, hi) with 1 <= lo <= hi <= 65535, got {ports!r}")
            ports = (lo, hi)
        self.ports: tuple[int, int] | None = ports
        if window is not None and window < 1:
            raise ValueError(f"window must be a positive number of ports, got {window}")
        self.window = window
        self._lock = threading.Lock()
        self._in_use = dict.fromkeys(self.sources, 0)
        self._handed_out = dict.fromkeys(self.sources, 0)
        self._cursor = 0

    def __repr__(self) -> str:
        return f"SourcePool({list(self.sources)!r}, ports={self.ports!r})"

    def __len__(self) -> int:
        return len(self.sources)

    def order(self) -> list[str]:
        """The sources to try, least used first (ties: rotating from a cursor that advances per call)."""
        with self._lock:
            n = len(self.sources)
            start = self._cursor
            self._cursor = (self._cursor + 1) % n
            rotated = [self.sources[(start + i) % n] for i in range(n)]
            return sorted(rotated, key=self._in_use.__getitem__)   # stable: the rotation breaks ties

    def acquired(self, source: str, sock: object) -> None:
        """Count ``sock`` (just connected from ``source``) until it is released or collected."""
        with self._lock:
            self._in_use[source] += 1
            self._handed_out[source] += 1
        release = weakref.finalize(sock, self._release, source)
        try:
            sock._connectx_release = release  # type: ignore[attr-defined]
        except AttributeError:
            pass                 # a socket class with __slots__ (the model's): the finalizer alone releases it

    def _release(self, source: str) -> None:
        with self._lock:
            self._in_use[source] -= 1

    def in_use(self) -> dict[str, int]:
        """Open sockets per source that this pool handed out."""
        with self._lock:
            return dict(self._in_use)

    def handed_out(self) -> dict[str, int]:
        """Sockets handed out per source since the pool was made (closed ones included)."""
        with self._lock:
            return dict(self._handed_out)
