# The OS-neutral part of one network namespace's kernel: tables, sysctl plumbing, time, listener lookup,
# the handshake, TCP teardown, timers and UDP delivery.
#
# Rules:
# - Pure: no real sockets, no wall clock. Time moves only in `advance()`; randomness comes only from
#   the seeded `rng`, drawn in the order the kernel draws it (the boot secrets here, first).
# - CoreStack decides nothing an OS decides differently: each OS's stack is a sibling subclass
#   (model/stack.py Stack for Linux; model/bsd.py BsdStack and model/windows.py WindowsStack, which share the
#   PcbTables mixin of model/pcb.py) and implements the hooks of the "what each OS decides" section (its
#   sysctls and the values read per connection, bind, listen, connect, the port query, the listener score,
#   the timewait lifetime, SO_BINDTODEVICE) and reads its own sysctl names with its own defaults.
# - Theory of operation: a socket holds a port in the protocol's PortTable and, once connected, its 4-tuple
#   in the EstablishedTable; close() walks TCP's teardown just far enough to know who ends in TIME_WAIT or
#   FIN_WAIT2 and for how long (`timewait_lifetime`, `fin_timeout`); the TimerQueue frees those ports when
#   simulated time passes their expiry.
"""The OS-neutral kernel machinery every model stack shares."""

from __future__ import annotations

import errno
import random
import struct
from collections import deque
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_network
from typing import Any

from mypy_extensions import mypyc_attr

from portalloc.errors import fail
from portalloc.kernels.profile import KernelProfile
from portalloc.kernels.search import range_mask
from portalloc.kernels.sysctls import SysctlSpec, unknown_sysctl
from portalloc.model.addr import (
    ANY4,
    ANY6,
    LIMITED_BROADCAST,
    HostAddresses,
    IPAddress,
    addr_key,
    is_any,
    is_multicast,
    is_unspecified,
    v4_view,
    wire_address,
)
from portalloc.model.portset import PortSet
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
from portalloc.model.tables import EstablishedTable, PortTable, TimerQueue
from portalloc.sysctl import SysctlValue, normalize_name, to_text


def mapped(addr: IPAddress) -> IPv6Address:
    """::ffff:a.b.c.d for an IPv4 address (how an AF_INET6 socket sees IPv4)."""
    return addr if isinstance(addr, IPv6Address) else IPv6Address("::ffff:" + str(addr))


#: TCP_TIMEWAIT_LEN (include/net/tcp.h): 60 s, not tunable.
TCP_TIMEWAIT_LEN = 60.0
LOOPBACK_IFINDEX = 1

#: What a simulated remote peer does with a connection.
PEER_BEHAVIOURS = ("accept", "refuse", "close_first", "hold")

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


#: The counters every Stack keeps in ``stats`` (Host.stats shows those that are not 0).
STAT_NAMES = ("connects", "connect_searches", "connect_probes", "bind_probes", "tw_reused", "inbound_accepted",
              "listen_overflows", "paws_estab_rejected", "paws_passive_rejected")


@mypyc_attr(allow_interpreted_subclasses=True)      # the BSD and Windows stacks (pure Python) extend it
class CoreStack:
    """The kernel state of one network namespace and the operations every OS does alike."""

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
        self.tcp = PortTable(profile.release_resets_bucket)
        self.udp = PortTable(profile.release_resets_bucket)
        self.ehash = EstablishedTable()
        self.timers = TimerQueue()
        self.listeners: dict[int, list[Sock]] = {}
        self.socks: dict[int, Sock] = {}
        self.next_id = 1
        self.peers: list[tuple[IPv4Network | IPv6Network, int | None, RemotePeer]] = []
        self.default_peer = RemotePeer("accept")
        self._peer_cache: dict[tuple[int, int], RemotePeer] = {}     # (addr_key, port) -> _peer_for's answer
        # A plain dict with every counter present (a Counter's subscript costs twice a dict's, three times per connect)
        self.stats: dict[str, int] = dict.fromkeys(STAT_NAMES, 0)
        # an OS whose sockets are plain Socks (probe_sock not overridden): socket(2) makes them without the hook
        self._plain_socks = type(self).probe_sock is CoreStack.probe_sock
        self._masks: dict[tuple[int, int], int] = {}
        self._mirror_sysctls()
        for name, value in (sysctls or {}).items():
            self.set_sysctl(name, value)

    # ------------------------------------------------------------------ what each OS decides

    #: Read on every connection by the shared handshake and teardown; each OS's _mirror_sysctls sets them.
    timestamps: bool
    somaxconn: int
    fin_timeout: float

    def sysctl_specs(self, profile: KernelProfile) -> dict[str, SysctlSpec]:
        """The sysctls this OS has: names, defaults, write checks."""
        raise NotImplementedError

    def _mirror_sysctls(self) -> None:
        """Set the per-connection values (timestamps, somaxconn, fin_timeout, ...) from this OS's sysctls."""
        raise NotImplementedError

    def _sysctl_changed(self, name: str, value: SysctlValue) -> None:
        """A sysctl was written (after validation): an OS that keeps derived state updates it here."""

    def sockname_port(self, sk: Sock) -> int:
        """The port getsockname() shows."""
        raise NotImplementedError

    def port_range(self) -> tuple[int, int]:
        """The namespace's default ephemeral range (low, high)."""
        raise NotImplementedError

    def local_port_range(self, sk: Sock) -> tuple[int, int, bool]:
        """The range ``sk``'s searches use: (low, high, narrowed by a socket option)."""
        raise NotImplementedError

    def bind(self, sk: Sock, addr: IPAddress, port: int) -> None:
        """bind(2), the OS's checks in its order."""
        raise NotImplementedError

    def listen(self, sk: Sock, backlog: int) -> None:
        """listen(2)."""
        raise NotImplementedError

    def tcp_connect(self, sk: Sock, daddr: IPAddress, dport: int) -> None:
        """TCP connect() up to the handshake: the source, the port, the 4-tuple; then ``_handshake``."""
        raise NotImplementedError

    def udp_connect(self, sk: Sock, daddr: IPAddress, dport: int) -> None:
        """UDP connect()."""
        raise NotImplementedError

    def udp_autobind(self, sk: Sock) -> None:
        """The implicit bind of a UDP socket's first sendto()/connect()."""
        raise NotImplementedError

    def usable_ports(self, proto: str, saddr: IPAddress, daddr: IPAddress, dport: int, *, dev: int = 0,
                     local_range: tuple[int, int] | None = None) -> PortSet:
        """The ports a new, unbound socket's connect() from ``saddr`` to daddr:dport could take now."""
        raise NotImplementedError

    def set_bound_device(self, sk: Sock, ifindex: int) -> None:
        """SO_BINDTODEVICE (Linux's; an OS without it refuses the option in ``os_setsockopt`` first)."""
        raise NotImplementedError

    def listener_score(self, sk: Sock) -> int:
        """How well a listener matches within its bucket (exact or wildcard) in ``lookup_listener``; the
        OS's rule."""
        raise NotImplementedError

    def newest_listener_wins(self, exact: bool) -> bool:
        """Among equally good listeners of one bucket (``exact``: bound to the SYN's address, else the wildcard),
        does the newest win (the OS's rule; Linux: its hash chains are head-inserted)?"""
        return True

    def timewait_lifetime(self, sk: Sock, substate: str, lifetime: float) -> float:
        """How long the timewait sock ``sk`` lives (``lifetime``: TCP_TIMEWAIT_LEN for TIME_WAIT, the
        FIN_WAIT2 orphan's time otherwise); an OS with its own rule overrides this."""
        return lifetime

    def _tw_hard(self, tw: Sock) -> bool:
        """Can no reuse rule ever take this TIME_WAIT over (for the search bitsets)? Without timestamps, never."""
        return tw.ts_stamp is None

    def syn_dropped_by_tw_recycle(self, saddr: IPAddress, tsval: int | None) -> bool:
        """Does a per-peer timestamp rule drop this remote SYN (Linux tcp_tw_recycle)? Not by default."""
        return False

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
        self._sysctl_changed(n, parsed)
        self._mirror_sysctls()

    def sysctl_int(self, name: str, default: int = 0) -> int:
        """A scalar sysctl's value (``default`` when this profile has no such sysctl)."""
        v = self.sc.get(name, default)
        return v if isinstance(v, int) else default

    def os_setsockopt(self, sk: Sock, level: int, optname: int, num: int, raw: bytes) -> bool:
        """Options only another OS has (a Stack subclass handles them and returns True); Linux: none."""
        return False

    def os_getsockopt(self, sk: Sock, level: int, optname: int) -> int | None:
        """Read an option only another OS has (None: not one of them)."""
        return None

    def advance(self, seconds: float) -> None:
        """Let simulated time pass; TIME_WAIT and FIN_WAIT2 timers fire in order."""
        if seconds < 0:
            raise ValueError("sleep length must be non-negative")
        target = self.now + seconds
        timers = self.timers
        while timers.first <= target:
            # Fire timers one instant at a time so each sees the clock at its own expiry.
            self.now = max(self.now, timers.first)
            timers.run_until(self.now, self._timer_fired)
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
        sk = Sock(self.next_id, family, proto, uid) if self._plain_socks else self.probe_sock(family, proto, uid,
                                                                                            self.next_id)
        self.next_id += 1
        self.socks[sk.id] = sk
        return sk

    def probe_sock(self, family: int, proto: str, uid: int, sid: int = 0) -> Sock:
        """A fresh socket record with this OS's defaults, not entered in any table (socket(2) enters the
        one it returns; a query uses one to ask what a new socket would meet)."""
        return Sock(sid, family, proto, uid)

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
        ``listener_score`` wins (the newest on a tie), and a reuseport group picks by 4-tuple hash.
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
            # The first of the best score wins: the newest (a head-inserted hash chain) or the oldest (the OS's rule).
            for sk in (reversed(bucket) if self.newest_listener_wins(bucket is exact) else bucket):
                score = self.listener_score(sk)
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

    def route_source(self, sk: Sock, daddr: IPAddress) -> IPAddress:
        """ip_route_connect's source choice, or the socket's own address: the one the user bound, or one a
        previous connect() left of the destination's family (a v6 socket that failed toward ::1 may still go
        to ::ffff:127.0.0.1: tcp_v4_connect routes afresh). ENETUNREACH with no address to use."""
        if sk.laddr is not None and not is_unspecified(sk.laddr) and not self.routed_source(sk):
            mine = wire_address(sk.laddr)
            if isinstance(mine, IPv4Address) and (is_multicast(mine) or mine == LIMITED_BROADCAST):
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
            # ETIMEDOUT while the kernel socket keeps trying (SYN_SENT, holding its port) until its SYN timer.
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

    def _rehash_laddr(self, sk: Sock, laddr: IPAddress | None) -> None:
        """Change the local address of a socket, moving the port it holds (inet_bhash2_update_saddr)."""
        if sk.lport:
            table, port = self.table(sk), sk.lport
            table.remove(sk)
            sk.laddr = laddr if laddr is not None else (ANY4 if sk.family == 4 else ANY6)
            table.add(sk, port)
        else:
            sk.laddr = laddr

    def _peer_for(self, daddr: IPAddress, dport: int) -> RemotePeer:
        """The simulated remote peer at daddr:dport: the last set_peer() that covers it, else the default
        (remembered per destination until the next set_peer)."""
        key = (addr_key(daddr), dport)
        found = self._peer_cache.get(key)
        if found is None:
            found = self.default_peer
            for i in range(len(self.peers) - 1, -1, -1):
                net, port, peer = self.peers[i]
                if daddr in net and (port is None or port == dport):
                    found = peer
                    break
            if len(self._peer_cache) > 65536:
                self._peer_cache.clear()
            self._peer_cache[key] = found
        return found

    def set_peer(self, address: str, behaviour: str, port: int | None = None) -> None:
        """Choose what the simulated remote peer(s) at ``address`` (an address or a network) do."""
        if behaviour not in PEER_BEHAVIOURS:
            raise ValueError(f"unknown peer behaviour {behaviour!r}; choose one of {', '.join(PEER_BEHAVIOURS)}")
        try:
            net = ip_network(address, strict=False)
        except ValueError as exc:
            raise ValueError(f"bad peer address {address!r}: give an address or a network like 10.0.0.0/8") from exc
        self.peers.append((net, port, RemotePeer(behaviour)))
        self._peer_cache.clear()

    def _handshake(self, sk: Sock, daddr: IPAddress, dport: int, local: bool | None = None) -> None:
        """The SYN meets a listener on this host, or a simulated remote peer. ``local``: whether ``daddr`` is this
        host's own, when the caller knows."""
        assert sk.saddr_wire is not None
        ts = self.timestamps
        if self.addresses.is_local(daddr) if local is None else local:
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
        if sk.linger_abort and sk.state in (ESTABLISHED, CLOSE_WAIT):
            # tcp_close with SOCK_LINGER and sk_lingertime 0: tcp_disconnect sends an RST (tcp_need_reset)
            # and the socket is destroyed at once: no FIN_WAIT2, no TIME_WAIT, the port is free. (BSD: soclose
            # with SO_LINGER 0 calls tcp_usr_disconnect -> tcp_drop, the same outcome.)
            self._send_reset(sk)
            self._destroy(sk)
        elif sk.state == ESTABLISHED:
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
        """tcp_time_wait / tcp_twstart: the socket becomes a timewait sock holding its port and 4-tuple, for
        the time the OS's ``timewait_lifetime`` gives (``lifetime``: TCP_TIMEWAIT_LEN for TIME_WAIT, the
        FIN_WAIT2 orphan's time otherwise)."""
        sk.state = TIME_WAIT
        sk.tw_substate = substate
        if sk.ts_stamp is not None:
            sk.ts_stamp = self.now
        lifetime = self.timewait_lifetime(sk, substate, lifetime)
        self.ehash.set_timewait(sk, self._tw_hard)
        self.timers.arm(sk, self.now + lifetime)

    def peer_tsval(self, peer: object, at: float) -> int | None:
        """The TSval a peer's segment carries at time ``at``: its timestamp clock in 1 ms ticks (jiffies at
        HZ=1000) plus its offset, mod 2^32; None when it sends no timestamps. A peer on this host (a Sock)
        uses this host's clock (offset 0)."""
        clock = peer.ts_clock if isinstance(peer, RemotePeer) else 0.0
        if clock is None:
            return None
        return int(round((at + clock) * 1000)) & 0xFFFFFFFF

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
            (self.tcp if sk.proto == "tcp" else self.udp).remove(sk)      # table(sk)
        if isinstance(sk.peer, Sock) and sk.peer.peer is sk:
            sk.peer.peer = None
        sk.expires = None
        if sk.parent is not None and sk.parent.accept_queue and sk in sk.parent.accept_queue:
            sk.parent.accept_queue.remove(sk)
        self.socks.pop(sk.id, None)
        sk.state = CLOSE
        sk.lport = 0
