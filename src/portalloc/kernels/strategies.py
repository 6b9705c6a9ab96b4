# The small functions that differ between kernels: how connect() and bind(0) walk the port range.
#
# Rules: a strategy gets a request (effective range, the hash of the destination, a PortSpace that
# answers "may this port be taken?", the host's seeded RNG and its boot-time state) and returns the
# port plus the number of ports the kernel's loop examined. Strategies decide order only; whether a port
# may be taken is the model's test (model/stack.py `connect_test` for connect(), the bind conflict
# predicates of model/conflict.py for bind(0)), the same for all.
# Each names the kernel function and commit it follows.
# - One registry, PORT_ORDERS: every port order of every OS (Linux's connect() and bind(0) searches, the RFC
#   6056 algorithms, the BSD-family and Windows orders, NetBSD's selectable algorithms), each a PortOrder with
#   its function and what the model needs to know about it (the errno of an exhausted search, whether it may
#   give up while ports remain, whether the port is bound only once the 4-tuple is known, and, for Linux's
#   perturb table, a first try: its common case in one frame, held to the whole search by
#   tests/test_first_try.py). An algorithm two OSes share is written once: NetBSD's random_pick and randinc
#   are RFC 6056 algorithms 1 and 5 (random_pick, random_increments), each with the OS's own start and state.
# - BSD-family orders get a RangeRequest: the range in the OS's terms (first may exceed last), the bitset
#   of ports the model's test passed, the host's seeded RNG and its search state (cursors, NetBSD's
#   next_ephemeral values, FreeBSD's ipport_tick counters), and a sysctl reader.
"""Port orders of every kernel (connect(), bind(0), the BSD-family and Windows picks), by name."""

from __future__ import annotations

import errno
import math
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from portalloc.kernels.profile import KernelProfile
from portalloc.kernels.search import QUICK_TRIES, PortSpace, mod_walk, scan_down, scan_wrapped

M32 = 0xFFFFFFFF
GOLDEN_RATIO_32 = 0x61C88647


@dataclass(slots=True)
class ConnectRequest:
    """What __inet_hash_connect knows when it starts: range, hash, the space of usable ports."""

    low: int                      # effective range, inclusive
    high: int
    local_ports: bool             # IP_LOCAL_PORT_RANGE is set on the socket
    port_offset: int              # secure_*_port_ephemeral(), u64 (5.18+) or u32
    space: PortSpace
    rng: random.Random
    state: dict[str, Any]         # boot-time state of the host: table_perturb, hint, ...
    profile: KernelProfile


@dataclass(slots=True)
class SearchResult:
    """The port found (None: range exhausted) and the number of candidates examined."""

    port: int | None
    probes: int


def hash_32(val: int, bits: int) -> int:
    """include/linux/hash.h hash_32(): multiplicative hash to ``bits`` bits."""
    return ((val * GOLDEN_RATIO_32) & M32) >> (32 - bits)


def random_below(rng: random.Random, n: int) -> int:
    """A number in 0..n-1 (n > 0): the very draw ``rng.randrange(n)`` makes (random.py's
    _randbelow_with_getrandbits: n.bit_length()-bit draws until one is below n), in one Python frame instead of
    three; the connect() search makes one per connection."""
    k = n.bit_length()
    getrandbits = rng.getrandbits
    r = getrandbits(k)
    while r >= n:
        r = getrandbits(k)
    return r


def _parity_passes(req: ConnectRequest, offset: int, step: int, remaining: int) -> tuple[int | None, int, int]:
    """The 4.6+ inner loop: a step-``step`` pass from ``low+offset``, then (step 2) the other parity.

    Returns (port, i, probes) where ``i`` is the loop variable of the successful pass (i = k*step).
    """
    low, high = req.low, req.high + 1
    start = low + offset
    if start < high and req.space.passes_quickly(start):
        return start, 0, 1                # the first candidate (i = 0), where most searches end
    n = (remaining + step - 1) // step
    probes = 0
    while True:
        port, k = scan_wrapped(req.space, low + offset, step, n, high, remaining)
        if port is not None:
            return port, k * step, probes + k + 1
        probes += n
        if step == 2:
            offset += 1
            if offset & 1 and remaining > 1:
                continue
        return None, 0, probes


def _perturb_start(profile: KernelProfile, state: dict[str, Any], rng: random.Random, low: int, high: int,
                   local_ports: bool, port_offset: int) -> tuple[list[int], int, int, int, int]:
    """Where __inet_hash_connect (5.12+) starts: (table_perturb, index, offset, step, remaining). The table is
    drawn from the host's RNG on first use."""
    step = 1 if (local_ports and profile.local_range_step_one) else 2
    remaining = high + 1 - low
    if step == 2 and remaining > 1:
        remaining &= ~1
    table = state.get("table_perturb")
    if table is None:
        table = state["table_perturb"] = [rng.getrandbits(32) for _ in range(profile.perturb_table_size)]
    po = port_offset
    if profile.perturb_index == "low-bits":
        index = po & (profile.perturb_table_size - 1)
        offset = (table[index] + (po >> 32)) & M32
    else:
        index = hash_32(po & M32, (profile.perturb_table_size - 1).bit_length())
        offset = (table[index] + po) & M32
    offset %= remaining
    if step == 2:
        offset &= ~1
    return table, index, offset, step, remaining


def _perturb_advance(profile: KernelProfile, rng: random.Random, table: list[int], index: int, i: int,
                     step: int) -> None:
    """The table entry's advance after a port was found at loop index ``i``: i + step, i first raised to a
    random 0..7 steps (5.18) or, 5.12, set to 2 in 1/16 of the cases where the first candidate was taken."""
    if profile.perturb_increment == "random-0-to-7-steps":
        i = max(i, random_below(rng, 8) * step)      # get_random_u32_below(8) * step
    elif profile.perturb_increment == "noise-1-in-16" and i == 0 and rng.randrange(16) == 0:
        i = 2
    table[index] = (table[index] + i + step) & M32


def connect_perturb_table(req: ConnectRequest) -> SearchResult:
    """__inet_hash_connect, 5.12+ (RFC 6056 algorithm 4; 190cc82489f4, 4c2c8f03a5ab, ca7af0402550, 207184853dbd).

    index/offset from table_perturb and port_offset; step 2 over low's parity, then the other parity
    (step 1, one pass, no rounding under IP_LOCAL_PORT_RANGE since 6.8); on success the table entry
    advances by i + step, i first raised to a random 0..7 steps (5.18) or, 5.12, by 2 in 1/16 of the
    cases where the first candidate was taken.
    """
    p = req.profile
    table, index, offset, step, remaining = _perturb_start(p, req.state, req.rng, req.low, req.high,
                                                           req.local_ports, req.port_offset)
    port, i, probes = _parity_passes(req, offset, step, remaining)
    if port is None:
        return SearchResult(None, probes)
    _perturb_advance(p, req.rng, table, index, i, step)
    return SearchResult(port, probes)


def connect_perturb_table_first(profile: KernelProfile, state: dict[str, Any], rng: random.Random, low: int,
                                high: int, local_ports: bool, port_offset: int,
                                passes: Callable[[int], bool]) -> tuple[int, int] | None:
    """connect_perturb_table when one of the first QUICK_TRIES candidates of its first pass passes before the pass
    wraps (``passes``, the exact port test; the whole search looks at the same ones first, search.py):
    (port, probes), with the table advanced as the whole search advances it. None otherwise: then nothing was
    drawn or changed, except the table's creation, which the whole search the caller runs next would have made
    first too."""
    table, index, offset, step, remaining = _perturb_start(profile, state, rng, low, high, local_ports, port_offset)
    start = low + offset
    if start <= high and passes(start):                 # the first candidate, where most searches end
        _perturb_advance(profile, rng, table, index, 0, step)
        return start, 1
    # the candidates before the wrap (scan_wrapped's count_a, at most the pass's n), the first few of them
    count = min((high + 1 - start + step - 1) // step, (remaining + step - 1) // step, QUICK_TRIES)
    for k in range(1, count):
        if passes(start + step * k):
            _perturb_advance(profile, rng, table, index, k * step, step)
            return start + step * k, k + 1
    return None


def connect_hint_two_pass(req: ConnectRequest) -> SearchResult:
    """__inet_hash_connect, 4.6-5.11 (1580ab63fc9a): global hint, even pass then odd pass, hint += i + 2."""
    remaining = req.high + 1 - req.low
    if remaining > 1:
        remaining &= ~1
    hint = req.state.get("hint", 0)
    offset = ((hint + req.port_offset) & M32) % remaining
    offset &= ~1
    port, i, probes = _parity_passes(req, offset, 2, remaining)
    if port is not None:
        req.state["hint"] = (hint + i + 2) & M32
    return SearchResult(port, probes)


def connect_hint_even(req: ConnectRequest) -> SearchResult:
    """__inet_hash_connect, 4.2-4.5 (07f4c90062f8): even start, sequential step 1, hint += (i + 2) & ~1."""
    remaining = req.high + 1 - req.low
    hint = req.state.get("hint", 0)
    offset = ((hint + req.port_offset) & M32) & ~1
    start = req.low + offset % remaining
    port, k = scan_wrapped(req.space, start, 1, remaining, req.low + remaining, remaining)
    if port is None:
        return SearchResult(None, remaining)
    req.state["hint"] = (hint + ((k + 2) & ~1)) & M32
    return SearchResult(port, k + 1)


def connect_hint_scan(req: ConnectRequest) -> SearchResult:
    """__inet_hash_connect, 2.6-4.1 (the seed article's excerpt): port = low + (i + hint + port_offset) % n
    for i = 1..n, sequential; hint += i on success."""
    remaining = req.high + 1 - req.low
    hint = req.state.get("hint", 0)
    offset = (hint + req.port_offset) & M32
    start = req.low + (1 + offset) % remaining
    port, k = scan_wrapped(req.space, start, 1, remaining, req.low + remaining, remaining)
    if port is None:
        return SearchResult(None, remaining)
    req.state["hint"] = (hint + k + 1) & M32
    return SearchResult(port, k + 1)


# --- RFC 6056 algorithms (section 3.3), over Linux's suitability test. num = high - low + 1. ---

#: random_pick: real per-try draws before the remaining tries are sampled in one go (NetBSD's use).
RANDOM_PICK_EXACT_TRIES = 64


def random_pick(low: int, num: int, rng: random.Random, ok: Callable[[int], bool], exact_tries: int,
                free: int = 0) -> SearchResult:
    """RFC 6056 algorithm 1, simple port randomization: ``low + random() % num`` afresh on every try, at most
    num tries. The first ``exact_tries`` tries are drawn one by one; after that (``free``: the bitset of
    passing ports) the number of further misses is drawn from its geometric law and the port uniformly among
    the free ones: the same distribution, without a Python step per try."""
    tries = min(num, exact_tries)
    for k in range(tries):
        port = low + rng.getrandbits(32) % num
        if ok(port):
            return SearchResult(port, k + 1)
    nfree = free.bit_count()
    if tries >= num or nfree == 0:
        return SearchResult(None, num)
    p = nfree / num
    misses = 0 if p >= 1.0 else int(math.log(1.0 - rng.random()) / math.log(1.0 - p))
    if tries + misses >= num:
        return SearchResult(None, num)
    index = rng.randrange(nfree)
    m = free
    for _ in range(index):
        m &= m - 1
    return SearchResult((m & -m).bit_length() - 1, tries + misses + 1)


def rfc6056_alg1(req: ConnectRequest) -> SearchResult:
    """Algorithm 1, simple port randomization: a fresh random pick on every probe, at most num probes (each
    drawn one by one)."""
    num = req.high - req.low + 1
    return random_pick(req.low, num, req.rng, req.space.ok, num)


def rfc6056_alg2(req: ConnectRequest) -> SearchResult:
    """Algorithm 2: a random start, then a linear search with wrap-around."""
    num = req.high - req.low + 1
    start = req.low + req.rng.getrandbits(32) % num
    port, k = scan_wrapped(req.space, start, 1, num, req.high + 1, num)
    return SearchResult(port, num if port is None else k + 1)


def rfc6056_alg3(req: ConnectRequest) -> SearchResult:
    """Algorithm 3, hash-based: offset = F(laddr, faddr, fport); one global counter advanced per probe."""
    num = req.high - req.low + 1
    nxt = req.state.get("next_ephemeral", 0)
    offset = req.port_offset & M32
    start = req.low + (nxt + offset) % num
    port, k = scan_wrapped(req.space, start, 1, num, req.high + 1, num)
    probes = num if port is None else k + 1
    req.state["next_ephemeral"] = (nxt + probes) & 0xFFFF
    return SearchResult(port, probes)


RFC6056_TABLE_LENGTH = 10


def rfc6056_alg4(req: ConnectRequest) -> SearchResult:
    """Algorithm 4, double hash: table[G(...)] + F(...), the table entry advanced per probe (16-bit)."""
    num = req.high - req.low + 1
    table = req.state.get("rfc_table")
    if table is None:
        table = req.state["rfc_table"] = [req.rng.getrandbits(16) for _ in range(RFC6056_TABLE_LENGTH)]
    offset = (req.port_offset >> 32) & M32
    index = (req.port_offset & M32) % RFC6056_TABLE_LENGTH
    start = req.low + (offset + table[index]) % num
    port, k = scan_wrapped(req.space, start, 1, num, req.high + 1, num)
    probes = num if port is None else k + 1
    table[index] = (table[index] + probes) & 0xFFFF
    return SearchResult(port, probes)


RFC6056_TRADE_OFF = 500


def random_increments(low: int, num: int, nxt: int, rng: random.Random,
                      ok: Callable[[int], bool]) -> tuple[SearchResult, int]:
    """RFC 6056 algorithm 5, random increments: ``next += random() % N + 1`` per try (N = 500, uint16_t
    next), port ``low + next % num``, at most num tries. Returns the result and the new ``next``. One
    Python step per try: the algorithm has no shortcut."""
    for k in range(num):
        nxt = (nxt + rng.getrandbits(32) % RFC6056_TRADE_OFF + 1) & 0xFFFF
        port = low + nxt % num
        if ok(port):
            return SearchResult(port, k + 1), nxt
    return SearchResult(None, num), nxt


def rfc6056_alg5(req: ConnectRequest) -> SearchResult:
    """Algorithm 5, random increments: next += random() % N + 1 per probe (N = 500), at most num probes;
    ``next`` starts at a random 16-bit value."""
    num = req.high - req.low + 1
    nxt = req.state.get("next_ephemeral_inc")
    if nxt is None:
        nxt = req.rng.getrandbits(16)
    result, req.state["next_ephemeral_inc"] = random_increments(req.low, num, nxt, req.rng, req.space.ok)
    return result




@dataclass
class BindRequest:
    """What inet_csk_find_open_port knows: range, SO_REUSEADDR, the two spaces (strict, relaxed)."""

    low: int
    high: int
    reuse: bool                                   # sk->sk_reuse == SK_CAN_REUSE
    space: Callable[[bool], PortSpace]            # relax -> the space of acceptable ports
    autobind_reuse: bool                          # sysctl ip_autobind_reuse (5.7+)
    rng: random.Random


def bind_odd_first(req: BindRequest) -> SearchResult:
    """inet_csk_find_open_port, 4.6+ (ea8add2b1903; relax pass 4b01a9674231).

    A random odd offset, step 2, then the even ports; with SO_REUSEADDR first the lower "half"
    [low, low + ((n >> 2) << 1)) then the upper; with ip_autobind_reuse a second, relaxed round.
    """
    probes = 0
    relax = False
    while True:
        space = req.space(relax)
        attempt_half = 1 if req.reuse else 0
        while True:
            low, high = req.low, req.high + 1
            if high - low < 4:
                attempt_half = 0
            if attempt_half:
                half = low + (((high - low) >> 2) << 1)
                if attempt_half == 1:
                    high = half
                else:
                    low = half
            remaining = high - low
            if remaining > 1:
                remaining &= ~1
            offset = req.rng.randrange(remaining) | 1
            n = (remaining + 1) // 2
            while True:
                port, k = scan_wrapped(space, low + offset, 2, n, high, remaining)
                if port is not None:
                    return SearchResult(port, probes + k + 1)
                probes += n
                offset -= 1
                if not offset & 1:
                    continue
                break
            if attempt_half == 1:
                attempt_half = 2
                continue
            break
        if req.autobind_reuse and not relax:
            relax = True
            continue
        return SearchResult(None, probes)


def bind_random_rover(req: BindRequest) -> SearchResult:
    """inet_csk_get_port, 2.6-4.5: a random rover, sequential step 1 with wrap-around (no parity)."""
    low, high = req.low, req.high + 1
    remaining = high - low
    start = low + req.rng.getrandbits(32) % remaining
    port, k = scan_wrapped(req.space(False), start, 1, remaining, high, remaining)
    return SearchResult(port, remaining if port is None else k + 1)




# --- BSD-family and Windows orders: the range in the OS's terms over the ports the model's test passed ---

@dataclass(slots=True)
class RangeRequest:
    """What a BSD-family (or Windows) port choice knows: the range (``first`` may exceed ``last``: XNU's and
    FreeBSD's low range count down), the name of the cursor it shares, the passing ports as a bitset, the
    protocol, the host's seeded RNG and search state, a sysctl reader and the clock."""

    first: int
    last: int
    cursor: str
    free: int
    proto: str
    rng: random.Random
    state: dict[str, Any]
    sysctl: Callable[[str, int], int]
    now: float = 0.0
    throttle: bool = False        # FreeBSD <= 13.x: randomcps/randomtime (ipport_tick)
    randomize: bool = False       # Windows: a random start (SO_RANDOMIZE_PORT, connect()'s auto-reuse port)


def _cursors(req: RangeRequest) -> dict[str, int]:
    cursors: dict[str, int] = req.state.setdefault("cursors", {})
    return cursors


def _ascending(req: RangeRequest, first: int, last: int, cur: int) -> SearchResult:
    """`do { if (count-- < 0) fail; if (++cur < first || cur > last) cur = first; } while (in use)`, the
    cursor left on the port taken (or the last probe)."""
    n = last - first + 1
    start = cur + 1
    if start < first or start > last:
        start = first
    port, k = scan_wrapped(PortSpace(req.free), start, 1, n, last + 1, n)
    if port is None:
        _cursors(req)[req.cursor] = first + (start - first + n - 1) % n
        return SearchResult(None, n)
    _cursors(req)[req.cursor] = port
    return SearchResult(port, k + 1)


def ipport_tick(req: RangeRequest) -> dict[str, int]:
    """ipport_tick() (FreeBSD <= 13.x, S1), replayed for every whole second since the last replay: more than
    randomcps allocations since the previous tick make allocation sequential for randomtime ticks; ticks
    without that many count stoprandom down. Returns the counters (tcpallocs, tcplastcount, stoprandom,
    last_tick)."""
    t: dict[str, int] = req.state.setdefault(
        "ipport", {"tcpallocs": 0, "tcplastcount": 0, "stoprandom": 0, "last_tick": 0})
    now_tick = int(req.now)
    pending = now_tick - t["last_tick"]
    if pending <= 0:
        return t
    cps = req.sysctl("net.inet.ip.portrange.randomcps", 10)
    randomtime = req.sysctl("net.inet.ip.portrange.randomtime", 45)
    if t["tcpallocs"] <= t["tcplastcount"] + cps:
        if t["stoprandom"] > 0:
            t["stoprandom"] -= 1
    else:
        t["stoprandom"] = randomtime
    t["tcplastcount"] = t["tcpallocs"]
    rest = pending - 1                      # later ticks saw no allocation: each one the same step
    if rest:
        t["stoprandom"] = max(0, t["stoprandom"] - rest) if cps >= 0 else randomtime
    t["last_tick"] = now_tick
    return t


def freebsd_pick(req: RangeRequest) -> SearchResult:
    """in_pcb_lport (S1) / in_pcb_lport_dest (S3): first and last swapped into order; a random cursor
    `first + arc4random() % (last - first)` when randomized (not while ipport_tick has stopped randomness
    for TCP, <= 13.x; never when first == last), else the shared cursor; then `++cursor` with wrap-around,
    every port of the range tried once, the cursor left on the last probe. (14.x divides by last - first
    unguarded; the model keeps 12.x's guard.)"""
    first, last = (req.first, req.last) if req.first <= req.last else (req.last, req.first)
    randomized = req.sysctl("net.inet.ip.portrange.randomized", 1) != 0
    if req.throttle:
        t = ipport_tick(req)
        dorandom = randomized and (not t["stoprandom"] or req.proto == "udp")
        t["tcpallocs"] += 1                 # "pcbinfo != udbinfo || != ulitecbinfo": UDP counts too
    else:
        dorandom = randomized
    if first == last:
        dorandom = False
    cur = _cursors(req).get(req.cursor, 0)
    if dorandom:
        cur = first + req.rng.getrandbits(32) % (last - first)
    return _ascending(req, first, last, cur)


def xnu_pick(req: RangeRequest) -> SearchResult:
    """XNU in_pcbbind, lport == 0 (S6): a random cursor `first + rand_port % (first - last)` (u_short
    rand_port, C remainder) when net.inet.{tcp,udp}.randomize_ports is set, else the shared cursor; counting
    up (first < last) or down (first > last), every port tried once. Restricted ports
    (IS_RESTRICTED_IN_PORT) and Skywalk's netns reservation are not modelled."""
    first, last = req.first, req.last
    randomize = req.sysctl(f"net.inet.{req.proto}.randomize_ports", 1 if req.proto == "udp" else 0)
    cur = _cursors(req).get(req.cursor, 0)
    if first <= last:
        if randomize and first != last:
            cur = first + req.rng.getrandbits(16) % (last - first)
        return _ascending(req, first, last, cur)
    if randomize:
        cur = first - req.rng.getrandbits(16) % (first - last)
    n = first - last + 1
    start = cur - 1
    if start > first or start < last:
        start = first
    port, probes = scan_down(req.free, start, last, first, n)
    if port is not None:
        _cursors(req)[req.cursor] = port
    return SearchResult(port, probes)


def openbsd_pick(req: RangeRequest) -> SearchResult:
    """in_pcbpickport (S5): candidate = lower + arc4random_uniform(higher - lower), then ++candidate with
    wrap-around; baddynamic ports (already out of ``free``) cost a probe each; no cursor is kept."""
    lower, higher = (req.first, req.last) if req.first <= req.last else (req.last, req.first)
    count = higher - lower
    candidate = lower + (req.rng.randrange(count) if count > 0 else 0)
    start = candidate + 1
    if start > higher:
        start = lower
    n = higher - lower + 1
    port, k = scan_wrapped(PortSpace(req.free), start, 1, n, higher + 1, n)
    return SearchResult(None, n) if port is None else SearchResult(port, k + 1)


def windows_pick(req: RangeRequest) -> SearchResult:
    """A random start and a linear probe when ``randomize`` (the docs' "randomized"), else the shared cursor
    plus one (⚠ undocumented order, model choice)."""
    lo, hi = req.first, req.last
    n = hi - lo + 1
    if req.randomize:
        start = lo + req.rng.randrange(n)
    else:
        start = _cursors(req).get(req.cursor, lo - 1) + 1
        if start > hi or start < lo:
            start = lo
    port, k = scan_wrapped(PortSpace(req.free), start, 1, n, hi + 1, n)
    if port is None:
        return SearchResult(None, n)
    if not req.randomize:
        _cursors(req)[req.cursor] = port
    return SearchResult(port, k + 1)


# --- NetBSD portalgo.c: each algorithm keeps its uint16_t next_ephemeral per protocol, family and range ---

def _netbsd(req: RangeRequest, algo: str) -> tuple[int, int, int, str, dict[str, int]]:
    """(mymin, mymax, num, key, next values) of portalgo_randport for ``algo``."""
    mymin, mymax = (req.first, req.last) if req.first <= req.last else (req.last, req.first)
    nexts: dict[str, int] = req.state.setdefault("netbsd_next", {})
    return mymin, mymax, mymax - mymin + 1, f"{req.cursor}:{algo}", nexts


def netbsd_bsd(req: RangeRequest) -> SearchResult:
    """algo_bsd: `myport = next; if out of range myport = max; next = myport - 1`, counting down."""
    mymin, mymax, num, key, nexts = _netbsd(req, "bsd")
    nxt = nexts.get(key, 0)
    start = nxt if mymin <= nxt <= mymax else mymax
    port, probes = scan_down(req.free, start, mymin, mymax, num)
    if port is None:
        nexts[key] = (start - 1) & 0xFFFF
        return SearchResult(None, num)
    nexts[key] = (port - 1) & 0xFFFF
    return SearchResult(port, probes)


def netbsd_random_start(req: RangeRequest) -> SearchResult:
    """algo_random_start (RFC 6056 algorithm 2): a random start, then a linear search with wrap-around."""
    mymin, mymax, num, key, nexts = _netbsd(req, "random_start")
    start = mymin + req.rng.getrandbits(32) % num
    port, k = scan_wrapped(PortSpace(req.free), start, 1, num, mymax + 1, num)
    nexts[key] = port if port is not None else start
    return SearchResult(None, num) if port is None else SearchResult(port, k + 1)


def netbsd_random_pick(req: RangeRequest) -> SearchResult:
    """algo_random_pick: RFC 6056 algorithm 1 (``random_pick``), the first RANDOM_PICK_EXACT_TRIES tries
    drawn one by one."""
    mymin, _, num, _, _ = _netbsd(req, "random_pick")
    free = req.free
    return random_pick(mymin, num, req.rng, lambda p: bool(free >> p & 1), RANDOM_PICK_EXACT_TRIES, free)


def netbsd_hash(req: RangeRequest) -> SearchResult:
    """algo_hash (RFC 6056 algorithm 3), but Fhash() is MD5 under a secret drawn anew on every call."""
    mymin, _, num, key, nexts = _netbsd(req, "hash")
    nxt = nexts.get(key, 0)
    offset = req.rng.getrandbits(16)
    port, probes = mod_walk(req.free, mymin, num, nxt, offset, num)
    nexts[key] = (nxt + probes) & 0xFFFF
    return SearchResult(port, probes)


def netbsd_doublehash(req: RangeRequest) -> SearchResult:
    """algo_doublehash (RFC 6056 algorithm 4) with the static dhtable[8]; G = Fhash() % 8, re-keyed per call."""
    mymin, _, num, _, _ = _netbsd(req, "doublehash")
    table: list[int] = req.state.setdefault("netbsd_dhtable", [])
    if not table or table[0] == 0:
        table[:] = [req.rng.getrandbits(16) for _ in range(8)]
    offset = req.rng.getrandbits(16)
    idx = req.rng.getrandbits(16) % 8
    port, probes = mod_walk(req.free, mymin, num, table[idx], offset, num)
    table[idx] = (table[idx] + probes) & 0xFFFF
    return SearchResult(port, probes)


def netbsd_randinc(req: RangeRequest) -> SearchResult:
    """algo_randinc: RFC 6056 algorithm 5 (``random_increments``); a random 16-bit start whenever next is 0."""
    mymin, _, num, key, nexts = _netbsd(req, "randinc")
    nxt = nexts.get(key, 0)
    if nxt == 0:
        nxt = req.rng.getrandbits(32) & 0xFFFF
    free = req.free
    result, nexts[key] = random_increments(mymin, num, nxt, req.rng, lambda p: bool(free >> p & 1))
    return result


# --- the registry ---

#: A connect search's first try: (profile, search state, rng, low, high, local_ports, port_offset, passes) ->
#: (port, probes), or None when the whole search must run.
FirstTry = Callable[[KernelProfile, dict[str, Any], random.Random, int, int, bool, int, Callable[[int], bool]],
                    tuple[int, int] | None]

@dataclass(frozen=True)
class PortOrder:
    """One port order: its function (for its request type) and what the model must know about it."""

    name: str
    connect: Callable[[ConnectRequest], SearchResult] | None = None
    #: the connect search's common case, when it has one: (port, probes) if one of its first candidates passes,
    #: else None with nothing drawn or changed (see connect_perturb_table_first); the model then runs ``connect``
    connect_first: FirstTry | None = None
    bind: Callable[[BindRequest], SearchResult] | None = None
    pick: Callable[[RangeRequest], SearchResult] | None = None
    #: what an exhausted search returns (NetBSD portalgo.c: EAGAIN for algo_bsd, EINVAL for the others)
    exhausted_errno: int = errno.EADDRNOTAVAIL
    #: draws a fresh random port per try, at most range-size tries: may fail while ports remain
    gives_up_early: bool = False
    #: an implicit bind leaves port 0; the port is chosen once the 4-tuple is known (NetBSD hash algorithms)
    binds_at_connect: bool = False


PORT_ORDERS: dict[str, PortOrder] = {o.name: o for o in (
    PortOrder("perturb-table", connect=connect_perturb_table, connect_first=connect_perturb_table_first),
    PortOrder("hint-two-pass", connect=connect_hint_two_pass),
    PortOrder("hint-even", connect=connect_hint_even),
    PortOrder("hint-scan", connect=connect_hint_scan),
    PortOrder("rfc6056-1", connect=rfc6056_alg1, gives_up_early=True),
    PortOrder("rfc6056-2", connect=rfc6056_alg2),
    PortOrder("rfc6056-3", connect=rfc6056_alg3),
    PortOrder("rfc6056-4", connect=rfc6056_alg4),
    PortOrder("rfc6056-5", connect=rfc6056_alg5, gives_up_early=True),
    PortOrder("odd-first", bind=bind_odd_first),
    PortOrder("random-rover", bind=bind_random_rover),
    PortOrder("freebsd", pick=freebsd_pick),
    PortOrder("xnu", pick=xnu_pick),
    PortOrder("openbsd", pick=openbsd_pick),
    PortOrder("windows", pick=windows_pick, exhausted_errno=errno.ENOBUFS),
    PortOrder("netbsd-bsd", pick=netbsd_bsd, exhausted_errno=errno.EAGAIN),
    PortOrder("netbsd-random-start", pick=netbsd_random_start, exhausted_errno=errno.EINVAL),
    PortOrder("netbsd-random-pick", pick=netbsd_random_pick, exhausted_errno=errno.EINVAL, gives_up_early=True),
    PortOrder("netbsd-hash", pick=netbsd_hash, exhausted_errno=errno.EINVAL, binds_at_connect=True),
    PortOrder("netbsd-doublehash", pick=netbsd_doublehash, exhausted_errno=errno.EINVAL, binds_at_connect=True),
    PortOrder("netbsd-randinc", pick=netbsd_randinc, exhausted_errno=errno.EINVAL, gives_up_early=True),
)}

#: Views of PORT_ORDERS by request type (the model looks orders up here by profile field).
CONNECT_SEARCHES: dict[str, Callable[[ConnectRequest], SearchResult]] = {
    n: o.connect for n, o in PORT_ORDERS.items() if o.connect is not None}
CONNECT_FIRST_TRIES: dict[str, FirstTry] = {
    n: o.connect_first for n, o in PORT_ORDERS.items() if o.connect_first is not None}
BIND_SEARCHES: dict[str, Callable[[BindRequest], SearchResult]] = {
    n: o.bind for n, o in PORT_ORDERS.items() if o.bind is not None}
RANGE_PICKS: dict[str, Callable[[RangeRequest], SearchResult]] = {
    n: o.pick for n, o in PORT_ORDERS.items() if o.pick is not None}
