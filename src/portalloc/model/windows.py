# Windows (Vista / Server 2008 and later) as a model kernel, from Microsoft's documentation only.
#
# Rules:
# - WindowsStack is a sibling of Linux's Stack and of BsdStack over CoreStack. The PCB tables, TIME_WAIT and
#   the 4-tuple machinery are the PcbTables mixin (model/pcb.py), read from the profile's BsdRules (the
#   ranges, TcpTimedWaitDelay, the options it has: none of the BSD ones); everything Windows decides is
#   here: who may bind next to whom (the documented SO_REUSEADDR / SO_EXCLUSIVEADDRUSE result tables, W3),
#   and how ports are chosen (W1, W4, W5). Nothing is inherited from the BSD model.
# - bind() to an explicit port: every socket already holding the port (bound, listening, connected or in
#   TIME_WAIT; accept()ed children excepted) is a "first bind", the new socket the "second"; each pair is
#   looked up in the table for the same account or for different accounts (uid), with W = bound to the
#   wildcard, S = bound to a specific address. Two different specific addresses never conflict (W6).
#   INUSE is EADDRINUSE (WSAEADDRINUSE), ACCESS is EACCES (WSAEACCES). Dual-stack sockets are not modelled.
# - Ports: connect() without bind() takes an "auto-reuse" port (SO_REUSE_UNICASTPORT is on for implicit
#   binds, W4): unique per 4-tuple, never one an explicit binder holds, randomized (W4 SO_RANDOMIZE_PORT).
#   bind(addr, 0) takes a port no socket uses (per local address with SO_PORT_SCALABILITY, W5); with
#   SO_REUSE_UNICASTPORT the port is chosen at connect() instead. The selection orders are undocumented:
#   the model uses a random start + linear probe where the docs say "randomized", and a sequential cursor
#   for a plain bind(0) (⚠ model choice). Exhaustion is ENOBUFS (WSAENOBUFS, ⚠ partly remembered).
"""Windows model kernel: the documented bind tables and the implicit/explicit bind split."""

from __future__ import annotations

import errno
from ipaddress import IPv4Address

from portalloc.errors import fail
from portalloc.kernels.strategies import RANGE_PICKS
from portalloc.model.addr import ANY4, ANY6, IPAddress, addr_key, is_any, wire_address
from portalloc.model.core import CoreStack
from portalloc.model.pcb import SOL_IP, SOL_SOCKET, PcbSock, PcbTables, pcb_view, query_view
from portalloc.model.portset import PortSet
from portalloc.model.sock import CLOSE, Sock

#: Winsock option numbers (winsock2.h / ws2def.h; SO_EXCLUSIVEADDRUSE is ((int)(~SO_REUSEADDR))).
SO_EXCLUSIVEADDRUSE = ~4
SO_RANDOMIZE_PORT = 0x3005
SO_PORT_SCALABILITY = 0x3006
SO_REUSE_UNICASTPORT = 0x3007

# Result cells: S = success, U = INUSE (WSAEADDRINUSE), A = ACCESS (WSAEACCES).
# Order of rows (first bind) and columns (second bind): Default W, Default S, REUSEADDR W, REUSEADDR S,
# EXCLUSIVE W, EXCLUSIVE S. Transcribed from W3 (MicrosoftDocs/win32 08f5ed21d569) via others.md §3.4.
SAME_ACCOUNT = (
    "USASUS",
    "SUSAUU",
    "USSSUS",
    "SUSSUU",
    "UAAAUA",
    "SUSAUU",
)
DIFFERENT_ACCOUNTS = (
    "UAAAUA",
    "SUSAUU",
    "UASSUA",
    "SUSSUU",
    "UAAAUA",
    "SUSAUU",
)
_CELL_ERRNO = {"S": 0, "U": errno.EADDRINUSE, "A": errno.EACCES}


class WindowsSock(PcbSock):
    """A Windows socket: the PCB record plus the Winsock options port allocation reads (W3, W4, W5)."""

    __slots__ = ("exclusive", "reuse_unicast", "port_scalability", "randomize_port")

    def __init__(self, sid: int, family: int, proto: str, uid: int) -> None:
        super().__init__(sid, family, proto, uid)
        self.exclusive = False         # SO_EXCLUSIVEADDRUSE
        self.reuse_unicast = False     # SO_REUSE_UNICASTPORT
        self.port_scalability = False  # SO_PORT_SCALABILITY
        self.randomize_port = False    # SO_RANDOMIZE_PORT


def bind_category(sk: Sock) -> int:
    """The table row/column of a socket: option (default, SO_REUSEADDR, SO_EXCLUSIVEADDRUSE) times
    address (W = wildcard, S = specific). An implicit (connect) binding counts as a default wildcard one."""
    exclusive = isinstance(sk, WindowsSock) and sk.exclusive
    option = 2 if exclusive else (1 if sk.reuseaddr else 0)
    specific = sk.bindaddr_lock
    return option * 2 + (1 if specific else 0)


def table_result(first: Sock, second: Sock) -> int:
    """The errno the documented table gives for ``second`` binding the port ``first`` holds (0: allowed)."""
    table = SAME_ACCOUNT if first.uid == second.uid else DIFFERENT_ACCOUNTS
    return _CELL_ERRNO[table[bind_category(first)][bind_category(second)]]


class WindowsStack(PcbTables, CoreStack):
    """Windows: the documented tables and port rules over the shared PCB tables (model/pcb.py)."""

    sock_class = WindowsSock

    # ------------------------------------------------------------------ options

    def os_setsockopt(self, sk: Sock, level: int, optname: int, num: int, raw: bytes) -> bool:
        """SO_EXCLUSIVEADDRUSE, SO_REUSE_UNICASTPORT, SO_PORT_SCALABILITY, SO_RANDOMIZE_PORT (set before
        bind, W3/W4; after bind: EINVAL ⚠ errno undocumented); SO_RANDOMIZE_PORT after
        SO_REUSE_UNICASTPORT "fails" (W4; EINVAL ⚠). Linux-only and BSD-only options: ENOPROTOOPT."""
        assert isinstance(sk, WindowsSock)
        if level == SOL_SOCKET and optname in (SO_EXCLUSIVEADDRUSE, SO_RANDOMIZE_PORT, SO_PORT_SCALABILITY,
                                               SO_REUSE_UNICASTPORT):
            on = self._int_option(raw) != 0
            if sk.lport or sk.bindportonsend:
                fail(errno.EINVAL)
            if optname == SO_EXCLUSIVEADDRUSE:
                sk.exclusive = on
            elif optname == SO_RANDOMIZE_PORT:
                if on and sk.reuse_unicast:
                    fail(errno.EINVAL)
                sk.randomize_port = on
            elif optname == SO_PORT_SCALABILITY:
                sk.port_scalability = on
            else:
                sk.reuse_unicast = on
            return True
        if level == SOL_IP and optname not in (1, 2, 3, 4):   # IP_OPTIONS, IP_HDRINCL, IP_TOS, IP_TTL
            fail(errno.ENOPROTOOPT)
        return super().os_setsockopt(sk, level, optname, num, raw)

    def os_getsockopt(self, sk: Sock, level: int, optname: int) -> int | None:
        """getsockopt for the Windows options."""
        assert isinstance(sk, WindowsSock)
        if level == SOL_SOCKET:
            values = {SO_EXCLUSIVEADDRUSE: sk.exclusive, SO_RANDOMIZE_PORT: sk.randomize_port,
                      SO_PORT_SCALABILITY: sk.port_scalability, SO_REUSE_UNICASTPORT: sk.reuse_unicast}
            if optname in values:
                return int(values[optname])
        return super().os_getsockopt(sk, level, optname)

    # ------------------------------------------------------------------ bind()

    def bind(self, sk: Sock, addr: IPAddress, port: int) -> None:
        """bind(): EINVAL when bound; a local address or EADDRNOTAVAIL; an explicit port decided by the
        tables; port 0 a unique port (or, with SO_REUSE_UNICASTPORT, none until connect())."""
        assert isinstance(sk, WindowsSock)
        if sk.lport or sk.bindportonsend or (sk.laddr is not None and not is_any(sk.laddr)) or sk.state != CLOSE:
            fail(errno.EINVAL)
        w = wire_address(addr)
        if not is_any(w) and not w.is_multicast and not self.addresses.is_local(w):
            fail(errno.EADDRNOTAVAIL)
        sk.bindaddr_lock = not is_any(addr)
        if port:
            err = self.bind_table_error(sk, addr, port)
            if err:
                sk.bindaddr_lock = False
                fail(err)
            self._hash_port(sk, addr, port, connected=False)
            sk.bindport_lock = True
            return
        if sk.reuse_unicast:
            sk.laddr = addr
            sk.bindportonsend = True            # the port is picked by connect(), shareable (W4)
            return
        self.explicit_ephemeral(sk, addr)

    def bind_table_error(self, sk: WindowsSock, addr: IPAddress, port: int) -> int:
        """W3's tables for every socket already holding ``port`` on an overlapping address: the first that
        refuses decides (EADDRINUSE or EACCES)."""
        for first in self.table(sk).owners(port):
            if first is sk or first.laddr is None or (isinstance(first, PcbSock) and first.accepted):
                continue
            if not self._overlap(first, addr):
                continue
            err = table_result(first, sk)
            if err:
                return err
        return 0

    def _overlap(self, first: Sock, addr: IPAddress) -> bool:
        """Same family and wildcard-or-equal bind addresses (two different specific addresses never meet)."""
        assert first.laddr is not None
        bound = first.laddr if first.bindaddr_lock else (ANY4 if first.family == 4 else ANY6)
        for wire in self._families(first, bound):
            view = pcb_view(first.family, bound, first.v6only, wire)
            q = query_view(addr, wire)
            if view is None or (wire == 4) != isinstance(wire_address(addr), IPv4Address):
                continue
            if is_any(view) or is_any(q) or view == q:
                return True
        return False

    def explicit_ephemeral(self, sk: WindowsSock, addr: IPAddress) -> int:
        """bind(addr, 0): a port no socket of the protocol uses (on ``addr`` or the wildcard only, with
        SO_PORT_SCALABILITY and a specific address, W5); randomized with SO_RANDOMIZE_PORT, otherwise the
        next port after the last one handed out (⚠ undocumented order, model choice)."""
        lo, hi, cursor = self.range_for(sk.proto, self._af(sk), 0, sk.uid)
        port, probes = self.windows_order(sk.proto, lo, hi, cursor,
                                          self.free_ports(lo, hi, self.ephemeral_used(sk, addr)),
                                          randomize=sk.randomize_port)
        self.stats["bind_probes"] += probes
        if port is None:
            fail(errno.ENOBUFS)
        self._hash_port(sk, addr, port, connected=False)
        return port

    def ephemeral_used(self, sk: WindowsSock, addr: IPAddress) -> int:
        """The port test of bind(addr, 0): the ports any socket of the protocol uses (on ``addr`` or the
        wildcard only, with SO_PORT_SCALABILITY and a specific address, W5)."""
        narrow = sk.port_scalability and not is_any(addr)
        return self.used_by_lookup_local(sk, addr if narrow else (ANY4 if sk.family == 4 else ANY6), True)

    def auto_reuse_used(self, sk: Sock, src: IPAddress, daddr: IPAddress, dport: int) -> int:
        """The port test of connect()'s auto-reuse port (W4): the ports an explicit binder holds, and those
        whose 4-tuple toward daddr:dport exists (TIME_WAIT included)."""
        used = self.table(sk).explicit_mask
        d = self._etable(sk).dest_masks(addr_key(src), addr_key(daddr), dport, 0)
        if d is not None:
            used |= d[0] | d[1]
        return used

    def usable_ports(self, proto: str, saddr: IPAddress, daddr: IPAddress, dport: int, *, dev: int = 0,
                     local_range: tuple[int, int] | None = None) -> PortSet:
        """The ports a new, unbound socket's connect() could take now: TCP's auto-reuse port toward
        daddr:dport from ``saddr`` (``auto_reuse_used``), UDP's unique port (``ephemeral_used``, not
        destination-aware). ``dev`` and ``local_range`` are Linux options Windows lacks: ignored."""
        if proto not in ("tcp", "udp"):
            raise ValueError(f"unknown protocol {proto!r}: give 'tcp' or 'udp'")
        saddr, daddr = wire_address(saddr), wire_address(daddr)
        sk = self.probe_sock(4 if isinstance(daddr, IPv4Address) else 6, proto, 0)
        assert isinstance(sk, WindowsSock)
        lo, hi, _ = self.range_for(proto, sk.family, 0, sk.uid)
        if proto == "tcp":
            used = self.auto_reuse_used(sk, saddr, daddr, dport)
        else:
            used = self.ephemeral_used(sk, ANY4 if sk.family == 4 else ANY6)
        return PortSet(self.free_ports(lo, hi, used))

    def windows_order(self, proto: str, lo: int, hi: int, cursor: str, free: int,
                      randomize: bool) -> tuple[int | None, int]:
        """The rules' order (PORT_ORDERS["windows"]) over ``free``: a random start when randomized, else the shared
        cursor plus one."""
        result = RANGE_PICKS[self.rules.order](self.range_request(proto, lo, hi, cursor, free, randomize))
        return result.port, result.probes

    def autobind(self, sk: Sock, laddr: IPAddress, honour_reuse: bool) -> int:
        """Every implicit bind that is not connect()'s auto-reuse (UDP, sendto) takes a unique port."""
        assert isinstance(sk, WindowsSock)
        return self.explicit_ephemeral(sk, laddr)

    def udp_autobind(self, sk: Sock) -> None:
        """The implicit bind of a UDP socket's first sendto(): a unique port (``explicit_ephemeral``), also for
        a socket bound with SO_REUSE_UNICASTPORT (W4 defers only connect()'s port; ⚠ undocumented for UDP,
        as connect_pcb's UDP branch). The deferral then ends: the socket holds that one port."""
        assert isinstance(sk, WindowsSock)
        if sk.lport:
            return
        self.explicit_ephemeral(sk, sk.laddr if sk.laddr is not None else (ANY4 if sk.family == 4 else ANY6))
        sk.bindportonsend = False

    def listen(self, sk: Sock, backlog: int) -> None:
        """listen() needs a bound socket: WSAEINVAL otherwise."""
        if not sk.lport:
            fail(errno.EINVAL)
        super().listen(sk, backlog)

    # ------------------------------------------------------------------ connect()

    def connect_pcb(self, sk: Sock, daddr: IPAddress, dport: int) -> None:
        """connect(): a bound port is checked against the 4-tuple (EADDRINUSE); an unbound TCP socket (or
        one bound with SO_REUSE_UNICASTPORT) takes an auto-reuse port: free toward this destination
        (TIME_WAIT included, the 4227 event's case), not held by an explicit binder, randomized. UDP
        connect() takes a unique port (⚠ undocumented)."""
        assert isinstance(sk, WindowsSock)
        if sk.family == 6 and isinstance(daddr, IPv4Address) and sk.v6only:
            fail(errno.EINVAL)
        src = self.connect_source(sk, daddr, dport)
        if not sk.lport and sk.proto == "tcp":
            self.auto_reuse_port(sk, src, daddr, dport)
            sk.bindportonsend = False
        elif not sk.lport:
            laddr = sk.laddr if sk.laddr is not None else (ANY4 if sk.family == 4 else ANY6)
            self.explicit_ephemeral(sk, laddr)
        self._establish(sk, src, daddr, dport)

    def auto_reuse_port(self, sk: WindowsSock, src: IPAddress, daddr: IPAddress, dport: int) -> int:
        """The implicit bind of connect() with SO_REUSE_UNICASTPORT: a port shareable across destinations."""
        lo, hi, _ = self.range_for(sk.proto, 4 if isinstance(src, IPv4Address) else 6, 0, sk.uid)
        used = self.auto_reuse_used(sk, src, daddr, dport)
        port, probes = self.windows_order(sk.proto, lo, hi, "auto-reuse", self.free_ports(lo, hi, used),
                                          randomize=True)
        self.stats["connect_searches"] += 1
        self.stats["connect_probes"] += probes
        if port is None:
            fail(errno.ENOBUFS)
        sk.connect_bind = True
        self._hash_port(sk, self._family_form(sk, src), port, connected=True)
        return port

