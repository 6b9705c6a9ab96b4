# The discrete-event engine of `portalloc simulate`: arrivals and closes of connections, driven through
# the socket API of a host (the model's portalloc.Host, or portalloc.live.LiveHost in real time).
#
# Rules: (1) no kernel rule lives here. Every port, errno, TIME_WAIT and FIN_WAIT2 comes from the host's own
# socket calls (socket, setsockopt, bind, connect_ex, accept, close, set_peer) and its clock (sleep); the
# engine only decides WHEN to make which call, and counts what came back. The direct path (docs/simulate.md)
# makes, for a plain TCP connect() to a remote peer on a model Host, the Stack calls those Socket calls make
# after their argument checks (new_sock, stream_connect, close, advance): the same rules, minus the API layer;
# tests/test_sim_direct.py proves it gives the same ports, errnos and document. (2) Time moves only through
# host.sleep (or its Stack.advance, on the direct path), to the next event; several events at one instant
# need no sleep. (3) The workload's
# randomness (Poisson arrivals, hold times) comes from a random.Random per (host, workload) seeded from
# the scenario seed, independent of the model's own seed stream: the model draws exactly what the same
# calls on a fresh Host draw. (4) Every call the engine makes on fleet host 0 can be recorded as a trace
# (TraceRecorder) that `portalloc replay` runs op for op: tests/test_sim.py replays it and compares every
# port and errno.
#
# Theory of operation: one heap of events (time, kind, seq, payload); kind orders events of one instant:
# closes first (a port freed at t is free for an arrival at t, as the model's timers expiring at t are),
# then arrivals, then the per-second sample. A stream with a constant hold closes its connections in the order
# it opened them: those closes wait on the stream's FIFO with only its head on the heap (a k-way merge, which
# pops the same order as one heap of every event). A connection is opened by the workload's technique (connect,
# bind-before-connect, no-port, connectx), toward a destination chosen round-robin, from a source that
# advances once per pass over the destinations (every pair is used); a destination on the host itself
# gets a listener, and each connection is accepted at once
# and closed with its client in the order `closes` says. Remote destinations are the model's simulated
# peers: closes = "server" sets the peer to "close_first"; "reset" closes with SO_LINGER {1, 0}. Counts
# are kept per (source, destination) pair; TIME_WAIT counts are read from the host (`tw_census`).
"""Discrete-event engine: drives a host's socket API with a scenario's workloads."""

from __future__ import annotations

import gc
import heapq
import importlib
import ipaddress
import json
import math
import random
import socket
import struct
from collections import Counter, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

from portalloc.constants import DEFAULT_ADDRESSES, IP_BIND_ADDRESS_NO_PORT
from portalloc.model.addr import IPAddress, parse_sockaddr
from portalloc.model.core import CoreStack
from portalloc.sim.nat import NatTable
from portalloc.sim.scenario import Scenario, Workload
from portalloc.trace.runner import outcome_name

if TYPE_CHECKING:
    from portalloc.model.api import HostAPI, ModelHostAPI
    from portalloc.model.host import Host

SOL_IP = 0
#: Event kinds, in the order they run at one instant.
CLOSE, ARRIVAL, SAMPLE = 0, 1, 2
#: Longest sleep of one trace op (trace/format.py MAX_SLEEP); longer gaps are slept in pieces this long.
SLEEP_PIECE = 120.0
#: SO_LINGER {l_onoff = 1, l_linger = 0}: close() sends an RST and leaves no TIME_WAIT.
LINGER_ABORT = struct.pack("ii", 1, 0)
#: Keep per-pair time series (for --plot) only up to this many (source, destination) pairs.
MAX_SERIES_PAIRS = 64


def connectx_function() -> Callable[..., Any] | None:
    """portalloc.connectx.connectx when this build has it (branch `connectx`), else None."""
    try:
        mod = importlib.import_module("portalloc.connectx")
    except ImportError:
        return None
    fn = getattr(mod, "connectx", None)
    return fn if callable(fn) else None


class TraceRecorder:
    """Records the socket calls made on fleet host 0 as trace ops (docs/traces.md), up to ``limit`` ops."""

    def __init__(self, limit: int = 1_000_000) -> None:
        self.ops: list[dict[str, Any]] = []
        self.ports: dict[int, int] = {}
        self.limit = limit
        self.truncated = False

    def add(self, op: dict[str, Any]) -> None:
        """Append one op (dropped, and the trace marked truncated, past the limit)."""
        if len(self.ops) < self.limit:
            self.ops.append(op)
        else:
            self.truncated = True

    def outcome(self, result: str, port: int | None) -> None:
        """What the last recorded op (a bind or connect) gave on the engine's host: its outcome becomes the
        op's ``expect`` (so `portalloc replay` checks it) and its port is kept in ``ports`` by op index."""
        if self.ops and not self.truncated and self.ops[-1]["op"] in ("bind", "connect"):
            self.ops[-1]["expect"] = result
            if port is not None:
                self.ports[len(self.ops) - 1] = port

    def dumps(self) -> str:
        """The trace as JSON Lines text."""
        head = []
        if self.truncated:
            head.append(f"# truncated after {self.limit:,} ops (a prefix of the run; it replays as far as it goes)")
        return "\n".join(head + [json.dumps(op) for op in self.ops]) + "\n"


@dataclass
class PairStats:
    """Counts toward one destination from one source, on one host."""

    host: int
    workload: int
    source: str
    dest: tuple[str, int]
    attempts: int = 0
    connected: int = 0
    failed: Counter[str] = field(default_factory=Counter)
    in_use: int = 0
    peak_in_use: int = 0
    time_wait: int = 0
    peak_time_wait: int = 0
    key: tuple[int, int, int] | None = None       # the model's ehash destination key, when known


class WorkloadCounts:
    """One workload's counters during a run (``as_dict`` is what RunData.workload_counts holds)."""

    __slots__ = ("attempts", "connected", "failed", "first_failure_s", "peak_in_use", "peak_time_wait", "in_use")

    def __init__(self) -> None:
        self.attempts = 0
        self.connected = 0
        self.failed: Counter[str] = Counter()
        self.first_failure_s: float | None = None
        self.peak_in_use = 0
        self.peak_time_wait = 0
        self.in_use = 0

    def as_dict(self) -> dict[str, Any]:
        """The counters by name."""
        return {"attempts": self.attempts, "connected": self.connected, "failed": self.failed,
                "first_failure_s": self.first_failure_s, "peak_in_use": self.peak_in_use,
                "peak_time_wait": self.peak_time_wait, "in_use": self.in_use}


@dataclass
class Failure:
    """The first failed connection: when, where, which call and errno, and the host's state toward it."""

    t: float
    host: int
    workload: str
    dest: tuple[str, int]
    source: str
    call: str
    errno: str
    in_use_toward: int
    time_wait_toward: int
    in_use_total: int
    range_size: int | None
    bound_ports: int


@dataclass
class RunData:
    """What one engine run measured (result.py turns it into a Result)."""

    scenario: Scenario
    timeline: list[dict[str, Any]]
    pairs: list[PairStats]
    workload_counts: list[dict[str, Any]]
    first_failure: Failure | None
    range_size: int | None
    series: dict[int, list[tuple[int, int]]]
    sample_times: list[float]
    failure_times: list[tuple[float, int]]
    nat: dict[str, Any] | None
    free_ports: dict[int, int | None]
    notes: list[str]
    host_stats: dict[str, int]


class _Lane:
    """What the direct path needs toward one destination of a stream, learnt from its first connection (which
    takes the Socket API): the host's Stack, the destination as the Stack takes it, and the counters to update.
    Typed, so that a compiled engine calls the (compiled) Stack directly."""

    __slots__ = ("stack", "daddr", "dport", "wire", "pair", "counts", "gdest")

    def __init__(self, stack: CoreStack, daddr: IPAddress, dport: int, wire: int, pair: PairStats,
                 counts: WorkloadCounts, gdest: int) -> None:
        self.stack = stack
        self.daddr = daddr
        self.dport = dport
        self.wire = wire                # 4 or 6: the family on the wire
        self.pair = pair
        self.counts = counts            # the workload's counters (wcounts[wi])
        self.gdest = gdest              # the global destination index


class _Stream:
    """Arrivals of one workload on one host."""

    __slots__ = ("host", "wl", "w", "rng", "k", "offset", "gdest0", "nd", "ns", "hold_draw", "hold_const", "family",
                 "stype", "direct", "closes", "lanes")

    def __init__(self, host: int, wl: int, w: Workload, seed: int, hosts: int, gdest0: int) -> None:
        self.host = host
        self.wl = wl
        self.w = w
        self.rng = random.Random(f"portalloc-sim:{seed}:{host}:{wl}")
        self.k = 0
        self.offset = host / (hosts * w.rate)        # hosts of a fleet start staggered within one gap
        self.gdest0 = gdest0
        self.nd = len(w.to)
        self.ns = len(w.sources)
        h = w.hold
        rng = self.rng
        # A constant hold is read as a number (hold_const, no call); the distributions draw (hold_draw).
        self.hold_const = h.mean
        self.hold_draw: Callable[[], float] | None = None
        if h.kind == "exponential":
            lam = 1.0 / h.mean
            self.hold_draw = lambda: rng.expovariate(lam)
        elif h.kind == "lognormal":
            sigma = h.sigma
            mu = math.log(h.mean) - sigma * sigma / 2
            self.hold_draw = lambda: rng.lognormvariate(mu, sigma)
        v6 = ipaddress.ip_address(w.to[0][0]).version == 6
        self.family = socket.AF_INET6 if v6 else socket.AF_INET
        self.stype = socket.SOCK_STREAM if w.proto == "tcp" else socket.SOCK_DGRAM
        self.direct = False             # may take the direct path (set by the run)
        self.lanes: list[_Lane | None] = [None] * self.nd    # the direct path's, per destination
        # With a constant hold the stream's closes come in the order of its arrivals: they wait on this FIFO,
        # only its head on the event heap (a k-way merge; the heap pops the same (time, kind, seq) order).
        self.closes: deque[tuple[float, int, int, tuple[Any, ...]]] | None = deque() if h.kind == "constant" else None

    def first(self) -> float:
        if self.w.arrivals == "constant":
            return self.offset
        return self.rng.expovariate(self.w.rate)

    def next(self, now: float) -> float:
        self.k += 1
        if self.w.arrivals == "constant":
            return self.offset + self.k / self.w.rate
        return now + self.rng.expovariate(self.w.rate)


def _is_local(addr: str, interfaces: Sequence[str]) -> bool:
    ip = ipaddress.ip_address(addr)
    if ip.is_loopback:
        return any(ipaddress.ip_interface(i).ip.is_loopback and ip in ipaddress.ip_interface(i).network
                   for i in interfaces)
    return any(ipaddress.ip_interface(i).ip == ip for i in interfaces)


def model_host_factory(scenario: Scenario) -> Callable[[int], HostAPI]:
    """Hosts of the fleet as model Hosts: host i gets seed ``scenario.seed + i``."""
    from portalloc import Host

    def make(i: int) -> Any:
        kwargs: dict[str, Any] = {"sysctls": dict(scenario.sysctls)}
        if scenario.addresses is not None:
            kwargs["addresses"] = scenario.addresses
        return Host(scenario.kernel, seed=scenario.seed + i, **kwargs)
    return make


def tw_census(host: HostAPI, pairs: Sequence[PairStats]) -> list[tuple[int, int]] | None:
    """(live, TIME_WAIT) sockets toward each pair's destination from its source, read from the model's
    established table (its per-destination port sets); None for a host that is not a model Host."""
    stack = getattr(host, "_stack", None)
    if stack is None:
        return None
    dests = stack.ehash.dests
    out = []
    for p in pairs:
        d = dests.get((*p.key, 0)) if p.key is not None else None
        out.append((0, 0) if d is None else (d.live.count, d.tw.count))
    return out


def live_census(host: HostAPI, pairs: Sequence[PairStats]) -> list[tuple[int, int]]:
    """The same counts from an ``ss``-like listing (LiveHost.sockets()): TIME-WAIT and FIN-WAIT-2 rows."""
    index = {(p.source, p.dest): i for i, p in enumerate(pairs)}
    out = [[0, 0] for _ in pairs]
    for row in host.sockets():
        if row.remote is None or row.proto != "tcp":
            continue
        i = index.get((row.local[0], (row.remote[0], row.remote[1])))
        if i is None:
            continue
        if row.state in ("TIME-WAIT", "FIN-WAIT-2"):
            out[i][1] += 1
        elif row.state != "LISTEN":
            out[i][0] += 1
    return [(a, b) for a, b in out]


def range_size_of(host: HostAPI) -> int | None:
    """The size of the host's ephemeral range: the model's own (Stack.port_range, each OS's sysctls), else
    net.ipv4.ip_local_port_range read through sysctl() (LiveHost); None when neither answers."""
    stack = getattr(host, "_stack", None)
    if stack is not None:
        lo, hi = stack.port_range()
        return int(hi) - int(lo) + 1
    try:
        v = host.sysctl("net.ipv4.ip_local_port_range")
    except (OSError, KeyError, ValueError):
        return None
    bounds = tuple(int(x) for x in v.split()) if isinstance(v, str) else v
    if isinstance(bounds, tuple | list) and len(bounds) == 2:
        return int(bounds[1]) - int(bounds[0]) + 1
    return None


class Engine:
    """Runs one scenario on a fleet of hosts; :meth:`run` returns a RunData.

    ``host_factory(i)`` makes fleet host i (default: model Hosts); ``realtime`` says the hosts' clocks are
    real (LiveHost: sleeps are real waits, and there is no ``host.time``). ``recorder`` records host 0's
    calls as a trace. ``progress(t, duration)`` is called once per simulated second.
    """

    def __init__(self, scenario: Scenario, *, host_factory: Callable[[int], HostAPI] | None = None,
                 realtime: bool = False, recorder: TraceRecorder | None = None,
                 progress: Callable[[float, float], None] | None = None, direct: bool = True) -> None:
        self.sc = scenario
        self.direct = direct
        self.factory = host_factory or model_host_factory(scenario)
        self.realtime = realtime
        self.rec = recorder
        self.progress = progress

    # ------------------------------------------------------------------------------------- recording

    def _r(self, h: int, op: dict[str, Any]) -> None:
        if self.rec is not None and h == 0:
            self.rec.add(op)

    # ------------------------------------------------------------------------------------- the run

    def run(self) -> RunData:
        """Simulate the scenario from time 0 to its duration."""
        sc = self.sc
        hosts = [self.factory(i) for i in range(sc.hosts)]
        # The cyclic collector's passes over hundreds of thousands of live TIME_WAIT records cost a fifth of a
        # long run (measured on the bench scenario); the run makes few cycles, so it is paused meanwhile.
        collecting = gc.isenabled()
        gc.disable()
        try:
            return self._run(hosts)
        finally:
            if collecting:
                gc.enable()
            for h in hosts:
                close = getattr(h, "close", None)
                if close is not None and self.realtime:
                    close()

    def _run(self, hosts: list[HostAPI]) -> RunData:
        sc = self.sc
        realtime = self.realtime
        interfaces = sc.addresses if sc.addresses is not None else DEFAULT_ADDRESSES
        rec = self.rec
        rec_on = rec is not None
        notes: list[str] = []
        if rec is not None:
            hdr: dict[str, Any] = {"op": "host", "kernel": sc.kernel, "seed": sc.seed}
            if sc.addresses is not None:
                hdr["addresses"] = list(sc.addresses)
            if sc.sysctls:
                hdr["sysctls"] = {k: list(v) if isinstance(v, tuple) else v for k, v in sc.sysctls.items()}
            rec.add(hdr)
            if sc.hosts > 1:
                notes.append("the trace records fleet host 0 only")
        nat = NatTable(sc.nat.kind, sc.nat.knobs, sc.hosts) if sc.nat is not None else None

        # Destinations: global index per (workload, destination); remote peers and local listeners.
        gdest0: list[int] = []
        gdests: list[tuple[int, tuple[str, int]]] = []
        for wi, w in enumerate(sc.workloads):
            gdest0.append(len(gdests))
            gdests.extend((wi, d) for d in w.to)
            if w.technique == "connect" and w.sources:
                notes.append(f"workload {w.name}: source is ignored with technique \"connect\" (the kernel picks "
                             "the source); use bind-before-connect, no-port or connectx to pin it")
        listeners: list[dict[tuple[str, int], Any]] = [{} for _ in hosts]
        peers_set: set[tuple[int, str, int]] = set()
        nsock = [0]

        def new_name(prefix: str) -> str:
            nsock[0] += 1
            return f"{prefix}{nsock[0]}"

        for hi, host in enumerate(hosts):
            for w in sc.workloads:
                for addr, port in w.to:
                    if w.proto != "tcp":
                        continue
                    if _is_local(addr, interfaces):
                        if (addr, port) in listeners[hi]:
                            continue
                        fam = socket.AF_INET6 if ":" in addr else socket.AF_INET
                        ls = host.socket(fam, socket.SOCK_STREAM)
                        name = new_name("L")
                        if rec_on:
                            self._r(hi, {"op": "socket", "name": name, "family": "inet6" if ":" in addr else "inet",
                                            "type": "stream"})
                        ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                        if rec_on:
                            self._r(hi, {"op": "setsockopt", "sock": name, "option": "SO_REUSEADDR", "value": 1})
                        try:
                            ls.bind((addr, port))
                            ls.listen(4096)
                        except OSError as exc:
                            raise RuntimeError(f"cannot listen on {addr}:{port} on the host: {exc}") from None
                        if rec_on:
                            self._r(hi, {"op": "bind", "sock": name, "addr": addr, "port": port})
                        if rec_on:
                            self._r(hi, {"op": "listen", "sock": name, "backlog": 4096})
                        listeners[hi][(addr, port)] = (ls, name)
                    elif w.closes == "server" and (hi, addr, port) not in peers_set:
                        cast("ModelHostAPI", host).set_peer(addr, "close_first", port)
                        if rec_on:
                            self._r(hi, {"op": "peer", "addr": addr, "behaviour": "close_first", "port": port})
                        peers_set.add((hi, addr, port))

        # Streams and the event heap.
        streams = [_Stream(hi, wi, w, sc.seed, sc.hosts, gdest0[wi])
                   for hi in range(len(hosts)) for wi, w in enumerate(sc.workloads)]
        heap: list[tuple[float, int, int, Any]] = []
        seq = 0

        def push(t: float, kind: int, payload: Any) -> None:
            nonlocal seq
            seq += 1
            heapq.heappush(heap, (t, kind, seq, payload))

        for si, st in enumerate(streams):
            t0 = st.first()
            if t0 < sc.duration:
                push(t0, ARRIVAL, si)
        ticks = math.ceil(sc.duration - 1e-9)
        if ticks >= 1:
            push(min(1.0, sc.duration), SAMPLE, 1)     # each sample pushes the next (below): a smaller heap
        # The direct path (module comment) where it gives what the Socket layer gives: model hosts, no trace,
        # no NAT (its refusal closes through SO_LINGER), plain TCP connect() closed normally by either side.
        from portalloc.model.host import Host

        direct_on = self.direct and not realtime and rec is None and nat is None
        for st in streams:
            st.direct = (direct_on and isinstance(hosts[st.host], Host) and st.w.proto == "tcp"
                         and st.w.technique == "connect" and st.w.closes in ("client", "server"))
        # A direct stream's ``lanes[i]`` for its i-th destination (a _Lane), filled by the destination's first
        # connection (which takes the Socket API and learns the routed source, hence the pair).

        # Counters.
        pairs: list[PairStats] = []
        pair_index: dict[tuple[int, str, int], PairStats] = {}
        route_src: dict[tuple[int, int], str] = {}
        wcounts = [WorkloadCounts() for _ in sc.workloads]
        timeline: list[dict[str, Any]] = []
        sec_attempts = sec_connected = sec_failed = 0        # this second's, for the timeline
        in_use_total = 0
        peak_in_use = 0
        first_failure: Failure | None = None
        failure_times: list[tuple[float, int]] = []
        series: dict[int, list[tuple[int, int]]] = {}
        sample_times: list[float] = []
        range_size = range_size_of(hosts[0])
        clock = [0.0] * len(hosts)
        real_start = None
        if realtime:
            import time as _time
            real_start = _time.monotonic()

        # On the direct path a model host's clock moves by the Stack call that Host.sleep makes after its checks.
        direct_clock = [h._stack if direct_on and isinstance(h, Host) else None for h in hosts]

        def advance(hi: int, t: float) -> None:
            stack = direct_clock[hi]
            if stack is not None:
                dt = t - stack.now
                if dt > 0:
                    while dt > SLEEP_PIECE:
                        stack.advance(SLEEP_PIECE)
                        dt = t - stack.now
                    stack.advance(dt)
                return
            host = hosts[hi]
            if realtime:
                assert real_start is not None
                import time as _time
                wait = t - (_time.monotonic() - real_start)
                if wait > 0:
                    host.sleep(wait)
                clock[hi] = t
                return
            model_host = cast("ModelHostAPI", host)      # not realtime: a model host, with a clock to read
            dt = t - model_host.time
            if dt <= 0:
                return
            while dt > SLEEP_PIECE:
                host.sleep(SLEEP_PIECE)
                if rec_on:
                    self._r(hi, {"op": "sleep", "seconds": SLEEP_PIECE})
                dt = t - model_host.time
            host.sleep(dt)
            if rec_on:
                self._r(hi, {"op": "sleep", "seconds": dt})

        def pair_for(hi: int, wi: int, gd: int, src: str) -> PairStats:
            p = pair_index.get((hi, src, gd))
            if p is None:
                dest = gdests[gd][1]
                p = PairStats(hi, wi, src, dest)
                try:
                    from portalloc.model.addr import addr_key
                    p.key = (addr_key(ipaddress.ip_address(src)), addr_key(ipaddress.ip_address(dest[0])), dest[1])
                except ValueError:
                    p.key = None
                pair_index[(hi, src, gd)] = p
                pairs.append(p)
            return p

        def fail(hi: int, wi: int, gd: int, src: str, call: str, err: str, t: float) -> None:
            nonlocal first_failure, sec_failed
            p = pair_for(hi, wi, gd, src)
            p.failed[err] += 1
            wc = wcounts[wi]
            wc.failed[err] += 1
            if wc.first_failure_s is None:
                wc.first_failure_s = t
            sec_failed += 1
            if len(failure_times) < 100_000:
                failure_times.append((t, gd))
            if first_failure is None:
                census = tw_census(hosts[hi], [p])
                live, tw = census[0] if census else (p.in_use, p.time_wait)
                first_failure = Failure(t, hi, sc.workloads[wi].name, gdests[gd][1], src, call, err, live, tw,
                                        in_use_total, range_size, _bound_ports(hosts[hi]))

        connectx = connectx_function()
        pools: dict[tuple[int, int], Any] = {}
        if rec is not None and any(w.technique == "connectx" for w in sc.workloads):
            # connectx() makes its own calls on the host, which this recorder does not see: stop here.
            rec.limit = len(rec.ops)
            rec.truncated = True
            notes.append("the trace stops before the first connection: connectx's own socket calls are not recorded")
        linger_abort = LINGER_ABORT

        def close_client(hi: int, s: Any, sname: str, child: Any, cname: str | None, abort: bool) -> None:
            """Close the client socket (abortively: SO_LINGER {1, 0} first) and then the server's child, if
            any, recording each call; one place for the normal close and the NAT's refusal."""
            if abort:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger_abort)
                if rec_on:
                    self._r(hi, {"op": "setsockopt", "sock": sname, "option": "SO_LINGER", "value": [1, 0]})
            s.close()
            if rec_on:
                self._r(hi, {"op": "close", "sock": sname})
            if child is not None:
                child.close()
                if rec_on:
                    self._r(hi, {"op": "close", "sock": cname})

        pop, heappush = heapq.heappop, heapq.heappush
        close_fifos = [st.closes for st in streams]          # by stream index: host * workloads + workload
        nworkloads = len(sc.workloads)
        duration = sc.duration
        new_lane = False
        # The loop's variables, declared: a payload is Any, and what is unpacked from it would be Any everywhere
        # (a compiled engine then looks every attribute up by name).
        gd: int
        p: PairStats
        wc: WorkloadCounts
        stack: CoreStack
        while heap:
            t, kind, _, payload = pop(heap)
            if kind == CLOSE:
                hi, wi, gd, p, s, sname, child, cname = payload
                fifo = close_fifos[hi * nworkloads + wi]
                if fifo is not None:                  # this was its stream's head: the next one joins the heap
                    fifo.popleft()
                    if fifo:
                        heappush(heap, fifo[0])
                if sname is None:                 # a direct-path connection: ``child`` is the Stack, ``s`` its Sock
                    direct_stack: CoreStack = child
                    if t > direct_stack.now:
                        if t - direct_stack.now <= SLEEP_PIECE:
                            direct_stack.advance(t - direct_stack.now)      # advance(), for the usual short step
                        else:
                            advance(hi, t)
                    direct_stack.close(s)
                else:
                    advance(hi, t)
                    closes = sc.workloads[wi].closes
                    if closes == "server" and child is not None:
                        child.close()
                        if rec_on:
                            self._r(hi, {"op": "close", "sock": cname})
                        child = None
                    close_client(hi, s, sname, child, cname, closes == "reset")
                p.in_use -= 1
                wcounts[wi].in_use -= 1
                in_use_total -= 1
                if nat is not None:
                    nat.release(hi, gd, t)
                continue
            if kind == SAMPLE:
                if payload < ticks:
                    push(min(float(payload + 1), sc.duration), SAMPLE, payload + 1)
                for hi in range(len(hosts)):
                    advance(hi, t)
                self._sample(hosts, pairs, realtime)
                row_tw = sum(p.time_wait for p in pairs)
                for wi, wc in enumerate(wcounts):
                    wtw = sum(p.time_wait for p in pairs if p.workload == wi)
                    wc.peak_time_wait = max(wc.peak_time_wait, wtw)
                timeline.append({"t": round(t, 6), "attempts": sec_attempts, "connected": sec_connected,
                                 "failed": sec_failed, "in_use": in_use_total, "time_wait": row_tw})
                sample_times.append(t)
                if len(pairs) <= MAX_SERIES_PAIRS:
                    for i, p in enumerate(pairs):
                        if i not in series:
                            series[i] = [(0, 0)] * (len(sample_times) - 1)
                        series[i].append((p.in_use, p.time_wait))
                sec_attempts = sec_connected = sec_failed = 0
                if self.progress is not None:
                    self.progress(t, sc.duration)
                continue

            # An arrival.
            st = streams[cast(int, payload)]
            if st.direct and (lane := st.lanes[st.k % st.nd]) is not None:
                # The direct path (module comment): the Stack calls the Socket layer makes, minus its checks;
                # the steps of the Socket API path (the else branch), in the same order, for a destination whose
                # pair is known.
                stack, p, wc, gd = lane.stack, lane.pair, lane.counts, lane.gdest
                nxt = st.next(t)
                if nxt < duration:
                    seq += 1
                    heappush(heap, (nxt, ARRIVAL, seq, payload))
                if t > stack.now:
                    if t - stack.now <= SLEEP_PIECE:
                        stack.advance(t - stack.now)      # advance(), for the usual short step
                    else:
                        advance(st.host, t)
                wc.attempts += 1
                sec_attempts += 1
                s = stack.new_sock(lane.wire, "tcp", 0)
                try:
                    err = stack.stream_connect(s, lane.daddr, lane.dport)
                except OSError as exc:
                    if exc.errno is None:
                        raise
                    err = exc.errno
                if err:
                    stack.close(s)
                    fail(st.host, st.wl, gd, p.source, "connect", outcome_name(OSError(err, "")), t)
                    continue
                opened: tuple[Any, ...] = (st.host, st.wl, gd, p, s, None, stack, None)
            else:
                hi, wi, w = st.host, st.wl, st.w
                nxt = st.next(t)
                if nxt < sc.duration:
                    seq += 1
                    heappush(heap, (nxt, ARRIVAL, seq, payload))
                k = st.k - 1
                gd = st.gdest0 + k % st.nd
                dest = gdests[gd][1]
                # Sources rotate once per pass over the destinations, so every (source, destination) pair is used.
                src = w.sources[(k // st.nd) % st.ns] if st.ns else None
                advance(hi, t)
                host = hosts[hi]
                wc = wcounts[wi]
                wc.attempts += 1
                sec_attempts += 1
                technique = w.technique
                if technique == "connectx":
                    assert connectx is not None
                    pool = pools.get((hi, wi))
                    if pool is None:
                        from portalloc.connectx import SourcePool

                        pool = pools[(hi, wi)] = SourcePool(list(w.sources))
                    sname = new_name("c")
                    try:
                        s = connectx(dest, pool, proto=w.proto, host=host)
                        err, call, errname = 0, "connect", ""
                    except OSError as exc:
                        s, err, call, errname = None, exc.errno or -1, "connect", outcome_name(exc)
                else:
                    s = host.socket(st.family, st.stype)
                    sname = new_name("c") if rec_on else ""
                    if rec_on:
                        self._r(hi, {"op": "socket", "name": sname,
                                        "family": "inet6" if st.family == socket.AF_INET6 else "inet",
                                        "type": "stream" if st.stype == socket.SOCK_STREAM else "dgram"})
                    err, call, errname = 0, "connect", ""
                    if technique != "connect":
                        try:
                            if technique == "no-port":
                                if rec_on:
                                    self._r(hi, {"op": "setsockopt", "sock": sname, "option": "IP_BIND_ADDRESS_NO_PORT",
                                                    "value": 1})
                                s.setsockopt(SOL_IP, IP_BIND_ADDRESS_NO_PORT, 1)
                            baddr = src or ("::" if st.family == socket.AF_INET6 else "0.0.0.0")
                            if rec_on:
                                self._r(hi, {"op": "bind", "sock": sname, "addr": baddr, "port": 0})
                            s.bind((baddr, 0))
                            if rec is not None and hi == 0:
                                rec.outcome("ok", s.getsockname()[1])
                        except OSError as exc:
                            err, call, errname = exc.errno or -1, "bind", outcome_name(exc)
                            if rec is not None and hi == 0 and call == "bind":
                                rec.outcome(errname, None)
                    if not err:
                        if rec_on:
                            self._r(hi, {"op": "connect", "sock": sname, "addr": dest[0], "port": dest[1]})
                        err = s.connect_ex(dest)
                        if err:
                            errname = outcome_name(OSError(err, ""))
                        if rec is not None and hi == 0:
                            rec.outcome(errname or "ok", None if err else s.getsockname()[1])
                    if err:
                        s.close()
                        if rec_on:
                            self._r(hi, {"op": "close", "sock": sname})
                if err:
                    fail(hi, wi, gd, src or route_src.get((hi, gd), "*"), call, errname, t)
                    continue
                assert s is not None
                if src is None or technique == "connect":
                    src = route_src.get((hi, gd))
                    if src is None:
                        src = route_src[(hi, gd)] = str(s.getsockname()[0])
                        new_lane = st.direct and dest not in listeners[hi]
                child = cname = None
                lst = listeners[hi].get(dest) if st.stype == socket.SOCK_STREAM else None
                if lst is not None:
                    child, _ = lst[0].accept()
                    cname = new_name("a") if rec_on else ""
                    if rec_on:
                        self._r(hi, {"op": "accept", "sock": lst[1], "name": cname})
                p = pair_for(hi, wi, gd, src)
                if new_lane:
                    new_lane = False
                    wire = 6 if st.family == socket.AF_INET6 else 4
                    daddr, dport = parse_sockaddr(dest, wire, "connect")
                    st.lanes[gd - st.gdest0] = _Lane(cast("Host", hosts[hi])._stack, daddr, dport, wire, p, wc, gd)
                if nat is not None and not nat.admit(hi, gd, t):
                    close_client(hi, s, sname, child, cname, True)
                    fail(hi, wi, gd, src, "nat", "ETIMEDOUT", t)
                    continue
                opened = (hi, wi, gd, p, s, sname, child, cname)
            # The connection is open: its counters, and its close at the end of its hold.
            p.connected += 1
            wc.connected += 1
            sec_connected += 1
            p.in_use += 1
            if p.in_use > p.peak_in_use:
                p.peak_in_use = p.in_use
            wc.in_use += 1
            if wc.in_use > wc.peak_in_use:
                wc.peak_in_use = wc.in_use
            in_use_total += 1
            if in_use_total > peak_in_use:
                peak_in_use = in_use_total
            tc = t + (st.hold_const if st.hold_draw is None else st.hold_draw())
            if tc < duration:
                seq += 1
                event = (tc, CLOSE, seq, opened)
                fifo = st.closes
                if fifo is None:
                    heappush(heap, event)
                else:
                    fifo.append(event)
                    if len(fifo) == 1:
                        heappush(heap, event)

        # Attempts per pair include failures.
        for p in pairs:
            p.attempts = p.connected + sum(p.failed.values())
        free: dict[int, int | None] = {}
        for i, p in enumerate(pairs):
            free[i] = _usable_ports(hosts[p.host], p, sc.workloads[p.workload].proto)
        stats: dict[str, int] = {}
        for h in hosts:
            for k2, v in (getattr(h, "stats", None) or {}).items():
                stats[k2] = stats.get(k2, 0) + v
        if rec is not None and rec.truncated:
            notes.append(f"the trace was cut after {rec.limit:,} ops")
        return RunData(scenario=sc, timeline=timeline, pairs=pairs, workload_counts=[wc.as_dict() for wc in wcounts],
                       first_failure=first_failure, range_size=range_size, series=series,
                       sample_times=sample_times, failure_times=failure_times,
                       nat=nat.describe() if nat is not None else None, free_ports=free, notes=notes,
                       host_stats=stats)

    def _sample(self, hosts: list[HostAPI], pairs: list[PairStats], realtime: bool) -> None:
        by_host: dict[int, list[PairStats]] = {}
        for p in pairs:
            if self.sc.workloads[p.workload].proto == "tcp":
                by_host.setdefault(p.host, []).append(p)
        for hi, ps in by_host.items():
            counts = tw_census(hosts[hi], ps)
            if counts is None:
                counts = live_census(hosts[hi], ps)
            for p, (_live, tw) in zip(ps, counts, strict=True):
                p.time_wait = tw
                if tw > p.peak_time_wait:
                    p.peak_time_wait = tw


def _bound_ports(host: HostAPI) -> int:
    """How many TCP ports the model host's bind table holds (0 for a host that is not a model Host)."""
    stack = getattr(host, "_stack", None)
    return len(stack.tcp.buckets) if stack is not None else 0


def _usable_ports(host: HostAPI, p: PairStats, proto: str) -> int | None:
    """Further connect() calls toward the pair's destination that would succeed now: the model's query
    Host.usable_ports (branch `house`) when this build has it, else None."""
    query = getattr(host, "usable_ports", None)
    if query is None:
        return None
    try:
        return len(query(p.dest, proto=proto, src=p.source))
    except (OSError, TypeError, ValueError):
        return None
