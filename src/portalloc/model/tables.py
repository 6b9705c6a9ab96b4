# The kernel's lookup tables, kept as bitsets so that searches cost C-level word operations, not
# Python steps per port.
#
# - PortBits is the one bitset type: a bytearray (setting or clearing a port is O(1), whatever the range)
#   whose integer form, for the whole-range searches, is built only when a search asks for it and kept
#   until the next change. (A Python int updated in place would copy its 8 KB on every change.)
# - PortTable is bhash (one per protocol): port -> BindBucket with its owners. It also keeps, per bound
#   address "slot" (family, address, v6only, device), a bitset of the ports that slot holds, and for
#   TCP the bitset of ports whose bucket is "explicit" (fastreuse >= 0 or fastreuseport >= 0: some
#   owner came from bind()/listen(), not from connect()). connect() never takes an explicit port;
#   bind(0) never takes a port held on an overlapping address.
# - EstablishedTable is ehash: 4-tuple -> socket, plus per destination (local address, remote address,
#   remote port, device) the bitsets of ports in use toward it: live sockets and TIME_WAIT sockets, and, from
#   the first search that reads them toward it on (DestPorts.tracked), the two tcp_tw_reuse reads: the
#   TIME_WAITs no tw_reuse setting can ever take over, and those whose reuse delay has not passed.
# - TimerQueue fires TIME_WAIT and FIN_WAIT2 expiries in time order. Most timers have a constant length
#   (TCP_TIMEWAIT_LEN) and are armed as the clock advances, so each lands at or after the last one armed: those
#   go on a FIFO (append / popleft), the rest on a heap; the two are merged by (expiry, arming order), which
#   is exactly the order one heap of every entry pops in. `first` is the earliest expiry, an attribute, so a
#   clock step that fires nothing costs one comparison.
"""Bind buckets, the established table and timers."""

from __future__ import annotations

import heapq
import math
from collections import Counter, deque
from collections.abc import Callable
from typing import Any

from portalloc.model.addr import AddrKey, IPAddress, addr_key, devices_compatible, rcv_saddr_equal
from portalloc.model.sock import Sock

TupleKey = tuple[int, int, int, int, int]
DestKey = tuple[int, int, int, int]


class PortBits:
    """A set of ports 0-65535: O(1) add, discard and membership; ``bits`` is the integer bitset (bit p = port
    p), built on demand and cached until the next change; ``count`` is the number of ports in the set; ``raw``
    the set as bytes, bit p & 7 of byte p >> 3 for port p, shorter than 8 KB when the highest ports are absent
    (read-only to callers, who may test ports in it in place)."""

    __slots__ = ("raw", "_int", "count")

    def __init__(self) -> None:
        self.raw = bytearray()
        self._int: int | None = 0
        self.count = 0

    def add(self, port: int) -> None:
        """Put ``port`` in the set."""
        b = self.raw
        i = port >> 3
        if i >= len(b):
            b.extend(bytes(i + 1 - len(b)))
        v = b[i]
        m = 1 << (port & 7)
        if not v & m:
            b[i] = v | m
            self.count += 1
            self._int = None

    def add_many(self, ports: list[int]) -> None:
        """``add`` each port of ``ports``, without a method call per port (the integer form is rebuilt only
        when next asked for, as after ``add``)."""
        if not ports:
            return
        b = self.raw
        top = max(ports) >> 3
        if top >= len(b):
            b.extend(bytes(top + 1 - len(b)))
        if len(ports) >= _MANY_PORTS:
            self._add_packed(ports)
            return
        added = 0
        for port in ports:
            i = port >> 3
            v = b[i]
            m = 1 << (port & 7)
            if not v & m:
                b[i] = v | m
                added += 1
        if added:
            self.count += added
            self._int = None

    def _add_packed(self, ports: list[int]) -> None:
        """``add_many`` for a large batch (the bytearray already long enough), in C-level steps: one byte per
        port, packed eight to a byte through eight strided slices, then one OR into the set."""
        b = self.raw
        flags = bytearray(len(b) << 3)
        for port in ports:
            flags[port] = 1
        packed = 0
        for bit in range(8):                # byte i of flags[bit::8] is port 8i+bit: shifted to bit `bit`
            packed |= int.from_bytes(flags[bit::8], "little") << bit
        old = int.from_bytes(b, "little")
        new = old | packed
        b[:] = new.to_bytes(len(b), "little")
        self.count += new.bit_count() - old.bit_count()
        self._int = new

    def discard_many(self, ports: list[int]) -> None:
        """``discard`` each port of ``ports``, without a method call per port."""
        if not self.count:
            return
        b = self.raw
        n = len(b)
        removed = 0
        for port in ports:
            i = port >> 3
            if i < n:
                v = b[i]
                m = 1 << (port & 7)
                if v & m:
                    b[i] = v ^ m
                    removed += 1
        if removed:
            self.count -= removed
            self._int = None

    def discard(self, port: int) -> None:
        """Take ``port`` out of the set (nothing happens if it is not in it)."""
        b = self.raw
        i = port >> 3
        if i < len(b):
            v = b[i]
            m = 1 << (port & 7)
            if v & m:
                b[i] = v ^ m
                self.count -= 1
                self._int = None

    def move(self, port: int, other: PortBits) -> None:
        """Take ``port`` out of this set and put it in ``other`` (a live 4-tuple becoming a TIME_WAIT): ``discard``
        then ``other.add``, in one call."""
        i = port >> 3
        m = 1 << (port & 7)
        b = self.raw
        if i < len(b):
            v = b[i]
            if v & m:
                b[i] = v ^ m
                self.count -= 1
                self._int = None
        b = other.raw
        if i >= len(b):
            b.extend(bytes(i + 1 - len(b)))
        v = b[i]
        if not v & m:
            b[i] = v | m
            other.count += 1
            other._int = None

    def __contains__(self, port: int) -> bool:
        try:
            return self.raw[port >> 3] >> (port & 7) & 1 == 1
        except IndexError:                         # past the highest byte: not in the set
            return False

    def __bool__(self) -> bool:
        return self.count > 0

    @property
    def bits(self) -> int:
        """The set as an integer bitset."""
        v = self._int
        if v is None:
            v = self._int = int.from_bytes(self.raw, "little")
        return v


#: From this many ports on, PortBits.add_many packs them in C-level steps (measured on ports 1024-65535: 10,000
#: ports 2.6 ms by the byte loop, 0.9 ms packed; 500 ports 0.13 ms against 0.22 ms).
_MANY_PORTS = 1024

#: The empty set that DestPorts share until they need a set of their own. Never add to it.
NO_PORTS = PortBits()


class BindBucket:
    """inet_bind_bucket: one port's owners and whether an explicit binder touched it."""

    __slots__ = ("port", "owners", "explicit_owners", "ever_explicit")

    def __init__(self, port: int) -> None:
        self.port = port
        self.owners: list[Sock] = []
        self.explicit_owners = 0      # owners not autobound by connect() (no SOCK_CONNECT_BIND)
        self.ever_explicit = False    # fastreuse/fastreuseport left -1 at some point


class _Slot:
    """The ports one bound address slot (family, address, v6only, device) holds: how many owners per port,
    and the ports as a bitset."""

    __slots__ = ("key", "counts", "ports")

    def __init__(self, key: AddrKey) -> None:
        self.key = key
        self.counts: dict[int, int] = {}
        self.ports = PortBits()

    @property
    def mask(self) -> int:
        """The ports as an integer bitset."""
        return self.ports.bits


class PortTable:
    """bhash for one protocol, with the bitsets that make the port searches fast.

    ``release_resets_bucket`` selects the 6.18 rule (d57f4b874946): a port is explicit only while an
    explicit owner remains; before 6.18 it stays explicit until the bucket is freed.
    """

    def __init__(self, release_resets_bucket: bool) -> None:
        self.release_resets_bucket = release_resets_bucket
        self.buckets: dict[int, BindBucket] = {}
        # Keyed by (family, addr_key, v6only, device): integers hash faster than ipaddress objects.
        self.slots: dict[tuple[int, int, bool, int], _Slot] = {}
        self.explicit = PortBits()
        # The slot of the last socket added or removed, by its fields (its address by identity: sockets that
        # took their address from one route share the object). Forgotten when that slot empties.
        self._last: tuple[IPAddress | None, int, bool, int] = (None, 0, False, 0)
        self._last_slot: _Slot | None = None

    def _slot_of(self, sk: Sock, create: bool) -> _Slot | None:
        """The slot holding ``sk``'s (family, address, v6only, device); made when ``create``."""
        laddr, family, v6only, dev = sk.laddr, sk.family, sk.v6only, sk.dev
        last = self._last
        if laddr is last[0] and family == last[1] and v6only == last[2] and dev == last[3]:
            slot = self._last_slot
            if slot is not None:
                return slot
        assert laddr is not None
        ikey = (family, addr_key(laddr), v6only, dev)
        slot = self.slots.get(ikey)
        if slot is None and create:
            slot = self.slots[ikey] = _Slot(sk.key())
        self._last, self._last_slot = (laddr, family, v6only, dev), slot
        return slot

    def owners(self, port: int) -> list[Sock]:
        """Every socket holding ``port`` (bound, listening, connected, TIME_WAIT)."""
        b = self.buckets.get(port)
        return b.owners if b else []

    @property
    def explicit_mask(self) -> int:
        """Bitset of the ports __inet_hash_connect skips (tb->fastreuse >= 0 || tb->fastreuseport >= 0)."""
        return self.explicit.bits

    def _refresh_explicit(self, b: BindBucket | None, port: int) -> None:
        if b is None:
            self.explicit.discard(port)
        elif b.explicit_owners > 0 if self.release_resets_bucket else b.ever_explicit:
            self.explicit.add(port)
        else:
            self.explicit.discard(port)

    def add(self, sk: Sock, port: int) -> None:
        """inet_bind_hash: ``sk`` (its laddr already set) now holds ``port``."""
        b = self.buckets.get(port)
        if b is None:
            b = self.buckets[port] = BindBucket(port)
        b.owners.append(sk)
        if not sk.connect_bind:
            b.explicit_owners += 1
            b.ever_explicit = True
            self.explicit.add(port)
        slot = self._slot_of(sk, True)
        assert slot is not None
        n = slot.counts.get(port, 0)
        slot.counts[port] = n + 1
        if n == 0:
            slot.ports.add(port)
        sk.lport = sk.sport = port

    def add_many(self, socks: list[Sock]) -> None:
        """``add(sk, sk.lport)`` for each sock in order (their laddr and lport already set): the same buckets
        (owners in the same order), slot counts and bitsets. Each slot's ports are gathered while the socks go
        into their buckets, then counted once per slot (Counter, in C) and its bitset filled once."""
        buckets, slots = self.buckets, self.slots
        explicit: list[int] = []
        gathered: dict[tuple[int, int, bool, int], list[int]] = {}
        keys: dict[int, int] = {}        # id(laddr) -> addr_key(laddr): few addresses, many sockets
        last_laddr: Any = keys           # the previous sock's slot fields (no address is this object)
        last_family = last_dev = -1
        last_v6only = False
        slot_ports: list[int] = []
        for sk in socks:
            port = sk.lport
            b = buckets.get(port)
            if b is None:
                b = buckets[port] = BindBucket(port)
            b.owners.append(sk)
            if not sk.connect_bind:
                b.explicit_owners += 1
                b.ever_explicit = True
                explicit.append(port)
            laddr, family, v6only, dev = sk.laddr, sk.family, sk.v6only, sk.dev
            if laddr is not last_laddr or family != last_family or v6only != last_v6only or dev != last_dev:
                assert laddr is not None
                akey = keys.get(id(laddr))
                if akey is None:
                    akey = keys[id(laddr)] = addr_key(laddr)
                ikey = (family, akey, v6only, dev)
                if ikey not in slots:
                    slots[ikey] = _Slot(sk.key())
                slot_ports = gathered.setdefault(ikey, [])
                last_laddr, last_family, last_v6only, last_dev = laddr, family, v6only, dev
            slot_ports.append(port)
            sk.sport = port
        self.explicit.add_many(explicit)
        for ikey, ports in gathered.items():
            slot = slots[ikey]
            counts = slot.counts
            added = Counter(ports)
            if not counts:                       # a new slot (the usual case of a rebuild): every port is new
                counts.update(added)
                slot.ports.add_many(list(added))
                continue
            new_ports = []
            for port, n in added.items():
                held = counts.get(port, 0)
                counts[port] = held + n
                if not held:
                    new_ports.append(port)
            slot.ports.add_many(new_ports)

    def remove(self, sk: Sock) -> None:
        """inet_put_port: ``sk`` lets go of its port."""
        port = sk.lport
        b = self.buckets.get(port)
        if b is None or sk not in b.owners:
            return
        b.owners.remove(sk)
        if not sk.connect_bind:
            b.explicit_owners -= 1
        if not b.owners:
            del self.buckets[port]
            if b.ever_explicit:                   # (only such a port can be in `explicit`)
                self.explicit.discard(port)       # _refresh_explicit(None, port)
        elif not sk.connect_bind:
            self._refresh_explicit(b, port)
        slot = self._slot_of(sk, False)
        assert slot is not None
        n = slot.counts[port] - 1
        if n:
            slot.counts[port] = n
        else:
            del slot.counts[port]
            slot.ports.discard(port)
            if not slot.counts:
                k = slot.key
                del self.slots[(k.family, addr_key(k.addr), k.v6only, k.dev)]
                self._last_slot = None

    def overlap_mask(self, key: AddrKey) -> int:
        """Ports held by any socket whose address overlaps ``key`` (device-compatible, wildcard-aware)."""
        mask = 0
        for slot in self.slots.values():
            k = slot.key
            if devices_compatible(key.dev, k.dev) and rcv_saddr_equal(key, k, True):
                mask |= slot.mask
        return mask


class DestPorts:
    """Ports in use toward one destination (local address, remote address, remote port, device): ``key``.

    ``live`` and ``tw`` are always kept. The two sets only tcp_tw_reuse reads are kept from the first search
    that reads them on (``tracked``, EstablishedTable.track_reuse): most destinations are never searched with
    tcp_tw_reuse on (its default, 2, is loopback only), and they cost nothing per TIME_WAIT. ``tw_hard`` holds
    the TIME_WAITs no tcp_tw_reuse setting can take over; ``young`` those that could be but whose reuse delay
    has not passed yet, and ``young_q`` lists them in stamp order (stamps only grow), so ageing them is a pop
    from the left.
    """

    __slots__ = ("key", "live", "tw", "tw_hard", "young", "young_q", "tracked")

    def __init__(self, key: DestKey) -> None:
        # The TIME_WAIT sets start as the shared empty NO_PORTS (most destinations of a server's children
        # never see one) and get their own PortBits on their first TIME_WAIT (tw) or their tracking (the rest).
        self.key = key
        self.live = PortBits()      # non-TIME_WAIT sockets: the 4-tuple is taken
        self.tw = NO_PORTS          # TIME_WAIT sockets (either substate)
        self.tw_hard = NO_PORTS     # TIME_WAITs that tcp_tw_reuse can never take over (no timestamp, FIN_WAIT2 rule)
        self.young = NO_PORTS
        self.young_q: deque[tuple[float, int, Sock]] | None = None
        self.tracked = False

    def age(self, passed: Callable[[float], bool]) -> None:
        """Drop from ``young`` every TIME_WAIT whose reuse delay has passed (``passed(stamp)``)."""
        q = self.young_q
        while q and passed(q[0][0]):
            entry = q.popleft()
            if _young_entry_live(entry):
                self.young.discard(entry[1])


def _young_entry_live(entry: tuple[float, int, Sock]) -> bool:
    """Is this young_q entry (stamp, port, sock) still its socket's current TIME_WAIT? Once not, never again:
    a destroyed socket is not rehashed, and a re-stamped one has a newer entry of its own."""
    stamp, _, sk = entry
    return sk.state == "TIME_WAIT" and sk.ts_stamp == stamp and sk.tkey is not None


class EstablishedTable:
    """ehash: 4-tuple uniqueness, with per-destination bitsets for the connect() search.

    Keys carry the socket's bound device, because inet_match() compares it: an entry bound to no device
    matches every new socket, an entry bound to device X only new sockets bound to X. So a device-bound
    connection does not take its 4-tuple away from sockets without a device (verified on 6.18).
    """

    def __init__(self) -> None:
        self.by_tuple: dict[TupleKey, Sock] = {}
        self.dests: dict[DestKey, DestPorts] = {}

    @staticmethod
    def tuple_of(sk: Sock) -> TupleKey:
        """(local address, local port, remote address, remote port, device) on the wire."""
        assert sk.saddr_wire is not None and sk.raddr is not None
        return addr_key(sk.saddr_wire), sk.lport, addr_key(sk.raddr), sk.rport, sk.dev

    def match(self, skey: int, lport: int, rkey: int, rport: int, dev: int) -> Sock | None:
        """The socket that makes this 4-tuple unavailable to a new socket bound to ``dev`` (inet_match):
        a live one if there is one, else a TIME_WAIT, else None."""
        found = self.by_tuple.get((skey, lport, rkey, rport, 0))
        if dev:
            other = self.by_tuple.get((skey, lport, rkey, rport, dev))
            if other is not None and (found is None or found.state == "TIME_WAIT"):
                found = other
        return found

    def track_reuse(self, d: DestPorts, hard: Callable[[Sock], bool], passed: Callable[[float], bool]) -> None:
        """Start keeping ``d``'s tcp_tw_reuse sets (``tracked``): ``tw_hard`` from its TIME_WAITs for which
        ``hard(sk)``, ``young`` and ``young_q`` from the others whose delay has not ``passed(stamp)``, in stamp
        order. From then on ``set_timewait`` and ``remove`` keep them."""
        d.tracked = True
        d.tw_hard, d.young, d.young_q = PortBits(), PortBits(), deque()
        self._fill_reuse(d, hard, passed)

    def _fill_reuse(self, d: DestPorts, hard: Callable[[Sock], bool] | None, passed: Callable[[float], bool]) -> None:
        """Fill a tracked destination's empty ``young`` (and, given ``hard``, ``tw_hard``) from its TIME_WAITs."""
        skey, rkey, rport, dev = d.key
        by_tuple = self.by_tuple
        bits = d.tw.bits
        tws = []
        while bits:
            low = bits & -bits
            port = low.bit_length() - 1
            bits ^= low
            sk = by_tuple[(skey, port, rkey, rport, dev)]
            if hard is not None and hard(sk):
                d.tw_hard.add(port)
            elif port not in d.tw_hard and sk.ts_stamp is not None and not passed(sk.ts_stamp):
                tws.append((sk.ts_stamp, port, sk))
        tws.sort(key=lambda e: e[0])
        assert d.young_q is not None
        for stamp, port, sk in tws:
            d.young.add(port)
            d.young_q.append((stamp, port, sk))

    def rebuild_young(self, passed: Callable[[float], bool]) -> None:
        """Recompute every tracked ``young`` set from scratch (after the reuse delay itself changed)."""
        for d in self.dests.values():
            if d.tracked:
                d.young, d.young_q = PortBits(), deque()
                self._fill_reuse(d, None, passed)

    def dest_ports(self, skey: int, rkey: int, rport: int, dev: int) -> tuple[DestPorts, ...]:
        """The DestPorts a new socket bound to ``dev`` meets toward (local address, remote address, remote
        port): the device-less entry and, for a bound device, that device's (empty when none is in use)."""
        d = self.dests.get((skey, rkey, rport, 0))
        e = self.dests.get((skey, rkey, rport, dev)) if dev else None
        if e is None:
            return () if d is None else (d,)
        return (e,) if d is None else (d, e)

    def dest_masks(self, skey: int, rkey: int, rport: int, dev: int) -> tuple[int, int] | None:
        """(live, tw) bitsets of the ports a new socket bound to ``dev`` finds taken toward (local address,
        remote address, remote port); None when nothing uses that destination."""
        found = self.dest_ports(skey, rkey, rport, dev)
        if not found:
            return None
        live = tw = 0
        for d in found:
            live |= d.live.bits
            tw |= d.tw.bits
        return live, tw

    def insert(self, sk: Sock, key: TupleKey | None = None) -> None:
        """Hash a connected socket (live state); ``key``: its tuple_of, when the caller has it."""
        t = sk.tkey = self.tuple_of(sk) if key is None else key
        self.by_tuple[t] = sk
        dk = (t[0], t[2], t[3], t[4])
        d = self.dests.get(dk)
        if d is None:
            d = self.dests[dk] = DestPorts(dk)
        d.live.add(t[1])
        sk.hashed = True

    def set_timewait(self, sk: Sock, hard_of: Callable[[Sock], bool]) -> None:
        """``sk`` (already hashed) became a TIME_WAIT sock; ``hard_of(sk)``: never reusable by tcp_tw_reuse (asked
        only for a destination whose reuse sets are kept)."""
        t = sk.tkey
        assert t is not None
        d = self.dests[(t[0], t[2], t[3], t[4])]
        port = t[1]
        if d.tw is NO_PORTS:
            d.tw = PortBits()
        d.live.move(port, d.tw)
        if not d.tracked:
            return
        if hard_of(sk):
            d.tw_hard.add(port)
            d.young.discard(port)
        else:
            d.tw_hard.discard(port)
            q = d.young_q
            assert sk.ts_stamp is not None and q is not None
            d.young.add(port)
            # Entries whose TIME_WAIT is gone (or was re-stamped) can never count again, and `age` skips
            # them; they are dropped from the head here so a destination nobody ages does not keep every dead
            # socket alive. Stamps only grow, so the head is the oldest.
            while q:
                stamp, _, head = q[0]
                if head.state == "TIME_WAIT" and head.ts_stamp == stamp and head.tkey is not None:
                    break                         # _young_entry_live, inline: this runs per TIME_WAIT
                q.popleft()
            q.append((sk.ts_stamp, port, sk))

    def insert_timewaits(self, socks: list[Sock], hard: list[bool]) -> None:
        """``insert(sk)`` then ``set_timewait(sk, hard)`` for each sock in order (``hard[i]`` for ``socks[i]``):
        the same entries, young queues and bitsets, the bitsets filled once per destination. A sock's ``tkey``,
        when already set, is taken as its ``tuple_of`` (the caller computed it once per address). Consecutive
        socks toward one destination (the common case) find its entry without a lookup."""
        by_tuple, dests = self.by_tuple, self.dests
        touched: dict[DestKey, tuple[DestPorts, dict[int, bool]]] = {}
        last_local = last_remote = last_rport = last_dev = -1
        port_hard: dict[int, bool] = {}
        young: deque[tuple[float, int, Sock]] | None = None   # the current destination's young_q, if tracked
        for sk, is_hard in zip(socks, hard, strict=True):
            t = sk.tkey
            if t is None:
                t = sk.tkey = self.tuple_of(sk)
            by_tuple[t] = sk
            sk.hashed = True
            if t[3] != last_rport or t[2] != last_remote or t[0] != last_local or t[4] != last_dev:
                last_local, _, last_remote, last_rport, last_dev = t
                dk = (last_local, last_remote, last_rport, last_dev)
                entry = touched.get(dk)
                if entry is None:
                    d = dests.get(dk)
                    if d is None:
                        d = dests[dk] = DestPorts(dk)
                    if d.tw is NO_PORTS:
                        d.tw = PortBits()
                    entry = touched[dk] = (d, {})
                port_hard = entry[1]
                young = entry[0].young_q if entry[0].tracked else None
            port = t[1]
            port_hard[port] = is_hard          # the last TIME_WAIT on a port decides, as one by one
            if young is not None and not is_hard:
                assert sk.ts_stamp is not None
                young.append((sk.ts_stamp, port, sk))
        for d, ports in touched.values():
            every = list(ports)
            d.live.discard_many(every)
            d.tw.add_many(every)
            if not d.tracked:
                continue
            hard_ports = [p for p, h in ports.items() if h]
            soft_ports = [p for p, h in ports.items() if not h] if hard_ports else every
            d.tw_hard.discard_many(soft_ports)
            d.tw_hard.add_many(hard_ports)
            d.young.discard_many(hard_ports)
            d.young.add_many(soft_ports)

    def remove(self, sk: Sock) -> None:
        """Unhash ``sk``."""
        t = sk.tkey
        if not sk.hashed or t is None:
            return
        if self.by_tuple.get(t) is sk:
            del self.by_tuple[t]
            dk = (t[0], t[2], t[3], t[4])
            d = self.dests[dk]
            port = t[1]
            if sk.state == "TIME_WAIT":           # (set_timewait moved its port from live to tw)
                d.tw.discard(port)
                if d.tracked:
                    d.tw_hard.discard(port)
                    d.young.discard(port)
            else:
                d.live.discard(port)
            if not (d.live.count or d.tw.count):
                del self.dests[dk]
        sk.hashed = False
        sk.tkey = None


class TimerQueue:
    """TIME_WAIT and FIN_WAIT2 timers: fire in expiry order when simulated time passes.

    Entries are (expiry, arming sequence, sock). One armed at or after the last FIFO entry's expiry joins
    the FIFO, which therefore stays sorted; any other joins the heap. Firing takes the smaller head of the two
    by (expiry, sequence): the order a single heap holding every entry pops in (tests/test_timer_queue.py).
    """

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, Sock]] = []
        self._fifo: deque[tuple[float, int, Sock]] = deque()
        self._seq = 0
        #: next_expiry() as an attribute (inf when nothing is armed): a clock that moves to a time before it fires
        #: nothing, and needs no call to learn so
        self.first = math.inf

    def arm(self, sk: Sock, expires: float) -> None:
        """(Re)arm ``sk``'s timer; an earlier entry for it becomes stale."""
        sk.expires = expires
        self._seq += 1
        fifo = self._fifo
        if not fifo or fifo[-1][0] <= expires:
            fifo.append((expires, self._seq, sk))
        else:
            heapq.heappush(self._heap, (expires, self._seq, sk))
        if expires < self.first:
            self.first = expires

    def arm_many(self, socks: list[Sock], expiries: list[float]) -> None:
        """``arm(sk, expires)`` for each sock of ``socks`` and its expiry in ``expiries``, in order, with one
        heapify instead of a push each: the heap pops in the same (expiry, arming order) sequence."""
        for sk, expires in zip(socks, expiries, strict=True):
            sk.expires = expires
        h = self._heap
        seq = self._seq
        h.extend(zip(expiries, range(seq + 1, seq + 1 + len(socks)), socks, strict=True))
        self._seq = seq + len(socks)
        heapq.heapify(h)
        self.first = self._earliest()

    def entries(self) -> list[tuple[float, int, Sock]]:
        """Every armed (expiry, sequence, sock) entry, stale ones included, in no particular order."""
        return [*self._heap, *self._fifo]

    def next_expiry(self) -> float | None:
        """When the earliest armed timer fires (a stale entry may answer early; run_until skips it)."""
        first = self.first
        return None if first == math.inf else first

    def _earliest(self) -> float:
        h, fifo = self._heap, self._fifo
        if fifo:
            return min(h[0][0], fifo[0][0]) if h else fifo[0][0]
        return h[0][0] if h else math.inf

    def run_until(self, now: float, fire: Callable[[Sock], None]) -> None:
        """Fire, in order, every timer whose expiry is at or before ``now``."""
        h, fifo = self._heap, self._fifo
        while True:
            if fifo and (not h or fifo[0] < h[0]):     # (expiry, sequence): sequences are unique
                if fifo[0][0] > now:
                    break
                expires, _, sk = fifo.popleft()
            elif h and h[0][0] <= now:
                expires, _, sk = heapq.heappop(h)
            else:
                break
            if sk.expires == expires:
                sk.expires = None
                fire(sk)                  # (which may arm timers: ``first`` is set again below)
        self.first = self._earliest()
