# The small functions that differ between kernels: how connect() and bind(0) walk the port range.
#
# Rules: a strategy gets a request (effective range, the hash of the destination, a PortSpace that
# answers "may this port be taken?", the host's seeded RNG and its boot-time state) and returns the
# port plus the number of ports the kernel's loop examined. Strategies decide order only; whether a port
# may be taken is the model's test (model/stack.py `connect_test` for connect(), the bind conflict
# predicates of model/conflict.py for bind(0)), the same for all.
# Each names the kernel function and commit it follows.
"""connect() and bind(0) search strategies, by profile name."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from portalloc.kernels.profile import KernelProfile
from portalloc.kernels.search import PortSpace, scan_wrapped

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


def _parity_passes(req: ConnectRequest, offset: int, step: int, remaining: int) -> tuple[int | None, int, int]:
    """The 4.6+ inner loop: a step-``step`` pass from ``low+offset``, then (step 2) the other parity.

    Returns (port, i, probes) where ``i`` is the loop variable of the successful pass (i = k*step).
    """
    low, high = req.low, req.high + 1
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


def _perturb_table(req: ConnectRequest) -> list[int]:
    table = req.state.get("table_perturb")
    if table is None:
        size = req.profile.perturb_table_size
        table = req.state["table_perturb"] = [req.rng.getrandbits(32) for _ in range(size)]
    return table


def connect_perturb_table(req: ConnectRequest) -> SearchResult:
    """__inet_hash_connect, 5.12+ (RFC 6056 algorithm 4; 190cc82489f4, 4c2c8f03a5ab, ca7af0402550, 207184853dbd).

    index/offset from table_perturb and port_offset; step 2 over low's parity, then the other parity
    (step 1, one pass, no rounding under IP_LOCAL_PORT_RANGE since 6.8); on success the table entry
    advances by i + step, i first raised to a random 0..7 steps (5.18) or, 5.12, by 2 in 1/16 of the
    cases where the first candidate was taken.
    """
    p = req.profile
    step = 1 if (req.local_ports and p.local_range_step_one) else 2
    remaining = req.high + 1 - req.low
    if step == 2 and remaining > 1:
        remaining &= ~1
    table = _perturb_table(req)
    po = req.port_offset
    if p.perturb_index == "low-bits":
        index = po & (p.perturb_table_size - 1)
        offset = (table[index] + (po >> 32)) & M32
    else:
        index = hash_32(po & M32, (p.perturb_table_size - 1).bit_length())
        offset = (table[index] + po) & M32
    offset %= remaining
    if step == 2:
        offset &= ~1
    port, i, probes = _parity_passes(req, offset, step, remaining)
    if port is None:
        return SearchResult(None, probes)
    if p.perturb_increment == "random-0-to-7-steps":
        i = max(i, req.rng.randrange(8) * step)          # get_random_u32_below(8) * step
    elif p.perturb_increment == "noise-1-in-16" and i == 0 and req.rng.randrange(16) == 0:
        i = 2
    table[index] = (table[index] + i + step) & M32
    return SearchResult(port, probes)


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

def rfc6056_alg1(req: ConnectRequest) -> SearchResult:
    """Algorithm 1, simple port randomization: a fresh random pick on every probe, at most num probes."""
    num = req.high - req.low + 1
    for k in range(num):
        port = req.low + req.rng.getrandbits(32) % num
        if req.space.ok(port):
            return SearchResult(port, k + 1)
    return SearchResult(None, num)


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


def rfc6056_alg5(req: ConnectRequest) -> SearchResult:
    """Algorithm 5, random increments: next += random() % N + 1 per probe (N = 500), at most num probes."""
    num = req.high - req.low + 1
    nxt = req.state.get("next_ephemeral_inc")
    if nxt is None:
        nxt = req.rng.getrandbits(16)
    for k in range(num):
        nxt = (nxt + req.rng.getrandbits(32) % RFC6056_TRADE_OFF + 1) & 0xFFFF
        port = req.low + nxt % num
        if req.space.ok(port):
            req.state["next_ephemeral_inc"] = nxt
            return SearchResult(port, k + 1)
    req.state["next_ephemeral_inc"] = nxt
    return SearchResult(None, num)


CONNECT_SEARCHES: dict[str, Callable[[ConnectRequest], SearchResult]] = {
    "perturb-table": connect_perturb_table,
    "hint-two-pass": connect_hint_two_pass,
    "hint-even": connect_hint_even,
    "hint-scan": connect_hint_scan,
    "rfc6056-1": rfc6056_alg1,
    "rfc6056-2": rfc6056_alg2,
    "rfc6056-3": rfc6056_alg3,
    "rfc6056-4": rfc6056_alg4,
    "rfc6056-5": rfc6056_alg5,
}


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


BIND_SEARCHES: dict[str, Callable[[BindRequest], SearchResult]] = {
    "odd-first": bind_odd_first,
    "random-rover": bind_random_rover,
}
