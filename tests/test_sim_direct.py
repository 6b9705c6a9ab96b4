# The engine's direct path (docs/simulate.md, "The direct path") against the reference path: the same scenario
# and seed give the same ports, errnos and whole Result document, whether a plain TCP connect() goes through
# the Socket API (Host.socket, Socket.connect_ex, Socket.close, Host.sleep) or straight to the Stack calls that
# API makes after its argument checks (Stack.new_sock, stream_connect, close, advance).
#
# Rules: hypothesis draws the scenarios under the project's profile (derandomized in CI); every port the model's
# search hands out is recorded on both paths (wrappers around the first try and the whole search that
# Stack.connect_search calls, which both paths reach) and compared in order, with the errno counts, the hosts'
# counters and final socket tables, and Result.to_dict().
"""The direct path gives exactly what the reference path gives."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from helpers import examples
from portalloc.kernels.strategies import CONNECT_SEARCHES
from portalloc.sim import Scenario, example, list_examples, simulate
from portalloc.sim.engine import Engine, model_host_factory
from portalloc.sim.result import build_result


def _document(res: Any) -> dict[str, Any]:
    """Result.to_dict() without its wall-clock figures (the fixes' rows carry none)."""
    d = res.to_dict()
    d.pop("wall_s", None)
    return d


def _run(sc: Scenario, direct: bool) -> tuple[dict[str, Any], list[list[int | None]], list[Any]]:
    """One engine run: (its document, the ports each fleet host's connect() search returned in order, and each
    host's counters and final socket table)."""
    make = model_host_factory(sc)
    ports: list[list[int | None]] = []
    by_state: dict[int, list[int | None]] = {}       # each host's record, by its search_state's identity

    def factory(i: int) -> Any:
        host = make(i)
        stack = host._stack
        seen: list[int | None] = []
        ports.append(seen)
        by_state[id(stack.search_state)] = seen
        first = stack._first_try
        if first is not None:
            def recording_first(*args: Any) -> tuple[int, int] | None:
                found = first(*args)
                if found is not None:
                    seen.append(found[0])
                return found

            stack._first_try = recording_first
        hosts.append(host)
        return host

    def recording(search: Any) -> Any:
        def recording_search(req: Any) -> Any:
            result = search(req)
            by_state[id(req.state)].append(result.port)
            return result
        return recording_search

    # Stack.connect_search hands out the first try's port, else the whole search's (its registry entry): both
    # are recorded. (A compiled Stack's methods cannot be wrapped; its callables and registries can.)
    searches = dict(CONNECT_SEARCHES)
    CONNECT_SEARCHES.update({name: recording(fn) for name, fn in searches.items()})
    hosts: list[Any] = []
    try:
        run = Engine(sc, host_factory=factory, direct=direct).run()
    finally:
        CONNECT_SEARCHES.update(searches)
    state = [(h.stats, [(r.state, r.local, r.remote) for r in h.sockets()], round(h.time, 9)) for h in hosts]
    return _document(build_result(run)), ports, state


_DESTS = ["10.1.0.5:443", "10.1.0.6:443", "10.1.0.0/30:80", "192.0.2.7:8443"]
_DESTS6 = ["[2001:db8:1::5]:443", "[2001:db8:1::6]:443", "[2001:db8::9]:80"]


@st.composite
def direct_scenarios(draw: st.DrawFn) -> dict[str, Any]:
    """Small scenarios that qualify for the direct path (TCP connect() toward remote IPv4 or IPv6 peers, closed by
    the client or the server) and often run out of a narrow range, with now and then a workload that does not qualify
    (UDP, bind-before-connect, a local listener) running beside it, on one host or a fleet of two."""
    lo = draw(st.integers(30000, 40000))
    width = draw(st.sampled_from([3, 7, 15, 40, 300]))
    v6 = draw(st.integers(0, 3)) == 0
    workloads = [{
        "name": "direct", "proto": "tcp", "technique": "connect",
        "to": draw(st.lists(st.sampled_from(_DESTS6 if v6 else _DESTS), min_size=1, max_size=3, unique=True)),
        "rate": draw(st.sampled_from([5, 20, 60, 150])),
        "arrivals": draw(st.sampled_from(["constant", "poisson"])),
        "hold": draw(st.sampled_from([0.0, 0.05, 0.7, {"exponential": 0.5}, {"lognormal": 0.3, "sigma": 0.8}])),
        "closes": draw(st.sampled_from(["client", "server"])),
        "source": [] if v6 else draw(st.sampled_from([[], ["10.0.0.1"]])),
    }]
    other = None if v6 else draw(st.sampled_from([None, "udp", "bind-before-connect", "local"]))
    if other == "udp":
        workloads.append({"name": "udp", "proto": "udp", "to": ["10.1.0.5:53"], "rate": 20, "hold": 0.4})
    elif other == "bind-before-connect":
        workloads.append({"name": "bbc", "to": ["10.1.0.5:443"], "rate": 10, "hold": 0.3,
                          "technique": "bind-before-connect", "source": ["10.0.0.1"]})
    elif other == "local":
        workloads.append({"name": "local", "to": ["10.0.0.1:8080"], "rate": 10, "hold": 0.3})
    sysctls: dict[str, Any] = {"net.ipv4.ip_local_port_range": f"{lo} {lo + width}",
                               "net.ipv4.tcp_tw_reuse": draw(st.sampled_from([0, 1, 2]))}
    kernel = draw(st.sampled_from(["linux-6.18", "linux-5.15", "linux-4.19", "linux-3.10"]))
    d: dict[str, Any] = {"duration": draw(st.sampled_from([1.5, 3, 70])), "seed": draw(st.integers(0, 2**16)),
                         "host": {"kernel": kernel, "sysctls": sysctls,
                                  "addresses": ["10.0.0.1/24", "10.0.0.2/24", "2001:db8::1/64"]},
                         "workload": workloads}
    if draw(st.booleans()):
        d["fleet"] = {"hosts": 2}
    return d


@settings(max_examples=examples(40), deadline=None)
@given(d=direct_scenarios())
def test_direct_path_gives_the_reference_ports_errnos_and_document(d: dict[str, Any]) -> None:
    """Every port, every errno count, the hosts' final tables and the whole document are the same on both paths."""
    sc = Scenario.from_dict(d)
    doc_ref, ports_ref, state_ref = _run(sc, direct=False)
    doc_direct, ports_direct, state_direct = _run(sc, direct=True)
    assert ports_direct == ports_ref
    assert state_direct == state_ref
    assert doc_direct == doc_ref


def test_direct_path_is_taken_and_runs_out_like_the_reference() -> None:
    """The comparison is not vacuous: a client-closing workload toward one destination from a 16-port range
    runs out (TIME_WAIT holds each port 60 s) with EADDRNOTAVAIL on both paths, and the direct path did
    serve it (its connections never made a model Socket)."""
    from portalloc.model import host as host_module

    d = {"duration": 3, "seed": 5, "host": {"kernel": "linux-6.18", "addresses": ["10.0.0.1/24"],
                                           "sysctls": {"net.ipv4.ip_local_port_range": "40000 40015"}},
         "workload": [{"name": "w", "to": ["10.1.0.5:443"], "rate": 20, "hold": 0.1}]}
    sc = Scenario.from_dict(d)
    made = 0
    real_init = host_module.Socket.__init__

    def counting_init(self: Any, *args: Any) -> None:
        nonlocal made
        made += 1
        real_init(self, *args)

    host_module.Socket.__init__ = counting_init    # type: ignore[method-assign]
    try:
        doc_direct, ports_direct, _ = _run(sc, direct=True)
        direct_sockets = made
        made = 0
        doc_ref, ports_ref, _ = _run(sc, direct=False)
    finally:
        host_module.Socket.__init__ = real_init    # type: ignore[method-assign]
    assert made == 60 and direct_sockets == 1      # only the first connection learns the route
    assert doc_direct == doc_ref and ports_direct == ports_ref
    assert doc_ref["connected"] == 16 and doc_ref["failed"] == {"EADDRNOTAVAIL": 44}


def test_bundled_examples_same_document_on_both_paths() -> None:
    """Each bundled example, its fixes' variants included, gives the same whole document on both paths (cut to
    its first 8 simulated seconds: the examples in full take minutes on the reference path)."""
    for name in list_examples():
        full = example(name)
        sc = Scenario.from_dict({**full.to_dict(), "duration": min(full.duration, 8.0)})
        assert _document(simulate(sc, direct=True)) == _document(simulate(sc, direct=False)), name
