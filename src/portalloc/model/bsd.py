# The BSD-family kernels (FreeBSD, OpenBSD, NetBSD, macOS/XNU) as one model kernel, BsdStack.
#
# Rules:
# - Every decision reads a typed field of the profile's BsdRules (kernels/profile.py, built by
#   kernels/bsd.py); the OS name is never tested. Where a function is one OS's own, the rules name it in a
#   registry: its bind check (BIND_CONFLICTS, below), its port order (kernels/strategies.py PORT_ORDERS).
# - A BSD kernel keeps one PCB table per protocol, and asks it three questions (in_pcb.c):
#     in_pcblookup_local(laddr, lport, WILDCARD)  "does any PCB use lport on laddr, ANY or (for an ANY
#                                                   query) anywhere?" - connected and TIME_WAIT ones too;
#     in_pcblookup_local(laddr, lport, 0)         "is an unconnected PCB bound to exactly laddr:lport?";
#     in_pcblookup_hash(faddr, fport, laddr, lport[, WILDCARD])  "does this 4-tuple exist [or does an
#                                                   unconnected PCB hold laddr|ANY:lport]?".
#   The model answers them with bitsets: `self.tcp`/`self.udp` (PortTable, every PCB with a port, by local
#   address), `self.unconn` (the unconnected PCBs only: bound, listening, pre-bound), and the established
#   tables (`self.ehash` for TCP, `self.uehash` for UDP) for 4-tuples. A port search builds one bitset of
#   usable ports and walks it in the OS's order (kernels/search.py's scan_wrapped, or a downward scan), so filling
#   a range costs word operations, not a Python step per port, and the kernel's probe count is reported.
# - Explicit bind() conflicts are decided PCB by PCB, as the kernel does, with `lookup_local` (best-fit
#   scoring of in_pcblookup_local, newest PCB first).
# - Theory of operation of connect() (BsdRules.connect_port): FreeBSD <= 12 and XNU bind first with
#   laddr = ANY (in_pcbbind(inp, NULL)) and check the 4-tuple afterwards (EADDRINUSE, no retry, the port
#   stays bound); FreeBSD >= 13 chooses the port after the source address against the 4-tuple
#   (in_pcb_lport_dest); OpenBSD binds with the chosen source address; NetBSD checks the 4-tuple, then
#   binds with laddr = ANY. Time moves only in advance(); FreeBSD's once-a-second ipport_tick is replayed
#   lazily, tick by tick, before each port allocation.
# - OS-specific socket options (SO_REUSEPORT_LB, IP_PORTRANGE, IP_BINDANY, SO_BINDANY) live on BsdSock;
#   `os_setsockopt`/`os_getsockopt` handle them (Socket.setsockopt/getsockopt in model/host.py ask them
#   first) and refuse the Linux-only options with ENOPROTOOPT.
"""BSD-family model kernel: PCB lookups, bind rules, port orders and connect() variants."""

from __future__ import annotations

import errno
import socket as _socket
from collections import deque
from collections.abc import Callable
from ipaddress import IPv4Address, IPv6Address
from typing import Any

from portalloc.constants import IP_BIND_ADDRESS_NO_PORT, IP_FREEBIND, IP_LOCAL_PORT_RANGE, SO_BINDTODEVICE
from portalloc.errors import fail
from portalloc.kernels.bsd import rules_of
from portalloc.kernels.profile import BsdRules, KernelProfile
from portalloc.kernels.strategies import PORT_ORDERS, RANGE_PICKS, RangeRequest
from portalloc.kernels.sysctls import SysctlSpec, parse_port_list
from portalloc.model.addr import ANY4, ANY6, IPAddress, addr_key, is_any, wire_address
from portalloc.model.portset import PortSet
from portalloc.model.reuseport import ReuseportGroup
from portalloc.model.sock import CLOSE, ESTABLISHED, LISTEN, TIME_WAIT, Sock
from portalloc.model.stack import Stack, mapped
from portalloc.model.tables import EstablishedTable, PortTable

SOL_SOCKET = _socket.SOL_SOCKET
SOL_IP = 0

# --- option numbers. Linux's numbers (Python's socket module) keep their meaning; an OS-only option
# takes its own OS's number unless that number is a Linux option the facade knows, then a private one.
#: FreeBSD sys/socket.h SO_REUSEPORT_LB (12.0+, D11003).
SO_REUSEPORT_LB = 0x00010000
#: OpenBSD sys/socket.h SO_BINDANY.
SO_BINDANY = 0x1000
#: FreeBSD/OpenBSD/NetBSD/XNU netinet/in.h IP_PORTRANGE (19) and its values.
IP_PORTRANGE = 19
IP_PORTRANGE_DEFAULT, IP_PORTRANGE_HIGH, IP_PORTRANGE_LOW = 0, 1, 2
#: FreeBSD IP_BINDANY is 24, which is IP_BIND_ADDRESS_NO_PORT on the Linux host: portalloc's number.
IP_BINDANY = 0x10018

# --- option bits as FreeBSD's so_options has them (sys/socket.h).
OPT_REUSEADDR = 0x0004
OPT_REUSEPORT = 0x0200
OPT_REUSEPORT_LB = 0x00010000

#: INPCBLBGROUP_SIZMAX: members beyond this are silently left out of an LB group.
LB_GROUP_MAX = 256


class BsdSock(Sock):
    """A PCB: the Linux Sock record plus the BSD socket options and flags port allocation reads."""

    __slots__ = ("reuseport_lb", "portrange", "bindany", "bindportonsend", "exclusive", "reuse_unicast",
                 "port_scalability", "randomize_port", "accepted")

    def __init__(self, sid: int, family: int, proto: str, uid: int) -> None:
        super().__init__(sid, family, proto, uid)
        self.reuseport_lb = False     # SO_REUSEPORT_LB (FreeBSD)
        self.portrange = IP_PORTRANGE_DEFAULT
        self.bindany = False          # IP_BINDANY (FreeBSD) / SO_BINDANY (OpenBSD)
        self.bindportonsend = False   # NetBSD inp_bindportonsend: hash algorithms bind at connect
        self.exclusive = False        # Windows SO_EXCLUSIVEADDRUSE
        self.reuse_unicast = False    # Windows SO_REUSE_UNICASTPORT
        self.port_scalability = False  # Windows SO_PORT_SCALABILITY
        self.randomize_port = False   # Windows SO_RANDOMIZE_PORT
        self.accepted = False         # an accept()ed child: shares its listener's port, never binds


def so_options(sk: Sock) -> int:
    """The socket's so_options bits that port sharing reads (for a TIME_WAIT PCB: tw_so_options)."""
    bits = OPT_REUSEADDR if sk.reuseaddr else 0
    if sk.reuseport:
        bits |= OPT_REUSEPORT
    if isinstance(sk, BsdSock) and sk.reuseport_lb:
        bits |= OPT_REUSEPORT_LB
    return bits


def any_of(wire: int) -> IPAddress:
    """The wildcard address of a wire family."""
    return ANY4 if wire == 4 else ANY6


def pcb_view(family: int, laddr: IPAddress, v6only: bool, wire: int) -> IPAddress | None:
    """The PCB's local address as a lookup of ``wire`` family sees it; None when the PCB is not in that
    family (inp_vflag lacks INP_IPV4/INP_IPV6): an AF_INET6 PCB answers IPv4 lookups only when it is not
    v6only and bound to :: (as 0.0.0.0) or to a v4-mapped address."""
    if family == 4:
        return laddr if wire == 4 else None
    assert isinstance(laddr, IPv6Address)
    if wire == 4:
        if laddr == ANY6:
            return None if v6only else ANY4
        return laddr.ipv4_mapped
    return None if laddr.ipv4_mapped is not None else laddr


def query_view(addr: IPAddress, wire: int) -> IPAddress:
    """A bind or lookup address in ``wire`` family form (:: is 0.0.0.0 for the IPv4 side)."""
    if wire == 4:
        if isinstance(addr, IPv4Address):
            return addr
        m = addr.ipv4_mapped
        return m if m is not None else ANY4
    return addr if isinstance(addr, IPv6Address) else ANY6


class BsdStack(Stack):
    """One BSD-family kernel (its profile's BsdRules decide which)."""


    def sockname_port(self, sk: Sock) -> int:
        """getsockname(): inp_lport, which the BSDs clear when a port is given back."""
        return sk.lport

    def __init__(self, profile: KernelProfile, seed: int | None, addresses: tuple[str, ...] | list[str],
                 sysctls: dict[str, Any] | None, devices: tuple[str, ...] | list[str]) -> None:
        self.rules: BsdRules = rules_of(profile)
        self.unconn = {"tcp": PortTable(False), "udp": PortTable(False)}
        self.uehash = EstablishedTable()
        self._unconn_ids: set[int] = set()
        # The orders keep their state in search_state (kernels/strategies.py): "cursors" (ipi_lastport /
        # ipi_lasthi / ipi_lastlow), "netbsd_next" (portalgo_next_ephemeral[proto][af][range][algo]),
        # "netbsd_dhtable" (algo_doublehash's dhtable[8]), "ipport" (FreeBSD <= 13's ipport_tick counters).
        super().__init__(profile, seed, addresses, sysctls, devices)

    # ------------------------------------------------------------------ sysctls, ranges, sockets

    def sysctl_specs(self, profile: KernelProfile) -> dict[str, SysctlSpec]:
        """The OS's own sysctls (kernels/bsd.py): names, defaults, write checks."""
        return {s.name: s for s in rules_of(profile).sysctls}

    def port_range(self) -> tuple[int, int]:
        """The default ephemeral range of TCP over IPv4 (low, high)."""
        lo, hi, _ = self.range_for("tcp", 4, IP_PORTRANGE_DEFAULT, uid=0)
        return (lo, hi) if lo <= hi else (hi, lo)

    def local_port_range(self, sk: Sock) -> tuple[int, int, bool]:
        """The range the socket's searches use (IP_PORTRANGE aware); never an IP_LOCAL_PORT_RANGE."""
        lo, hi, _ = self.range_for(sk.proto, self._af(sk), self._portrange(sk), sk.uid)
        return (lo, hi, False) if lo <= hi else (hi, lo, False)

    def probe_sock(self, family: int, proto: str, uid: int, sid: int = 0) -> Sock:
        """A PCB with the OS's IPV6_V6ONLY default (net.inet6.ip6.v6only on FreeBSD), not in any table."""
        sk = BsdSock(sid, family, proto, uid)
        if family == 6:
            v6 = self.sc.get("net.inet6.ip6.v6only")
            sk.v6only = bool(v6) if isinstance(v6, int) else self.rules.v6only_default
        return sk

    @staticmethod
    def _portrange(sk: Sock) -> int:
        return sk.portrange if isinstance(sk, BsdSock) else IP_PORTRANGE_DEFAULT

    @staticmethod
    def _af(sk: Sock) -> int:
        """The address family whose sysctls apply: 6 only for a socket that talks IPv6."""
        if sk.family == 6 and sk.laddr is not None and isinstance(sk.laddr, IPv6Address) \
                and sk.laddr.ipv4_mapped is not None:
            return 4
        return sk.family

    def _int(self, name: str, default: int) -> int:
        v = self.sc.get(name, default)
        return v if isinstance(v, int) else default

    def range_for(self, proto: str, af: int, portrange: int, uid: int) -> tuple[int, int, str]:
        """(first, last, cursor name) for a search, from the profile's PortRange for ``portrange``; first may
        exceed last (XNU's and FreeBSD's low range count down). A privileged range for a non-root user fails
        with the rules' low_range_errno (FreeBSD in_pcb_lport: EPERM; the others EACCES)."""
        rules = self.rules
        if portrange == IP_PORTRANGE_HIGH:
            spec = rules.range_high
        elif portrange == IP_PORTRANGE_LOW:
            spec = rules.range_low
            if uid != 0 and rules.low_range_errno:
                fail(rules.low_range_errno)
        else:
            spec = rules.range_default
        inet = "net.inet.ip" if af == 4 else "net.inet6.ip6"
        cursor = spec.cursor.format(proto=proto, af=af, inet=inet)
        if spec.form == "start-count":
            value = self.sc.get(spec.first_name.format(proto=proto, af=af, inet=inet), (spec.first, spec.last))
            assert isinstance(value, tuple)
            return value[0], value[0] + value[1] - 1, cursor
        first = self._int(spec.first_name.format(proto=proto, af=af, inet=inet), spec.first) \
            if spec.first_name else spec.first
        last = self._int(spec.last_name.format(proto=proto, af=af, inet=inet), spec.last) \
            if spec.last_name else spec.last
        return first, last, cursor

    # ------------------------------------------------------------------ socket options

    def os_setsockopt(self, sk: Sock, level: int, optname: int, num: int, raw: bytes) -> bool:
        """setsockopt for this OS's own options and the Linux-only ones it lacks (ENOPROTOOPT). True when
        handled here; False to let the socket facade go on (SO_REUSEADDR, SO_REUSEPORT, IPV6_V6ONLY)."""
        assert isinstance(sk, BsdSock)
        have = self.rules.options
        if level == SOL_SOCKET:
            if optname == SO_REUSEPORT_LB:
                if "SO_REUSEPORT_LB" not in have:
                    fail(errno.ENOPROTOOPT)
                sk.reuseport_lb = self._int_option(raw) != 0
                return True
            if optname == SO_BINDANY:
                if "SO_BINDANY" not in have:
                    fail(errno.ENOPROTOOPT)
                if sk.uid != 0:
                    fail(errno.EPERM)          # OpenBSD: suser() for SO_BINDANY
                sk.bindany = self._int_option(raw) != 0
                return True
            if optname == SO_BINDTODEVICE:
                fail(errno.ENOPROTOOPT)        # Linux only
            return False
        if level == SOL_IP:
            if optname == IP_PORTRANGE:
                if "IP_PORTRANGE" not in have:
                    fail(errno.ENOPROTOOPT)
                if self._int_option(raw) not in (IP_PORTRANGE_DEFAULT, IP_PORTRANGE_HIGH, IP_PORTRANGE_LOW):
                    fail(errno.EINVAL)
                sk.portrange = self._int_option(raw)
                return True
            if optname == IP_BINDANY:
                if "IP_BINDANY" not in have:
                    fail(errno.ENOPROTOOPT)
                if sk.uid != 0:
                    fail(errno.EPERM)          # FreeBSD: priv_check(PRIV_NETINET_BINDANY)
                sk.bindany = self._int_option(raw) != 0
                return True
            if optname in (IP_FREEBIND, IP_BIND_ADDRESS_NO_PORT, IP_LOCAL_PORT_RANGE):
                fail(errno.ENOPROTOOPT)        # Linux only: ip_ctloutput's default case
            return False
        return False

    @staticmethod
    def _int_option(raw: bytes) -> int:
        if len(raw) < 4:
            fail(errno.EINVAL)                 # sooptcopyin: optlen < sizeof(int)
        return int.from_bytes(raw[:4], "little", signed=True)

    def os_getsockopt(self, sk: Sock, level: int, optname: int) -> int | None:
        """getsockopt for the options os_setsockopt handles; None for the facade's own."""
        assert isinstance(sk, BsdSock)
        have = self.rules.options
        if level == SOL_SOCKET:
            if optname == SO_REUSEPORT_LB and "SO_REUSEPORT_LB" in have:
                return OPT_REUSEPORT_LB if sk.reuseport_lb else 0
            if optname == SO_BINDANY and "SO_BINDANY" in have:
                return int(sk.bindany)
            if optname in (SO_REUSEPORT_LB, SO_BINDANY, SO_BINDTODEVICE):
                fail(errno.ENOPROTOOPT)
        if level == SOL_IP:
            if optname == IP_PORTRANGE and "IP_PORTRANGE" in have:
                return sk.portrange
            if optname == IP_BINDANY and "IP_BINDANY" in have:
                return int(sk.bindany)
            if optname in (IP_PORTRANGE, IP_BINDANY, IP_FREEBIND, IP_BIND_ADDRESS_NO_PORT, IP_LOCAL_PORT_RANGE):
                fail(errno.ENOPROTOOPT)
        return None

    # ------------------------------------------------------------------ the PCB tables

    def _hash_port(self, sk: Sock, laddr: IPAddress, port: int, connected: bool) -> None:
        """in_pcbinshash: the PCB takes ``port`` on ``laddr``; an unconnected one also enters the
        wildcard hash that exact-address (non-wildcard) lookups read."""
        sk.laddr = laddr
        self.table(sk).add(sk, port)
        if not connected:
            self.unconn[sk.proto].add(sk, port)
            self._unconn_ids.add(sk.id)

    def _unhash_unconnected(self, sk: Sock) -> None:
        """The PCB leaves the wildcard hash (it connected, or is freed)."""
        if sk.id in self._unconn_ids:
            self.unconn[sk.proto].remove(sk)
            self._unconn_ids.discard(sk.id)

    def _etable(self, sk: Sock) -> EstablishedTable:
        return self.ehash if sk.proto == "tcp" else self.uehash

    @staticmethod
    def _used(table: PortTable, wire: int, addr: IPAddress, exact: bool) -> int:
        """Ports held in ``table`` by PCBs that a lookup for ``addr`` (``wire`` family) matches: with
        ``exact`` only PCBs bound to exactly ``addr``; otherwise PCBs on ``addr`` or ANY, and every PCB
        of the family when ``addr`` is ANY (in_pcblookup_local's wildcard rule)."""
        mask = 0
        wild_query = is_any(addr)
        for slot in table.slots.values():
            key = slot.key
            view = pcb_view(key.family, key.addr, key.v6only, wire)
            if view is None:
                continue
            if exact:
                hit = view == addr
            else:
                hit = wild_query or view == addr or is_any(view)
            if hit:
                mask |= slot.mask
        return mask

    def _families(self, sk: Sock, laddr: IPAddress) -> tuple[int, ...]:
        """The lookup families of a PCB (inp_vflag): IPv4, IPv6, or both for a dual-stack :: socket."""
        if sk.family == 4:
            return (4,)
        assert isinstance(laddr, IPv6Address)
        if laddr.ipv4_mapped is not None:
            return (4,)
        if sk.v6only or not is_any(laddr):
            return (6,)
        return (6, 4)

    def used_by_lookup_local(self, sk: Sock, laddr: IPAddress, wildcard: bool) -> int:
        """Bitset of ports for which in_pcblookup_local(laddr, port, WILDCARD or 0) finds a PCB."""
        mask = 0
        for wire in self._families(sk, laddr):
            addr = query_view(laddr, wire)
            if wildcard:
                mask |= self._used(self.table(sk), wire, addr, exact=False)
            else:
                mask |= self._used(self.unconn[sk.proto], wire, addr, exact=True)
        return mask

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

    def tuple_taken(self, sk: Sock, src: IPAddress, lport: int, daddr: IPAddress, dport: int) -> bool:
        """in_pcblookup_hash(faddr, fport, laddr, lport, 0): does this exact 4-tuple exist?"""
        return self._etable(sk).match(addr_key(src), lport, addr_key(daddr), dport, 0) is not None

    # ------------------------------------------------------------------ bind()

    def bind(self, sk: Sock, addr: IPAddress, port: int) -> None:
        """in_pcbbind / in6_pcbbind with an address: the OS's checks in its order, then the port."""
        assert isinstance(sk, BsdSock)
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

    def check_bind_address(self, sk: BsdSock, addr: IPAddress) -> None:
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
        if sk.proto == "udp" and isinstance(w, IPv4Address) and w == IPv4Address("255.255.255.255") \
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

    def explicit_port_error(self, sk: BsdSock, addr: IPAddress, port: int) -> int:
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

    def freebsd_bind_conflict(self, sk: BsdSock, wire: int, addr: IPAddress, port: int) -> int:
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

    def openbsd_bind_conflict(self, sk: BsdSock, wire: int, addr: IPAddress, port: int) -> int:
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

    def netbsd_bind_conflict(self, sk: BsdSock, wire: int, addr: IPAddress, port: int) -> int:
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

    def xnu_bind_conflict(self, sk: BsdSock, wire: int, addr: IPAddress, port: int) -> int:
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
        assert isinstance(sk, BsdSock)
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
        if style == "check-then-bind" and ((isinstance(sk, BsdSock) and sk.bindportonsend)
                                           or self._binds_at_connect(sk)):
            wild = sk.family == 4 or self._wild_for_bind(sk)
            return self.used_by_lookup_local(sk, self._family_form(sk, src), wild)
        # prebind-wildcard and 4.4BSD check-then-bind: in_pcbbind(inp, NULL) on the bound address or ANY.
        laddr = sk.laddr if sk.laddr is not None else (ANY4 if sk.family == 4 else ANY6)
        return self.autobind_used(sk, laddr, honour_reuse=True)

    def free_ports(self, first: int, last: int, used: int) -> int:
        """The ports of the range first..last (either order) that are not in ``used``."""
        lo, hi = (first, last) if first <= last else (last, first)
        return self._range_mask(lo, hi) & ~used

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

    def range_request(self, proto: str, first: int, last: int, cursor: str, free: int,
                      randomize: bool = False) -> RangeRequest:
        """What a port order gets: the range, its cursor, the passing ports and the host's search state."""
        return RangeRequest(first, last, cursor, free, proto, self.rng, self.search_state, self._int, self.now,
                            self.rules.throttle, randomize)

    def choose_port(self, sk: Sock, first: int, last: int, cursor: str, free: int) -> tuple[int | None, int]:
        """Walk the range in the OS's order (PORT_ORDERS) over the ports in ``free`` (the test's answer,
        within the range): (port or None, probes)."""
        pick = RANGE_PICKS[self.order_name(self._af(sk))]
        result = pick(self.range_request(sk.proto, first, last, cursor, free))
        return result.port, result.probes

    # ------------------------------------------------------------------ connect()

    def _source(self, sk: Sock, daddr: IPAddress) -> IPAddress:
        """in_pcbladdr / in_selectsrc: the bound address, or the route's (ENETUNREACH without one)."""
        return self.route_source(sk, daddr)

    def _family_form(self, sk: Sock, addr: IPAddress) -> IPAddress:
        return addr if sk.family == 4 or isinstance(addr, IPv6Address) else mapped(addr)

    def _establish(self, sk: Sock, src: IPAddress, daddr: IPAddress, dport: int) -> None:
        """in_pcbconnect's commit: the PCB takes its source address and peer, leaves the wildcard hash and
        enters the exact one."""
        self._unhash_unconnected(sk)
        if sk.laddr is None or is_any(sk.laddr):
            self._rehash_laddr(sk, self._family_form(sk, src))
        sk.saddr_wire, sk.raddr, sk.rport = src, daddr, dport
        self._etable(sk).insert(sk)

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

    def tcp_connect(self, sk: Sock, daddr: IPAddress, dport: int) -> None:
        """tcp_connect / tcp6_connect up to the handshake, in the profile's variant; then the SYN."""
        daddr = wire_address(daddr)
        self.connect_pcb(sk, daddr, dport)
        self.stats["connects"] += 1
        self._handshake(sk, daddr, dport)

    def _new_child(self, listener: Sock, daddr: IPAddress, raddr: IPAddress, rport: int) -> Sock:
        """A listener's child (a local connect() or Host.inbound) is marked accepted: it shares the
        listener's port and never binds."""
        child = super()._new_child(listener, daddr, raddr, rport)
        assert isinstance(child, BsdSock)
        child.accepted = True
        return child

    def connect_pcb(self, sk: Sock, daddr: IPAddress, dport: int) -> None:
        """Give the PCB its port, source address and peer, or fail as the OS fails."""
        assert isinstance(sk, BsdSock)
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

    def connect_prebind(self, sk: BsdSock, daddr: IPAddress, dport: int) -> None:
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

    def connect_lport_dest(self, sk: BsdSock, daddr: IPAddress, dport: int) -> None:
        """FreeBSD >= 13 in_pcbconnect_setup (S3): the source address first; a bound port is checked
        against the exact 4-tuple (EADDRINUSE); otherwise in_pcb_lport_dest takes a port whose 4-tuple is
        free and that no unconnected PCB holds on the source address or ANY. Options are not read."""
        src = self.connect_source(sk, daddr, dport)
        if not sk.lport:
            self._search_for_connect(sk, src, self.connect_used(sk, "lport-dest", src, daddr, dport))
        self._establish(sk, src, daddr, dport)

    def connect_source(self, sk: BsdSock, daddr: IPAddress, dport: int) -> IPAddress:
        """What every in_pcbconnect variant does first: port 0 is refused (EADDRNOTAVAIL), the source address
        is chosen, and a socket that already has a port needs its exact 4-tuple free (EADDRINUSE)."""
        if dport == 0:
            fail(errno.EADDRNOTAVAIL)
        src = self._source(sk, daddr)
        if sk.lport and self.tuple_taken(sk, src, sk.lport, daddr, dport):
            fail(errno.EADDRINUSE)
        return src

    def _search_for_connect(self, sk: BsdSock, src: IPAddress, used: int) -> int:
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

    def connect_after_source(self, sk: BsdSock, daddr: IPAddress, dport: int) -> None:
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

    def connect_bind_source(self, sk: BsdSock, daddr: IPAddress, dport: int) -> None:
        """FreeBSD 12 UDP connect (in_pcbconnect_setup, S1): the source address, the exact 4-tuple check
        of a bound port, then in_pcbbind_setup(NULL) with that address: a port unique on it, or with
        SO_REUSEADDR one only unconnected sockets on exactly it do not hold."""
        src = self.connect_source(sk, daddr, dport)
        if not sk.lport:
            self._search_for_connect(sk, src, self.connect_used(sk, "bind-source", src, daddr, dport))
        self._establish(sk, src, daddr, dport)

    def connect_check_then_bind(self, sk: BsdSock, daddr: IPAddress, dport: int) -> None:
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
        if isinstance(sk, BsdSock) and sk.bindportonsend:
            # NetBSD hash algorithms with no peer: the port is chosen now on the bound address (⚠ model).
            sk.bindportonsend = False
            self._search_for_connect(sk, laddr, self.used_by_lookup_local(sk, laddr, True))
            self._hash_port_unconnected_again(sk)

    def _hash_port_unconnected_again(self, sk: Sock) -> None:
        self.unconn[sk.proto].add(sk, sk.lport)
        self._unconn_ids.add(sk.id)

    def udp_connect(self, sk: Sock, daddr: IPAddress, dport: int) -> None:
        """udp_connect / in_pcbconnect: EISCONN when connected; else the profile's connect variant."""
        if sk.raddr is not None:
            fail(errno.EISCONN)
        self.connect_pcb(sk, wire_address(daddr), dport)
        sk.state = ESTABLISHED

    # ------------------------------------------------------------------ listen()

    def listen(self, sk: Sock, backlog: int) -> None:
        """tcp_usr_listen: an unbound socket is bound first (in_pcbbind(inp, NULL)); no conflict re-check."""
        if sk.state == LISTEN:
            sk.backlog = backlog
            return
        if sk.state != CLOSE or sk.raddr is not None:
            fail(errno.EINVAL)
        if not sk.lport:
            laddr = sk.laddr if sk.laddr is not None else (ANY4 if sk.family == 4 else ANY6)
            self.autobind(sk, laddr, honour_reuse=True)
        sk.state = LISTEN
        sk.backlog = backlog
        sk.accept_queue = deque()
        self._hash_listener(sk)

    def _hash_listener(self, sk: Sock) -> None:
        """in_pcbinslbgrouphash: a SO_REUSEPORT_LB listener joins the group of its (family, address, port),
        up to 256 members; plain SO_REUSEPORT listeners share the port without load balancing."""
        lst = self.listeners.setdefault(sk.lport, [])
        if isinstance(sk, BsdSock) and sk.reuseport_lb:
            for other in lst:
                if other.group is not None and other.family == sk.family and other.laddr == sk.laddr:
                    if len(other.group.members) < LB_GROUP_MAX:
                        other.group.add(sk)
                    break
            else:
                ReuseportGroup().add(sk)
        lst.append(sk)

    # ------------------------------------------------------------------ teardown

    def _destroy(self, sk: Sock) -> None:
        """in_pcbfree: out of every table."""
        self._unhash_unconnected(sk)
        if sk.proto == "udp" and sk.hashed:
            self.uehash.remove(sk)
        super()._destroy(sk)

    def timewait_seconds(self) -> float:
        """TIME_WAIT's length: 2 * MSL from net.inet.tcp.msl (ms on FreeBSD and XNU, seconds on NetBSD),
        TcpTimedWaitDelay on Windows, else the rules' constant (BsdRules.timewait_sysctl/_per_unit)."""
        rules = self.rules
        if rules.timewait_sysctl:
            value = self.sc.get(rules.timewait_sysctl)
            if isinstance(value, int):
                return value * rules.timewait_per_unit
        return rules.timewait

    def finwait2_seconds(self) -> float:
        """How long an orphaned FIN_WAIT_2 lives on this OS (the rules' keepcnt/keepintvl, FreeBSD's
        fast_finwait2_recycle and finwait2_timeout; see BsdRules). Not Linux's tcp_fin_timeout."""
        rules = self.rules
        if rules.finwait2_seconds:
            return rules.finwait2_seconds
        if rules.fast_finwait2_recycle and self._int("net.inet.tcp.fast_finwait2_recycle", 0):
            return self._int("net.inet.tcp.finwait2_timeout", 60000) / 1000.0
        keepcnt, keepintvl = rules.keepcnt, rules.keepintvl_ms
        if rules.keep_sysctls:
            keepcnt = self._int("net.inet.tcp.keepcnt", keepcnt)
            keepintvl = self._int("net.inet.tcp.keepintvl", keepintvl)
        return (keepcnt * keepintvl + keepintvl) / 1000.0

    def _mirror_sysctls(self) -> None:
        """The values the shared teardown and handshake read on every connection, in this OS's own terms
        (never Linux's net.ipv4 names): no tcp_tw_reuse and no tcp_tw_recycle; RFC 1323 timestamps and the
        listen-queue limit from the rules; the FIN_WAIT_2 orphan's lifetime (``finwait2_seconds``)."""
        rules = self.rules
        self.tw_reuse = 0
        self.tw_reuse_delay = 0
        self.timestamps = rules.timestamps
        self.somaxconn = rules.somaxconn
        self.fin_timeout = self.finwait2_seconds()
        self.tw_recycle = False

    def timewait_lifetime(self, sk: Sock, substate: str, lifetime: float) -> float:
        """tcp_twstart: TIME_WAIT lasts 2 * MSL on this OS (``timewait_seconds``); a FIN_WAIT2 orphan keeps
        the given lifetime. No tcp_tw_recycle."""
        return self.timewait_seconds() if substate == TIME_WAIT else lifetime


#: The explicit-port conflict checks of in_pcbbind, by BsdRules.bind_conflict.
BIND_CONFLICTS: dict[str, Callable[[BsdStack, BsdSock, int, IPAddress, int], int]] = {
    "freebsd": BsdStack.freebsd_bind_conflict,
    "openbsd": BsdStack.openbsd_bind_conflict,
    "netbsd": BsdStack.netbsd_bind_conflict,
    "xnu": BsdStack.xnu_bind_conflict,
}
