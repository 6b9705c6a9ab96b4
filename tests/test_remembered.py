# What the model remembers to go faster never changes what it answers.
#
# Rules: the Linux Stack keeps three things between calls only for speed (docs/design.md, "Speed without walking
# ports"): tcp_connect's route decisions for fresh sockets (Stack._routes), tcp_tw_reuse's answer per destination
# until a sysctl changes (Stack._reuse_memo), and the connect search's first try (Stack._first_try,
# PortOrder.connect_first). The same random trace (portalloc verify's distribution: every op, address class,
# option, sysctl and sleep it makes) runs on two model hosts of one kernel and seed, one as built and one that
# remembers nothing and always runs the whole search; every op's result and port, the counters and the final
# socket table must be equal.
"""The route memo, the reuse memo and the first try are invisible: the same outcomes without them."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from helpers import examples
from portalloc import get_profile
from portalloc.kernels.sysctls import specs_for
from portalloc.trace import run_trace
from portalloc.trace.runner import build_host
from portalloc.trace.strategies import seeded_traces


class _Forgetful(dict[Any, Any]):
    """A memo that never keeps anything: every lookup misses."""

    def __setitem__(self, key: Any, value: Any) -> None:
        pass


def _outcomes(trace: Any, kernel: str, remember: bool) -> tuple[list[tuple[str, int | None]], Any, Any]:
    host: Any = build_host(trace, kernel=kernel)
    if not remember:
        stack = host._stack
        stack._routes = _Forgetful()
        stack._reuse_memo = _Forgetful()
        stack._first_try = None
    out = run_trace(trace, host)
    table = sorted((r.proto, r.state, str(r.local), str(r.remote)) for r in host.sockets())
    return [(o.result, o.port) for o in out], host.stats, table


@pytest.mark.parametrize("kernel", ["linux-6.18", "linux-5.12", "linux-4.6", "linux-3.10"])
@settings(max_examples=examples(60), deadline=None)
@given(data=st.data())
def test_memos_and_first_try_change_no_outcome(kernel: str, data: st.DataObject) -> None:
    trace = data.draw(seeded_traces())
    known = specs_for(get_profile(kernel))                 # the generator writes the newest kernel's sysctls
    trace.header["sysctls"] = {k: v for k, v in trace.header.get("sysctls", {}).items() if k in known}
    assert _outcomes(trace, kernel, True) == _outcomes(trace, kernel, False)
