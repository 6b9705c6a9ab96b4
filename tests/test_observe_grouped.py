# The doctor's per-destination bookkeeping against its definitions, on random socket tables.
#
# Rules: HostSnapshot.classify groups client rows by the (local text, remote) objects as read and looks a group up
# again only when those objects change (a dump hands out one remote tuple per endpoint: live/diag.py parse_chunks);
# headroom() reads the groups' counts and explicit_bits() classify's own lists instead of passing over the rows.
# These tests hold that bookkeeping to the plain definitions, row by row (module comment of observe/snapshot.py):
# the same classification, role lists, counts, notes and bind-locked ports whether rows share their tuples or
# not, in any order, and Stack.restore_timewaits gives the same tables for shared and fresh endpoint tuples.
"""classify / headroom / explicit_bits == their row-by-row definitions; shared tuples change nothing."""

from __future__ import annotations

import random
from collections import defaultdict

from hypothesis import given, settings
from hypothesis import strategies as st

from portalloc.observe.snapshot import HostSnapshot, SockRow, bitset, wire
from test_restore_bulk import _state

LOCALS = {4: ["127.0.0.1", "127.0.0.2"], 6: ["::1", "::ffff:127.0.0.1"]}
REMOTES = {4: ["127.0.0.1", "127.0.0.3"], 6: ["::1", "::ffff:127.0.0.1"]}
STATES = ["ESTAB", "TIME-WAIT", "FIN-WAIT-2", "FIN-WAIT-2", "SYN-SENT"]

row_spec = st.tuples(st.sampled_from(["client"] * 6 + ["listener", "bound", "udp", "udp-connected"]),
                     st.sampled_from([4, 6]), st.integers(0, 1), st.integers(39990, 40070), st.integers(0, 1),
                     st.integers(5000, 5002), st.integers(0, len(STATES) - 1), st.integers(0, 60_000))


def _rows(specs: list[tuple[int | str, ...]], share: bool) -> list[SockRow]:
    """Rows for ``specs``; ``share``: one remote tuple per endpoint and one text object per address (as
    parse_chunks makes them), else a fresh tuple and text for every row."""
    endpoints: dict[tuple[str, int], tuple[str, int]] = {}

    def endpoint(host: str, port: int) -> tuple[str, int]:
        if share:
            return endpoints.setdefault((host, port), (host, port))
        return ("".join(list(host)), port)          # an equal text that is another object

    rows = []
    for kind, fam, li, lport, ri, rport, si, left_ms in specs:
        assert isinstance(fam, int) and isinstance(li, int) and isinstance(ri, int) and isinstance(si, int)
        assert isinstance(lport, int) and isinstance(rport, int) and isinstance(left_ms, int)
        local = (LOCALS[fam][li] if share else "".join(list(LOCALS[fam][li])), lport)
        remote = endpoint(REMOTES[fam][ri], rport)
        if kind == "listener":
            rows.append(SockRow("tcp", fam, "LISTEN", (local[0], 5000 + rport % 3), None))
        elif kind == "bound":
            rows.append(SockRow("tcp", fam, "UNCONN", local, None))
        elif kind == "udp":
            rows.append(SockRow("udp", fam, "UNCONN", local, None))
        elif kind == "udp-connected":
            rows.append(SockRow("udp", fam, "ESTAB", local, remote))
        else:
            state = STATES[si]
            timer = left_ms / 1000 if state in ("TIME-WAIT", "FIN-WAIT-2") and left_ms % 3 else None
            rows.append(SockRow("tcp", fam, state, local, remote, 0, timer))
    return rows


def _snap(rows: list[SockRow]) -> HostSnapshot:
    return HostSnapshot(rows=rows, sysctls={"net.ipv4.ip_local_port_range": "40000 40063",
                                            "net.ipv4.ip_local_reserved_ports": "40010-40011",
                                            "net.ipv4.tcp_tw_reuse": "1"},
                        source="sock_diag", kernel_release="6.18.0")


def _classes(snap: HostSnapshot) -> list[tuple[object, ...]]:
    return [(c.row.proto, c.row.state, c.row.local, c.row.remote, c.role, c.chosen_by, c.inferred)
            for c in snap.classify()]


@settings(max_examples=60)
@given(specs=st.lists(row_spec, max_size=80), seed=st.integers(0, 2**16))
def test_grouped_bookkeeping_equals_row_by_row_definitions(specs: list[tuple[int | str, ...]], seed: int) -> None:
    shared, fresh = _snap(_rows(specs, share=True)), _snap(_rows(specs, share=False))
    assert _classes(shared) == _classes(fresh)
    # of_role / client_binders: the rows of that role, the clients whose port bind() chose
    for role in ("listener", "bound", "child", "udp", "client"):
        assert shared.of_role(role) == [c for c in shared.classify() if c.role == role]
    assert sorted(map(id, shared.client_binders())) == sorted(
        id(c) for c in shared.classify() if c.role == "client" and c.chosen_by == "bind")
    # explicit_bits: ports of the rows whose port bind()/listen() chose, per protocol
    for proto in ("tcp", "udp"):
        expected = bitset([c.row.local[1] for c in shared.classify() if c.row.proto == proto
                           and c.chosen_by == "bind"])
        assert shared.explicit_bits(proto) == expected == fresh.explicit_bits(proto)
    # headroom's counts: per (proto, src, dst, dport) on the wire, every client connection and TIME_WAIT and
    # every connected UDP socket, row by row; notes = the rows' inferences
    counts: dict[tuple[str, str, str, int], list[int]] = defaultdict(lambda: [0, 0])
    notes: dict[tuple[str, str, str, int], set[str]] = defaultdict(set)
    tw_ports: dict[tuple[str, str, str, int], list[int]] = defaultdict(list)
    for c in shared.classify():
        r = c.row
        if r.remote is None or c.role in ("child", "listener"):
            continue
        key = (r.proto, wire(r.local[0]), wire(r.remote[0]), r.remote[1])
        tw = r.state == "TIME-WAIT" or (r.state == "FIN-WAIT-2" and r.timer is not None)
        counts[key][1 if tw else 0] += 1
        if tw:
            tw_ports[key].append(r.local[1])
        if c.inferred:
            notes[key].add(c.inferred)
    model = shared.to_model()
    got = shared.headroom(host=model)
    assert [(h.proto, h.src, h.dst, h.dport) for h in got] == sorted(counts)
    for h in got:
        key = (h.proto, h.src, h.dst, h.dport)
        usable = model.usable_ports((h.dst, h.dport), proto=h.proto, src=h.src)
        assert (h.in_use, h.time_wait, h.inferred) == (counts[key][0], counts[key][1], sorted(notes[key]))
        assert h.reusable_time_wait == (bitset(tw_ports[key]) & usable.bits).bit_count()
        assert h.headroom == len(usable)
    assert fresh.headroom(host=fresh.to_model()) == got
    # the rebuilt tables do not depend on whether entries share their tuples, nor on the rows' order
    assert _state(fresh.to_model()) == _state(shared.to_model())
    rows = list(shared.rows)
    random.Random(seed).shuffle(rows)
    shuffled = _snap(rows)
    assert sorted(_classes(shuffled), key=repr) == sorted(_classes(shared), key=repr)
    assert shuffled.headroom() == shared.headroom()
