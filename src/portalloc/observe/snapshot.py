# A host's socket table as read (HostSnapshot), its rebuild in the model (to_model), and the headroom per
# destination that the model computes from it.
#
# Rules:
# - No I/O here: reading is observe/read.py. This module only interprets rows and asks the model.
# - The headroom is the MODEL's answer (Host.usable_ports on the rebuilt host), never a second formula: the
#   other columns (in use, TIME_WAIT, bind-locked, reserved, limit) are counts of what was read, shown so a
#   user can see where the ports went.
# - Where the kernel hides something the model needs, the snapshot infers it and says so in the row
#   (`inferred`). sock_diag does not say whether bind() or connect() chose a connected socket's port, and
#   that decides whether the port is taken from every destination (an explicit bind bucket, which
#   __inet_hash_connect skips) or from one. Rules, in order:
#     1. LISTEN, bound-only TCP (TCP_BOUND_INACTIVE, shown as CLOSE/UNCONN) and UDP sockets: bind (certain);
#     2. a connection on a listener's port (an accepted child, SYN-RECV): inherited from the listener (certain);
#     3. a client port outside ip_local_port_range: bind (connect() never leaves the range);
#     4. a client port of the "other" parity (not low's) while, toward the same destination, a port of low's
#        parity is still usable: bind, inferred. Since 4.6 (1580ab63fc9a) connect() scans low's parity first
#        and takes the other parity only when the first is exhausted for that destination, while bind(0)
#        prefers the other parity (inet_csk_find_open_port, odd offset) - the seed article's signature;
#     5. otherwise connect().
#   Rule 4 can be wrong for a port taken when low's parity was full and kept after ports freed up again, and
#   for sockets with IP_LOCAL_PORT_RANGE (6.8+ scans in step 1; the option is not visible in a dump).
# - TIME_WAITs are rebuilt with their ages: the model clock starts TW_BASE seconds before "now", each
#   TIME_WAIT enters at (now - its age), and the clock then runs to "now" (Host.restore + Host.sleep), so
#   tcp_tw_reuse's delay and the timers are the model's own. TIME_WAIT timestamps are not in a dump: they
#   are assumed present when net.ipv4.tcp_timestamps is on (inferred, said in the snapshot's notes).
#   They go in through Host.restore_timewaits (one call for all: the same tables as one restore() each,
#   tests/test_restore_bulk.py), which is what keeps 100k TIME_WAITs near half a second.
# - Per-destination port sets are gathered as lists and made bitsets once (`bitset`): an int |= 1 << port
#   per row would copy the whole 8 KB bitset each time.
# - One pass over the rows: classify() also keeps the clients grouped by their (local text, remote) objects
#   (with each group's TIME_WAIT ports and notes), the rows per role, the bind()-chosen clients and the
#   explicitly bound ports, which headroom(), explicit_bits() and the findings read instead of the rows
#   (tests/test_observe_grouped.py holds them to their row-by-row definitions).
"""HostSnapshot, SockRow, Headroom: a read socket table, rebuilt in the model and asked for headroom."""

from __future__ import annotations

import gc
import re
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from ipaddress import IPv4Address, IPv6Address, ip_address, ip_interface
from itertools import compress
from operator import itemgetter
from typing import Any

from portalloc.model.host import Host
from portalloc.model.tables import PortBits

#: TCP states (as `ss` prints them) that hold a 4-tuple in ehash; TIME-WAIT is apart.
LIVE_STATES = frozenset({"ESTAB", "SYN-SENT", "SYN-RECV", "FIN-WAIT-1", "FIN-WAIT-2", "CLOSE-WAIT", "LAST-ACK",
                         "CLOSING"})
#: Model clock at "now": older than any TIME_WAIT (60 s) or FIN_WAIT2 orphan timer that can be read.
TW_BASE = 3600.0
TCP_TIMEWAIT_LEN = 60.0
DEFAULT_RANGE = (32768, 60999)


@dataclass(slots=True)
class SockRow:
    """One socket as read: ``state`` as ``ss`` prints it (TCP bound-only: ``UNCONN``), ``timer`` the seconds
    left on a TIME-WAIT (or FIN-WAIT-2 timewait) timer, None otherwise."""

    proto: str
    family: int
    state: str
    local: tuple[str, int]
    remote: tuple[str, int] | None
    uid: int = 0
    timer: float | None = None


@dataclass
class Headroom:
    """Headroom toward one destination from one source address.

    ``headroom``: further connect() calls from fresh sockets toward dst:dport (from ``src``) that get a port
    now - the model's answer. ``in_use``: live connections toward it; ``time_wait``: TIME_WAITs toward it,
    of which ``reusable_time_wait`` could be taken over now (tcp_tw_reuse); ``bind_locked``: ports of the
    range held by bind()/listen() (taken from every destination); ``reserved``: ip_local_reserved_ports in
    the range; ``limit``: ports in the range. ``inferred``: what was inferred for this row."""

    proto: str
    src: str
    dst: str
    dport: int
    in_use: int
    time_wait: int
    reusable_time_wait: int
    bind_locked: int
    reserved: int
    limit: int
    headroom: int
    inferred: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """The row as JSON-ready data."""
        return asdict(self)


@dataclass(slots=True)
class Classified:
    """A row with who chose its port: ``role`` (listener, bound, child, client, udp), ``chosen_by``
    (bind or connect), and ``inferred`` (the reason when rule 4 decided)."""

    row: SockRow
    role: str
    chosen_by: str
    inferred: str = ""


#: Classified.inferred of rules 3 and 4.
OUTSIDE_RANGE = "port outside ip_local_port_range: chosen by bind()"
PARITY_INFERRED = ("bind() before connect(): a port of bind(0)'s parity while ports of connect()'s parity were "
                   "free toward this destination (inferred)")


class _ClientGroup:
    """The client connections and TIME_WAITs of one (local address text, remote) as read: the rows, their
    ports, the ports of the TIME_WAITs among them, and the inferences made for them."""

    __slots__ = ("members", "ports", "tw_ports", "notes")

    def __init__(self) -> None:
        self.members: list[Classified] = []
        self.ports: list[int] = []
        self.tw_ports: list[int] = []
        self.notes: set[str] = set()


@contextmanager
def no_gc() -> Iterator[None]:
    """No generational GC passes inside: reading or rebuilding ~100k sockets allocates objects in one burst
    that nothing frees, and each pass would rescan all of them (measured: 8 s instead of 2 s at 100k)."""
    collecting = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if collecting:
            gc.enable()


@lru_cache(maxsize=65536)
def wire(host: str) -> str:
    """The address as it is on the wire (a v4-mapped IPv6 address as IPv4)."""
    a = ip_address(host)
    if isinstance(a, IPv6Address) and a.ipv4_mapped is not None:
        return str(a.ipv4_mapped)
    return str(a)


def _is_any(host: str) -> bool:
    return wire(host) in ("0.0.0.0", "::")


def parse_range(text: str | None) -> tuple[int, int]:
    """ip_local_port_range text → (low, high)."""
    if not text:
        return DEFAULT_RANGE
    lo, hi = (int(x) for x in text.split())
    return lo, hi


def parse_port_list(text: str | None) -> int:
    """ip_local_reserved_ports text ("40000-40003,40008") → a bitset of ports."""
    bits = 0
    for part in (text or "").replace(" ", "").split(","):
        if not part:
            continue
        lo, _, hi = part.partition("-")
        a, b = int(lo), int(hi or lo)
        bits |= ((1 << (b - a + 1)) - 1) << a
    return bits


def bitset(ports: list[int]) -> int:
    """The ports as an integer bitset, built in one pass (PortBits.add_many), not one big-int OR per port."""
    bits = PortBits()
    bits.add_many(ports)
    return bits.bits


def _range_bits(lo: int, hi: int) -> int:
    return ((1 << (hi - lo + 1)) - 1) << lo


def kernel_name(release: str | None) -> str:
    """The model profile of a kernel release ("6.18.44-fc" → "linux-6.18"); "linux" when unknown."""
    m = re.match(r"(\d+)\.(\d+)", release or "")
    return f"linux-{m.group(1)}.{m.group(2)}" if m else "linux"


@dataclass
class HostSnapshot:
    """A network namespace's socket table and port sysctls as read (``portalloc.observe.read_host``).

    ``source``: ``sock_diag``, ``proc`` or ``ss-file``; ``notes`` say what that source cannot see."""

    rows: list[SockRow]
    sysctls: dict[str, str]
    source: str
    kernel_release: str | None = None
    read_seconds: float = 0.0
    #: the namespace's interface addresses as "ADDRESS/PREFIX" (rtnetlink RTM_GETADDR); None when not read
    #: (a saved `ss` dump): the model then knows only the addresses the sockets use, each as a /32 or /128
    interfaces: list[str] | None = None
    _classified: list[Classified] | None = field(default=None, repr=False, compare=False)
    _explicit: dict[str, int] = field(default_factory=dict, repr=False, compare=False)
    _groups: dict[tuple[str, tuple[str, int]], _ClientGroup] = field(default_factory=dict, repr=False, compare=False)
    _udp_connected: list[Classified] = field(default_factory=list, repr=False, compare=False)
    _by_role: dict[str, list[Classified]] = field(default_factory=dict, repr=False, compare=False)
    _binders: list[Classified] = field(default_factory=list, repr=False, compare=False)

    # ------------------------------------------------------------------ facts

    @property
    def port_range(self) -> tuple[int, int]:
        """ip_local_port_range (low, high)."""
        return parse_range(self.sysctls.get("net.ipv4.ip_local_port_range"))

    @property
    def reserved_bits(self) -> int:
        """ip_local_reserved_ports as a bitset."""
        return parse_port_list(self.sysctls.get("net.ipv4.ip_local_reserved_ports"))

    @property
    def timestamps(self) -> bool:
        """Whether TIME_WAITs are taken to carry timestamps (net.ipv4.tcp_timestamps != 0)."""
        return self.sysctls.get("net.ipv4.tcp_timestamps", "1").strip() != "0"

    @property
    def notes(self) -> list[str]:
        """What this snapshot could not see or had to assume."""
        out = []
        if self.source != "sock_diag":
            out.append(f"read from {self.source}: TCP sockets that are only bound (bind() without connect() or "
                       "listen()) are invisible here, so ports they lock are not counted")
        elif self.kernel_release and tuple(int(x) for x in re.findall(r"\d+", self.kernel_release)[:2]) < (6, 8):
            out.append(f"kernel {self.kernel_release} < 6.8: sock_diag does not dump bound-only TCP sockets "
                       "(91051f003948), so ports they lock are not counted")
        if self.interfaces is None:
            out.append("interface addresses unknown: the model has only the addresses the sockets use (as /32 or "
                       "/128), so a destination asked for with --dst is routed from those")
        if self.source == "ss-file" and "net.ipv4.ip_local_port_range" not in self.sysctls:
            out.append("no sysctls with the dump: the defaults of the model's kernel were assumed")
        if any(r.state in ("TIME-WAIT",) for r in self.rows):
            out.append("TIME_WAIT timestamps are not in a dump: taken from net.ipv4.tcp_timestamps "
                       f"({'on' if self.timestamps else 'off'})")
        return out

    # ------------------------------------------------------------------ who chose each port

    def classify(self) -> list[Classified]:
        """Every row with its role and who chose its port (rules 1-5 of the module comment)."""
        if self._classified is not None:
            return self._classified
        lo, hi = self.port_range
        listen_addrs: dict[int, list[str]] = defaultdict(list)
        for r in self.rows:
            if r.state == "LISTEN" and r.proto == "tcp":
                listen_addrs[r.local[1]].append(wire(r.local[0]))
        out: list[Classified] = []
        append = out.append
        explicit_ports: list[int] = []
        udp_connected: list[Classified] = []
        udp_ports: list[int] = []
        # Rows by role, except clients (the groups hold those); the clients whose port bind() chose.
        by_role: dict[str, list[Classified]] = {"listener": [], "bound": [], "child": []}
        udp: list[Classified] = []
        by_role["udp"] = udp
        binders: list[Classified] = []
        # Clients by (local address text, remote) as read: wire() runs once per distinct pair, not per row, and
        # headroom() reads each group's counts instead of the rows again. Consecutive rows of a dump mostly
        # share both objects (parse_chunks hands out one remote tuple per endpoint), so the dict is asked only
        # when they change.
        by_pair: dict[tuple[str, tuple[str, int]], _ClientGroup] = {}
        last_local: Any = None
        last_remote: Any = None
        group = _ClientGroup()
        for r in self.rows:
            if r.proto == "udp":
                c = Classified(r, "udp", "bind")
                append(c)
                udp.append(c)
                udp_ports.append(r.local[1])
                if r.remote is not None:
                    udp_connected.append(c)
                continue
            local = r.local
            port = local[1]
            remote = r.remote
            state = r.state
            if state == "LISTEN":
                c = Classified(r, "listener", "bind")
            elif remote is None:
                c = Classified(r, "bound", "bind")
            elif port in listen_addrs and any(a in ("0.0.0.0", "::") or a == wire(local[0])
                                              for a in listen_addrs[port]):
                c = Classified(r, "child", "bind")
            else:
                if remote is not last_remote or local[0] is not last_local:
                    found = by_pair.get((local[0], remote))
                    if found is None:
                        found = by_pair[(local[0], remote)] = _ClientGroup()
                    group = found
                    last_local, last_remote = local[0], remote
                if lo <= port <= hi:
                    c = Classified(r, "client", "connect")
                else:
                    c = Classified(r, "client", "bind", OUTSIDE_RANGE)
                    explicit_ports.append(port)
                    group.notes.add(OUTSIDE_RANGE)
                    binders.append(c)
                append(c)
                group.members.append(c)
                group.ports.append(port)
                if state == "TIME-WAIT" or (state == "FIN-WAIT-2" and r.timer is not None):
                    group.tw_ports.append(port)
                continue
            if c.chosen_by == "bind":
                explicit_ports.append(port)
            append(c)
            by_role[c.role].append(c)
        # Rule 4: the other parity while low's parity still had a usable port toward the same destination.
        # Ports per destination are gathered as lists and made a bitset once (an int |= per row would copy
        # the whole 8 KB bitset each time), and the test is made once per destination.
        by_dest: dict[tuple[str, str, int], list[_ClientGroup]] = defaultdict(list)
        for (local_text, (rhost, rport)), group in by_pair.items():
            by_dest[(wire(local_text), wire(rhost), rport)].append(group)
        first = _range_bits(lo, hi) & _parity_mask(lo & 1) & ~self.reserved_bits & ~bitset(explicit_ports)
        other_parity = (lo & 1) ^ 1
        tcp_bound = list(explicit_ports)            # and the ports rule 4 turns to bind()
        other_mask = _parity_mask(other_parity)
        for groups in by_dest.values():
            held = bitset([p for g in groups for p in g.ports])
            if not first & ~held or not held & other_mask:   # no usable port of low's parity, or no other-parity row
                continue
            # the rows on the other parity (selected in C: compress over each port's parity test)
            others = [[c for c in compress(g.members, map(other_parity.__eq__, map((1).__and__, g.ports)))
                       if c.chosen_by == "connect"] for g in groups]
            for g, other in zip(groups, others, strict=True):
                for c in other:
                    c.chosen_by = "bind"
                    c.inferred = PARITY_INFERRED
                    tcp_bound.append(c.row.local[1])
                    binders.append(c)
                if other:
                    g.notes.add(PARITY_INFERRED)
        self._groups = by_pair
        self._udp_connected = udp_connected
        self._by_role = by_role
        self._binders = binders
        self._classified = out
        self._explicit = {"tcp": bitset(tcp_bound), "udp": bitset(udp_ports)}
        return out

    def of_role(self, role: str) -> list[Classified]:
        """The classified rows of one role (listener, bound, child, udp, client), in table order."""
        rows = self.classify()
        if role == "client":
            return [c for c in rows if c.role == "client"]
        return list(self._by_role.get(role, ()))

    def client_binders(self) -> list[Classified]:
        """The client connections and TIME_WAITs whose port bind() chose (rules 3 and 4)."""
        self.classify()
        return list(self._binders)

    def explicit_bits(self, proto: str = "tcp") -> int:
        """Ports held by sockets whose port bind()/listen() chose (for UDP: every bound port)."""
        self.classify()                              # fills _explicit for tcp and udp
        return self._explicit.get(proto, 0)

    # ------------------------------------------------------------------ the model

    def to_model(self, kernel: str | None = None, seed: int = 0) -> Host:
        """The same state as a model Host, for what-if questions: sysctls, listeners, bound sockets,
        connections (with who chose each port) and TIME_WAITs with their ages. The model clock ends at
        "now" = TW_BASE seconds."""
        addresses = {"127.0.0.1/8", "::1/128", *(self.interfaces or ())}
        own = {ip_interface(i).ip for i in addresses}
        for text in {r.local[0] for r in self.rows}:
            if not _is_any(text):
                a = ip_address(wire(text))
                if not a.is_loopback and a not in own:      # e.g. a nonlocal (IP_FREEBIND) bind
                    addresses.add(f"{a}/{32 if isinstance(a, IPv4Address) else 128}")
        with no_gc():
            return self._rebuild(kernel, seed, sorted(addresses))

    def _rebuild(self, kernel: str | None, seed: int, addresses: list[str], bulk: bool = True) -> Host:
        """The rebuild; ``bulk``: TIME_WAITs through Host.restore_timewaits (False: one restore() each, the
        reference the bulk path is tested against)."""
        host = Host(kernel or kernel_name(self.kernel_release), seed=seed, addresses=addresses)
        _apply_sysctls(host, self.sysctls)
        fin_timeout = float(self.sysctls.get("net.ipv4.tcp_fin_timeout", "60") or 60)
        # TIME_WAITs straight into Host.restore_timewaits' entries: (at, family, local, remote, chosen_by, uid,
        # substate, lifetime), ``at`` = TW_BASE - age; ``tw_rows`` keeps each entry's row for the reference path.
        entries: list[tuple[float, int, Any, Any, str, int, str, float]] = []
        append = entries.append
        tw_rows: list[Classified] = []
        others: list[Classified] = []
        for c in self.classify():
            r = c.row
            state = r.state
            if state == "TIME-WAIT" and r.proto == "tcp" or (state == "FIN-WAIT-2" and r.timer is not None):
                total = TCP_TIMEWAIT_LEN if state == "TIME-WAIT" else fin_timeout
                left = r.timer or 0.0       # min(max(timer, 0), total), without two calls per TIME_WAIT
                if left < 0.0:
                    left = 0.0
                if total < left:
                    left = total
                fam = r.family
                if fam == 4:
                    append((TW_BASE - (total - left), 4, r.local, r.remote, c.chosen_by, r.uid,
                            "TIME_WAIT" if state == "TIME-WAIT" else "FIN_WAIT2", total))
                else:
                    append((TW_BASE - (total - left), fam, _mapped(6, r.local), _mapped(6, r.remote), c.chosen_by,
                            r.uid, "TIME_WAIT" if state == "TIME-WAIT" else "FIN_WAIT2", total))
                if not bulk:
                    tw_rows.append(c)
            else:
                others.append(c)
        order = {"listener": 0, "bound": 1, "udp": 1, "child": 2, "client": 2}
        for c in sorted(others, key=lambda c: order[c.role]):
            r = c.row
            if r.proto == "tcp":
                state = "LISTEN" if r.state == "LISTEN" else "CLOSE" if r.remote is None else "ESTABLISHED"
            else:
                state = "CLOSE" if r.remote is None else "ESTABLISHED"
            _restore(host, r, state, c.chosen_by)
        if bulk:
            entries.sort(key=itemgetter(0))           # oldest first (stable)
            host.sleep(entries[0][0] if entries else TW_BASE)
            host.restore_timewaits(entries, timestamps=self.timestamps)
        else:
            host.sleep(min((e[0] for e in entries), default=TW_BASE))
            for (at, *_, total), c in sorted(zip(entries, tw_rows, strict=True), key=lambda t: t[0][0]):
                if at > host.time:
                    host.sleep(at - host.time)
                substate = "TIME_WAIT" if c.row.state == "TIME-WAIT" else "FIN_WAIT2"
                _restore(host, c.row, "TIME_WAIT", c.chosen_by, tw_substate=substate, lifetime=total,
                         timestamps=self.timestamps)
        if host.time < TW_BASE:
            host.sleep(TW_BASE - host.time)
        return host

    # ------------------------------------------------------------------ the answer

    def destinations(self) -> list[tuple[str, str, str, int]]:
        """(proto, src, dst, dport) of every client connection and TIME_WAIT (TCP) and connected UDP socket."""
        keys: set[tuple[str, str, str, int]] = set()
        for c in self.classify():
            r = c.row
            if r.remote is None or c.role in ("child", "listener"):
                continue
            keys.add((r.proto, wire(r.local[0]), wire(r.remote[0]), r.remote[1]))
        return sorted(keys)

    def headroom(self, dst: list[tuple[str, int]] | tuple[str, int] | None = None,
                 host: Host | None = None) -> list[Headroom]:
        """One row per (proto, source address, destination address, destination port) seen in the table,
        plus each ``dst`` asked for (TCP, from the source the kernel would route from); with ``dst`` given,
        only the rows toward those destinations. ``headroom`` is the model's answer (``Host.usable_ports``
        on ``to_model()``); ``host`` reuses a model already built from this snapshot."""
        with no_gc():
            return self._headroom(dst, host)

    def _headroom(self, dst: list[tuple[str, int]] | tuple[str, int] | None, host: Host | None) -> list[Headroom]:
        asked: list[tuple[str, int]] = []
        if dst is not None:
            asked = [dst] if isinstance(dst, tuple) else list(dst)
        model = host if host is not None else self.to_model()
        lo, hi = self.port_range
        rng = _range_bits(lo, hi)
        reserved = (self.reserved_bits & rng).bit_count()
        counts: dict[tuple[str, str, str, int], list[int]] = defaultdict(lambda: [0, 0])
        tw_port_lists: dict[tuple[str, str, str, int], list[int]] = defaultdict(list)
        notes: dict[tuple[str, str, str, int], set[str]] = defaultdict(set)
        self.classify()
        # Client connections and TIME_WAITs: the groups classify() gathered (one per local text and remote as
        # read; several can name one destination on the wire). Connected UDP sockets: one by one.
        for (local_text, remote), g in self._groups.items():
            key = ("tcp", wire(local_text), wire(remote[0]), remote[1])
            count = counts[key]
            count[0] += len(g.members) - len(g.tw_ports)
            count[1] += len(g.tw_ports)
            tw_port_lists[key].extend(g.tw_ports)
            if g.notes:
                notes[key] |= g.notes
        for c in self._udp_connected:
            r = c.row
            assert r.remote is not None
            key = ("udp", wire(r.local[0]), wire(r.remote[0]), r.remote[1])
            if r.state == "TIME-WAIT" or (r.state == "FIN-WAIT-2" and r.timer is not None):
                counts[key][1] += 1
                tw_port_lists[key].append(r.local[1])
            else:
                counts[key][0] += 1
            if c.inferred:
                notes[key].add(c.inferred)
        tw_ports = {key: bitset(ports) for key, ports in tw_port_lists.items()}
        locked = {p: (self.explicit_bits(p) & rng & ~self.reserved_bits).bit_count() for p in ("tcp", "udp")}
        keys = sorted(counts)         # = destinations(): every key counted above
        if asked:
            wanted = {(wire(a), p) for a, p in asked}
            keys = [k for k in keys if (k[2], k[3]) in wanted]
            for a, p in asked:
                if not any((k[2], k[3]) == (wire(a), p) for k in keys):
                    keys.append(("tcp", "", wire(a), p))
        out = []
        for key in keys:
            proto, src, daddr, dport = key
            if not src:                               # asked for with --dst, nothing toward it yet: the route's
                try:
                    src = model.route_source((daddr, dport))
                    notes[key].add("source: the one the kernel routes from (no socket toward it yet)")
                except OSError:
                    src = ""
            usable = model.usable_ports((daddr, dport), proto=proto, src=src or None)
            in_use, tw = counts[key]
            reusable = (tw_ports.get(key, 0) & usable.bits).bit_count()
            row_notes = sorted(notes[key])
            out.append(Headroom(proto, src or "(route)", daddr, dport, in_use, tw, reusable, locked[proto],
                                reserved, hi - lo + 1, len(usable), row_notes))
        return out

    def to_json(self, rows: list[Headroom], findings: list[Any]) -> dict[str, Any]:
        """The ``doctor --json`` document."""
        return {"sysctls": dict(self.sysctls), "source": self.source, "kernel": self.kernel_release,
                "interfaces": self.interfaces, "notes": self.notes, "headroom": [r.as_dict() for r in rows],
                "findings": [f.as_dict() for f in findings]}


_PARITY: dict[int, int] = {}


def _parity_mask(parity: int) -> int:
    m = _PARITY.get(parity)
    if m is None:
        m = _PARITY[parity] = int.from_bytes(bytes([0xAA if parity else 0x55]) * 8192, "little")
    return m


def _apply_sysctls(host: Host, sysctls: dict[str, str]) -> None:
    """Write the read sysctls the model knows, retrying those the kernel accepts only after another (a range
    below ip_unprivileged_port_start needs the start lowered first)."""
    pending = [(n, v) for n, v in sysctls.items() if v != ""]
    for _ in range(3):
        left = []
        for name, value in pending:
            try:
                host.sysctl(name, value)
            except FileNotFoundError:
                continue
            except (OSError, ValueError):
                left.append((name, value))
        if not left:
            return
        pending = left


def _mapped(family: int, endpoint: Any) -> Any:
    """An endpoint in the socket's own family: an IPv4 text of an IPv6 socket as v4-mapped."""
    if endpoint is not None and family == 6 and ":" not in endpoint[0]:
        return ("::ffff:" + endpoint[0], endpoint[1])
    return endpoint


def _restore(host: Host, r: SockRow, state: str, chosen_by: str, **kw: Any) -> None:
    local = _mapped(r.family, r.local)
    remote = _mapped(r.family, r.remote)
    if remote is not None and state == "CLOSE":
        remote = None
    host.restore(r.proto, local, remote, state=state, chosen_by=chosen_by, family=r.family, uid=r.uid, **kw)
