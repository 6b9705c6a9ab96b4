# The PCB machinery that the BSD-family kernels (model/bsd.py BsdStack) and the Windows model
# (model/windows.py WindowsStack) share, as a mixin over CoreStack: `PcbTables`.
#
# Rules:
# - Each of those stacks is a sibling over CoreStack: `class BsdStack(PcbTables, CoreStack)`,
#   `class WindowsStack(PcbTables, CoreStack)`. This module holds what both model alike, and decides nothing
#   one OS decides differently: every value it reads is a typed field of the profile's BsdRules
#   (kernels/profile.py; the ranges as PortRanges, the sysctl schema, the TIME_WAIT and FIN_WAIT_2 timers,
#   the socket options the OS has), never the OS's name. Bind checks, port tests and connect() variants
#   stay in each OS's module (the hooks `connect_pcb` and `autobind`).
# - Windows is not a BSD; it is modelled on PCB tables because its documented rules (W1-W6) are stated in
#   the same terms: a socket holds a port on a local address, connected or not, and a 4-tuple once
#   connected.
# - Theory of operation: every PCB with a port is in `self.tcp`/`self.udp` (PortTable, by local address);
#   the unconnected ones (bound, listening, pre-bound) also in `self.unconn` (the wildcard hash that
#   exact-address lookups read); the 4-tuples in the established tables (`self.ehash` for TCP,
#   `self.uehash` for UDP). `used_by_lookup_local` and `tuple_taken` answer in_pcblookup_local and
#   in_pcblookup_hash (in_pcb.c) from them as bitsets. connect() chooses the source address
#   (`connect_source`), the OS's `connect_pcb` gives the PCB its port, and `_establish` commits the 4-tuple.
# - OS-specific socket options (SO_REUSEPORT_LB, IP_PORTRANGE, IP_BINDANY, SO_BINDANY) live on PcbSock;
#   `os_setsockopt`/`os_getsockopt` accept those the rules list (BsdRules.options) and refuse the others and
#   the Linux-only options with ENOPROTOOPT (Socket.setsockopt/getsockopt in model/host.py ask them first).
"""The PCB tables and the rule-driven plumbing BsdStack and WindowsStack share."""

from __future__ import annotations

import errno
import socket as _socket
from collections import deque
from ipaddress import IPv4Address, IPv6Address
from typing import TYPE_CHECKING, Any

from portalloc.constants import IP_BIND_ADDRESS_NO_PORT, IP_FREEBIND, IP_LOCAL_PORT_RANGE, SO_BINDTODEVICE
from portalloc.errors import fail
from portalloc.kernels.bsd import rules_of
from portalloc.kernels.profile import BsdRules, KernelProfile
from portalloc.kernels.strategies import RangeRequest
from portalloc.kernels.sysctls import SysctlSpec
from portalloc.model.addr import ANY4, ANY6, IPAddress, addr_key, is_any, wire_address
from portalloc.model.core import CoreStack, mapped
from portalloc.model.reuseport import ReuseportGroup
from portalloc.model.sock import CLOSE, ESTABLISHED, LISTEN, TIME_WAIT, Sock
from portalloc.model.tables import EstablishedTable, PortTable

if TYPE_CHECKING:
    _CoreBase = CoreStack
else:
    _CoreBase = object

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


class PcbSock(Sock):
    """A PCB: the Sock record plus the PCB socket options (those the OS's rules list) and the flags port
    allocation reads."""

    __slots__ = ("reuseport_lb", "portrange", "bindany", "bindportonsend", "accepted")

    def __init__(self, sid: int, family: int, proto: str, uid: int) -> None:
        super().__init__(sid, family, proto, uid)
        self.reuseport_lb = False     # SO_REUSEPORT_LB (FreeBSD)
        self.portrange = IP_PORTRANGE_DEFAULT
        self.bindany = False          # IP_BINDANY (FreeBSD) / SO_BINDANY (OpenBSD)
        self.bindportonsend = False   # the port is chosen at connect (NetBSD inp_bindportonsend; Windows W4)
        self.accepted = False         # an accept()ed child: shares its listener's port, never binds


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


class PcbTables(_CoreBase):
    """Mixin: the PCB tables, lookups and rule-driven plumbing of a stack over CoreStack whose profile
    carries BsdRules. The OS's class implements ``connect_pcb`` and ``autobind``."""

    #: The PCB record socket(2) makes on this OS.
    sock_class: type[PcbSock] = PcbSock

    def connect_pcb(self, sk: Sock, daddr: IPAddress, dport: int) -> None:
        """Give the PCB its port, source address and peer, or fail as the OS fails (each OS's own)."""
        raise NotImplementedError

    def autobind(self, sk: Sock, laddr: IPAddress, honour_reuse: bool) -> int:
        """The implicit bind on ``laddr`` (listen() of an unbound socket, among others); the OS's own."""
        raise NotImplementedError

    # ------------------------------------------------------------------ sysctls, ranges, sockets

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

    def sockname_port(self, sk: Sock) -> int:
        """getsockname(): inp_lport, which the BSDs clear when a port is given back."""
        return sk.lport

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
        sk = self.sock_class(sid, family, proto, uid)
        if family == 6:
            v6 = self.sc.get("net.inet6.ip6.v6only")
            sk.v6only = bool(v6) if isinstance(v6, int) else self.rules.v6only_default
        return sk

    @staticmethod
    def _portrange(sk: Sock) -> int:
        return sk.portrange if isinstance(sk, PcbSock) else IP_PORTRANGE_DEFAULT

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
        assert isinstance(sk, PcbSock)
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
        assert isinstance(sk, PcbSock)
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

    def tuple_taken(self, sk: Sock, src: IPAddress, lport: int, daddr: IPAddress, dport: int) -> bool:
        """in_pcblookup_hash(faddr, fport, laddr, lport, 0): does this exact 4-tuple exist?"""
        return self._etable(sk).match(addr_key(src), lport, addr_key(daddr), dport, 0) is not None

    def free_ports(self, first: int, last: int, used: int) -> int:
        """The ports of the range first..last (either order) that are not in ``used``."""
        lo, hi = (first, last) if first <= last else (last, first)
        return self._range_mask(lo, hi) & ~used

    def range_request(self, proto: str, first: int, last: int, cursor: str, free: int,
                      randomize: bool = False) -> RangeRequest:
        """What a port order gets: the range, its cursor, the passing ports and the host's search state."""
        return RangeRequest(first, last, cursor, free, proto, self.rng, self.search_state, self._int, self.now,
                            self.rules.throttle, randomize)

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

    def connect_source(self, sk: PcbSock, daddr: IPAddress, dport: int) -> IPAddress:
        """What every in_pcbconnect variant does first: port 0 is refused (EADDRNOTAVAIL), the source address
        is chosen, and a socket that already has a port needs its exact 4-tuple free (EADDRINUSE)."""
        if dport == 0:
            fail(errno.EADDRNOTAVAIL)
        src = self._source(sk, daddr)
        if sk.lport and self.tuple_taken(sk, src, sk.lport, daddr, dport):
            fail(errno.EADDRINUSE)
        return src

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
        assert isinstance(child, PcbSock)
        child.accepted = True
        return child

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

    def listener_score(self, sk: Sock) -> int:
        """in_pcblookup_hash_wild_locked (FreeBSD in_pcb.c): an IPv4 PCB on the wildcard (local_wild) is
        preferred to an AF_INET6 one answering the IPv4 lookup (local_wild_mapped). No bound devices. Which of
        equal PCBs wins is ``newest_listener_wins``."""
        return 2 if sk.family == 4 else 1

    def newest_listener_wins(self, exact: bool) -> bool:
        """The first exact match on the head-inserted hash chain is the newest; among wildcard listeners the OS's
        rule decides (``BsdRules.wild_listener_newest``: the oldest on FreeBSD <= 13)."""
        return exact or self.rules.wild_listener_newest

    def _hash_listener(self, sk: Sock) -> None:
        """in_pcbinslbgrouphash: a SO_REUSEPORT_LB listener joins the group of its (family, address, port),
        up to 256 members; plain SO_REUSEPORT listeners share the port without load balancing."""
        lst = self.listeners.setdefault(sk.lport, [])
        if isinstance(sk, PcbSock) and sk.reuseport_lb:
            for other in lst:
                if other.group is not None and other.family == sk.family and other.laddr == sk.laddr:
                    if len(other.group.members) < LB_GROUP_MAX:
                        other.group.add(sk)
                    break
            else:
                ReuseportGroup().add(sk)
        lst.append(sk)

    # ------------------------------------------------------------------ teardown and timers

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

    def _tw_syn_paws_reject(self, tw: Sock, tsval: int | None) -> bool:
        """A SYN on a TIME_WAIT's 4-tuple meets the PAWS test only where the OS has one there
        (``BsdRules.tw_syn_paws``: not FreeBSD's tcp_twcheck); otherwise the TIME_WAIT gives way."""
        return self.rules.tw_syn_paws and super()._tw_syn_paws_reject(tw, tsval)

    def timewait_lifetime(self, sk: Sock, substate: str, lifetime: float) -> float:
        """tcp_twstart: TIME_WAIT lasts 2 * MSL on this OS (``timewait_seconds``); a FIN_WAIT2 orphan keeps
        the given lifetime. No tcp_tw_recycle."""
        return self.timewait_seconds() if substate == TIME_WAIT else lifetime
