# Port searches over bitsets.
#
# Theory: every kernel port search walks arithmetic progressions of ports (step 1 or 2), wrapping once
# at the top of the range, and takes the first port that passes a test. The model splits the test in
# two: a bitset `free` of ports that pass outright (built with a few whole-bitset operations from the
# tables), and a bitset `soft` of ports that need a per-port look (a TIME_WAIT that may or may not be
# reusable, an owner that may or may not conflict). `PortSpace.first` finds the first candidate of a
# progression with shifts and masks (C-level word operations), checks soft candidates one by one, and
# reports the index the kernel's loop would have reached, so probe counts and the perturbation
# increments stay exact without walking the ports in Python.
"""Bitset search spaces and the wrapped progression scan every kernel loop uses."""

from __future__ import annotations

from collections.abc import Callable

#: Bits 0, 2, 4, ... far enough for any step-2 scan of the 16-bit port space.
_EVERY_OTHER = int.from_bytes(b"\x55" * (2 * 65536 // 8 + 8), "little")


#: Candidates a lazily built PortSpace tests one by one (with ``quick``) before it builds its bitsets: one
#: look costs about a tenth of a build over a 28k-port range (measured on the bench scenario, issue 11).
QUICK_TRIES = 8


def range_mask(low: int, high: int) -> int:
    """Bitset of ports low..high inclusive."""
    if high < low:
        return 0
    return ((1 << (high - low + 1)) - 1) << low


class PortSpace:
    """The ports a search may take: ``free`` pass outright, ``soft`` pass if ``soft_ok(port)`` says so.

    ``soft`` ports must also be set in ``free``. Rejected soft ports are cleared from ``free`` so a
    later scan does not look at them again.

    Built lazily when ``build`` is given: ``quick(port)`` then answers for the first QUICK_TRIES candidates
    of a scan (most searches end there: at low occupancy on the first), and ``build()`` → (free, soft) runs
    only when all of those are taken. ``quick`` must be exact both ways: True means the port passes, False
    that it does not.
    """

    __slots__ = ("_free", "soft", "soft_ok", "_build", "_quick")

    def __init__(self, free: int = 0, soft: int = 0, soft_ok: Callable[[int], bool] | None = None, *,
                 build: Callable[[], tuple[int, int]] | None = None,
                 quick: Callable[[int], bool] | None = None) -> None:
        self._free: int | None = None if build is not None else free | soft
        self.soft = soft
        self.soft_ok = soft_ok
        self._build = build
        self._quick = quick

    @property
    def free(self) -> int:
        """The bitset of candidate ports (built on first use)."""
        if self._free is None:
            assert self._build is not None
            free, self.soft = self._build()
            self._free = free | self.soft
        return self._free

    @free.setter
    def free(self, value: int) -> None:
        self._free = value

    def passes_quickly(self, port: int) -> bool:
        """Does ``port`` pass by the quick test alone (no bitset built)? False also when that cannot tell: the
        caller then scans as usual, and the scan's answer for ``port`` is the same."""
        quick = self._quick
        return quick is not None and self._free is None and quick(port)

    def ok(self, port: int) -> bool:
        """Does this single port pass?"""
        if self._free is None and self._quick is not None and self._quick(port):
            return True
        if not (self.free >> port) & 1:
            return False
        if (self.soft >> port) & 1:
            assert self.soft_ok is not None
            if not self.soft_ok(port):
                self.free &= ~(1 << port)
                return False
        return True

    def first(self, start: int, step: int, count: int) -> int | None:
        """Index k of the first passing port among ``start + step*k`` for 0 <= k < count, or None."""
        if count <= 0:
            return None
        quick = self._quick
        if self._free is None and quick is not None:
            # One look per candidate costs less than building the whole-range bitsets, up to a few looks.
            for k in range(min(count, QUICK_TRIES)):
                if quick(start + step * k):
                    return k
        if step not in (1, 2):
            for k in range(count):
                if self.ok(start + step * k):
                    return k
            return None
        # The candidates are bits 0, step, 2*step, ... of free >> start; the first set one below step*count wins.
        limit = step * count
        while True:
            m = self.free >> start
            if step == 2:
                m &= _EVERY_OTHER
            if not m:
                return None
            b = (m & -m).bit_length() - 1
            if b >= limit:
                return None
            port = start + b
            if (self.soft >> port) & 1 and not self.ok(port):
                continue
            return b // step


def scan_wrapped(space: PortSpace, start: int, step: int, n: int, high: int, remaining: int) -> tuple[int | None, int]:
    """The kernel's ``for (i = 0; i < n*step; i += step, port += step) if (port >= high) port -= remaining``.

    Returns (port, k) for the first passing port at loop index k, or (None, n) when none passes.
    """
    count_a = max(0, min(n, (high - start + step - 1) // step))
    k = space.first(start, step, count_a)
    if k is not None:
        return start + step * k, k
    if n > count_a:
        start_b = start + step * count_a - remaining
        k = space.first(start_b, step, n - count_a)
        if k is not None:
            return start_b + step * k, count_a + k
    return None, n


def scan_down(free: int, start: int, low: int, high: int, count: int) -> tuple[int | None, int]:
    """A downward walk from ``start`` wrapping from ``low`` to ``high``, at most ``count`` ports: the first
    free port and the number of ports examined (NetBSD algo_bsd, XNU's counting-down branch)."""
    below = free & range_mask(low, start)
    if below:
        port = below.bit_length() - 1
        k = start - port + 1
        return (port, k) if k <= count else (None, count)
    above = free & range_mask(start + 1, high)
    if above:
        port = above.bit_length() - 1
        k = (start - low + 1) + (high - port + 1)
        return (port, k) if k <= count else (None, count)
    return None, count


def mod_walk(free: int, low: int, num: int, counter: int, offset: int, count: int) -> tuple[int | None, int]:
    """Ports ``low + (((counter + k) & 0xFFFF) + offset) % num`` for k < count (RFC 6056 algorithms 3 and
    4 with NetBSD's uint16_t counters): the first free one and the probes, or (None, count)."""
    k0 = 0
    space = PortSpace(free)
    while k0 < count:
        c = (counter + k0) & 0xFFFF
        seg = min(count - k0, 0x10000 - c, num)
        port, k = scan_wrapped(space, low + (c + offset) % num, 1, seg, low + num, num)
        if port is not None:
            return port, k0 + k + 1
        k0 += seg
    return None, count
