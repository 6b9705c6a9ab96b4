# One network namespace's kernel: the tables, the sysctls, the clock, and every port decision.
#
# Rules:
# - Pure: no real sockets, no wall clock. Time moves only in `advance()`; randomness comes only from
#   the seeded `rng`, drawn in the order the kernel draws it.
# - Each method is one kernel function or one decision of it, named after it, with the kernel's errno.
#   Behaviour that changed across versions is read from `self.profile` (kernels/profile.py); the order
#   in which ports are tried comes from the strategies in kernels/strategies.py.
# - Theory of operation: bind()/listen() put a socket into the protocol's PortTable (bhash);
#   connect() picks a port with the profile's search over a PortSpace built from bitsets (reserved
#   ports, explicitly bound ports, ports already used toward that destination) and hashes the socket
#   into the EstablishedTable (ehash). close() walks TCP's teardown just far enough to know who ends in
#   TIME_WAIT or FIN_WAIT2 and for how long; timers release those ports later.
"""The model's kernel: port allocation, sharing rules and TCP teardown for one namespace."""

from __future__ import annotations

import errno
import random
import struct
from collections import Counter, deque
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_network
from typing import Any

from portalloc.kernels.profile import KernelProfile
from portalloc.kernels.strategies import (
    BIND_SEARCHES,
    CONNECT_SEARCHES,
    BindRequest,
    ConnectRequest,
)
from portalloc.kernels.sysctls import SysctlSpec, parse_port_list, specs_for, unknown_sysctl
from portalloc.model.addr import (
    ANY4,
    ANY6,
    HostAddresses,
    IPAddress,
    addr_key,
    is_any,
    is_loopback,
    is_unspecified,
    needs_scope_id,
    v4_view,
    wire_address,
)
from portalloc.model.conflict import tcp_bind_conflict, udp_bind_conflict, udp_port_taken
from portalloc.model.errors import fail
from portalloc.model.reuseport import ReuseportGroup, same_group_identity
from portalloc.model.search import PortSpace, range_mask, scan_wrapped
from portalloc.model.siphash import siphash24
from portalloc.model.sock import (
    CLOSE,
    CLOSE_WAIT,
    ESTABLISHED,
    FIN_WAIT2,
    LISTEN,
    SYN_SENT,
    TIME_WAIT,
    Sock,
)
from portalloc.model.sysctl import SysctlValue, normalize_name, to_text
from portalloc.model.tables import EstablishedTable, PortTable, TimerQueue


def mapped(addr: IPAddress) -> IPv6Address:
    """::ffff:a.b.c.d for an IPv4 address (how an AF_INET6 socket sees IPv4)."""
    return addr if isinstance(addr, IPv6Address) else IPv6Address("::ffff:" + str(addr))


#: How long an unanswered SYN is retried with tcp_syn_retries = 6: 1+2+4+8+16+32+64 s.
SYN_TIMEOUT = 127.0
#: TCP_TIMEWAIT_LEN (include/net/tcp.h): 60 s, not tunable.
TCP_TIMEWAIT_LEN = 60.0
LOOPBACK_IFINDEX = 1

#: What a simulated remote peer does with a connection.
PEER_BEHAVIOURS = ("accept", "refuse", "close_first", "hold")

#: TCP_RTO_MIN (include/net/tcp.h): 200 ms, the RTO of a connection with a loopback-scale RTT.
TCP_RTO_MIN_MS = 200
#: tcp_tw_recycle's TIME_WAIT: tcp_time_wait sets tw_timeout = rto = (icsk_rto << 2) - (icsk_rto >> 1), 3.5 RTO,
#: when recycle_ok. The model has no RTT, so it takes icsk_rto to be TCP_RTO_MIN: 700 ms.
TW_RECYCLE_TIMEOUT = ((TCP_RTO_MIN_MS << 2) - (TCP_RTO_MIN_MS >> 1)) / 1000
#: TCP_PAWS_MSL (include/net/tcp.h): a remembered per-host timestamp is trusted for 60 s.
TCP_PAWS_MSL = 60
#: TCP_PAWS_WINDOW: how far (in timestamp ticks) a SYN's TSval may lag the remembered one.
TCP_PAWS_WINDOW = 1


def s32(value: int) -> int:
    """The C cast (s32) of a difference of two u32 timestamps."""
    value &= 0xFFFFFFFF
    return value - (1 << 32) if value >= 1 << 31 else value


@dataclass
class RemotePeer:
    """A simulated host out on the network, for connect() to addresses this host does not own, and for
    clients that connect to this host (``Host.inbound``).

    ``accept``: accepts, and closes right after we do (we end in TIME_WAIT); ``refuse``: answers RST
    (ECONNREFUSED); ``close_first``: accepts and closes first (we end in CLOSE_WAIT, no TIME_WAIT for
    us); ``hold``: accepts and never closes (after our close we sit in FIN_WAIT2 for tcp_fin_timeout).
    ``ts_clock``: the offset in seconds of the peer's TCP timestamp clock from this host's (its TSval at
    time t is (t + ts_clock) in ms, mod 2^32); None: the peer sends no timestamps.
    """

    behaviour: str = "accept"
    ts_clock: float | None = 0.0


class Stack:
    """The kernel state of one network namespace, and the operations on it."""

    def __init__(self, profile: KernelProfile, seed: int | None, addresses: tuple[str, ...] | list[str],
                 sysctls: dict[str, Any] | None, devices: tuple[str, ...] | list[str]) -> None:
        self.profile = profile
        self.rng = random.Random(seed)
        # Boot-time secrets, in a fixed draw order so a seed always gives the same host.
        self.net_secret = self.rng.getrandbits(128).to_bytes(16, "little")
        self.ehash_secret = self.rng.getrandbits(128).to_bytes(16, "little")
        self.boot_phase = self.rng.random() * 10.0   # where in a 10 s time-seed window "boot" fell
        self.search_state: dict[str, Any] = {}
        self.now = 0.0
        self.addresses = HostAddresses(tuple(addresses))
        self.devices = {"lo": LOOPBACK_IFINDEX}
        for name in devices:
            if not isinstance(name, str) or not name or len(name) > 15:
                raise ValueError(f"bad device name {name!r}: give interface names such as 'lo' or 'v0'")
            self.devices.setdefault(name, len(self.devices) + 1)
        self.specs = self.sysctl_specs(profile)
        self.sc: dict[str, SysctlValue] = {n: s.default(profile) for n, s in self.specs.items()}
        self.reserved_mask = 0
        self.tcp = PortTable(profile.release_resets_bucket)
        self.udp = PortTable(profile.release_resets_bucket)
        self.ehash = EstablishedTable()
        self.timers = TimerQueue()
        self.listeners: dict[int, list[Sock]] = {}
        self.socks: dict[int, Sock] = {}
        self.next_id = 1
        self.peers: list[tuple[IPv4Network | IPv6Network, int | None, RemotePeer]] = []
        # tcp_metrics (inet_peer before 3.6): per peer address, (tcpm_ts, tcpm_ts_stamp) = the peer's last
        # TSval seen by a connection that ended in TIME_WAIT, and when it came (get_seconds()).
        self.peer_stamps: dict[IPAddress, tuple[int, int]] = {}
        self.default_peer = RemotePeer("accept")
        self.stats: Counter[str] = Counter()
        self._offset_cache: dict[tuple[Any, ...], int] = {}
        self._offset_seed = -1
        self._masks: dict[tuple[int, int], int] = {}
        self._mirror_sysctls()
        for name, value in (sysctls or {}).items():
            self.set_sysctl(name, value)

    # ------------------------------------------------------------------ sysctls and time

    def sysctl_specs(self, profile: KernelProfile) -> dict[str, SysctlSpec]:
        """The sysctls this kernel has (a Stack for another OS overrides this)."""
        return specs_for(profile)

    def get_sysctl(self, name: str) -> SysctlValue:
        """Read a sysctl of this namespace (FileNotFoundError when the profile has no such file)."""
        n = normalize_name(name)
        if n not in self.sc:
            raise unknown_sysctl(n)
        return self.sc[n]

    def set_sysctl(self, name: str, value: object) -> None:
        """Write a sysctl, validated as the kernel validates the /proc write (EINVAL otherwise)."""
        n = normalize_name(name)
        spec = self.specs.get(n)
        if spec is None:
            raise unknown_sysctl(n)
        parsed = spec.validate(to_text(value), self.sc)
        self.sc[n] = parsed
        if n == "net.ipv4.tcp_tw_reuse_delay":
            self.ehash.rebuild_young(self._tw_delay_passed)
        if n == "net.ipv4.ip_local_reserved_ports":
            self.reserved_mask = sum(1 << p for p in parse_port_list(str(parsed)))
        self._mirror_sysctls()

    def _mirror_sysctls(self) -> None:
        """Mirror the sysctls read on every connection as attributes (a dict lookup per connection saved)."""
        self.tw_reuse = self.sysctl_int("net.ipv4.tcp_tw_reuse", 0)
        self.tw_reuse_delay = self.sysctl_int("net.ipv4.tcp_tw_reuse_delay", 1000)
        self.timestamps = bool(self.sysctl_int("net.ipv4.tcp_timestamps", 1))
        self.somaxconn = self.sysctl_int("net.core.somaxconn", 4096)
        self.fin_timeout = float(self.sysctl_int("net.ipv4.tcp_fin_timeout", 60))
        self.tw_recycle = self.profile.tw_recycle and self.sysctl_int("net.ipv4.tcp_tw_recycle", 0) == 1

    def sysctl_int(self, name: str, default: int = 0) -> int:
        """A scalar sysctl's value (``default`` when this profile has no such sysctl)."""
        v = self.sc.get(name, default)
        return v if isinstance(v, int) else default

    def sockname_port(self, sk: Sock) -> int:
        """The port getsockname() shows: inet_sport, which keeps a port that a failed connect() released
        (tcp_set_state(CLOSE) → inet_put_port clears inet_num only; tcp_disconnect resets the address but not
        the port; linux.md section 6, verify seed 2027 trace 158)."""
        return sk.lport or sk.sport

    def os_setsockopt(self, sk: Sock, level: int, optname: int, num: int, raw: bytes) -> bool:
        """Options only another OS has (a Stack subclass handles them and returns True); Linux: none."""
        return False

    def os_getsockopt(self, sk: Sock, level: int, optname: int) -> int | None:
        """Read an option only another OS has (None: not one of them)."""
        return None

    def port_range(self) -> tuple[int, int]:
        """The namespace's ephemeral range (net.ipv4.ip_local_port_range; other OSes override this)."""
        v = self.sc["net.ipv4.ip_local_port_range"]
        assert isinstance(v, tuple)
        return v

    def advance(self, seconds: float) -> None:
        """Let simulated time pass; TIME_WAIT and FIN_WAIT2 timers fire in order."""
        if seconds < 0:
            raise ValueError("sleep length must be non-negative")
        target = self.now + seconds
        while True:
            # Fire timers one instant at a time so each sees the clock at its own expiry.
            nxt = self.timers.next_expiry()
            if nxt is None or nxt > target:
                break
            self.now = max(self.now, nxt)
            self.timers.run_until(self.now, self._timer_fired)
        self.now = target

    def _timer_fired(self, sk: Sock) -> None:
        """A timer ran out: a TIME_WAIT or FIN_WAIT2 orphan dies (inet_twsk_kill); a SYN that nobody
        answered gives up (tcp_write_timeout → tcp_done with ETIMEDOUT), releasing an autobound port."""
        if sk.state == SYN_SENT:
            self._reset_received(sk, errno.ETIMEDOUT)
            if sk.orphan:
                self._destroy(sk)
            return
        self._destroy(sk)

    # ------------------------------------------------------------------ sockets

    def new_sock(self, family: int, proto: str, uid: int) -> Sock:
        """socket(2): a fresh, unbound socket."""
        sk = Sock(self.next_id, family, proto, uid)
        self.next_id += 1
        self.socks[sk.id] = sk
        return sk

    def local_port_range(self, sk: Sock) -> tuple[int, int, bool]:
        """inet_sk_get_local_port_range (6.3+, 91d0b78c5177): the netns range narrowed by
        IP_LOCAL_PORT_RANGE; each bound applies only if it lies inside. Returns (low, high, option set)."""
        lo, hi = self.port_range()
        if sk.local_range and self.profile.ip_local_port_range_option:
            sk_lo, sk_hi = sk.local_range & 0xFFFF, sk.local_range >> 16
            if lo <= sk_lo <= hi:
                lo = sk_lo
            if lo <= sk_hi <= hi:
                hi = sk_hi
            return lo, hi, True
        return lo, hi, False

    def _range_mask(self, lo: int, hi: int) -> int:
        """range_mask(lo, hi), remembered (a 64k-bit integer is worth building once)."""
        m = self._masks.get((lo, hi))
        if m is None:
            if len(self._masks) > 256:
                self._masks.clear()
            m = self._masks[(lo, hi)] = range_mask(lo, hi)
        return m

    def table(self, sk: Sock) -> PortTable:
        """bhash for TCP, the UDP table for UDP."""
        return self.tcp if sk.proto == "tcp" else self.udp

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
        if w.is_multicast or (isinstance(w, IPv4Address) and w == IPv4Address("255.255.255.255")):
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

    def udp_find_port(self, sk: Sock) -> int | None:
        """udp_lib_get_port with snum 0: a uniformly random first port, then each hash slot in turn,
        walking the slot's ports with an odd multiple of the table size; no parity preference."""
        lo, hi, _ = self.local_port_range(sk)
        full = self._range_mask(lo, hi) & ~self.reserved_mask
        overlap = self.udp.overlap_mask(sk.key())
        if sk.reuseaddr or sk.reuseport:
            space = PortSpace(full & ~overlap, full & overlap,
                              lambda p: not udp_port_taken(sk, self.udp.owners(p)))
        else:
            space = PortSpace(full & ~overlap)
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

    def _unhash_listener(self, sk: Sock) -> None:
        lst = self.listeners.get(sk.lport, [])
        if sk in lst:
            lst.remove(sk)
            if not lst:
                del self.listeners[sk.lport]
        if sk.group is not None:
            sk.group.detach(sk)

    def lookup_listener(self, daddr: IPAddress, dport: int, saddr: IPAddress, sport: int,
                        dif: int = 0) -> Sock | None:
        """__inet_lookup_listener: the exact-address listeners first, then the wildcard ones; the best
        compute_score() wins (IPv4 socket +1, bound device +1), and a reuseport group picks by 4-tuple hash.
        ``dif``: the device the SYN arrives on (loopback for local connections; 0 = not known): a listener
        bound to another device does not match (inet_sk_bound_dev_eq; found by verify --seed 88003)."""
        cands = self.listeners.get(dport)
        if not cands:
            return None
        wire_v4 = isinstance(daddr, IPv4Address)
        exact: list[Sock] = []
        wild: list[Sock] = []
        for sk in cands:
            assert sk.laddr is not None
            if dif and sk.dev and sk.dev != dif:
                continue
            if wire_v4:
                if sk.family == 6 and sk.v6only:
                    continue
                view = v4_view(sk.family, sk.laddr)
                if view == daddr:
                    exact.append(sk)
                elif view == ANY4:
                    wild.append(sk)
            else:
                if sk.family != 6:
                    continue
                if sk.laddr == daddr:
                    exact.append(sk)
                elif sk.laddr == ANY6:
                    wild.append(sk)
        for bucket in (exact, wild):
            best: Sock | None = None
            best_score = -1
            # IPv4 listeners are added at the head of the hash chain (newest first).
            for sk in reversed(bucket):
                score = (2 if sk.dev else 1) + (1 if sk.family == 4 else 0)
                if score > best_score:
                    best, best_score = sk, score
            if best is not None:
                if best.group is not None and len(best.group.members) > 1:
                    return best.group.select(self._ehashfn(daddr, dport, saddr, sport))
                return best
        return None

    def _ehashfn(self, laddr: IPAddress, lport: int, faddr: IPAddress, fport: int) -> int:
        """inet_ehashfn: a keyed 32-bit hash of the 4-tuple (jhash with a boot secret in the kernel)."""
        data = laddr.packed + faddr.packed + struct.pack(">HH", lport, fport)
        return siphash24(self.ehash_secret, data) & 0xFFFFFFFF

    def accept(self, listener: Sock) -> Sock:
        """inet_csk_accept, non-blocking: the oldest established child, or EAGAIN (EINVAL if not listening)."""
        if listener.state != LISTEN:
            fail(errno.EINVAL)
        if not listener.accept_queue:
            fail(errno.EAGAIN)
        assert listener.accept_queue is not None
        child = listener.accept_queue.popleft()
        child.parent = None
        return child

    # ------------------------------------------------------------------ connect()

    def _port_offset(self, saddr: IPAddress, daddr: IPAddress, dport: int) -> int:
        """secure_ipv4/ipv6_port_ephemeral: SipHash of (saddr, daddr, dport[, jiffies / (10 HZ)]) under
        net_secret (secure_seq.c; time seed 4dfa9b438ee3, 5.18). 64 bits since 5.18, 32 before."""
        p = self.profile
        seed = int((self.now + self.boot_phase) // 10) & 0xFFFFFFFF if p.time_seed else 0
        if seed != self._offset_seed or len(self._offset_cache) > 65536:
            self._offset_cache.clear()
            self._offset_seed = seed
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
        other = self.ehash.match(addr_key(sk.saddr_wire), port, addr_key(sk.raddr), sk.rport, sk.dev)
        if other is None:
            return True
        if other.state == TIME_WAIT and self.twsk_unique(other, bound_port):
            self.stats["tw_reused"] += 1
            self._destroy(other)
            return True
        return False

    def connect_search(self, sk: Sock) -> int | None:
        """__inet_hash_connect for an unbound socket: the profile's search over the ports that are not
        reserved, not held by an explicit binder, and whose 4-tuple toward this destination is free (or a
        TIME_WAIT that tcp_tw_reuse may take over). Returns the port, with the bucket taken."""
        assert sk.saddr_wire is not None and sk.raddr is not None
        lo, hi, local_ports = self.local_port_range(sk)
        rport = sk.rport
        dests = self.ehash.dest_ports(addr_key(sk.saddr_wire), addr_key(sk.raddr), rport, sk.dev)
        # tcp_tw_reuse decides the same for every TIME_WAIT toward one destination (FIN_WAIT2 and no-timestamp
        # ones are tw_hard; the delay leaves the `young` ones), so the search needs no per-port look. One
        # approximation: tcp_tw_reuse=2's loopback test reads each TIME_WAIT's own device, here the new
        # socket's; they differ only for non-loopback addresses with SO_BINDTODEVICE lo on one side.
        reuse = False
        for d in dests:
            if d.tw:
                reuse = self._tw_reuse_for(sk.saddr_wire, sk.raddr, sk.dev)
                break
        if reuse:
            for d in dests:
                d.age(self._tw_delay_passed)
        reserved, explicit = self.reserved_mask, self.tcp.explicit

        def build() -> tuple[int, int]:
            blocked = reserved | explicit.bits
            for d in dests:
                blocked |= d.live.bits | ((d.tw_hard.bits | d.young.bits) if reuse else d.tw.bits)
            return self._range_mask(lo, hi) & ~blocked, 0

        def quick(port: int) -> bool:
            if not lo <= port <= hi or (reserved and (reserved >> port) & 1) or port in explicit:
                return False
            for d in dests:
                if port in d.live or port in d.tw_hard or port in d.young or (not reuse and port in d.tw):
                    return False
            return True

        space = PortSpace(build=build, quick=quick)
        req = ConnectRequest(lo, hi, local_ports, self._port_offset(sk.saddr_wire, sk.raddr, rport), space,
                             self.rng, self.search_state, self.profile)
        result = CONNECT_SEARCHES[self.profile.connect_search](req)
        self.stats["connect_searches"] += 1
        self.stats["connect_probes"] += result.probes
        if result.port is None:
            return None
        self.check_established(sk, result.port, bound_port=False)   # takes over the TIME_WAIT, if one
        sk.connect_bind = True
        self.tcp.add(sk, result.port)
        return result.port

    def any_to_loopback(self, sk: Sock, daddr: IPAddress) -> IPAddress:
        """connect() to 0.0.0.0 or :: reaches this host: ip_route_output_key_hash_rcu uses the bound source
        address or 127.0.0.1; tcp_v6_connect/ip6_datagram_connect use ::1 (::ffff:127.0.0.1 for a socket
        bound to a v4-mapped address)."""
        if not is_unspecified(daddr):
            return daddr
        if isinstance(daddr, IPv4Address) or daddr != ANY6:
            # 0.0.0.0, or ::ffff:0.0.0.0, which tcp_v6_connect / __ip6_datagram_connect hand to the IPv4 code
            # (a socket bound to a native IPv6 address has no IPv4 source: it stays v6-only, ENETUNREACH)
            # (and a multicast/broadcast-bound one has inet_saddr 0: ip_route_connect uses 127.0.0.1)
            if sk.laddr is not None and not is_unspecified(sk.laddr) \
                    and isinstance(wire_address(sk.laddr), IPv4Address) and not self.routed_source(sk):
                return wire_address(sk.laddr)
            return IPv4Address("127.0.0.1")
        if sk.laddr is not None and isinstance(sk.laddr, IPv6Address) and sk.laddr.ipv4_mapped is not None:
            return IPv6Address("::ffff:127.0.0.1")
        return IPv6Address(1)

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

    def route_source(self, sk: Sock, daddr: IPAddress) -> IPAddress:
        """ip_route_connect's source choice, or the socket's own address: the one the user bound, or one a
        previous connect() left of the destination's family (a v6 socket that failed toward ::1 may still go
        to ::ffff:127.0.0.1: tcp_v4_connect routes afresh). ENETUNREACH with no address to use."""
        if sk.laddr is not None and not is_unspecified(sk.laddr) and not self.routed_source(sk):
            mine = wire_address(sk.laddr)
            if isinstance(mine, IPv4Address) and (mine.is_multicast or mine == IPv4Address("255.255.255.255")):
                fail(errno.EINVAL)             # ip_route_output_key_hash_rcu: a multicast or lbcast saddr
            if sk.bindaddr_lock or isinstance(mine, IPv4Address) == isinstance(daddr, IPv4Address):
                return mine
        src = self.addresses.source_for(daddr)
        if src is None:
            fail(errno.ENETUNREACH)
        return src

    def routed_source(self, sk: Sock) -> bool:
        """Is the socket bound to an address that is not a source: an IPv4 multicast or broadcast address
        (__inet_bind: inet_saddr = 0 for RTN_MULTICAST/RTN_BROADCAST, "use device") or a native IPv6 multicast
        one (__inet6_bind leaves np->saddr unset)? The route then picks the source; a TCP connect() also moves
        the bound address to it (inet_bhash2_update_saddr, as !inet_saddr). Found by verify --seed 88003."""
        if sk.laddr is None:
            return False
        if isinstance(sk.laddr, IPv6Address) and sk.laddr.ipv4_mapped is None:
            return sk.laddr.is_multicast
        if sk.family == 6:
            return False                       # a v4-mapped multicast bind keeps inet_saddr
        w = wire_address(sk.laddr)
        return w.is_multicast or self.addresses.is_broadcast(w)

    def _set_rcv_saddr(self, sk: Sock, src: IPAddress) -> None:
        """inet_bhash2_update_saddr: a socket bound to the wildcard (or not at all) takes the source address;
        a port it already holds moves to that address. So does a TCP socket bound to a multicast or broadcast
        address (routed_source); a UDP one keeps it as its receive address (__ip4_datagram_connect)."""
        if sk.laddr is not None and not is_unspecified(sk.laddr) \
                and not (sk.proto == "tcp" and self.routed_source(sk)):
            return
        self._rehash_laddr(sk, src if sk.family == 4 or isinstance(src, IPv6Address) else mapped(src))

    def stream_connect(self, sk: Sock, daddr: IPAddress, dport: int) -> int:
        """__inet_stream_connect: the socket-level state switch around tcp_connect.

        Returns 0 or the errno the handshake ended with (ECONNREFUSED, ETIMEDOUT); raises what fails
        before any packet is sent (EISCONN, EADDRNOTAVAIL, ...). A non-blocking socket gets EINPROGRESS
        and finds the outcome on its next connect() (0 once, then EISCONN) or in SO_ERROR.
        """
        if sk.sock_state == "connected":
            fail(errno.EISCONN)
        if sk.sock_state == "connecting":
            if sk.state == SYN_SENT:
                # EALREADY from the kernel; a blocking call then waits, and (bounded, as LiveHost) times out.
                fail(errno.ETIMEDOUT if sk.blocking else errno.EALREADY)
            if sk.state == CLOSE:
                return self._sock_error(sk) or errno.ECONNABORTED
            sk.sock_state = "connected"
            return 0
        if sk.state != CLOSE:
            fail(errno.EISCONN)
        self.tcp_connect(sk, daddr, dport)
        if not sk.blocking:
            sk.sock_state = "connecting"
            fail(errno.EINPROGRESS)
        if sk.state == SYN_SENT:
            # Nobody answers. The model does not block: like LiveHost's bounded wait, connect() reports
            # ETIMEDOUT while the kernel socket keeps trying (SYN_SENT, holding its port) until SYN_TIMEOUT.
            sk.sock_state = "connecting"
            fail(errno.ETIMEDOUT)
        if sk.state == CLOSE:
            return self._sock_error(sk)
        sk.sock_state = "connected"
        return 0

    def _sock_error(self, sk: Sock) -> int:
        """__inet_stream_connect's sock_error path: report the pending error, then tcp_disconnect(), which
        forgets a source address the user did not bind (inet_reset_saddr; found by verify, seed 2027)."""
        err, sk.so_error = sk.so_error, 0
        sk.sock_state = "unconnected"
        sk.raddr, sk.rport = None, 0
        if not sk.bindaddr_lock:
            self._rehash_laddr(sk, None)
        return err

    def tcp_connect(self, sk: Sock, daddr: IPAddress, dport: int) -> None:
        """tcp_v4_connect / tcp_v6_connect up to the handshake: pick the source, hash the socket
        (inet_hash_connect), then meet the peer. EADDRNOTAVAIL when no port is left; a refused
        handshake leaves the socket CLOSE with so_error set."""
        wildcard = is_unspecified(daddr)
        daddr = wire_address(self.any_to_loopback(sk, daddr))
        if isinstance(daddr, IPv6Address):
            if daddr.is_multicast:
                fail(errno.ENETUNREACH)        # tcp_v6_connect: no multicast peer
            self._scope_device(sk, daddr, connect=True)
        if sk.family == 6 and isinstance(daddr, IPv4Address) and sk.v6only:
            fail(errno.ENETUNREACH)
        if isinstance(daddr, IPv4Address) and (daddr.is_multicast or self.addresses.is_broadcast(daddr)):
            fail(errno.ENETUNREACH)            # tcp_v4_connect: rt_flags & (RTCF_MULTICAST | RTCF_BROADCAST)
        src: IPAddress
        if self.device_blackhole(sk, daddr, wildcard):
            blackhole, src = True, ANY4
        else:
            if self.mapped_source_to_v6(sk, daddr):
                fail(errno.EAFNOSUPPORT)       # ip6_dst_lookup_tail, before any SYN (verify --seed 92002)
            blackhole = self.v4_ops_to_v6(sk, daddr)
            src = self.route_source(sk, daddr)
        if not blackhole and (isinstance(src, IPv4Address) != isinstance(daddr, IPv4Address)
                              or self.mapped_source_to_v6(sk, daddr)):
            # ip6_dst_lookup_tail: a v4-mapped source (::ffff:0.0.0.0 too) toward a native IPv6 address
            fail(errno.ENETUNREACH if sk.family == 4 else errno.EAFNOSUPPORT)
        self._set_rcv_saddr(sk, src)
        sk.saddr_wire, sk.raddr, sk.rport = src, daddr, dport
        if sk.lport:
            ok = self.check_established(sk, sk.lport, bound_port=True)
        else:
            ok = self.connect_search(sk) is not None
        if not ok:
            self._connect_failed(sk)
            if sk.family == 6 and isinstance(daddr, IPv4Address):
                sk.v4_ops = False             # tcp_v4_connect failed at once: back to ipv6_specific
            fail(errno.EADDRNOTAVAIL)
        if sk.family == 6 and isinstance(daddr, IPv4Address):
            sk.v4_ops = True
        self.ehash.insert(sk)
        self.stats["connects"] += 1
        if blackhole:
            sk.state = SYN_SENT
            self.timers.arm(sk, self.now + SYN_TIMEOUT)
            return
        self._handshake(sk, daddr, dport)

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

    def _rehash_laddr(self, sk: Sock, laddr: IPAddress | None) -> None:
        """Change the local address of a socket, moving the port it holds (inet_bhash2_update_saddr)."""
        if sk.lport:
            table, port = self.table(sk), sk.lport
            table.remove(sk)
            sk.laddr = laddr if laddr is not None else (ANY4 if sk.family == 4 else ANY6)
            table.add(sk, port)
        else:
            sk.laddr = laddr

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

    def _peer_for(self, daddr: IPAddress, dport: int) -> RemotePeer:
        for i in range(len(self.peers) - 1, -1, -1):
            net, port, peer = self.peers[i]
            if daddr in net and (port is None or port == dport):
                return peer
        return self.default_peer

    def set_peer(self, address: str, behaviour: str, port: int | None = None) -> None:
        """Choose what the simulated remote peer(s) at ``address`` (an address or a network) do."""
        if behaviour not in PEER_BEHAVIOURS:
            raise ValueError(f"unknown peer behaviour {behaviour!r}; choose one of {', '.join(PEER_BEHAVIOURS)}")
        try:
            net = ip_network(address, strict=False)
        except ValueError as exc:
            raise ValueError(f"bad peer address {address!r}: give an address or a network like 10.0.0.0/8") from exc
        self.peers.append((net, port, RemotePeer(behaviour)))

    def _handshake(self, sk: Sock, daddr: IPAddress, dport: int) -> None:
        """The SYN meets a listener on this host, or a simulated remote peer."""
        assert sk.saddr_wire is not None
        ts = self.timestamps
        if self.addresses.is_local(daddr):
            if daddr == sk.saddr_wire and dport == sk.lport:
                # TCP simultaneous open with itself: the SYN meets its own socket (linux.md section 6).
                sk.peer = sk
                sk.ts_stamp = self.now if ts else None
                sk.state = ESTABLISHED
                return
            self._syn_meets_existing(sk, daddr, dport)
            listener = self.lookup_listener(daddr, dport, sk.saddr_wire, sk.lport, LOOPBACK_IFINDEX)
            if listener is None:
                self._reset_received(sk, errno.ECONNREFUSED)
                return
            if len(listener.accept_queue or ()) > min(listener.backlog, self.somaxconn):
                # sk_acceptq_is_full: the SYN is dropped; a blocking connect() times out.
                self._reset_received(sk, errno.ETIMEDOUT)
                return
            child = self._new_child(listener, daddr, sk.saddr_wire, sk.lport)
            child.peer, sk.peer = sk, child
            child.ts_stamp = sk.ts_stamp = (self.now if ts else None)
            assert listener.accept_queue is not None
            listener.accept_queue.append(child)
        else:
            peer = self._peer_for(daddr, dport)
            if peer.behaviour == "refuse" or dport == 0:
                self._reset_received(sk, errno.ECONNREFUSED)
                return
            sk.peer = peer
            sk.ts_stamp = self.now if ts else None
        sk.state = ESTABLISHED
        if isinstance(sk.peer, RemotePeer) and sk.peer.behaviour == "close_first":
            sk.state = CLOSE_WAIT

    def _new_child(self, listener: Sock, daddr: IPAddress, raddr: IPAddress, rport: int) -> Sock:
        """tcp_create_openreq_child + __inet_inherit_port: the established child of ``listener`` for a
        connection from raddr:rport to daddr, holding the listener's port and hashed in ehash."""
        child = self.new_sock(listener.family, "tcp", listener.uid)
        child.reuseaddr, child.reuseport, child.dev = listener.reuseaddr, listener.reuseport, listener.dev
        child.v6only = listener.v6only
        child.laddr = daddr if listener.family == 4 or isinstance(daddr, IPv6Address) else mapped(daddr)
        child.saddr_wire, child.raddr, child.rport = daddr, raddr, rport
        child.state = ESTABLISHED
        child.parent = listener
        self.tcp.add(child, listener.lport)        # __inet_inherit_port
        self.ehash.insert(child)
        return child

    def _syn_meets_existing(self, sk: Sock, daddr: IPAddress, dport: int) -> None:
        """The SYN reaches a socket that already holds its 4-tuple on this host (possible when the other
        client is bound to a device, see EstablishedTable.match). A TIME_WAIT takes it as TCP_TW_SYN (the
        loopback clock only grows) and dies; a live socket answers a challenge ACK (RFC 5961, tcp_validate_
        incoming), the client's RST resets it (ECONNRESET, its autobound port released), and the client's
        retransmitted SYN goes on to the listener. Found by verify (seed 4242, trace 33)."""
        assert sk.saddr_wire is not None
        other = self.ehash.match(addr_key(daddr), dport, addr_key(sk.saddr_wire), sk.lport, LOOPBACK_IFINDEX)
        if other is None or other is sk:
            return
        if other.state == TIME_WAIT:
            self._destroy(other)
            return
        if isinstance(other.peer, Sock) and other.peer.peer is other:
            other.peer.peer = None
        other.peer = None
        self._reset_received(other, errno.ECONNRESET)
        if other.orphan:
            self._destroy(other)

    def _reset_received(self, sk: Sock, err: int) -> None:
        """tcp_reset → tcp_done: the connection fails with ``err``; an autobound port is released. The peer's
        address stays (inet_dport is cleared by tcp_disconnect, not here): accept() still reports it."""
        self.ehash.remove(sk)
        sk.state = CLOSE
        sk.so_error = err
        if sk.lport and not sk.bindport_lock:
            self.table(sk).remove(sk)
            sk.lport = 0
            sk.connect_bind = False

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

    def udp_deliver(self, src: Sock, daddr: IPAddress, dport: int, data: bytes) -> None:
        """A datagram from ``src`` to a local address: __udp4_lib_lookup picks the receiver (exact address
        before wildcard, a matching connected socket scores higher; a reuseport group without connected
        members picks by the 4-tuple hash). No receiver: the datagram is dropped (the ICMP error is not
        modelled)."""
        daddr = wire_address(daddr)
        if not self.addresses.is_local(daddr):
            return
        saddr = src.saddr_wire or self.route_source(src, daddr)
        best: Sock | None = None
        best_score = -1
        for sk in self.udp.owners(dport):
            assert sk.laddr is not None
            if isinstance(daddr, IPv4Address):
                if sk.family == 6 and sk.v6only:
                    continue
                view = v4_view(sk.family, sk.laddr)
                if view != daddr and view != ANY4:
                    continue
                score = 2 if sk.family == 4 else 1
            else:
                if sk.family != 6 or (sk.laddr != daddr and sk.laddr != ANY6):
                    continue
                score = 1
            if sk.raddr is not None:
                if sk.raddr != saddr or sk.rport != src.lport:
                    continue
                score += 8
            if sk.laddr not in (ANY4, ANY6):
                score += 4
            if score > best_score:
                best, best_score = sk, score
        if best is None:
            return
        group = best.group
        if group is not None and len(group.members) > 1 and all(m.raddr is None for m in group.members):
            best = group.select(self._ehashfn(daddr, dport, saddr, src.lport))
        if best.rx is None:
            best.rx = deque()
        best.rx.append((bytes(data), (saddr, src.lport)))

    # ------------------------------------------------------------------ close() and teardown

    def close(self, sk: Sock) -> None:
        """tcp_close / udp_lib_close: what is left of the socket in the kernel, and for how long."""
        sk.orphan = True
        if sk.proto == "udp" or sk.state == CLOSE:
            self._destroy(sk)
            return
        if sk.state == LISTEN:
            self._close_listener(sk)
            return
        if sk.state == ESTABLISHED:
            self._active_close(sk)
        elif sk.state == CLOSE_WAIT:
            self._passive_close(sk)
        else:
            self._destroy(sk)

    def _close_listener(self, sk: Sock) -> None:
        """inet_csk_listen_stop: children never accepted are reset (RST to their peers)."""
        self._unhash_listener(sk)
        while sk.accept_queue:
            child = sk.accept_queue.popleft()
            child.parent = None
            child.orphan = True
            self._send_reset(child)
            self._destroy(child)
        self._destroy(sk)

    def _send_reset(self, sk: Sock) -> None:
        """The peer of ``sk`` receives an RST: a live peer fails with ECONNRESET; a TIME_WAIT or FIN_WAIT2
        peer is killed (tcp_timewait_state_process, tcp_rfc1337 = 0)."""
        peer = sk.peer
        if not isinstance(peer, Sock):
            return
        peer.peer = None
        if peer.state == TIME_WAIT:
            self._destroy(peer)
        elif peer.state in (ESTABLISHED, CLOSE_WAIT):
            self._reset_received(peer, errno.ECONNRESET)
            if peer.orphan:
                self._destroy(peer)

    def _enter_timewait(self, sk: Sock, substate: str, lifetime: float) -> None:
        """tcp_time_wait: the socket becomes a timewait sock holding its port and 4-tuple.

        With tcp_tw_recycle (<= 4.11) and a peer that sent timestamps, tcp_time_wait first remembers the
        peer's timestamp (recycle_ok = tcp_remember_stamp(sk)), and so does tcp_timewait_state_process when
        a FIN_WAIT2-substate timewait gets the peer's FIN (tcp_tw_remember_stamp); the timewait then lasts
        tw_timeout = 3.5 RTO (TW_RECYCLE_TIMEOUT) instead of TCP_TIMEWAIT_LEN. A FIN_WAIT2 substate keeps
        its own timeout, raised to that RTO if shorter (``if (timeo < rto) timeo = rto``)."""
        sk.state = TIME_WAIT
        sk.tw_substate = substate
        if sk.ts_stamp is not None:
            sk.ts_stamp = self.now
        if self.tw_recycle_enabled() and sk.ts_stamp is not None and self.remember_peer_stamp(sk):
            lifetime = TW_RECYCLE_TIMEOUT if substate == TIME_WAIT else max(lifetime, TW_RECYCLE_TIMEOUT)
        self.ehash.set_timewait(sk, self._tw_hard(sk))
        self.timers.arm(sk, self.now + lifetime)

    # ------------------------------------------------------------------ tcp_tw_recycle (<= 4.11)

    def tw_recycle_enabled(self) -> bool:
        """tcp_death_row.sysctl_tw_recycle: the profile has tcp_tw_recycle (removed in 4.12, 4396e46187ca)
        and it is set to 1."""
        return self.tw_recycle

    def get_seconds(self, t: float) -> int:
        """get_seconds() at simulated time ``t``: whole seconds of a wall clock (boot fell at boot_phase)."""
        return int(t + self.boot_phase)

    def peer_tsval(self, peer: object, at: float) -> int | None:
        """The TSval a peer's segment carries at time ``at``: its timestamp clock in 1 ms ticks (jiffies at
        HZ=1000) plus its offset, mod 2^32; None when it sends no timestamps. A peer on this host (a Sock)
        uses this host's clock (offset 0)."""
        clock = peer.ts_clock if isinstance(peer, RemotePeer) else 0.0
        if clock is None:
            return None
        return int(round((at + clock) * 1000)) & 0xFFFFFFFF

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

    def _tw_syn_paws_reject(self, tw: Sock, tsval: int | None) -> bool:
        """tcp_timewait_state_process for a SYN that hits a TIME_WAIT of its own 4-tuple: tcp_paws_reject
        when both sides have timestamps and ``(s32)(tw_ts_recent - rcv_tsval) > TCP_PAWS_WINDOW``; the
        timewait then answers with an ACK and is rescheduled for TCP_TIMEWAIT_LEN. Otherwise the SYN is
        taken as TCP_TW_SYN (the model assumes the client's ISN is after tw_rcv_nxt, as a clock-driven ISN
        for the same 4-tuple is): the timewait is killed and the SYN goes to the listener."""
        if tw.ts_stamp is None or tsval is None:
            return False
        tw_ts_recent = self.peer_tsval(tw.peer, tw.ts_stamp)
        return tw_ts_recent is not None and s32(tw_ts_recent - tsval) > TCP_PAWS_WINDOW

    def inbound(self, saddr: IPAddress, sport: int, daddr: IPAddress, dport: int, ts_clock: float | None) -> str:
        """A remote client's SYN from saddr:sport to daddr:dport on this host, as tcp_v4_rcv/tcp_v6_rcv meet it:
        a TIME_WAIT of the same 4-tuple first (tcp_timewait_state_process), then the listener
        (__inet_lookup_listener; none: RST, "refused"), the full accept queue (sk_acceptq_is_full: "dropped")
        and tcp_tw_recycle's per-peer check (``syn_dropped_by_tw_recycle``: "dropped"). Otherwise the
        handshake completes at once and the child waits in the accept queue ("accepted"); its peer is a
        RemotePeer that closes right after this host does. ``ts_clock``: the client's timestamp offset
        (seconds), None for no timestamps; with tcp_timestamps=0 here the options are not parsed."""
        saddr, daddr = wire_address(saddr), wire_address(daddr)
        if isinstance(saddr, IPv4Address) != isinstance(daddr, IPv4Address):
            raise ValueError("inbound(): source and destination must be of the same family")
        if is_any(saddr) or self.addresses.is_local(saddr):
            raise ValueError(f"inbound(): {saddr} is not a remote address (this host owns it)")
        if not self.addresses.is_local(daddr):
            raise ValueError(f"inbound(): {daddr} is not an address of this host")
        if not 0 < sport <= 0xFFFF or not 0 < dport <= 0xFFFF:
            raise ValueError("inbound(): ports must be 1-65535")
        timestamps = self.timestamps
        peer = RemotePeer("accept", ts_clock if timestamps else None)
        tsval = self.peer_tsval(peer, self.now)
        tw = self.ehash.match(addr_key(daddr), dport, addr_key(saddr), sport, 0)
        if tw is not None and tw.state != TIME_WAIT:
            raise ValueError(f"inbound(): {saddr}:{sport} already has a connection to {daddr}:{dport}")
        if tw is not None and self._tw_syn_paws_reject(tw, tsval):
            self.stats["paws_estab_rejected"] += 1
            self.timers.arm(tw, self.now + TCP_TIMEWAIT_LEN)     # inet_twsk_reschedule(tw, TCP_TIMEWAIT_LEN)
            return "dropped"
        listener = self.lookup_listener(daddr, dport, saddr, sport)
        if listener is None:
            # No listener: RST; a TCP_TW_SYN without a listener falls through to TCP_TW_ACK instead.
            return "dropped" if tw is not None else "refused"
        if tw is not None:
            self._destroy(tw)                     # inet_twsk_deschedule_put: the SYN skips the recycle check
        assert listener.accept_queue is not None
        if len(listener.accept_queue) > min(listener.backlog, self.somaxconn):
            self.stats["listen_overflows"] += 1
            return "dropped"
        if tw is None and self.syn_dropped_by_tw_recycle(saddr, tsval):
            self.stats["paws_passive_rejected"] += 1
            return "dropped"
        child = self._new_child(listener, daddr, saddr, sport)
        child.peer = peer
        child.ts_stamp = self.now if tsval is not None else None
        listener.accept_queue.append(child)
        self.stats["inbound_accepted"] += 1
        return "accepted"

    def _active_close(self, sk: Sock) -> None:
        """tcp_close as the active closer: FIN_WAIT2 until the peer closes, kept as a timewait sock with substate
        FIN_WAIT2 for tcp_fin_timeout (tcp_rcv_state_process → tcp_time_wait(sk, TCP_FIN_WAIT2, tmo)); the peer's
        FIN turns it into TIME_WAIT for TCP_TIMEWAIT_LEN (tcp_timewait_state_process). Verified live: TV37."""
        peer = sk.peer
        if isinstance(peer, RemotePeer):
            if peer.behaviour == "hold":
                self._enter_timewait(sk, FIN_WAIT2, self.fin_timeout)
            else:
                self._enter_timewait(sk, TIME_WAIT, TCP_TIMEWAIT_LEN)
            return
        if peer is sk:
            # A self-connected socket's FIN comes back to it: CLOSING, then TIME_WAIT.
            self._enter_timewait(sk, TIME_WAIT, TCP_TIMEWAIT_LEN)
            return
        if isinstance(peer, Sock):
            peer.state = CLOSE_WAIT
            self._enter_timewait(sk, FIN_WAIT2, self.fin_timeout)
            return
        self._destroy(sk)

    def _passive_close(self, sk: Sock) -> None:
        """The peer closed first: LAST_ACK, then gone; the peer's FIN_WAIT2 becomes TIME_WAIT (60 s)."""
        peer = sk.peer
        if isinstance(peer, Sock) and peer.state == TIME_WAIT and peer.tw_substate == FIN_WAIT2:
            self._enter_timewait(peer, TIME_WAIT, TCP_TIMEWAIT_LEN)
            peer.peer = None
        self._destroy(sk)

    def _destroy(self, sk: Sock) -> None:
        """Free the kernel socket: unhash it, release its port, drop its timer."""
        if sk.hashed:
            self.ehash.remove(sk)
        if sk.state == LISTEN:
            self._unhash_listener(sk)
        elif sk.group is not None:
            sk.group.detach(sk)
        if sk.lport:
            self.table(sk).remove(sk)
        if isinstance(sk.peer, Sock) and sk.peer.peer is sk:
            sk.peer.peer = None
        sk.expires = None
        if sk.parent is not None and sk.parent.accept_queue and sk in sk.parent.accept_queue:
            sk.parent.accept_queue.remove(sk)
        self.socks.pop(sk.id, None)
        sk.state = CLOSE
        sk.lport = 0
