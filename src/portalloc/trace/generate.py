# Random traces for differential testing (the seeded generator behind `portalloc verify`).
#
# Rules: (1) every generated trace is valid (it goes through the same validator as a file) and safe to
# run live: loopback addresses only, a tiny netns port range (2-8 ports, 40000 or 40001 upwards), two
# loopback listeners outside it (127.0.0.1:5000 and [::1]:5001 or 127.0.0.1:5001), at most `max_ops`
# ops, at most `max_sleep` seconds of sleep in total (live sleeps are real), listen backlogs >= 16 so a
# loopback connect() never waits for queue space. (2) Mostly deterministic: ports are reused through
# `same_as` (deterministic relative to the state) far more often than named in-range ports (which a
# random autobind may or may not hold). (3) One generator, two sources of randomness: every decision
# goes through a Chooser; RandomChooser wraps a random.Random, seeded for `verify`, hypothesis-controlled
# for the strategy in strategies.py, so both see the same distribution of traces.
#
# Theory of operation: `generate_ops` keeps an abstract picture of the trace so far (socket names, their
# family and type, which listen, which are closed) without predicting outcomes; each step picks an
# action by weight and fills in its arguments from that picture.
"""Seeded random trace generator (verify and the hypothesis strategy share it through Chooser)."""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from portalloc.trace.format import Trace, trace_from_dicts

T = TypeVar("T")

KERNEL = "linux-6.18"
RANGE_SYSCTL = "net.ipv4.ip_local_port_range"
# bind addresses: the wildcards, loopback, and the classes the kernel treats specially (issue 8): the v4-mapped
# wildcard, a v4-mapped literal on AF_INET, lo's broadcast, multicast, link-local IPv6 (no scope id: EINVAL).
V4_ADDRS = (("127.0.0.1", 50), ("0.0.0.0", 30), ("127.0.0.2", 20), ("::ffff:127.0.0.1", 3),
            ("127.255.255.255", 2), ("224.0.0.1", 2), ("255.255.255.255", 1))
V6_ADDRS = (("::1", 40), ("::", 40), ("::ffff:127.0.0.1", 20), ("::ffff:0.0.0.0", 10), ("::ffff:127.0.0.2", 4),
            ("fe80::1", 2), ("ff02::1", 2), ("ff0e::1", 1))
#: connect() destinations that are refused before any packet leaves, whatever the routes (the live namespace
#: routes nothing but lo, the model simulates a default route): (family, type) -> addresses. A socket bound
#: to a device is never sent to them (its route lookup would decide).
SPECIAL_DESTS = {("inet", "stream"): ("127.255.255.255", "224.0.0.1", "255.255.255.255"),
                 ("inet", "dgram"): ("127.255.255.255",),
                 ("inet6", "stream"): ("ff02::1", "fe80::1", "::ffff:224.0.0.1", "ff0e::1"),
                 ("inet6", "dgram"): ("ff02::1", "fe80::1")}
#: settimeout values: blocking, non-blocking, and CPython's timeout mode (a wait that runs out is real live).
TIMEOUTS: tuple[tuple[float | None, float], ...] = ((None, 3), (0, 3), (0.2, 3), (1.0, 1))


class Chooser(Protocol):
    """The source of every random decision of the generator."""

    def integer(self, lo: int, hi: int) -> int:
        """An integer in ``lo..hi`` (inclusive)."""
        ...

    def chance(self, p: float) -> bool:
        """True with probability ``p``."""
        ...

    def weighted(self, options: Sequence[tuple[T, float]]) -> T:
        """One of the options' values, with probability proportional to its weight."""
        ...


class RandomChooser:
    """Chooser over a ``random.Random``."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng

    def integer(self, lo: int, hi: int) -> int:
        """An integer in ``lo..hi``."""
        return self.rng.randint(lo, hi)

    def chance(self, p: float) -> bool:
        """True with probability ``p``."""
        return self.rng.random() < p

    def weighted(self, options: Sequence[tuple[T, float]]) -> T:
        """Weighted pick."""
        live = [(v, w) for v, w in options if w > 0]   # random() may return 0.0: never pick a 0-weight option
        return self.rng.choices([v for v, _ in live], weights=[w for _, w in live])[0]


@dataclass
class GenConfig:
    """Knobs of the generator (the defaults are what ``verify`` and the tests use)."""

    max_ops: int = 40
    max_sleep: float = 2.5
    min_range: int = 2
    max_range: int = 8
    low: int = 40000
    kernel: str = KERNEL
    slow_fraction: float = 0.3        # share of traces that may sleep at all
    devices_fraction: float = 0.15    # share of traces with a second device "v0"


@dataclass
class _Sock:
    name: str
    family: str
    type: str
    closed: bool = False
    listening: bool = False
    devbound: bool = False            # SO_BINDTODEVICE was set (its route lookups are not comparable)
    timeout: float | None = None      # the last settimeout / setblocking


@dataclass
class _State:
    cfg: GenConfig
    ch: Chooser
    low: int
    high: int
    devices: list[str]
    slow: bool
    ops: list[dict[str, Any]] = field(default_factory=list)
    socks: list[_Sock] = field(default_factory=list)
    listeners: list[tuple[str, str, int, str]] = field(default_factory=list)   # family, addr, port, name
    slept: float = 0.0
    counter: int = 0

    # --- helpers -------------------------------------------------------------------------------------
    def new_name(self, prefix: str) -> str:
        self.counter += 1
        return f"{prefix}{self.counter}"

    def open_socks(self, *, kind: str | None = None) -> list[_Sock]:
        return [s for s in self.socks if not s.closed and (kind is None or s.type == kind)]

    def target(self, *, kind: str | None = None) -> _Sock | None:
        """A socket to act on: usually one of the four most recent open ones, rarely a closed one."""
        if self.socks and self.ch.chance(0.03):
            return self.socks[self.ch.integer(0, len(self.socks) - 1)]
        live = self.open_socks(kind=kind) or self.open_socks()
        if not live:
            return None
        recent = live[-4:]
        if self.ch.chance(0.8):
            return recent[len(recent) - 1 - self.ch.integer(0, len(recent) - 1)]
        return live[self.ch.integer(0, len(live) - 1)]

    def addr(self, family: str) -> str:
        return self.ch.weighted(V4_ADDRS if family == "inet" else V6_ADDRS)

    def emit(self, **op: Any) -> None:
        self.ops.append(op)

    # --- actions ------------------------------------------------------------------------------------
    def socket(self, *, family: str | None = None, type: str | None = None, opts: bool = True) -> _Sock:
        fam = family or self.ch.weighted((("inet", 65), ("inet6", 35)))
        typ = type or self.ch.weighted((("stream", 75), ("dgram", 25)))
        s = _Sock(self.new_name("s"), fam, typ)
        op: dict[str, Any] = {"op": "socket", "name": s.name, "family": fam, "type": typ}
        if self.ch.chance(0.2):
            op["uid"] = self.ch.weighted(((65534, 3), (1000, 1)))
        self.emit(**op)
        self.socks.append(s)
        if opts and self.ch.chance(0.4):
            for _ in range(self.ch.integer(1, 2)):
                self.setsockopt(s)
        return s

    def setsockopt(self, s: _Sock) -> None:
        ch = self.ch
        option = ch.weighted((("SO_REUSEADDR", 30), ("SO_REUSEPORT", 15), ("IP_BIND_ADDRESS_NO_PORT", 15),
                              ("IP_LOCAL_PORT_RANGE", 12), ("IPV6_V6ONLY", 10), ("SO_BINDTODEVICE", 10),
                              ("IP_FREEBIND", 8)))
        value: Any
        if option == "IP_LOCAL_PORT_RANGE":
            lo = ch.weighted(((self.low, 4), (self.low + 1, 2), (0, 2), (self.high, 1), (50000, 1)))
            hi = ch.weighted(((self.high, 4), (lo + 1 if lo else self.low + 1, 2), (0, 2), (self.low, 1),
                              (50000, 1)))
            value = [lo, min(hi, 65535)]
        elif option == "SO_BINDTODEVICE":
            value = ch.weighted((("lo", 5), ("", 2), *((("v0", 4),) if "v0" in self.devices else ()),
                                 ("nodev0", 1)))
            s.devbound = True
        else:
            value = ch.weighted(((1, 9), (0, 1)))
        self.emit(op="setsockopt", sock=s.name, option=option, value=value)

    def port_spec(self, *, for_connect: bool) -> int | dict[str, str]:
        ch = self.ch
        kinds: list[tuple[str, float]] = [("zero", 0 if for_connect else 40), ("same_as", 25),
                                          ("listener", 10), ("range", 12), ("fixed", 8)]
        if not self.socks:
            kinds = [k for k in kinds if k[0] != "same_as"]
        how = ch.weighted(kinds)
        if how == "zero":
            return 0
        if how == "same_as":
            return {"same_as": self.socks[ch.integer(0, len(self.socks) - 1)].name}
        if how == "listener":
            return ch.weighted(((5000, 1), (5001, 1)))
        if how == "range":
            return ch.integer(self.low, self.high)
        return 6000

    def bind(self) -> None:
        s = self.target()
        if s is None:
            s = self.socket()
        self.emit(op="bind", sock=s.name, addr=self.addr(s.family), port=self.port_spec(for_connect=False))

    def connect(self, s: _Sock | None = None) -> None:
        s = s or self.target()
        if s is None:
            s = self.socket()
        ch = self.ch
        fits = [lst for lst in self.listeners if lst[0] == s.family or (s.family == "inet6" and lst[1] != "::1")]
        self.charge_wait(s)
        special = () if s.devbound else SPECIAL_DESTS[(s.family, s.type)]
        how = ch.weighted((("listener", 70 if fits else 0), ("same_as", 12), ("refused", 8), ("wild", 5),
                           ("range", 5), ("special", 4 if special else 0)))
        if how == "special":
            self.emit(op="connect", sock=s.name, addr=special[ch.integer(0, len(special) - 1)], port=5000)
            return
        if how == "listener":
            fam, addr, lport, _ = fits[ch.integer(0, len(fits) - 1)]
            if s.family == "inet6" and fam == "inet":
                addr = "::ffff:" + addr
            self.emit(op="connect", sock=s.name, addr=addr, port=lport)
            return
        if s.family == "inet":
            addr = {"wild": "0.0.0.0", "refused": "127.0.0.2"}.get(how, "127.0.0.1")
        else:
            wild = ch.weighted((("::", 2), ("::ffff:0.0.0.0", 1)))
            addr = {"wild": wild, "refused": "::ffff:127.0.0.2"}.get(how, ch.weighted((("::1", 1),
                                                                                        ("::ffff:127.0.0.1", 1))))
        port: int | dict[str, str]
        if how == "same_as" and self.socks:
            port = {"same_as": self.socks[ch.integer(0, len(self.socks) - 1)].name}
        elif how == "range":
            port = ch.integer(self.low, self.high)
        else:
            port = 5000
        self.emit(op="connect", sock=s.name, addr=addr, port=port)

    def listen(self) -> None:
        s = self.target(kind="stream")
        if s is None:
            s = self.socket(type="stream")
        self.emit(op="listen", sock=s.name, backlog=128)
        if s.type == "stream":
            s.listening = True

    def accept(self) -> None:
        cands = [s for s in self.socks if s.listening and not s.closed]
        if not cands:
            self.listen()
            return
        lst = cands[self.ch.integer(0, len(cands) - 1)]
        self.charge_wait(lst)
        new = _Sock(self.new_name("a"), lst.family, "stream")
        self.emit(op="accept", sock=lst.name, name=new.name)
        self.socks.append(new)

    def close(self) -> None:
        s = self.target()
        if s is None:
            return
        self.emit(op="close", sock=s.name)
        s.closed = True

    def conversation(self) -> None:
        """Client connects to a loopback listener, the server accepts, one or both sides close."""
        ch = self.ch
        fam, _addr, _port, lname = self.listeners[ch.integer(0, len(self.listeners) - 1)]
        c = self.socket(family=fam if fam == "inet6" else ch.weighted((("inet", 3), ("inet6", 1))),
                        type="stream", opts=False)
        if ch.chance(0.3):
            self.emit(op="setsockopt", sock=c.name, option="SO_REUSEADDR", value=1)
        self._connect_to(c, lname)
        a = _Sock(self.new_name("a"), fam, "stream")
        self.emit(op="accept", sock=lname, name=a.name)
        self.socks.append(a)
        order = ch.weighted((("client_first", 50), ("server_first", 25), ("client_only", 25)))
        first, second = (c, a) if order != "server_first" else (a, c)
        self.emit(op="close", sock=first.name)
        first.closed = True
        if order != "client_only":
            self.emit(op="close", sock=second.name)
            second.closed = True

    def _connect_to(self, c: _Sock, lname: str) -> None:
        fam, addr, port, _ = next(lst for lst in self.listeners if lst[3] == lname)
        if c.family == "inet6" and fam == "inet":
            addr = "::ffff:" + addr
        self.emit(op="connect", sock=c.name, addr=addr, port=port)

    def sysctl(self) -> None:
        ch = self.ch
        which = ch.weighted((("tcp_tw_reuse", 4), ("ip_autobind_reuse", 3), ("range", 1)))
        if which == "tcp_tw_reuse":
            self.emit(op="sysctl", name="net.ipv4.tcp_tw_reuse", value=ch.integer(0, 2))
        elif which == "ip_autobind_reuse":
            self.emit(op="sysctl", name="net.ipv4.ip_autobind_reuse", value=ch.integer(0, 1))
        else:
            n = ch.integer(self.cfg.min_range, self.cfg.max_range)
            self.high = self.low + n - 1
            self.emit(op="sysctl", name=RANGE_SYSCTL, value=f"{self.low} {self.high}")

    def charge_wait(self, s: _Sock) -> None:
        """An accept()/connect() on a socket with a timeout may wait it out (really, live): charge it to the
        sleep budget, or make the socket non-blocking first when the budget is spent."""
        if s.timeout:
            if self.slept + s.timeout <= self.cfg.max_sleep:
                self.slept += s.timeout
            else:
                s.timeout = 0
                self.emit(op="settimeout", sock=s.name, value=0)

    def settimeout(self) -> None:
        s = self.target()
        if s is None:
            return
        value = self.ch.weighted(TIMEOUTS)
        s.timeout = value
        self.emit(op="settimeout", sock=s.name, value=value)

    def setblocking(self) -> None:
        s = self.target()
        if s is None:
            return
        flag = self.ch.chance(0.5)
        s.timeout = None if flag else 0
        self.emit(op="setblocking", sock=s.name, flag=flag)

    def getsockopt(self) -> None:
        s = self.target()
        if s is not None:
            self.emit(op="getsockopt", sock=s.name, option="SO_ERROR")

    def sleep(self) -> None:
        secs = self.ch.weighted(((1.2, 3), (0.2, 1)))
        if self.slept + secs <= self.cfg.max_sleep:
            self.slept += secs
            self.emit(op="sleep", seconds=secs)


def generate_ops(ch: Chooser, cfg: GenConfig | None = None) -> list[dict[str, Any]]:
    """The ops (as dicts, header first) of one random trace, every decision taken from ``ch``."""
    cfg = cfg or GenConfig()
    n = ch.integer(cfg.min_range, cfg.max_range)
    low = cfg.low + ch.weighted(((0, 3), (1, 1)))
    devices = ["lo", "v0"] if ch.chance(cfg.devices_fraction) else ["lo"]
    sysctls: dict[str, Any] = {RANGE_SYSCTL: f"{low} {low + n - 1}",
                               "net.ipv4.tcp_tw_reuse": ch.integer(0, 2),
                               "net.ipv4.ip_autobind_reuse": int(ch.chance(0.3))}
    header: dict[str, Any] = {"op": "host", "kernel": cfg.kernel, "sysctls": sysctls,
                              "seed": ch.integer(0, 65535)}
    if devices != ["lo"]:
        header["devices"] = devices
    st = _State(cfg, ch, low, low + n - 1, devices, ch.chance(cfg.slow_fraction))
    # The two loopback listeners outside the range.
    second6 = ch.chance(0.5)
    for fam, addr, port in (("inet", "127.0.0.1", 5000),
                            ("inet6", "::1", 5001) if second6 else ("inet", "127.0.0.1", 5001)):
        name = f"L{port - 5000}"
        st.emit(op="socket", name=name, family=fam, type="stream")
        st.emit(op="bind", sock=name, addr=addr, port=port)
        st.emit(op="listen", sock=name, backlog=128)
        st.listeners.append((fam, addr, port, name))
    target = ch.integer(min(8, cfg.max_ops), cfg.max_ops)
    actions: list[tuple[str, float]] = [("socket", 16), ("connect", 20), ("bind", 14), ("setsockopt", 12),
                                        ("close", 9), ("conversation", 8), ("accept", 6), ("listen", 5),
                                        ("sysctl", 3), ("sleep", 4 if st.slow else 0), ("settimeout", 5),
                                        ("setblocking", 2), ("getsockopt", 3)]
    guard = 0
    while len(st.ops) < target and guard < 4 * cfg.max_ops:
        guard += 1
        mark = len(st.ops)
        action = ch.weighted(actions)
        if action == "setsockopt":
            s = st.target()
            st.setsockopt(s) if s is not None else st.socket()
        elif action == "conversation" and len(st.ops) + 6 > target:
            st.connect()
        else:
            getattr(st, action)()
        if len(st.ops) > cfg.max_ops:
            del st.ops[mark:]
            break
    return [header, *st.ops]


def random_trace(seed: int | str | random.Random, cfg: GenConfig | None = None) -> Trace:
    """A random trace from ``seed`` (same seed, same trace), validated like a trace file."""
    rng = seed if isinstance(seed, random.Random) else random.Random(str(seed))
    name = seed if not isinstance(seed, random.Random) else "rng"
    return trace_from_dicts(generate_ops(RandomChooser(rng), cfg), source=f"<random {name}>")
