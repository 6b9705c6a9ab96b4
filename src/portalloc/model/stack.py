# Linux's kernel of one network namespace: every port decision, over the OS-neutral CoreStack (core.py).
#
# Rules:
# - Pure: no real sockets, no wall clock; randomness only from the seeded `rng` (CoreStack draws the boot
#   secrets first), in the order the kernel draws it.
# - Each method is one kernel function or one decision of it, named after it, with the kernel's errno.
#   Behaviour that changed across versions is read from `self.profile` (kernels/profile.py); the order
#   in which ports are tried comes from kernels/strategies.py PORT_ORDERS. Linux reads its own sysctls
#   (net.ipv4.*, net.core.somaxconn) with its own defaults (kernels/sysctls.py).
# - Theory of operation: bind()/listen() put a socket into the protocol's PortTable (bhash);
#   connect() asks `connect_test` which ports pass (reserved ports, explicitly bound ports, ports already
#   used toward that destination, TIME_WAITs tcp_tw_reuse may take over) and the profile's order picks one;
#   the socket is hashed into the EstablishedTable (ehash). Teardown, timers, the handshake, listener lookup
#   and UDP delivery are CoreStack's; Linux adds tcp_tw_recycle's timewait lifetime and SYN drop, the
#   listener score (compute_score), SO_BINDTODEVICE (set_bound_device) and the SYN timeout.
"""Linux's model kernel: port allocation and sharing rules for one namespace, over CoreStack."""

from __future__ import annotations

import errno
import struct
from collections import deque
from collections.abc import Callable
from ipaddress import IPv4Address, IPv6Address
from operator import add, itemgetter
from typing import Any

from portalloc.errors import fail
from portalloc.kernels.profile import KernelProfile
from portalloc.kernels.search import PortSpace, scan_wrapped
from portalloc.kernels.strategies import (
    BIND_SEARCHES,
    CONNECT_FIRST_TRIES,
    CONNECT_SEARCHES,
    BindRequest,
    ConnectRequest,
)
from portalloc.kernels.sysctls import SysctlSpec, parse_port_list, specs_for
from portalloc.model.addr import (
    ANY4,
    ANY6,
    LIMITED_BROADCAST,
    IPAddress,
    addr_key,
    is_any,
    is_loopback,
    is_multicast,
    is_unspecified,
    needs_scope_id,
    wire_address,
)
from portalloc.model.conflict import tcp_bind_conflict, udp_bind_conflict, udp_port_taken
from portalloc.model.core import (
    LOOPBACK_IFINDEX,
    PEER_BEHAVIOURS,
    TCP_PAWS_MSL,
    TCP_PAWS_WINDOW,
    TCP_TIMEWAIT_LEN,
    CoreStack,
    RemotePeer,
    mapped,
    s32,
)
from portalloc.model.portset import PortSet
from portalloc.model.reuseport import ReuseportGroup, same_group_identity
from portalloc.model.siphash import siphash24
from portalloc.model.sock import (
    CLOSE,
    ESTABLISHED,
    FIN_WAIT2,
    LISTEN,
    SOCK_FIELDS,
    SYN_SENT,
    TIME_WAIT,
    Sock,
)
from portalloc.model.tables import DestPorts, PortBits
from portalloc.sysctl import SysctlValue

#: One TIME_WAIT for Stack.restore_timewaits: (at, family, (laddr, lport), (raddr, rport), chosen_by, uid, substate,
#: lifetime); laddr/raddr are IPAddresses or what its ``address`` callable turns into one.
TimewaitEntry = tuple[float, int, tuple[Any, int], tuple[Any, int], str, int, str, float]
#: An address as Stack.restore_timewaits resolved it: (address, wire address, its addr_key, is_any(address)).
ResolvedAddress = tuple[IPAddress, IPAddress, int, bool]

#: Linux's stack, its port test, and the shared names callers have always imported from here.
__all__ = ["Stack", "ConnectTest", "TW_RECYCLE_TIMEOUT", "TCP_RTO_MIN_MS", "LOOPBACK_IFINDEX", "PEER_BEHAVIOURS",
           "SYN_TIMEOUT", "TCP_PAWS_MSL", "TCP_PAWS_WINDOW", "TCP_TIMEWAIT_LEN", "CoreStack", "RemotePeer",
           "mapped", "s32"]

#: How long an unanswered SYN is retried with tcp_syn_retries = 6: 1+2+4+8+16+32+64 s.
SYN_TIMEOUT = 127.0
#: TCP_RTO_MIN (include/net/tcp.h): 200 ms, the RTO of a connection with a loopback-scale RTT.
TCP_RTO_MIN_MS = 200
#: tcp_tw_recycle's TIME_WAIT: tcp_time_wait sets tw_timeout = rto = (icsk_rto << 2) - (icsk_rto >> 1), 3.5 RTO,
#: when recycle_ok. The model has no RTT, so it takes icsk_rto to be TCP_RTO_MIN: 700 ms.
TW_RECYCLE_TIMEOUT = ((TCP_RTO_MIN_MS << 2) - (TCP_RTO_MIN_MS >> 1)) / 1000


class ConnectTest:
    """The port test of __inet_hash_connect toward one destination (gVisor's PortTester): ``ok(port)`` for
    one port, ``build()`` for the whole range as a bitset. It tests only; the strategies order.

    A port passes when it lies in lo..hi, is not reserved, not held by an explicit binder, and no live
    socket or TIME_WAIT that cannot be taken over now (``tw_hard``, ``young``, or any TIME_WAIT when
    tcp_tw_reuse is off toward this destination) holds its 4-tuple.
    """

    __slots__ = ("lo", "hi", "range_mask", "reserved", "explicit", "dests", "reuse", "_blockers")

    def __init__(self, lo: int, hi: int, range_mask: Callable[[int, int], int], reserved: int, explicit: PortBits,
                 dests: tuple[DestPorts, ...], reuse: bool) -> None:
        # range_mask(lo, hi): the range's bitset, asked for only by ``build`` (most searches end on ``ok``)
        self.lo, self.hi, self.range_mask = lo, hi, range_mask
        self.reserved, self.explicit, self.dests, self.reuse = reserved, explicit, dests, reuse
        # The sets a port must be absent from, as their bytes: ``ok`` tests them in place (a search changes no
        # table until it has its port); an empty set's bytes are empty. tw_hard and young are subsets of tw.
        self._blockers = [explicit.raw]
        for d in dests:
            self._blockers += (d.live.raw, d.tw_hard.raw, d.young.raw) if reuse else (d.live.raw, d.tw.raw)

    def ok(self, port: int) -> bool:
        """Does ``port`` pass (O(1) per destination entry, no bitset built)?"""
        if port < self.lo or port > self.hi:
            return False
        reserved = self.reserved
        if reserved and (reserved >> port) & 1:
            return False
        i, m = port >> 3, 1 << (port & 7)
        for raw in self._blockers:
            if i < len(raw) and raw[i] & m:
                return False
        return True

    def build(self) -> tuple[int, int]:
        """(every passing port as a bitset, 0): PortSpace's (free, soft) with nothing soft."""
        blocked = self.reserved | self.explicit.bits
        reuse = self.reuse
        for d in self.dests:
            blocked |= d.live.bits | ((d.tw_hard.bits | d.young.bits) if reuse else d.tw.bits)
        return self.range_mask(self.lo, self.hi) & ~blocked, 0



#: The slots _timewait_sock fills: when Sock gains a slot this set lacks, _timewait_sock makes its Sock through
#: Sock() instead (slower, never wrong).
_TIMEWAIT_SOCK_SLOTS = frozenset((
    "id", "family", "proto", "uid", "reuseaddr", "reuseport", "v6only", "dev", "bind_no_port", "freebind",
    "local_range", "state", "laddr", "lport", "raddr", "rport", "saddr_wire", "bindaddr_lock", "bindport_lock",
    "connect_bind", "peer", "parent", "accept_queue", "backlog", "orphan", "tw_substate", "ts_stamp", "expires",
    "group", "so_error", "blocking", "sock_state", "hashed", "rx", "tkey", "sport", "v4_ops", "broadcast",
    "scope_id", "linger_abort"))
_SOCK_FILLED_DIRECTLY = frozenset(SOCK_FIELDS) == _TIMEWAIT_SOCK_SLOTS


def _timewait_sock(sid: int, family: int, uid: int, lport: int, local: ResolvedAddress, remote: ResolvedAddress,
                   rport: int, by_connect: bool, peer: Any, substate: str, stamp: float | None) -> Sock:
    """The Sock of one restored TIME_WAIT, as ``Sock(sid, family, "tcp", uid)`` (core.probe_sock) with
    Stack.restore's fields then set: every slot written once (Stack.restore_timewaits; bind bucket, ehash and
    timer fields - sport, hashed, expires - are set when it enters those tables). ``local`` and ``remote``:
    (address, wire address, its addr_key, is_any) as Stack.restore_timewaits resolved them."""
    sk = Sock.__new__(Sock) if _SOCK_FILLED_DIRECTLY else Sock(sid, family, "tcp", uid)
    sk.id = sid
    sk.family = family
    sk.proto = "tcp"
    sk.uid = uid
    sk.reuseaddr = sk.reuseport = sk.v6only = sk.bind_no_port = sk.freebind = sk.broadcast = False
    sk.linger_abort = sk.v4_ops = sk.hashed = False
    sk.dev = sk.scope_id = sk.local_range = sk.sport = sk.backlog = sk.so_error = 0
    sk.parent = sk.accept_queue = sk.expires = sk.group = sk.rx = None
    sk.blocking = True
    sk.laddr = local[0]
    sk.lport = lport
    sk.connect_bind = by_connect
    sk.bindport_lock = not by_connect
    sk.bindaddr_lock = not by_connect and not local[3]
    sk.saddr_wire, sk.raddr, sk.rport = local[1], remote[1], rport
    sk.tkey = (local[2], lport, remote[2], rport, 0)      # = EstablishedTable.tuple_of (dev 0)
    sk.sock_state = "connected"
    sk.peer = peer
    sk.orphan = True
    sk.ts_stamp = stamp
    sk.state = TIME_WAIT           # _enter_timewait, with the tables and the timer filled by the caller
    sk.tw_substate = substate
    return sk

class ConnectRoute:
    """What tcp_connect decided before the port for a fresh socket toward one destination address (Stack._routes):
    the destination and source on the wire and their addr_keys, the address the socket takes (``laddr``, as
    _set_rcv_saddr gives it) and whether the destination is this host's own (``local``)."""

    __slots__ = ("daddr", "src", "skey", "rkey", "laddr", "local")

    def __init__(self, daddr: IPAddress, src: IPAddress, laddr: IPAddress, local: bool) -> None:
        self.daddr, self.src, self.laddr, self.local = daddr, src, laddr, local
        self.skey, self.rkey = addr_key(src), addr_key(daddr)


class Stack(CoreStack):
    """Linux: the kernel state of one network namespace, and every port decision on it."""

    def __init__(self, profile: KernelProfile, seed: int | None, addresses: tuple[str, ...] | list[str],
                 sysctls: dict[str, Any] | None, devices: tuple[str, ...] | list[str]) -> None:
        self.reserved_mask = 0                   # ip_local_reserved_ports as a bitset
        # tcp_metrics (inet_peer before 3.6): per peer address, (tcpm_ts, tcpm_ts_stamp) = the peer's last
        # TSval seen by a connection that ended in TIME_WAIT, and when it came (get_seconds()).
        self.peer_stamps: dict[IPAddress, tuple[int, int]] = {}
        self._offset_cache: dict[tuple[Any, ...], int] = {}
        self._offset_seed = -1
        self._routes: dict[tuple[int, int], ConnectRoute] = {}    # tcp_connect's route decisions, remembered
        self._route_laddrs: dict[IPAddress, IPAddress] = {}       # their laddr objects, one per address
        self._first_try = CONNECT_FIRST_TRIES.get(profile.connect_search)
        self._reuse_memo: dict[tuple[int, int, int], bool] = {}   # _tw_reuse_for by (source, destination, device)
        super().__init__(profile, seed, addresses, sysctls, devices)

    # ------------------------------------------------------------------ sysctls and time

    def sysctl_specs(self, profile: KernelProfile) -> dict[str, SysctlSpec]:
        """The sysctls this kernel has (a Stack for another OS overrides this)."""
        return specs_for(profile)

    def _sysctl_changed(self, name: str, value: SysctlValue) -> None:
        """A new tcp_tw_reuse_delay re-sorts the young TIME_WAITs; new reserved ports become the bitset."""
        if name == "net.ipv4.tcp_tw_reuse_delay":
            self.ehash.rebuild_young(self._tw_delay_passed)
        if name == "net.ipv4.ip_local_reserved_ports":
            self.reserved_mask = sum(1 << p for p in parse_port_list(str(value)))

    def _mirror_sysctls(self) -> None:
        """Mirror the sysctls read on every connection as attributes (a dict lookup per connection saved)."""
        self._reuse_memo.clear()
        self.tw_reuse = self.sysctl_int("net.ipv4.tcp_tw_reuse", 0)
        self.tw_reuse_delay = self.sysctl_int("net.ipv4.tcp_tw_reuse_delay", 1000)
        self.timestamps = bool(self.sysctl_int("net.ipv4.tcp_timestamps", 1))
        self.somaxconn = self.sysctl_int("net.core.somaxconn", 4096)
        self.fin_timeout = float(self.sysctl_int("net.ipv4.tcp_fin_timeout", 60))
        self.tw_recycle = self.profile.tw_recycle and self.sysctl_int("net.ipv4.tcp_tw_recycle", 0) == 1

    def sockname_port(self, sk: Sock) -> int:
        """The port getsockname() shows: inet_sport, which keeps a port that a failed connect() released
        (tcp_set_state(CLOSE) → inet_put_port clears inet_num only; tcp_disconnect resets the address but not
        the port; linux.md section 6, verify seed 2027 trace 158)."""
        return sk.lport or sk.sport

    def port_range(self) -> tuple[int, int]:
        """The namespace's ephemeral range (net.ipv4.ip_local_port_range; other OSes override this)."""
        v = self.sc["net.ipv4.ip_local_port_range"]
        assert isinstance(v, tuple)
        return v

    def local_port_range(self, sk: Sock) -> tuple[int, int, bool]:
        """inet_sk_get_local_port_range (6.3+, 91d0b78c5177): the netns range narrowed by
        IP_LOCAL_PORT_RANGE; each bound applies only if it lies inside. Returns (low, high, option set)."""
        return self.narrowed_range(sk.local_range)

    def narrowed_range(self, option: int) -> tuple[int, int, bool]:
        """The netns range narrowed by an IP_LOCAL_PORT_RANGE value (``hi << 16 | lo``, 0: unset), as
        inet_sk_get_local_port_range does: (low, high, option set)."""
        lo, hi = self.port_range()
        if option and self.profile.ip_local_port_range_option:
            sk_lo, sk_hi = option & 0xFFFF, option >> 16
            if lo <= sk_lo <= hi:
                lo = sk_lo
            if lo <= sk_hi <= hi:
                hi = sk_hi
            return lo, hi, True
        return lo, hi, False

    # ------------------------------------------------------------------ bind()

    def _address_bindable(self, sk: Sock, addr: IPAddress) -> bool:
        """inet_addr_valid_or_nonlocal / ipv6_chk_addr: wildcard, local, multicast or broadcast address,
        or ip_nonlocal_bind / IP_FREEBIND."""
        if is_unspecified(addr) or sk.freebind:
            return True                 # ::ffff:0.0.0.0 too: inet_addr_valid_or_nonlocal admits INADDR_ANY
        w = wire_address(addr)
        nonlocal_key = "net.ipv4.ip_nonlocal_bind" if isinstance(w, IPv4Address) else "net.ipv6.ip_nonlocal_bind"
        if self.sysctl_int(nonlocal_key):
            return True
        if is_multicast(w) or (isinstance(w, IPv4Address) and w == LIMITED_BROADCAST):
            return True
        if isinstance(addr, IPv6Address) and addr.ipv4_mapped is None and sk.dev and sk.dev != LOOPBACK_IFINDEX:
            return False   # ipv6_chk_addr(net, addr, dev, 0): the address must be on the bound device (lo here)
        return self.addresses.is_local(w)

    def _scope_device(self, sk: Sock, addr: IPAddress, connect: bool) -> None:
        """__inet6_bind, tcp_v6_connect, __ip6_datagram_connect: a link-local address (or link-/interface-local
        multicast) needs a device. The sockaddr's scope id binds the socket to it (connect: EINVAL when the
        socket is bound to another device, sk_dev_equal_l3scope); with neither a scope id nor a bound device,
        EINVAL; bind() to an unknown ifindex, ENODEV. Measured on 6.18 (fe80::1, ff02::1, with and without
        scope id 1)."""
        if not needs_scope_id(addr):
            return
        scope = sk.scope_id
        if scope:
            if connect and sk.dev and sk.dev != scope:
                fail(errno.EINVAL)
            if connect and scope not in self.devices.values():
                fail(errno.ENETUNREACH)        # no such device: the route lookup finds none (measured, 6.18)
            if not connect and scope not in self.devices.values():
                sk.dev = scope                 # set before the lookup, and left set (__inet6_bind)
                fail(errno.ENODEV)
            self.set_bound_device(sk, scope)
        if not sk.dev:
            fail(errno.EINVAL)

    def _needs_bind_service(self, port: int) -> bool:
        """inet_port_requires_bind_service: below ip_unprivileged_port_start (1024 before 4.11)."""
        return port != 0 and port < self.sysctl_int("net.ipv4.ip_unprivileged_port_start", 1024)

    def bind(self, sk: Sock, addr: IPAddress, port: int) -> None:
        """__inet_bind / __inet6_bind, checks in the kernel's order (af_inet.c, af_inet6.c; linux.md 4.1).

        IPv4: address (EADDRNOTAVAIL), privilege (EACCES), state (EINVAL), port (EADDRINUSE). IPv6 checks the
        privilege and state first, v4-mapped on a v6only socket is EINVAL, and binding a plain IPv6 address
        sets the socket v6-only (so [::1]:P and 0.0.0.0:P coexist; verified live on 6.18)."""
        mapped = sk.family == 6 and isinstance(addr, IPv6Address) and addr.ipv4_mapped is not None
        if sk.family == 6 and sk.proto == "tcp" and isinstance(addr, IPv6Address) and addr.is_multicast:
            fail(errno.EINVAL)          # __inet6_bind: no IPv6 multicast address for SOCK_STREAM (first check)
        if sk.family == 4:
            if not self._address_bindable(sk, addr):
                fail(errno.EADDRNOTAVAIL)
            if self._needs_bind_service(port) and sk.uid != 0:
                fail(errno.EACCES)
            if sk.state != CLOSE or sk.lport:
                fail(errno.EINVAL)
        else:
            if self._needs_bind_service(port) and sk.uid != 0:
                fail(errno.EACCES)
            if sk.state != CLOSE or sk.lport:
                fail(errno.EINVAL)
            if mapped and sk.v6only:
                fail(errno.EINVAL)
            self._scope_device(sk, addr, connect=False)
            if not self._address_bindable(sk, addr):
                fail(errno.EADDRNOTAVAIL)
        saved_v6only = sk.v6only
        sk.laddr = addr
        if sk.family == 6 and not is_any(addr) and not mapped:
            sk.v6only = True            # __inet6_bind: a plain IPv6 address makes the socket v6-only
        if port or not (sk.bind_no_port and self.profile.ip_bind_address_no_port):
            if not self.get_port(sk, port):
                sk.laddr = None
                sk.v6only = saved_v6only
                fail(errno.EADDRINUSE)
        sk.bindaddr_lock = not is_any(addr)
        sk.bindport_lock = port != 0

    def get_port(self, sk: Sock, port: int) -> bool:
        """sk_prot->get_port: inet_csk_get_port (TCP) or udp_lib_get_port (UDP). True on success."""
        if sk.laddr is None:
            sk.laddr = ANY4 if sk.family == 4 else ANY6
        if sk.proto == "udp":
            return self.udp_get_port(sk, port)
        if port == 0:
            found = self.find_open_port(sk)
            if found is None:
                return False
            port = found
        owners = self.tcp.owners(port)
        if owners and tcp_bind_conflict(sk, owners, relax=True, reuseport_ok=True):
            return False
        if not sk.lport:               # listen() re-checks a port the socket already holds
            self.tcp.add(sk, port)
        return True

    def find_open_port(self, sk: Sock) -> int | None:
        """inet_csk_find_open_port: bind(0)/listen() autobind, in the profile's order (odd-first since 4.6)."""
        lo, hi, _ = self.local_port_range(sk)
        full = self._range_mask(lo, hi) & ~self.reserved_mask
        overlap = self.tcp.overlap_mask(sk.key())

        def space(relax: bool) -> PortSpace:
            if not relax:
                return PortSpace(full & ~overlap)
            return PortSpace(full & ~overlap, full & overlap,
                             lambda p: not tcp_bind_conflict(sk, self.tcp.owners(p), relax=True, reuseport_ok=False))

        req = BindRequest(lo, hi, sk.reuseaddr, space,
                          bool(self.sysctl_int("net.ipv4.ip_autobind_reuse", 0)), self.rng)
        result = BIND_SEARCHES[self.profile.bind_search](req)
        self.stats["bind_probes"] += result.probes
        if result.port is None and self.profile.smallest_size_fallback and sk.reuseaddr and sk.state != LISTEN:
            return self._smallest_size_port(sk, lo, hi)
        return result.port

    def _smallest_size_port(self, sk: Sock, lo: int, hi: int) -> int | None:
        """The <=4.10 fallback (removed by b9470c27607b): with SO_REUSEADDR, when no port is free, share the
        bucket with the fewest owners among those whose owners all have SO_REUSEADDR and none listens."""
        best: tuple[int, int] | None = None
        for port in range(lo, hi + 1):
            owners = self.tcp.owners(port)
            if not owners or (self.reserved_mask >> port) & 1:
                continue
            if all(o.reuseaddr and o.state != LISTEN and not o.connect_bind for o in owners):
                if best is None or len(owners) < best[0]:
                    best = (len(owners), port)
        if best is None or tcp_bind_conflict(sk, self.tcp.owners(best[1]), relax=True, reuseport_ok=True):
            return None
        return best[1]

    def udp_get_port(self, sk: Sock, port: int) -> bool:
        """udp_lib_get_port: an explicit port checked with udp_lib_lport_inuse, or the autobind walk; a
        SO_REUSEPORT socket then joins the group of an exact-address peer (udp_reuseport_add_sock)."""
        if port == 0:
            found = self.udp_find_port(sk)
            if found is None:
                return False
            port = found
        elif udp_bind_conflict(sk, self.udp.owners(port)):
            return False
        if sk.reuseport:
            for other in self.udp.owners(port):
                if other.group is not None and other.family == sk.family and other.v6only == sk.v6only \
                        and other.dev == sk.dev and other.uid == sk.uid and other.laddr == sk.laddr:
                    other.group.add(sk)
                    break
            else:
                ReuseportGroup().add(sk)
        self.udp.add(sk, port)
        return True

    def udp_autobind_ports(self, sk: Sock, lo: int, hi: int) -> tuple[int, int]:
        """The port test of udp_lib_get_port's autobind walk for ``sk`` (its address already set), as two
        bitsets of the range lo..hi without reserved ports: (free, taken) where ``free`` holds no socket on an
        overlapping address and ``taken`` does (udp_lib_lport_inuse may still pass one of those for a
        SO_REUSEADDR/SO_REUSEPORT socket, owner by owner). Not destination-aware: Linux's UDP autobind never
        looks at the peer."""
        full = self._range_mask(lo, hi) & ~self.reserved_mask
        overlap = self.udp.overlap_mask(sk.key())
        return full & ~overlap, full & overlap

    def udp_find_port(self, sk: Sock) -> int | None:
        """udp_lib_get_port with snum 0: a uniformly random first port, then each hash slot in turn,
        walking the slot's ports with an odd multiple of the table size; no parity preference."""
        lo, hi, _ = self.local_port_range(sk)
        free, taken = self.udp_autobind_ports(sk, lo, hi)
        if sk.reuseaddr or sk.reuseport:
            space = PortSpace(free, taken, lambda p: not udp_port_taken(sk, self.udp.owners(p)))
        else:
            space = PortSpace(free)
        remaining = hi - lo + 1
        rand = self.rng.getrandbits(32)
        first = ((rand * remaining) >> 32) + lo
        size = self.profile.udp_table_size
        step = ((rand | 1) * size) & 0xFFFF
        if step == 0:
            # The table has a slot per port: each slot holds one candidate, taken in order from `first`.
            port, _ = scan_wrapped(space, first, 1, remaining, hi + 1, remaining)
            return port
        if not space.free:
            return None
        for slot in range(first, first + size):
            snum = slot & 0xFFFF
            start = snum
            while True:
                if lo <= snum <= hi and space.ok(snum):
                    return snum
                snum = (snum + step) & 0xFFFF
                if snum == start:
                    break
        return None

    # ------------------------------------------------------------------ listen() and accept()

    def listen(self, sk: Sock, backlog: int) -> None:
        """__inet_listen_sk + inet_csk_listen_start: re-check the port as a listener, or autobind."""
        if sk.state == LISTEN:
            sk.backlog = backlog
            return
        if sk.state != CLOSE:
            fail(errno.EINVAL)
        sk.state = LISTEN
        if not self.get_port(sk, sk.lport):
            sk.state = CLOSE
            if not sk.lport:
                sk.laddr = sk.laddr if sk.bindaddr_lock else None
            fail(errno.EADDRINUSE)
        sk.backlog = backlog
        sk.accept_queue = deque()
        self._hash_listener(sk)

    def listener_score(self, sk: Sock) -> int:
        """compute_score (inet_hashtables.c): 1, +1 for an IPv4 socket (sk_family == PF_INET), +1 for a bound
        device (the device match itself is checked by lookup_listener)."""
        return (2 if sk.dev else 1) + (1 if sk.family == 4 else 0)

    def _hash_listener(self, sk: Sock) -> None:
        """inet_hash → inet_reuseport_add_sock: join a matching group or start one."""
        lst = self.listeners.setdefault(sk.lport, [])
        if sk.reuseport:
            for other in lst:
                if other.group is not None and same_group_identity(sk, other):
                    other.group.add(sk)
                    break
            else:
                ReuseportGroup().add(sk)
        lst.append(sk)

    # ------------------------------------------------------------------ connect()

    def _port_offset(self, saddr: IPAddress, daddr: IPAddress, dport: int,
                     key: tuple[int, int, int] | None = None) -> int:
        """secure_ipv4/ipv6_port_ephemeral: SipHash of (saddr, daddr, dport[, jiffies / (10 HZ)]) under
        net_secret (secure_seq.c; time seed 4dfa9b438ee3, 5.18). 64 bits since 5.18, 32 before.
        ``key``: (addr_key(saddr), addr_key(daddr), dport) when the caller has it."""
        p = self.profile
        seed = int((self.now + self.boot_phase) // 10) & 0xFFFFFFFF if p.time_seed else 0
        if seed != self._offset_seed or len(self._offset_cache) > 65536:
            self._offset_cache.clear()
            self._offset_seed = seed
        if key is None:
            key = (addr_key(saddr), addr_key(daddr), dport)
        v = self._offset_cache.get(key)
        if v is None:
            data = saddr.packed + daddr.packed + struct.pack(">H", dport) + b"\0\0"
            if p.time_seed:
                data += struct.pack("<I", seed)
            v = siphash24(self.net_secret, data)
            if not p.port_offset_64:
                v &= 0xFFFFFFFF
            self._offset_cache[key] = v
        return v

    def _tw_reuse_for(self, saddr: IPAddress, daddr: IPAddress, dev: int) -> bool:
        """tcp_twsk_unique's `reuse` toward one destination (before the per-socket FIN_WAIT2 and timestamp
        rules, which tw_hard carries): the sysctl, and for 2 a loopback address or device (4.18+)."""
        reuse = self.tw_reuse
        if not self.profile.tw_reuse_loopback_mode or reuse != 2:
            return bool(reuse)
        return dev == LOOPBACK_IFINDEX or is_loopback(daddr) or is_loopback(saddr)

    def _tw_reuse_setting(self, tw: Sock) -> bool:
        """tcp_twsk_unique's `reuse` for one TIME_WAIT: never for a FIN_WAIT2 substate (6.12, 0d9e5df4a257),
        otherwise as for its destination."""
        if tw.tw_substate == FIN_WAIT2 and self.profile.fin_wait2_not_reused:
            return False
        assert tw.saddr_wire is not None and tw.raddr is not None
        return self._tw_reuse_for(tw.saddr_wire, tw.raddr, tw.dev)

    def _tw_delay_passed(self, stamp: float) -> bool:
        """6.14+: tcp_clock_ms() > stamp + tcp_tw_reuse_delay; 4.19-6.13: ktime_get_seconds() > stamp (1 s
        ticks); before 4.19: get_seconds() - stamp > 1 (two ticks)."""
        if self.profile.tw_reuse_delay_sysctl:
            delay = self.tw_reuse_delay
            return int(self.now * 1000) > int(stamp * 1000) + delay
        return int(self.now + self.boot_phase) - int(stamp + self.boot_phase) > self.profile.tw_reuse_tick_margin

    def twsk_unique(self, tw: Sock, bound_port: bool) -> bool:
        """tcp_twsk_unique (tcp_ipv4.c): may a new connection take over this TIME_WAIT 4-tuple?

        Timestamps are required; a socket that already had its port (twp == NULL) takes it over at once,
        whatever tcp_tw_reuse says; an autobinding connect() needs tcp_tw_reuse (2 = loopback only, 4.18,
        79e9fed46038; never for a FIN_WAIT2 substate, 6.12, 0d9e5df4a257) and the delay (1 s ticks before
        6.14; tcp_tw_reuse_delay ms since 6.14, ca6a6f93867a). Verified live on 6.18: test vectors 15-20.
        """
        if tw.ts_stamp is None:
            return False
        if bound_port:
            return True
        return self._tw_reuse_setting(tw) and self._tw_delay_passed(tw.ts_stamp)

    def _tw_hard(self, tw: Sock) -> bool:
        """Can no tcp_tw_reuse setting ever take this TIME_WAIT over (for the search bitsets)?"""
        return tw.ts_stamp is None or (tw.tw_substate == FIN_WAIT2 and self.profile.fin_wait2_not_reused)

    def check_established(self, sk: Sock, port: int, bound_port: bool) -> bool:
        """__inet_check_established (inet_hashtables.c, all versions): is (saddr, port, daddr, dport) free,
        or held by a TIME_WAIT we may take? On success a taken-over TIME_WAIT is killed (inet_twsk_deschedule_put).
        Any other socket on the 4-tuple, in any state, makes it unavailable."""
        assert sk.saddr_wire is not None and sk.raddr is not None
        return self._check_established(sk, addr_key(sk.saddr_wire), port, addr_key(sk.raddr), bound_port)

    def _check_established(self, sk: Sock, skey: int, port: int, rkey: int, bound_port: bool) -> bool:
        """``check_established`` with the wire addresses' keys (addr_key) already computed."""
        other = self.ehash.match(skey, port, rkey, sk.rport, sk.dev)
        if other is None:
            return True
        if other.state == TIME_WAIT and self.twsk_unique(other, bound_port):
            self.stats["tw_reused"] += 1
            self._destroy(other)
            return True
        return False

    def connect_test(self, saddr: IPAddress, daddr: IPAddress, dport: int, dev: int, lo: int,
                     hi: int) -> ConnectTest:
        """The port test of __inet_hash_connect for an unbound socket bound to ``dev`` going from ``saddr``
        to daddr:dport over the range lo..hi: a port passes when it is not reserved, not held by an explicit
        binder, and its 4-tuple is free or a TIME_WAIT that tcp_twsk_unique would take over now. The one
        answer every caller asks (the search, ``usable_ports``); it never orders."""
        return self._connect_test(addr_key(saddr), addr_key(daddr), saddr, daddr, dport, dev, lo, hi)

    def _connect_test(self, skey: int, rkey: int, saddr: IPAddress, daddr: IPAddress, dport: int, dev: int,
                      lo: int, hi: int) -> ConnectTest:
        """``connect_test`` with the addresses' keys (addr_key) already computed."""
        if dev:
            dests = self.ehash.dest_ports(skey, rkey, dport, dev)
        else:                                      # (dest_ports for no device: the device-less entry alone)
            d = self.ehash.dests.get((skey, rkey, dport, 0))
            dests = () if d is None else (d,)
        # tcp_tw_reuse decides the same for every TIME_WAIT toward one destination (FIN_WAIT2 and no-timestamp
        # ones are tw_hard; the delay leaves the `young` ones), so the test needs no per-port look. One
        # approximation: tcp_tw_reuse=2's loopback test reads each TIME_WAIT's own device, here the new
        # socket's; they differ only for non-loopback addresses with SO_BINDTODEVICE lo on one side.
        reuse = False
        for d in dests:
            if d.tw.count:
                memo = self._reuse_memo
                known = memo.get((skey, rkey, dev))    # (cleared with every sysctl write)
                if known is None:
                    known = memo[(skey, rkey, dev)] = self._tw_reuse_for(saddr, daddr, dev)
                reuse = known
                break
        if reuse:
            for d in dests:
                if not d.tracked:
                    self.ehash.track_reuse(d, self._tw_hard, self._tw_delay_passed)
                d.age(self._tw_delay_passed)
        return ConnectTest(lo, hi, self._range_mask, self.reserved_mask, self.tcp.explicit, dests, reuse)

    def usable_ports(self, proto: str, saddr: IPAddress, daddr: IPAddress, dport: int, *, dev: int = 0,
                     local_range: tuple[int, int] | None = None) -> PortSet:
        """The ports a new, unbound socket's connect() from ``saddr`` to daddr:dport could take now.

        TCP: what __inet_hash_connect's test passes (``connect_test``): the range (narrowed by an
        IP_LOCAL_PORT_RANGE of ``local_range`` = (low, high), 0 for an unset bound), minus reserved ports,
        minus ports an explicit binder holds, minus ports whose 4-tuple toward the destination is live or
        a TIME_WAIT that tcp_tw_reuse cannot take over now. UDP: what connect()'s autobind
        (udp_lib_get_port) could take; Linux's UDP autobind is not destination-aware, so ``daddr`` and
        ``dport`` only choose the family. ``dev``: the ifindex of SO_BINDTODEVICE (0: none).
        The number of ports is the number of further connect() calls of fresh sockets toward the
        destination that get a port, as long as each keeps it. Nothing in the tables changes."""
        option = 0
        if local_range is not None:
            option = (local_range[0] & 0xFFFF) | (local_range[1] & 0xFFFF) << 16
        lo, hi, _ = self.narrowed_range(option)
        saddr, daddr = wire_address(saddr), wire_address(daddr)
        if proto == "tcp":
            return PortSet(self.connect_test(saddr, daddr, dport, dev, lo, hi).build()[0])
        if proto != "udp":
            raise ValueError(f"unknown protocol {proto!r}: give 'tcp' or 'udp'")
        probe = self.probe_sock(4 if isinstance(daddr, IPv4Address) else 6, "udp", 0)
        probe.dev = dev
        probe.laddr = ANY4 if probe.family == 4 else ANY6
        return PortSet(self.udp_autobind_ports(probe, lo, hi)[0])

    def connect_search(self, sk: Sock, skey: int | None = None, rkey: int | None = None) -> int | None:
        """__inet_hash_connect for an unbound socket: the profile's search (the order) over the ports
        ``connect_test`` passes (the test). Returns the port, with the bucket taken. ``skey``, ``rkey``: the
        addr_key of the source and destination on the wire, when the caller has them."""
        saddr, daddr = sk.saddr_wire, sk.raddr
        assert saddr is not None and daddr is not None
        if skey is None or rkey is None:
            skey, rkey = addr_key(saddr), addr_key(daddr)      # once for the test, the hash and the takeover
        if sk.local_range:
            lo, hi, local_ports = self.narrowed_range(sk.local_range)     # local_port_range(sk)
        else:
            (lo, hi), local_ports = self.port_range(), False            # (narrowed_range of no option)
        rport = sk.rport
        test = self._connect_test(skey, rkey, saddr, daddr, rport, sk.dev, lo, hi)
        profile = self.profile
        offset = self._port_offset(saddr, daddr, rport, (skey, rkey, rport))
        stats = self.stats
        stats["connect_searches"] += 1
        # The order's common case first (one of its first candidates passes), else the whole search.
        first = self._first_try
        found = None if first is None else first(profile, self.search_state, self.rng, lo, hi, local_ports, offset,
                                                 test.ok)
        if found is not None:
            port = found[0]
            stats["connect_probes"] += found[1]
        else:
            req = ConnectRequest(lo, hi, local_ports, offset, PortSpace(build=test.build, quick=test.ok), self.rng,
                                 self.search_state, profile)
            result = CONNECT_SEARCHES[profile.connect_search](req)
            stats["connect_probes"] += result.probes
            if result.port is None:
                return None
            port = result.port
        if sk.dev or self.ehash.by_tuple.get((skey, port, rkey, rport, 0)) is not None:   # (ehash.match, dev 0)
            self._check_established(sk, skey, port, rkey, bound_port=False)   # takes over the TIME_WAIT, if one
        sk.connect_bind = True
        self.tcp.add(sk, port)
        return port

    def device_blackhole(self, sk: Sock, daddr: IPAddress, wildcard: bool = False) -> bool:
        """Routing for a socket tied to a non-loopback device (SO_BINDTODEVICE) toward this host's own
        (loopback) addresses, measured on 6.18: IPv6 finds no route (ENETUNREACH); IPv4 from a loopback
        source, or toward 0.0.0.0 (whose source becomes 127.0.0.1), is refused by __mkroute_output (EINVAL);
        IPv4 otherwise leaves by that device from 0.0.0.0 and nobody answers (True: a black hole)."""
        if not sk.dev or sk.dev == LOOPBACK_IFINDEX or not self.addresses.is_local(daddr):
            return False
        if isinstance(daddr, IPv6Address):
            fail(errno.ENETUNREACH)
        # the IPv4 source is inet_saddr: a native IPv6 address or a multicast/broadcast bind leaves it 0
        # (found by verify --seed 91002, trace 370)
        if wildcard or (sk.laddr is not None and not is_any(sk.laddr)
                        and isinstance(wire_address(sk.laddr), IPv4Address)
                        and is_loopback(wire_address(sk.laddr)) and not self.routed_source(sk)):
            fail(errno.EINVAL)
        return True

    def mapped_source_to_v6(self, sk: Sock, daddr: IPAddress) -> bool:
        """An AF_INET6 socket whose address is v4-mapped (the mapped wildcard ::ffff:0.0.0.0 included: found by
        verify --seed 91001), connecting to a native IPv6 address: ip6_dst_lookup_tail refuses a v4-mapped
        source with a native destination (EAFNOSUPPORT), for UDP and TCP alike."""
        return (sk.family == 6 and isinstance(daddr, IPv6Address) and sk.laddr is not None
                and isinstance(sk.laddr, IPv6Address) and sk.laddr.ipv4_mapped is not None)

    def v4_ops_to_v6(self, sk: Sock, daddr: IPAddress) -> bool:
        """tcp_v6_connect's v4-mapped branch sets icsk_af_ops = ipv6_mapped and puts it back only when
        tcp_v4_connect fails at once; after a later failure (an RST) it stays, so a connect() to a native IPv6
        address sends its SYN the IPv4 way and nobody answers (6.18: ETIMEDOUT; regression traces
        tcp6-mapped-refused-then-v6, tcp6-mapped-refused-bind-then-v6)."""
        return sk.family == 6 and sk.v4_ops and isinstance(daddr, IPv6Address)

    def _set_rcv_saddr(self, sk: Sock, src: IPAddress) -> None:
        """inet_bhash2_update_saddr: a socket bound to the wildcard (or not at all) takes the source address;
        a port it already holds moves to that address. So does a TCP socket bound to a multicast or broadcast
        address (routed_source); a UDP one keeps it as its receive address (__ip4_datagram_connect)."""
        if sk.laddr is not None and not is_unspecified(sk.laddr) \
                and not (sk.proto == "tcp" and self.routed_source(sk)):
            return
        self._rehash_laddr(sk, self._rcv_saddr(sk, src))

    @staticmethod
    def _rcv_saddr(sk: Sock, src: IPAddress) -> IPAddress:
        """The address a socket takes from its source in its own family (v4-mapped on an AF_INET6 socket)."""
        return src if sk.family == 4 or isinstance(src, IPv6Address) else mapped(src)

    def tcp_connect(self, sk: Sock, daddr: IPAddress, dport: int) -> None:
        """tcp_v4_connect / tcp_v6_connect up to the handshake: pick the source, hash the socket
        (inet_hash_connect), then meet the peer. EADDRNOTAVAIL when no port is left; a refused
        handshake leaves the socket CLOSE with so_error set.

        The route decisions depend only on the socket's address, device and flags and on the host's
        addresses, which never change: for a fresh socket (no address, port or device, not v6-only, no
        v4-mapped history) toward an address that needs no scope id, those that succeeded are remembered per
        (family, destination) in ``_routes`` (a ConnectRoute) and skipped on the next connect()."""
        fresh = sk.laddr is None and not (sk.lport or sk.dev or sk.v6only or sk.v4_ops)
        route = self._routes.get((sk.family, addr_key(daddr))) if fresh else None
        if route is None:
            given = daddr
            daddr, src, blackhole = self._connect_route(sk, daddr)
            if fresh and not blackhole and not is_unspecified(given) and not needs_scope_id(given):
                # One address object per source address for every route (setdefault): sockets bound through
                # any of them share their laddr, which PortTable's last-slot memo matches by identity.
                laddr = self._rcv_saddr(sk, src)
                laddr = self._route_laddrs.setdefault(laddr, laddr)
                route = self._routes[(sk.family, addr_key(given))] = ConnectRoute(
                    daddr, src, laddr, self.addresses.is_local(daddr))
            self._set_rcv_saddr(sk, src)
        else:
            daddr, src, blackhole = route.daddr, route.src, False
            sk.laddr = route.laddr             # _set_rcv_saddr for a socket with no address and no port
        v4 = daddr.__class__ is IPv4Address
        v6sock = sk.family == 6
        sk.saddr_wire, sk.raddr, sk.rport = src, daddr, dport
        if sk.lport:
            ok = self.check_established(sk, sk.lport, bound_port=True)
        elif route is not None:
            ok = self.connect_search(sk, route.skey, route.rkey) is not None
        else:
            ok = self.connect_search(sk) is not None
        if not ok:
            self._connect_failed(sk)
            if v6sock and v4:
                sk.v4_ops = False             # tcp_v4_connect failed at once: back to ipv6_specific
            fail(errno.EADDRNOTAVAIL)
        if v6sock and v4:
            sk.v4_ops = True
        if route is not None:
            self.ehash.insert(sk, (route.skey, sk.lport, route.rkey, dport, 0))
        else:
            self.ehash.insert(sk)
        self.stats["connects"] += 1
        if blackhole:
            sk.state = SYN_SENT
            self.timers.arm(sk, self.now + SYN_TIMEOUT)
            return
        self._handshake(sk, daddr, dport, None if route is None else route.local)

    def _connect_route(self, sk: Sock, daddr: IPAddress) -> tuple[IPAddress, IPAddress, bool]:
        """tcp_v4_connect / tcp_v6_connect before the port: the destination's checks and the source's route, in
        the kernel's order, with their errnos. Returns (destination on the wire, source, black hole: a SYN
        nobody will answer)."""
        wildcard = is_unspecified(daddr)
        if wildcard:
            daddr = self.any_to_loopback(sk, daddr)
        daddr = wire_address(daddr)
        v4 = isinstance(daddr, IPv4Address)
        v6sock = sk.family == 6
        if not v4:
            if is_multicast(daddr):
                fail(errno.ENETUNREACH)        # tcp_v6_connect: no multicast peer
            self._scope_device(sk, daddr, connect=True)
        elif v6sock and sk.v6only:
            fail(errno.ENETUNREACH)
        if v4 and (is_multicast(daddr) or self.addresses.is_broadcast(daddr)):
            fail(errno.ENETUNREACH)            # tcp_v4_connect: rt_flags & (RTCF_MULTICAST | RTCF_BROADCAST)
        # (device_blackhole needs a bound device; the v4-mapped rules an AF_INET6 socket)
        src: IPAddress
        if sk.dev and self.device_blackhole(sk, daddr, wildcard):
            blackhole, src = True, ANY4
        else:
            if v6sock and self.mapped_source_to_v6(sk, daddr):
                fail(errno.EAFNOSUPPORT)       # ip6_dst_lookup_tail, before any SYN (verify --seed 92002)
            blackhole = v6sock and self.v4_ops_to_v6(sk, daddr)
            src = self.route_source(sk, daddr)
        if not blackhole and (isinstance(src, IPv4Address) != v4
                              or (v6sock and self.mapped_source_to_v6(sk, daddr))):
            # ip6_dst_lookup_tail: a v4-mapped source (::ffff:0.0.0.0 too) toward a native IPv6 address
            fail(errno.ENETUNREACH if sk.family == 4 else errno.EAFNOSUPPORT)
        return daddr, src, blackhole

    def set_bound_device(self, sk: Sock, ifindex: int) -> None:
        """sock_bindtoindex_locked: a socket that already holds a port is rehashed under its new device, and
        a connected one is matched under it from then on (inet_match reads sk_bound_dev_if at lookup)."""
        if ifindex == sk.dev:
            return
        hashed = sk.hashed
        if hashed:
            self.ehash.remove(sk)
        if sk.lport:
            table, port = self.table(sk), sk.lport
            table.remove(sk)
            sk.dev = ifindex
            table.add(sk, port)
        else:
            sk.dev = ifindex
        if hashed:
            self.ehash.insert(sk)

    def _connect_failed(self, sk: Sock) -> None:
        """tcp_set_state(CLOSE) + inet_bhash2_reset_saddr: a port not chosen by the user is released
        (inet_put_port), an address not chosen by the user forgotten."""
        if sk.hashed:
            self.ehash.remove(sk)
        sk.state = CLOSE
        if sk.lport and not sk.bindport_lock:
            self.table(sk).remove(sk)
            sk.lport = 0
            sk.connect_bind = False
        if not sk.bindaddr_lock:
            self._rehash_laddr(sk, None)
        sk.raddr, sk.rport, sk.saddr_wire = None, 0, None

    # ------------------------------------------------------------------ restoring a read socket table

    def restore(self, proto: str, family: int, state: str, laddr: IPAddress, lport: int,
                remote: tuple[IPAddress, int] | None, *, chosen_by: str, uid: int = 0,
                tw_substate: str = TIME_WAIT, lifetime: float = TCP_TIMEWAIT_LEN,
                timestamps: bool = True) -> Sock:
        """Put back, as it stands now, one socket read from a real host's table (portalloc.observe): the
        entry point that lets a snapshot be rebuilt without replaying the calls that made it.

        ``state``: ``LISTEN``, ``CLOSE`` (TCP bound only, or unconnected UDP), ``ESTABLISHED`` (any live
        connected state: the 4-tuple is taken) or ``TIME_WAIT`` (substate ``tw_substate``; it enters
        TIME_WAIT *now*, as tcp_time_wait does, with its timer at ``lifetime`` seconds and, when
        ``timestamps``, tw_ts_recent_stamp = now; the caller moves the clock with ``advance`` to age it).
        ``chosen_by``: ``"connect"`` when connect()'s autobind picked the port (SOCK_CONNECT_BIND: the bucket
        stays connect-shareable, fastreuse -1), ``"bind"`` for a port taken by bind()/listen() or inherited
        from a listener (an explicit bucket, skipped by every later connect() search, __inet_hash_connect).
        ``laddr`` is in the socket's own family (v4-mapped for a dual-stack IPv6 socket). No packet is
        simulated: the peer of a restored connection is the default remote peer."""
        if chosen_by not in ("connect", "bind"):
            raise ValueError(f"chosen_by must be 'connect' or 'bind', not {chosen_by!r}")
        sk = self.new_sock(family, proto, uid)
        sk.laddr = laddr
        sk.connect_bind = chosen_by == "connect"
        sk.bindport_lock = not sk.connect_bind
        sk.bindaddr_lock = sk.bindport_lock and not is_any(laddr)
        if state == LISTEN:
            sk.state = LISTEN
            sk.backlog = self.somaxconn
            sk.accept_queue = deque()
            self.table(sk).add(sk, lport)
            self._hash_listener(sk)
            return sk
        self.table(sk).add(sk, lport)
        if remote is None:
            if state != CLOSE:
                raise ValueError(f"a {state} socket needs a remote address")
            return sk
        raddr, rport = remote
        sk.saddr_wire, sk.raddr, sk.rport = wire_address(laddr), wire_address(raddr), rport
        sk.state = ESTABLISHED
        sk.sock_state = "connected"
        sk.peer = self.default_peer
        if proto == "udp":
            return sk
        sk.ts_stamp = self.now if timestamps else None
        self.ehash.insert(sk)
        if state == TIME_WAIT:
            sk.orphan = True
            self._enter_timewait(sk, tw_substate, lifetime)
        elif state != ESTABLISHED:
            raise ValueError(f"cannot restore a socket in state {state!r}")
        return sk

    def restore_timewaits(self, entries: list[TimewaitEntry], *, timestamps: bool = True,
                          address: Callable[[Any, int], IPAddress] | None = None) -> None:
        """Put back many TIME_WAITs read from a real host's table at once (portalloc.observe at 100k sockets).

        Each entry is (at, family, (laddr, lport), (raddr, rport), chosen_by, uid, substate, lifetime), ``at``
        the model time it entered TIME_WAIT, entries in ascending ``at``; ``address(a, family)`` makes each
        distinct laddr/raddr an IPAddress (called once per distinct (a, family); None: they are IPAddresses).
        The result is the one of, for each entry in order, ``advance(at - now)`` when ``at`` is later than the
        clock, then ``restore(..., TIME_WAIT)``: the same Socks in the same bind buckets, ehash entries,
        per-destination bitsets and young queues, the same timers (armed in one heapify), the clock at the last
        entry. Only the per-call overhead goes (tests/test_restore_bulk.py holds the two equal). Where a timer
        could fire between the entries, or tcp_tw_recycle is on (each TIME_WAIT updates per-peer stamps at its
        own time), it takes that path. Nothing changes before every entry has been checked (a bad port, chosen_by
        or address raises with the tables as they were)."""
        if not entries:
            return
        resolved: dict[tuple[Any, int], ResolvedAddress] = {}

        def resolve(a: Any, family: int) -> ResolvedAddress:
            """(address, wire address, its addr_key, is_any) of ``a`` in ``family``, once per distinct pair."""
            key = (a, family)
            found = resolved.get(key)
            if found is None:
                ip = address(a, family) if address is not None else a
                w = wire_address(ip)
                found = resolved[key] = (ip, w, addr_key(w), is_any(ip))
            return found

        entered = itemgetter(0)
        last = max(self.now, max(map(entered, entries)))     # where the clock ends, in any order
        first_expiry = min(map(add, map(entered, entries), map(itemgetter(7), entries)))
        pending = self.timers.next_expiry()
        if self.tw_recycle_enabled() or first_expiry <= last or (pending is not None and pending <= last):
            checked = [(at, family, resolve(lhost, family)[0], lport, resolve(rhost, family)[0], rport, chosen_by,
                        uid, substate, float(lifetime))
                       for at, family, (lhost, lport), (rhost, rport), chosen_by, uid, substate, lifetime in entries]
            for e in checked:
                if not (0 <= e[3] <= 0xFFFF and 0 <= e[5] <= 0xFFFF):
                    raise OverflowError("restore(): port must be 0-65535.")
                if e[6] not in ("connect", "bind"):
                    raise ValueError(f"chosen_by must be 'connect' or 'bind', not {e[6]!r}")
            for (at, family, laddr, lport, raddr, rport, chosen_by, uid, substate, lifetime) in checked:
                if at > self.now:
                    self.advance(at - self.now)
                self.restore("tcp", family, TIME_WAIT, laddr, lport, (raddr, rport), chosen_by=chosen_by, uid=uid,
                             tw_substate=substate, lifetime=lifetime, timestamps=timestamps)
            return
        now = self.now
        socks: list[Sock] = []
        hard: list[bool] = []
        expiries: list[float] = []
        append_sock, append_hard, append_expiry = socks.append, hard.append, expiries.append
        peer, make = self.default_peer, _timewait_sock
        fin_wait2_hard = self.profile.fin_wait2_not_reused      # _tw_hard, inlined
        first_id = nid = self.next_id
        last_family = -1                 # consecutive entries share their address objects: look up on change
        last_lhost: Any = resolved       # (no address or endpoint is this object)
        last_remote: Any = resolved
        local_wire: ResolvedAddress = (ANY4, ANY4, 0, True)
        remote_wire = local_wire
        rport = 0
        for at, family, (lhost, lport), remote, chosen_by, uid, substate, lifetime in entries:
            if at > now:
                now = now + (at - now)       # as advance() moves the clock: the same float
            if lhost is not last_lhost or family != last_family:
                local_wire = resolve(lhost, family)
                last_lhost = lhost
            if remote is not last_remote or family != last_family:
                rhost, rport = remote        # (one remote tuple per destination, as the snapshot reads them)
                if not 0 <= rport <= 0xFFFF:
                    raise OverflowError("restore(): port must be 0-65535.")
                remote_wire = resolve(rhost, family)
                last_remote = remote
            last_family = family
            if not 0 <= lport <= 0xFFFF:
                raise OverflowError("restore(): port must be 0-65535.")
            by_connect = chosen_by == "connect"
            if not by_connect and chosen_by != "bind":
                raise ValueError(f"chosen_by must be 'connect' or 'bind', not {chosen_by!r}")
            if timestamps:
                append_sock(make(nid, family, uid, lport, local_wire, remote_wire, rport, by_connect, peer, substate,
                                 now))
                # _tw_hard; the lifetime is timewait_lifetime's without tcp_tw_recycle (the loop above takes that)
                append_hard(fin_wait2_hard and substate == FIN_WAIT2)
            else:
                append_sock(make(nid, family, uid, lport, local_wire, remote_wire, rport, by_connect, peer, substate,
                                 None))
                append_hard(True)
            append_expiry(now + lifetime)
            nid += 1
        self.socks.update(zip(range(first_id, nid), socks, strict=True))
        self.next_id = nid
        self.now = now
        self.tcp.add_many(socks)
        self.ehash.insert_timewaits(socks, hard)
        self.timers.arm_many(socks, expiries)

    # ------------------------------------------------------------------ UDP

    def udp_autobind(self, sk: Sock) -> None:
        """inet_autobind: get_port(sk, 0) or EAGAIN (UDP connect() and the first sendto())."""
        if not sk.lport and not self.get_port(sk, 0):
            if not sk.bindaddr_lock:
                sk.laddr = None
            fail(errno.EAGAIN)

    def udp_connect(self, sk: Sock, daddr: IPAddress, dport: int) -> None:
        """inet_dgram_connect + __ip4_datagram_connect: autobind (on the bound address, else the wildcard),
        then take the route's source address."""
        wildcard = is_unspecified(daddr)
        daddr = wire_address(self.any_to_loopback(sk, daddr))
        self.udp_autobind(sk)
        if isinstance(daddr, IPv6Address):
            self._scope_device(sk, daddr, connect=True)
        elif self.addresses.is_broadcast(daddr) and not sk.broadcast:
            fail(errno.EACCES)                # ip4_datagram_connect: RTCF_BROADCAST without SO_BROADCAST
        if sk.family == 6:
            if isinstance(daddr, IPv4Address) and sk.v6only:
                fail(errno.ENETUNREACH)       # __ip6_datagram_connect: a v6-only socket has no IPv4 path
            if isinstance(daddr, IPv6Address) and self.mapped_source_to_v6(sk, daddr):
                fail(errno.EAFNOSUPPORT)      # ip6_dst_lookup_tail: a v4-mapped source, a native destination
        src = ANY4 if self.device_blackhole(sk, daddr, wildcard) else self.route_source(sk, daddr)
        self._set_rcv_saddr(sk, src)
        sk.saddr_wire, sk.raddr, sk.rport = src, daddr, dport
        sk.state = ESTABLISHED

    def timewait_lifetime(self, sk: Sock, substate: str, lifetime: float) -> float:
        """How long the timewait sock ``sk`` lives (``lifetime``: TCP_TIMEWAIT_LEN for TIME_WAIT, the FIN_WAIT2
        orphan's tcp_fin_timeout otherwise). With tcp_tw_recycle (<= 4.11) and a peer that sent timestamps,
        tcp_time_wait first remembers the peer's timestamp (recycle_ok = tcp_remember_stamp(sk)), and so does
        tcp_timewait_state_process when a FIN_WAIT2-substate timewait gets the peer's FIN
        (tcp_tw_remember_stamp); the timewait then lasts tw_timeout = 3.5 RTO (TW_RECYCLE_TIMEOUT) instead of
        TCP_TIMEWAIT_LEN. A FIN_WAIT2 substate keeps its own timeout, raised to that RTO if shorter
        (``if (timeo < rto) timeo = rto``)."""
        if self.tw_recycle and sk.ts_stamp is not None and self.remember_peer_stamp(sk):   # (tw_recycle_enabled)
            return TW_RECYCLE_TIMEOUT if substate == TIME_WAIT else max(lifetime, TW_RECYCLE_TIMEOUT)
        return lifetime

    # ------------------------------------------------------------------ tcp_tw_recycle (<= 4.11)

    def tw_recycle_enabled(self) -> bool:
        """tcp_death_row.sysctl_tw_recycle: the profile has tcp_tw_recycle (removed in 4.12, 4396e46187ca)
        and it is set to 1."""
        return self.tw_recycle

    def get_seconds(self, t: float) -> int:
        """get_seconds() at simulated time ``t``: whole seconds of a wall clock (boot fell at boot_phase)."""
        return int(t + self.boot_phase)

    def remember_peer_stamp(self, sk: Sock) -> bool:
        """tcp_remember_stamp (tcp_time_wait) / tcp_tw_remember_stamp (tcp_timewait_state_process),
        tcp_metrics.c up to 4.11 (tcp_v4_remember_stamp with inet_peer before 3.6).

        The per-peer entry takes this connection's ts_recent and ts_recent_stamp when
        ``(s32)(tcpm_ts - ts_recent) <= 0`` (the new TSval is not older) or when the entry is more than
        TCP_PAWS_MSL seconds old (``get_seconds() - tcpm_ts_stamp > TCP_PAWS_MSL && tcpm_ts_stamp <=
        ts_recent_stamp``). A new entry starts zeroed, so the first TIME_WAIT always fills it. Returns True
        (recycle_ok: the kernel found or created the entry). Keyed by the peer's address alone, as inet_peer
        was; tcp_metrics also keys on the local address, which is the same for a server on one address."""
        assert sk.raddr is not None and sk.ts_stamp is not None
        ts_recent = self.peer_tsval(sk.peer, sk.ts_stamp)
        if ts_recent is None:
            return False
        stamp = self.get_seconds(sk.ts_stamp)
        tcpm_ts, tcpm_ts_stamp = self.peer_stamps.get(sk.raddr, (0, 0))
        if s32(tcpm_ts - ts_recent) <= 0 or (
                self.get_seconds(self.now) - tcpm_ts_stamp > TCP_PAWS_MSL and tcpm_ts_stamp <= stamp):
            self.peer_stamps[sk.raddr] = (ts_recent, stamp)
        return True

    def syn_dropped_by_tw_recycle(self, saddr: IPAddress, tsval: int | None) -> bool:
        """tcp_v4_conn_request (3.x) / tcp_conn_request → tcp_peer_is_proven(req, dst, true, ...) (4.x): with
        tcp_tw_recycle on, a SYN carrying a timestamp is dropped (LINUX_MIB_PAWSPASSIVEREJECTED) when the
        peer address's remembered stamp is younger than TCP_PAWS_MSL (``get_seconds() - tcpm_ts_stamp <
        TCP_PAWS_MSL``) and the SYN's TSval lags the remembered one by more than TCP_PAWS_WINDOW
        (``(s32)(tcpm_ts - req->ts_recent) > TCP_PAWS_WINDOW``).

        A SYN without timestamps passes on early kernels (3.x's ``if (tmp_opt.saw_tstamp && sysctl_tw_recycle
        && ...)``); since a26552afe894 (profile.tw_recycle_drops_untimestamped) tcp_peer_is_proven's
        ``|| !timestamps`` drops it too while the peer's stamp is fresh."""
        if not self.tw_recycle_enabled():
            return False
        if tsval is None and not self.profile.tw_recycle_drops_untimestamped:
            return False
        entry = self.peer_stamps.get(saddr)
        if entry is None:
            return False
        tcpm_ts, tcpm_ts_stamp = entry
        if self.get_seconds(self.now) - tcpm_ts_stamp >= TCP_PAWS_MSL:
            return False
        return tsval is None or s32(tcpm_ts - tsval) > TCP_PAWS_WINDOW
