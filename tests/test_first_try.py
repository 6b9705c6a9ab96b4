# A port order's first try (PortOrder.connect_first, kernels/strategies.py) against its whole search.
#
# Rules: the model takes the first try's answer whenever it gives one, so wherever it answers it must be the whole
# search's answer exactly: the same port, the same probe count, the same table_perturb afterwards and the same RNG
# state (the same draws). Where it does not answer, it must have drawn and changed nothing but the table's creation.
# Hypothesis draws the occupied ports (dense or sparse), the range, IP_LOCAL_PORT_RANGE and the kernel (5.12's
# 256-entry hash32 table with its 1-in-16 noise, 6.x's 64k table with 0..7 random steps).
"""connect_perturb_table_first gives exactly what connect_perturb_table gives, or nothing."""

from __future__ import annotations

import copy
import random

from hypothesis import given
from hypothesis import strategies as st

from portalloc import get_profile
from portalloc.kernels.search import PortSpace
from portalloc.kernels.strategies import (
    CONNECT_FIRST_TRIES,
    ConnectRequest,
    connect_perturb_table,
    connect_perturb_table_first,
)


@given(kernel=st.sampled_from(["linux-5.12", "linux-5.15", "linux-6.8", "linux-6.18"]),
       low=st.integers(1024, 40000), width=st.integers(1, 3000), taken_share=st.sampled_from([0.0, 0.3, 0.9, 1.0]),
       local_ports=st.booleans(), offset=st.integers(0, 2**64 - 1), seed=st.integers(0, 2**32),
       warm=st.booleans())
def test_first_try_is_the_whole_search_or_nothing(kernel: str, low: int, width: int, taken_share: float,
                                                  local_ports: bool, offset: int, seed: int, warm: bool) -> None:
    profile = get_profile(kernel)
    high = min(65535, low + width - 1)
    ports = random.Random(seed)
    free = {p for p in range(low, high + 1) if ports.random() >= taken_share}

    def passes(port: int) -> bool:
        return port in free

    mask = sum(1 << p for p in free)
    state: dict[str, object] = {}
    rng = random.Random(seed ^ 0x5EED)
    if warm:                              # a table drawn before this search (the usual case)
        connect_perturb_table(ConnectRequest(low, high, local_ports, offset ^ 1, PortSpace(mask), rng, state, profile))
    whole_state, whole_rng = copy.deepcopy(state), copy.deepcopy(rng)
    whole = connect_perturb_table(ConnectRequest(low, high, local_ports, offset,
                                                 PortSpace(build=lambda: (mask, 0), quick=passes), whole_rng,
                                                 whole_state, profile))
    rng_before = rng.getstate()
    table_before = copy.deepcopy(state.get("table_perturb"))
    first = connect_perturb_table_first(profile, state, rng, low, high, local_ports, offset, passes)
    if first is not None:
        assert first == (whole.port, whole.probes)
        assert state == whole_state and rng.getstate() == whole_rng.getstate()
    else:
        if table_before is not None:
            assert state.get("table_perturb") == table_before and rng.getstate() == rng_before
        # the whole search from here gives what it gives from the start
        again = connect_perturb_table(ConnectRequest(low, high, local_ports, offset, PortSpace(mask), rng, state,
                                                     profile))
        assert (again.port, again.probes) == (whole.port, whole.probes)
        assert state == whole_state and rng.getstate() == whole_rng.getstate()


def test_the_registry_names_the_first_try() -> None:
    assert CONNECT_FIRST_TRIES == {"perturb-table": connect_perturb_table_first}
