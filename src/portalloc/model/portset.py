# PortSet: the answer of the port query ("which ports could a new connect() use now?").
#
# Rules:
# - Immutable: a PortSet is a snapshot of an integer bitset (bit p = port p), the form every table already
#   keeps (tables.PortBits.bits) and every search builds (search.PortSpace). Building one is a handful of
#   whole-bitset operations, never a Python step per port.
# - len() is int.bit_count() (one C call); `in` is one shift and mask; iteration is ascending and costs
#   one step per member (lowest set bit, then clear it), never a step per port of the range.
# - Theory: the query (Stack.usable_ports, Host.usable_ports) only tests; a port order (kernels/strategies.py,
#   the BSD and Windows orders) only orders. A PortSet is what the test passes, whatever the order.
"""PortSet: an immutable set of ports over an integer bitset."""

from __future__ import annotations

from collections.abc import Iterable, Iterator


class PortSet:
    """An immutable set of ports 0-65535, kept as an integer bitset (bit p set = port p in the set).

    ``len()``, ``in`` and ``bool()`` are O(1) C-level operations; iteration yields the ports in ascending
    order at one step per member. ``bits`` is the bitset itself, for callers that combine sets.
    """

    __slots__ = ("_bits", "_count")

    def __init__(self, bits: int = 0) -> None:
        if bits < 0:
            raise ValueError("a PortSet bitset cannot be negative")
        self._bits = bits
        self._count = bits.bit_count()

    @classmethod
    def of(cls, ports: Iterable[int]) -> PortSet:
        """A PortSet of an iterable of port numbers (for tests and callers; one step per port given)."""
        bits = 0
        for p in ports:
            if not isinstance(p, int) or not 0 <= p <= 0xFFFF:
                raise ValueError(f"a port is an integer 0-65535, not {p!r}")
            bits |= 1 << p
        return cls(bits)

    @property
    def bits(self) -> int:
        """The set as an integer bitset."""
        return self._bits

    @property
    def count(self) -> int:
        """The number of ports in the set (same as ``len()``)."""
        return self._count

    def __len__(self) -> int:
        return self._count

    def __bool__(self) -> bool:
        return self._bits != 0

    def __contains__(self, port: object) -> bool:
        return isinstance(port, int) and 0 <= port <= 0xFFFF and bool(self._bits >> port & 1)

    def __iter__(self) -> Iterator[int]:
        m = self._bits
        while m:
            low = m & -m
            yield low.bit_length() - 1
            m ^= low

    def __eq__(self, other: object) -> bool:
        if isinstance(other, PortSet):
            return self._bits == other._bits
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self._bits)

    def __and__(self, other: PortSet) -> PortSet:
        return PortSet(self._bits & other._bits)

    def __or__(self, other: PortSet) -> PortSet:
        return PortSet(self._bits | other._bits)

    def __sub__(self, other: PortSet) -> PortSet:
        return PortSet(self._bits & ~other._bits)

    @property
    def first(self) -> int | None:
        """The lowest port in the set, or None when it is empty."""
        m = self._bits
        return (m & -m).bit_length() - 1 if m else None

    @property
    def last(self) -> int | None:
        """The highest port in the set, or None when it is empty."""
        return self._bits.bit_length() - 1 if self._bits else None

    def __repr__(self) -> str:
        if not self._bits:
            return "PortSet()"
        return f"PortSet(count={self._count}, first={self.first}, last={self.last})"


#: The empty set.
EMPTY_PORTS = PortSet()
