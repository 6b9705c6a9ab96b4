# TimerQueue keeps constant-length timers (armed in clock order) on a FIFO beside a heap. Its contract is
# the one a single heap of (expiry, arming sequence, sock) entries gives: timers fire in expiry order, ties in
# arming order, a re-armed timer only at its last expiry. These tests hold the FIFO + heap to that reference
# on random arm / re-arm / advance sequences (fixed seeds), and check that TIME_WAITs of a real run expire in
# the order they were entered (TCP_TIMEWAIT_LEN is constant). The connect() search's random_below is held to
# random.Random.randrange, the draw it replaces.
"""TimerQueue: FIFO + heap fire in the order one heap would; random_below draws as randrange."""

from __future__ import annotations

import heapq
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from portalloc import Host
from portalloc.model.sock import Sock
from portalloc.model.tables import TimerQueue


class _HeapReference:
    """The one-heap TimerQueue the FIFO + heap must equal."""

    def __init__(self) -> None:
        self.heap: list[tuple[float, int, int]] = []
        self.seq = 0
        self.expires: dict[int, float | None] = {}

    def arm(self, sid: int, expires: float) -> None:
        self.expires[sid] = expires
        self.seq += 1
        heapq.heappush(self.heap, (expires, self.seq, sid))

    def run_until(self, now: float) -> list[int]:
        fired = []
        while self.heap and self.heap[0][0] <= now:
            expires, _, sid = heapq.heappop(self.heap)
            if self.expires[sid] == expires:
                self.expires[sid] = None
                fired.append(sid)
        return fired


@given(st.lists(st.tuples(st.integers(0, 5), st.integers(0, 9), st.sampled_from([0.0, 1.0, 2.5, 60.0]),
                          st.booleans()), max_size=60))
def test_fifo_and_heap_fire_in_single_heap_order(steps: list[tuple[int, int, float, bool]]) -> None:
    queue, ref = TimerQueue(), _HeapReference()
    socks = {i: Sock(i, 4, "tcp", 0) for i in range(10)}
    now = 0.0
    for advance, sid, length, run in steps:
        now += advance
        queue.arm(socks[sid], now + length)
        ref.arm(sid, now + length)
        if run:
            assert _fired(queue, now) == ref.run_until(now)
    assert _fired(queue, now + 1000) == ref.run_until(now + 1000)
    assert all(sk.expires is None for sk in socks.values())


def _fired(queue: TimerQueue, now: float) -> list[int]:
    fired: list[int] = []
    queue.run_until(now, lambda sk: fired.append(sk.id))
    return fired


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_time_waits_expire_in_entry_order(seed: int) -> None:
    """TCP_TIMEWAIT_LEN is one constant: TIME_WAITs die in the order they were entered, every one on the FIFO."""
    rng = random.Random(seed)
    host = Host("linux-6.8", seed=seed, addresses=["10.0.0.1/24"])
    host.set_peer("10.9.0.0/16", "accept")
    entered: list[int] = []
    for _ in range(200):
        s = host.socket()
        assert s.connect_ex((f"10.9.0.{rng.randrange(1, 4)}", 80)) == 0
        port = s.getsockname()[1]
        s.close()
        entered.append(port)
        host.sleep(rng.choice([0.0, 0.1, 0.7]))
    timers = host._stack.timers
    assert len(timers.entries()) == 200 and not timers._heap
    order: list[int] = []
    timers.run_until(host.time + 61, lambda sk: order.append(sk.lport))
    assert order == entered


@pytest.mark.parametrize("seed", [3, 11, 29])
def test_random_below_is_randrange(seed: int) -> None:
    """connect_perturb_table's get_random_u32_below(8) (strategies.random_below) draws the same numbers, from
    the same stream, as random.Random.randrange, so the model's ports do not depend on which one it calls."""
    from portalloc.kernels.strategies import random_below

    a, b = random.Random(seed), random.Random(seed)
    for n in (1, 2, 7, 8, 9, 16, 1000, 65536):
        assert [random_below(a, n) for _ in range(500)] == [b.randrange(n) for _ in range(500)]
