# PortBits.add_many (the bulk restore and the doctor's bitsets) against add() one port at a time.
#
# Rules: batches below and above _MANY_PORTS (the packed path: one byte per port, eight strided slices, one OR),
# onto empty and filled sets, with duplicates and ports at both ends of 0-65535; the set, its count and its
# membership answers must be those of add() per port. Random batches come from hypothesis (the project's profile).
"""PortBits.add_many == add() per port, on both of its paths."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from portalloc.model import tables
from portalloc.model.tables import PortBits

ports = st.integers(0, 65535)


@settings(max_examples=60)
@given(before=st.lists(ports, max_size=40), batch=st.lists(ports, max_size=40), spread=st.sampled_from([0, 900, 3000]),
       low=st.integers(0, 65535))
def test_add_many_equals_add_per_port(before: list[int], batch: list[int], spread: int, low: int) -> None:
    # a large batch: `spread` ports from `low` on (wrapping below 65536), with the small batch's duplicates
    big = batch + [(low + i * 7) % 65536 for i in range(spread)] + batch
    for added in (batch, big):
        bulk, one = PortBits(), PortBits()
        for p in before:
            bulk.add(p)
            one.add(p)
        bulk.add_many(added)
        for p in added:
            one.add(p)
        assert bulk.bits == one.bits
        assert bulk.count == one.count == one.bits.bit_count()
        assert all((p in bulk) == (p in one) for p in (*added[:50], *before, 0, 65535))


def test_packed_path_at_the_ends_of_the_port_space() -> None:
    bits = PortBits()
    bits.add(3)
    bits.add_many([0, 65535, 3, *range(100, 100 + tables._MANY_PORTS)])
    assert bits.count == 3 + tables._MANY_PORTS
    assert 0 in bits and 65535 in bits and 99 not in bits and 100 + tables._MANY_PORTS not in bits
    assert bits.bits == (1 | 1 << 3 | 1 << 65535 | ((1 << tables._MANY_PORTS) - 1) << 100)
