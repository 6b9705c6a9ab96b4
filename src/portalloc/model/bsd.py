# The BSD-family kernels (FreeBSD, OpenBSD, NetBSD, macOS/XNU) as one model kernel, BsdStack.
#
# Rules:
# - Every decision reads a typed field of the profile's BsdRules (kernels/profile.py, built by
#   kernels/bsd.py); the OS name is never tested. Where a function is one OS's own, the rules name it in a
#   registry: its bind check (BIND_CONFLICTS, below), its port order (kernels/strategies.py PORT_ORDERS).
# - BsdStack is a sibling of Linux's Stack over CoreStack; the PCB tables, the option plumbing, the ranges and
#   the timers it shares with the Windows model are the PcbTables mixin (model/pcb.py). A BSD kernel asks its
#   PCB tables three questions (in_pcb.c):
#     in_pcblookup_local(laddr, lport, WILDCARD)  "does any PCB use lport on laddr, ANY or (for an ANY
#                                                   query) anywhere?" - connected and TIME_WAIT ones too;
#     in_pcblookup_local(laddr, lport, 0)         "is an unconnected PCB bound to exactly laddr:lport?";
#     in_pcblookup_hash(faddr, fport, laddr, lport[, WILDCARD])  "does this 4-tuple exist [or does an
#                                                   unconnected PCB hold laddr|ANY:lport]?".
#   The model answers them with bitsets (PcbTables.used_by_lookup_local, used_by_hash_lookup below,
#   PcbTables.tuple_taken). A port search builds one bitset of usable ports and walks it in the OS's order
#   (kernels/search.py's scan_wrapped, or a downward scan), so filling a range costs word operations, not a
#   Python step per port, and the kernel's probe count is reported.
# - Explicit bind() conflicts are decided PCB by PCB, as the kernel does, with `lookup_local` (best-fit
#   scoring of in_pcblookup_local, newest PCB first).
# - Theory of operation of connect() (BsdRules.connect_port): FreeBSD <= 12 and XNU bind first with
#   laddr = ANY (in_pcbbind(inp, NULL)) and check the 4-tuple afterwards (EADDRINUSE, no retry, the port
#   stays bound); FreeBSD >= 13 chooses the port after the source address against the 4-tuple
#   (in_pcb_lport_dest); OpenBSD binds with the chosen source address; NetBSD checks the 4-tuple, then
#   binds with laddr = ANY. Time moves only in advance(); FreeBSD's once-a-second ipport_tick is replayed
#   lazily, tick by tick, before each port allocation.
# - OS-specific socket options (SO_REUSEPORT_LB, IP_PORTRANGE, IP_BINDANY, SO_BINDANY) live on PcbSock and
#   are handled by PcbTables.os_setsockopt/os_getsockopt, for the options BsdRules.options lists.
"""BSD-family model kernel: PCB lookups, bind rules, port orders and connect() variants."""

from __future__ import annotations

import errno
from collections.abc import Callable
from ipaddress import IPv4Address, IPv6Address

from portalloc.errors import fail
from portalloc.kernels.strategies import PORT_ORDERS, RANGE_PICKS
from portalloc.kernels.sysctls import parse_port_list
from portalloc.model.addr import ANY4, ANY6, LIMITED_BROADCAST, IPAddress, addr_key, is_any, wire_address
from portalloc.model.core import CoreStack

# The BSD option numbers, still importable from here (they live with the PCB options in model/pcb.py).
from portalloc.model.pcb import IP_BINDANY as IP_BINDANY
from portalloc.model.pcb import IP_PORTRANGE as IP_PORTRANGE
from portalloc.model.pcb import IP_PORTRANGE_DEFAULT as IP_PORTRANGE_DEFAULT
from portalloc.model.pcb import IP_PORTRANGE_HIGH as IP_PORTRANGE_HIGH
from portalloc.model.pcb import IP_PORTRANGE_LOW as IP_PORTRANGE_LOW
from portalloc.model.pcb import (
    OPT_REUSEADDR,
    OPT_REUSEPORT,
    OPT_REUSEPORT_LB,
    PcbSock,
    PcbTables,
    pcb_view,
    query_view,
)
from portalloc.model.pcb import SO_BINDANY as SO_BINDANY
from portalloc.model.pcb import SO_REUSEPORT_LB as SO_REUSEPORT_LB
from portalloc.model.portset import PortSet
from portalloc.model.sock import CLOSE, LISTEN, Sock


def so_options(sk: Sock) -> int:
    """The socket's so_options bits that port sharing reads (for a TIME_WAIT PCB: tw_so_options)."""
    bits = OPT_REUSEADDR if sk.reuseaddr else 0
    if sk.reuseport:
        bits |= OPT_REUSEPORT
    if isinstance(sk, PcbSock) and sk.reuseport_lb:
        bits |= OPT_REUSEPORT_LB
    return bits


class BsdStack(PcbTables, CoreStack):
    """One BSD-family kernel (its profile's BsdRules decide which), over the PCB tables it shares with the
    Windows model (model/pcb.py)."""

    # ------------------------------------------------------------------ the PCB tables

    def used_by_hash_lookup(self, sk: Sock, src: IPAddress, daddr: IPAddress, dport: int) -> int:
        """Bitset of ports for which in_pcblookup_hash_locked(daddr, dport, src, port, WILDCARD) finds a PCB:
        the 4-tuple exists (TIME_WAIT included), or an unconnected PCB (listener, bound socket, LB group
        member) holds src:port or ANY:port."""
        wire = 4 if isinstance(src, IPv4Address) else 6
        mask = self._used(self.unconn[sk.proto], wire, src, exact=False)
        d = self._etable(sk).dest_masks(addr_key(src), addr_key(daddr), dport, 0)
        if d is not None:
            mask |= d[0] | d[1]
        return mask

    def lookup_local(self, sk: Sock, wire: int, addr: IPAddress, port: int, wildcard: bool) -> Sock | None:
        """in_pcblookup_local: with ``wildcard`` the best-fit PCB using ``port`` (connected PCBs cost 1,
        an address/wildcard mismatch 1, an AF_INET6 PCB answering an IPv4 lookup 3 on FreeBSD; different
        specific addresses never match); without it only an unconnected PCB on exactly ``addr``. Newest
        PCB first, as the port list is head-inserted."""
        best: Sock | None = None
        extra_cost = self.rules.v6_answers_v4_cost
        best_score = 3 + extra_cost
        for p in reversed(self.table(sk).owners(port)):
            if p is sk or p.laddr is None:
                continue
            view = pcb_view(p.family, p.laddr, p.v6only, wire)
            if view is None:
                continue
            connected = p.raddr is not None
            if not wildcard:
                if not connected and view == addr:
                    return p
                continue
            score = extra_cost if (wire == 4 and p.family == 6) else 0
            if connected:
                score += 1
            if not is_any(view):
                if is_any(addr):
                    score += 1
                elif view != addr:
                    continue
            elif not is_any(addr):
                score += 1
            if score < best_score:
                best, best_score = p, score
                if score == 0:
                    break
        return best

    # ------------------------------------------------------------------ bind()

    def bind(self, sk: Sock, addr: IPAddress, port: int) -> None:
        """in_pcbbind / in6_pcbbind with an address: the OS's checks in its order, then the port."""
        assert isinstance(sk, PcbSock)
        if sk.lport or sk.bindportonsend or (sk.laddr is not None and not is_any(sk.laddr)) or sk.state != CLOSE:
            fail(errno.EINVAL)
        if sk.family == 6 and isinstance(addr, IPv6Address) and addr.ipv4_mapped is not None and sk.v6only:
            fail(errno.EINVAL)
        self.check_bind_address(sk, addr)
        if port:
            err = self.explicit_port_error(sk, addr, port)
            if err:
                fail(err)
            self._hash_port(sk, addr, port, connected=False)
            sk.bindaddr_lock, sk.bindport_lock = not is_any(addr), True
            return
        sk.laddr = addr
        try:
            self.autobind(sk, addr, honour_reuse=True)
        except OSError:
            sk.laddr = None
            raise
        sk.bindaddr_lock = not is_any(addr)

    def check_bind_address(self, sk: PcbSock, addr: IPAddress) -> None:
        """The address part of in_pcbbind_setup: ANY, a local address, a multicast group (not for TCP on
        FreeBSD/XNU: tcp_usr_bind's EAFNOSUPPORT), or anything with IP_BINDANY/SO_BINDANY."""
        w = wire_address(addr)
        if is_any(w):
            return
        if w.is_multicast:
            if sk.proto == "tcp" and self.rules.tcp_multicast_bind_errno:
                fail(self.rules.tcp_multicast_bind_errno)
            return
        if sk.bindany or self.addresses.is_local(w):
            return
        if sk.proto == "udp" and isinstance(w, IPv4Address) and w == LIMITED_BROADCAST \
                and self.rules.udp_broadcast_bind:
            return
        fail(errno.EADDRNOTAVAIL)

    def privileged_port_error(self, sk: Sock, addr: IPAddress, port: int) -> int:
        """The reserved-port rule for an explicit port: EACCES for a non-root user (0 when allowed)."""
        if sk.uid == 0:
            return 0
        rule = self.rules.privileged_ports
        if rule == "reserved-sysctls":
            low = self._int("net.inet.ip.portrange.reservedlow", 0)
            high = self._int("net.inet.ip.portrange.reservedhigh", 1023)
            return errno.EACCES if low <= port <= high else 0
        if rule == "below-1024":
            return errno.EACCES if port < 1024 else 0
        if rule == "below-1024-specific-address":
            return errno.EACCES if port < 1024 and not is_any(wire_address(addr)) else 0
        return 0

    def explicit_port_error(self, sk: PcbSock, addr: IPAddress, port: int) -> int:
        """bind() to an explicit port: the OS's privilege and conflict checks in its order; 0 if allowed."""
        priv = self.privileged_port_error(sk, addr, port)
        if self.rules.privilege_first and priv:
            return priv                         # FreeBSD, NetBSD, XNU check privilege first
        conflict = BIND_CONFLICTS[self.rules.bind_conflict]
        for wire in self._families(sk, addr):
            err = conflict(self, sk, wire, query_view(addr, wire), port)
            if err:
                return err
        return priv                             # OpenBSD: in_rootonly() after in_pcbaddrisavail

    def _reuse_bits(self, sk: Sock, addr: IPAddress) -> tuple[int, int]:
        """(reuseport, reuseport_lb) of in_pcbbind_setup: SO_REUSEADDR counts as SO_REUSEPORT (and as
        SO_REUSEPORT_LB on FreeBSD) for a multicast address."""
        opts = so_options(sk)
        reuseport = opts & OPT_REUSEPORT
        reuseport_lb = opts & OPT_REUSEPORT_LB
        if addr.is_multicast:
            if opts & (OPT_REUSEADDR | OPT_REUSEPORT):
                reuseport = OPT_REUSEADDR | OPT_REUSEPORT
            if self.rules.multicast_reuse_lb and opts & (OPT_REUSEADDR | OPT_REUSEPORT_LB):
                reuseport_lb = OPT_REUSEADDR | OPT_REUSEPORT_LB
        return reuseport, reuseport_lb

    def _wild_for_bind(self, sk: Sock) -> bool:
        """lookupflags of in_pcbbind_setup: WILDCARD unless SO_REUSEADDR/SO_REUSEPORT(/_LB) is set."""
        return not so_options(sk) & (OPT_REUSEADDR | OPT_REUSEPORT | OPT_REUSEPORT_LB)

    def freebsd_bind_conflict(self, sk: PcbSock, wire: int, addr: IPAddress, port: int) -> int:
        """in_pcbbind_setup, explicit port (S3 14.x; S1 12.x is equivalent here): the different-uid check
        for non-root callers, then the general check with the new socket's SO_REUSEPORT/_LB bits against
        the found PCB's options; two AF_INET6 sockets both on the wildcard pass (INET6 exception)."""
        reuseport, reuseport_lb = self._reuse_bits(sk, addr)
        if not addr.is_multicast and sk.uid != 0:
            t = self.lookup_local(sk, wire, addr, port, wildcard=True)
            if t is not None:
                assert t.laddr is not None
                t_opts = so_options(t)
                t_any = is_any(t.laddr)
                if ((sk.proto != "tcp" or t.raddr is None)
                        and (not is_any(addr) or not t_any or t_opts & OPT_REUSEPORT
                             or not t_opts & OPT_REUSEPORT_LB)
                        and sk.uid != t.uid):
                    return errno.EADDRINUSE
        t = self.lookup_local(sk, wire, addr, port, wildcard=self._wild_for_bind(sk))
        if t is not None and not reuseport & so_options(t) and not reuseport_lb & so_options(t):
            assert t.laddr is not None
            if not (wire == 4 and is_any(addr) and is_any(t.laddr) and sk.family == 6 and t.family == 6):
                return errno.EADDRINUSE
        return 0

    def openbsd_bind_conflict(self, sk: PcbSock, wire: int, addr: IPAddress, port: int) -> int:
        """in_pcbaddrisavail (S5): a non-root euid never shares a port with another euid on an overlapping
        address (whatever the options or the other PCB's state); then the general check, in which
        SO_REUSEADDR only narrows the lookup and SO_REUSEPORT must be on the found PCB too."""
        reuseport, _ = self._reuse_bits(sk, addr)
        if sk.uid != 0 and not addr.is_multicast:
            t = self.lookup_local(sk, wire, addr, port, wildcard=True)
            if t is not None and t.uid != sk.uid:
                return errno.EADDRINUSE
        wild = not so_options(sk) & (OPT_REUSEADDR | OPT_REUSEPORT) and \
            (sk.proto != "tcp" or sk.state != LISTEN)
        t = self.lookup_local(sk, wire, addr, port, wildcard=wild)
        if t is not None and not reuseport & so_options(t):
            return errno.EADDRINUSE
        return 0

    def netbsd_bind_conflict(self, sk: PcbSock, wire: int, addr: IPAddress, port: int) -> int:
        """inpcb_bind_port (NetBSD in_pcb.c): the different-uid check (a wildcard pair passes only if the
        found PCB has SO_REUSEPORT), then the general check with SO_REUSEPORT on both."""
        reuseport, _ = self._reuse_bits(sk, addr)
        if sk.uid != 0 and not addr.is_multicast:
            t = self.lookup_local(sk, wire, addr, port, wildcard=True)
            if t is not None:
                assert t.laddr is not None
                if (not is_any(addr) or not is_any(t.laddr) or not so_options(t) & OPT_REUSEPORT) \
                        and sk.uid != t.uid:
                    return errno.EADDRINUSE
        t = self.lookup_local(sk, wire, addr, port, wildcard=self._wild_for_bind(sk))
        if t is not None and not reuseport & so_options(t):
            return errno.EADDRINUSE
        return 0

    def xnu_bind_conflict(self, sk: PcbSock, wire: int, addr: IPAddress, port: int) -> int:
        """XNU in_pcbbind, explicit port (S6): the different-uid check applies only when one side is a
        specific address (SOF_REUSESHAREUID and NECP owners not modelled); the general check as
        FreeBSD's without SO_REUSEPORT_LB, two AF_INET6 wildcard sockets passing."""
        reuseport, _ = self._reuse_bits(sk, addr)
        if sk.uid != 0 and not addr.is_multicast:
            t = self.lookup_local(sk, wire, addr, port, wildcard=True)
            if t is not None:
                assert t.laddr is not None
                if (not is_any(addr) or not is_any(t.laddr)) and sk.uid != t.uid:
                    return errno.EADDRINUSE
        t = self.lookup_local(sk, wire, addr, port, wildcard=self._wild_for_bind(sk))
        if t is not None and not reuseport & so_options(t):
            assert t.laddr is not None
            if not (is_any(addr) and is_any(t.laddr) and sk.family == 6 and t.family == 6):
                return errno.EADDRINUSE
        return 0

    # ------------------------------------------------------------------ port choice

    def exhausted_errno(self, sk: Sock) -> int:
        """What an exhausted search returns: EADDRNOTAVAIL, but NetBSD's algo_bsd gives EAGAIN and its
        other algorithms EINVAL (portalgo.c)."""
        return PORT_ORDERS[self.order_name(self._af(sk))].exhausted_errno

    def autobind(self, sk: Sock, laddr: IPAddress, honour_reuse: bool) -> int:
        """in_pcbbind(inp, NULL) / bind(addr, 0) / listen() autobind: a port no PCB found by
        in_pcblookup_local(laddr, port, lookupflags) uses, in the OS's order. With ``honour_reuse`` the
        lookup is non-wildcard when the socket has SO_REUSEADDR/SO_REUSEPORT (in_pcbbind_setup) on
        kernels whose rules say so; XNU ("override wild = 1 ... REUSEADDR|REUSEPORT don't apply") and
        NetBSD IPv4 (check_suitable_port passes 1) always look up wildcard. Raises the exhaustion errno."""
        assert isinstance(sk, PcbSock)
        lo, hi, cursor = self.range_for(sk.proto, self._af(sk), self._portrange(sk), sk.uid)
        if self._binds_at_connect(sk):
            sk.bindportonsend = True            # iscompletetuple() false: port 0 now, bound at connect
            return 0
        used = self.autobind_used(sk, laddr, honour_reuse)
        port, probes = self.choose_port(sk, lo, hi, cursor, self.free_ports(lo, hi, used))
        self.stats["bind_probes"] += probes
        if port is None:
            fail(self.exhausted_errno(sk))
        self._hash_port(sk, laddr, port, connected=False)
        return port

    def _binds_at_connect(self, sk: Sock) -> bool:
        """NetBSD's hash and doublehash algorithms: an implicit bind leaves port 0 (iscompletetuple() is
        false) and the port is chosen when the 4-tuple is known."""
        return PORT_ORDERS[self.order_name(self._af(sk))].binds_at_connect

    def autobind_used(self, sk: Sock, laddr: IPAddress, honour_reuse: bool) -> int:
        """The port test of in_pcbbind(inp, NULL) on ``laddr``: the ports in_pcblookup_local(laddr, port,
        lookupflags) finds a PCB on (plus OpenBSD's baddynamic). With ``honour_reuse`` the lookup is
        non-wildcard when the socket has SO_REUSEADDR/SO_REUSEPORT on kernels whose rules say so; NetBSD
        IPv4 always looks up wildcard (check_suitable_port passes 1)."""
        reuse = so_options(sk) & (OPT_REUSEADDR | OPT_REUSEPORT | OPT_REUSEPORT_LB)
        wildcard = not (honour_reuse and self.rules.implicit_bind_honours_reuse and reuse)
        if self.rules.v4_implicit_bind_wildcard and sk.family == 4:
            wildcard = True                     # NetBSD check_suitable_port: in_pcblookup_port(..., 1)
        used = self.used_by_lookup_local(sk, laddr, wildcard)
        if self.rules.baddynamic:
            used |= self._baddynamic(sk.proto)
        return used

    def connect_used(self, sk: Sock, style: str, src: IPAddress, daddr: IPAddress, dport: int) -> int:
        """The port test of connect()'s port choice for a socket without a port, in connect variant
        ``style`` (``_connect_style``): the bitset of ports it must not take from ``src`` toward
        daddr:dport. The one answer the connect paths and ``usable_ports`` ask; the orders only order."""
        if style == "lport-dest":
            return self.used_by_hash_lookup(sk, src, daddr, dport)
        if style == "after-source":
            wild = not so_options(sk) & (OPT_REUSEADDR | OPT_REUSEPORT)
            used = self.used_by_lookup_local(sk, self._family_form(sk, src), wild)
            return used | self._baddynamic(sk.proto) if self.rules.baddynamic else used
        if style == "bind-source":
            return self.used_by_lookup_local(sk, self._family_form(sk, src), self._wild_for_bind(sk))
        if style == "check-then-bind" and ((isinstance(sk, PcbSock) and sk.bindportonsend)
                                           or self._binds_at_connect(sk)):
            wild = sk.family == 4 or self._wild_for_bind(sk)
            return self.used_by_lookup_local(sk, self._family_form(sk, src), wild)
        # prebind-wildcard and 4.4BSD check-then-bind: in_pcbbind(inp, NULL) on the bound address or ANY.
        laddr = sk.laddr if sk.laddr is not None else (ANY4 if sk.family == 4 else ANY6)
        return self.autobind_used(sk, laddr, honour_reuse=True)

    def usable_ports(self, proto: str, saddr: IPAddress, daddr: IPAddress, dport: int, *, dev: int = 0,
                     local_range: tuple[int, int] | None = None) -> PortSet:
        """The ports a new, unbound socket's connect() from ``saddr`` to daddr:dport could take now, in this
        OS's connect variant (``connect_used``): destination-aware where the OS checks the 4-tuple when it
        picks the port (FreeBSD >= 13 TCP), host-wide unique ports where it binds first (FreeBSD <= 12 and
        XNU TCP, NetBSD's bsd/random algorithms), unique on the source address on OpenBSD. ``dev`` and
        ``local_range`` are Linux options the BSDs lack: ignored. Nothing in the tables changes."""
        if proto not in ("tcp", "udp"):
            raise ValueError(f"unknown protocol {proto!r}: give 'tcp' or 'udp'")
        saddr, daddr = wire_address(saddr), wire_address(daddr)
        sk = self.probe_sock(4 if isinstance(daddr, IPv4Address) else 6, proto, 0)
        lo, hi, _ = self.range_for(proto, sk.family, self._portrange(sk), sk.uid)
        return PortSet(self.free_ports(lo, hi, self.connect_used(sk, self._connect_style(sk), saddr, daddr, dport)))

    def _baddynamic(self, proto: str) -> int:
        text = self.sc.get(f"net.inet.{proto}.baddynamic", "")
        mask = 0
        for p in parse_port_list(str(text)):
            mask |= 1 << p
        return mask

    def order_name(self, af: int) -> str:
        """The port order in force (a name in kernels/strategies.py PORT_ORDERS): the rules' order, followed
        by the algorithm a sysctl selects where the OS has one (NetBSD's {inet}.anonportalgo.selected)."""
        rules = self.rules
        if not rules.algorithm_sysctl:
            return rules.order
        name = rules.algorithm_sysctl.format(inet="net.inet.ip" if af == 4 else "net.inet6.ip6")
        return f"{rules.order}-{self.sc.get(name, rules.netbsd_algorithm)}".replace("_", "-")

    def choose_port(self, sk: Sock, first: int, last: int, cursor: str, free: int) -> tuple[int | None, int]:
        """Walk the range in the OS's order (PORT_ORDERS) over the ports in ``free`` (the test's answer,
        within the range): (port or None, probes)."""
        pick = RANGE_PICKS[self.order_name(self._af(sk))]
        result = pick(self.range_request(sk.proto, first, last, cursor, free))
        return result.port, result.probes

    # ------------------------------------------------------------------ connect()

    def _connect_style(self, sk: Sock) -> str:
        """Which connect() variant runs: the profile's, with FreeBSD >= 13's require_unique_port=1 turning
        TCP back to the pre-bind (tcp_connect, S4), and UDP's own variant where the rules give one
        (FreeBSD 12: binding with the source address, S1; XNU: 4.4BSD in_pcbconnect, ⚠ not re-read)."""
        rules = self.rules
        if sk.proto == "tcp":
            if rules.connect_port == "lport-dest" and rules.require_unique_port and \
                    self._int("net.inet.tcp.require_unique_port", 0) and not sk.lport:
                return "prebind-wildcard"
            return rules.connect_port
        return rules.udp_connect_port or rules.connect_port

    def connect_pcb(self, sk: Sock, daddr: IPAddress, dport: int) -> None:
        """Give the PCB its port, source address and peer, or fail as the OS fails."""
        assert isinstance(sk, PcbSock)
        if sk.family == 6 and isinstance(daddr, IPv4Address) and sk.v6only:
            fail(errno.EINVAL)                  # a v4-mapped peer on an IPV6_V6ONLY socket
        style = self._connect_style(sk)
        if style == "prebind-wildcard":
            self.connect_prebind(sk, daddr, dport)
        elif style == "lport-dest":
            self.connect_lport_dest(sk, daddr, dport)
        elif style == "after-source":
            self.connect_after_source(sk, daddr, dport)
        elif style == "bind-source":
            self.connect_bind_source(sk, daddr, dport)
        else:
            self.connect_check_then_bind(sk, daddr, dport)

    def connect_prebind(self, sk: PcbSock, daddr: IPAddress, dport: int) -> None:
        """FreeBSD <= 12 tcp_connect (S2) and XNU: in_pcbbind(inp, NULL) with laddr = ANY picks the port
        before the destination is looked at (the lookup honours SO_REUSEADDR on FreeBSD, not on XNU);
        in_pcbconnect_setup then finds a duplicate 4-tuple only by its exact hash lookup: EADDRINUSE, no
        retry, and the socket keeps its ANY:port binding."""
        if not sk.lport:
            laddr = sk.laddr if sk.laddr is not None else (ANY4 if sk.family == 4 else ANY6)
            self.autobind(sk, laddr, honour_reuse=True)
        if dport == 0:
            fail(errno.EADDRNOTAVAIL)
        src = self._source(sk, daddr)
        if self.tuple_taken(sk, src, sk.lport, daddr, dport):
            fail(errno.EADDRINUSE)
        self._establish(sk, src, daddr, dport)

    def connect_lport_dest(self, sk: PcbSock, daddr: IPAddress, dport: int) -> None:
        """FreeBSD >= 13 in_pcbconnect_setup (S3): the source address first; a bound port is checked
        against the exact 4-tuple (EADDRINUSE); otherwise in_pcb_lport_dest takes a port whose 4-tuple is
        free and that no unconnected PCB holds on the source address or ANY. Options are not read."""
        src = self.connect_source(sk, daddr, dport)
        if not sk.lport:
            self._search_for_connect(sk, src, self.connect_used(sk, "lport-dest", src, daddr, dport))
        self._establish(sk, src, daddr, dport)

    def _search_for_connect(self, sk: PcbSock, src: IPAddress, used: int) -> int:
        """The port choice of connect(): the OS's order over the range's ports not in ``used`` (what
        ``connect_used`` answered); the socket takes the port on ``src``."""
        lo, hi, cursor = self.range_for(sk.proto, 4 if isinstance(src, IPv4Address) else 6,
                                        self._portrange(sk), sk.uid)
        port, probes = self.choose_port(sk, lo, hi, cursor, self.free_ports(lo, hi, used))
        self.stats["connect_searches"] += 1
        self.stats["connect_probes"] += probes
        if port is None:
            fail(self.exhausted_errno(sk))
        sk.connect_bind = True
        self._hash_port(sk, self._family_form(sk, src), port, connected=True)
        return port

    def connect_after_source(self, sk: PcbSock, daddr: IPAddress, dport: int) -> None:
        """OpenBSD in_pcbconnect (S5): the source address first; in_pcbbind with that address picks a
        port unique on it (a wildcard lookup, or, with SO_REUSEADDR/SO_REUSEPORT, one that only avoids
        unconnected sockets on exactly that address); a duplicate 4-tuple then fails with EADDRINUSE and
        the port is given back."""
        src = self.connect_source(sk, daddr, dport)
        if not sk.lport:
            port = self._search_for_connect(sk, src, self.connect_used(sk, "after-source", src, daddr, dport))
            if self.tuple_taken(sk, src, port, daddr, dport):
                self.table(sk).remove(sk)
                sk.lport = 0
                sk.connect_bind = False
                sk.laddr = None if not sk.bindaddr_lock else sk.laddr
                fail(errno.EADDRINUSE)
        self._establish(sk, src, daddr, dport)

    def connect_bind_source(self, sk: PcbSock, daddr: IPAddress, dport: int) -> None:
        """FreeBSD 12 UDP connect (in_pcbconnect_setup, S1): the source address, the exact 4-tuple check
        of a bound port, then in_pcbbind_setup(NULL) with that address: a port unique on it, or with
        SO_REUSEADDR one only unconnected sockets on exactly it do not hold."""
        src = self.connect_source(sk, daddr, dport)
        if not sk.lport:
            self._search_for_connect(sk, src, self.connect_used(sk, "bind-source", src, daddr, dport))
        self._establish(sk, src, daddr, dport)

    def connect_check_then_bind(self, sk: PcbSock, daddr: IPAddress, dport: int) -> None:
        """NetBSD inpcb_connect (4.4BSD): the 4-tuple of a bound port is checked first (EADDRINUSE), then
        an unbound socket is bound with laddr still ANY (host-wide unique port), then the source address
        is set; a hash/doublehash socket gets its port now, after the source (late bind)."""
        if dport == 0:
            fail(errno.EADDRNOTAVAIL)
        src = self._source(sk, daddr)
        if sk.lport and self.tuple_taken(sk, src, sk.lport, daddr, dport):
            fail(errno.EADDRINUSE)
        if (sk.laddr is None or is_any(sk.laddr)) and not sk.lport and not sk.bindportonsend:
            laddr = sk.laddr if sk.laddr is not None else (ANY4 if sk.family == 4 else ANY6)
            self.autobind(sk, laddr, honour_reuse=True)
        if sk.bindportonsend:
            self._search_for_connect(sk, src, self.connect_used(sk, "check-then-bind", src, daddr, dport))
            sk.bindportonsend = False
        self._establish(sk, src, daddr, dport)

    # ------------------------------------------------------------------ UDP

    def udp_autobind(self, sk: Sock) -> None:
        """The first sendto() of an unbound socket: in_pcbbind_setup with laddr ANY (udp_output)."""
        if sk.lport:
            return
        laddr = sk.laddr if sk.laddr is not None else (ANY4 if sk.family == 4 else ANY6)
        self.autobind(sk, laddr, honour_reuse=True)
        if isinstance(sk, PcbSock) and sk.bindportonsend:
            # NetBSD hash algorithms with no peer: the port is chosen now on the bound address (⚠ model).
            sk.bindportonsend = False
            self._search_for_connect(sk, laddr, self.used_by_lookup_local(sk, laddr, True))
            self._hash_port_unconnected_again(sk)

    def _hash_port_unconnected_again(self, sk: Sock) -> None:
        self.unconn[sk.proto].add(sk, sk.lport)
        self._unconn_ids.add(sk.id)


#: The explicit-port conflict checks of in_pcbbind, by BsdRules.bind_conflict.
BIND_CONFLICTS: dict[str, Callable[[BsdStack, PcbSock, int, IPAddress, int], int]] = {
    "freebsd": BsdStack.freebsd_bind_conflict,
    "openbsd": BsdStack.openbsd_bind_conflict,
    "netbsd": BsdStack.netbsd_bind_conflict,
    "xnu": BsdStack.xnu_bind_conflict,
}
