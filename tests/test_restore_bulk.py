# The bulk TIME_WAIT restore (Host.restore_timewaits / Stack.restore_timewaits, used by portalloc.observe to
# rebuild ~100k TIME_WAITs) against the reference it replaces: per TIME_WAIT, sleep to its entry time, then
# Host.restore(state="TIME_WAIT").
#
# Rules: on random tables (hypothesis, the project's profile) the two hosts must hold the same tables - every
# Sock's fields, bind buckets (owners in order), slots, the explicit bitset, ehash entries, per-destination
# bitsets and young queues, the timers - and answer the same usable_ports (the headroom query), before and
# after time passes. Entry times are multiples of 1 ms, as sock_diag reports timers. tcp_tw_recycle (4.1)
# takes the one-by-one path inside the bulk call; it is covered too. The snapshot level: HostSnapshot's
# rebuild with bulk=True and bulk=False gives the same headroom rows.
"""Bulk TIME_WAIT restore == one restore() per TIME_WAIT, on random tables."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from portalloc.model.host import Host
from portalloc.model.sock import SOCK_FIELDS
from portalloc.model.tables import PortBits
from portalloc.observe.snapshot import HostSnapshot, SockRow

LOCALS = [(4, "127.0.0.1"), (4, "127.0.0.2"), (6, "::1"), (6, "::ffff:127.0.0.1")]
REMOTES = {4: ["127.0.0.1", "127.0.0.3"], 6: ["::1", "::ffff:127.0.0.1"]}
KERNELS = ["linux-6.18", "linux-6.1", "linux-4.1"]

tw_entry = st.tuples(st.integers(0, 3), st.integers(0, 1), st.integers(40000, 40031), st.sampled_from([5000, 5001]),
                     st.integers(0, 60_000), st.booleans(), st.booleans())


def _bits(p: PortBits) -> tuple[int, int]:
    assert p.count == p.bits.bit_count()
    return p.bits, p.count


def _state(host: Host) -> dict[str, Any]:
    """Everything the tables hold, with Socks named by id."""
    stack: Any = host._stack
    socks = {}
    for sid, sk in stack.socks.items():
        fields = {}
        for name in SOCK_FIELDS:
            v = getattr(sk, name)
            fields[name] = v.id if hasattr(v, "id") and name in ("parent",) else (type(v).__name__ if name == "peer"
                                                                                  else v)
        fields.pop("accept_queue")
        fields.pop("rx")
        socks[sid] = fields
    tcp = stack.tcp
    buckets = {p: ([o.id for o in b.owners], b.explicit_owners, b.ever_explicit) for p, b in tcp.buckets.items()}
    slots = {k: (dict(s.counts), _bits(s.ports)) for k, s in tcp.slots.items()}
    dests = {k: (_bits(d.live), _bits(d.tw), _bits(d.tw_hard), _bits(d.young),
                 [(st_, p, sk.id) for st_, p, sk in (d.young_q or ())]) for k, d in stack.ehash.dests.items()}
    timers = sorted((e, sk.id) for e, _, sk in stack.timers.entries())
    return {"now": stack.now, "next_id": stack.next_id, "socks": socks, "buckets": buckets, "slots": slots,
            "explicit": _bits(tcp.explicit), "by_tuple": {t: sk.id for t, sk in stack.ehash.by_tuple.items()},
            "dests": dests, "timers": timers}


def _host(kernel: str, reuse: int, recycle: bool) -> Host:
    host = Host(kernel, seed=3, addresses=["127.0.0.1/8", "::1/128"])
    host.sysctl("net.ipv4.ip_local_port_range", "40000 40031")
    host.sysctl("net.ipv4.tcp_tw_reuse", reuse)
    if recycle:
        host.sysctl("net.ipv4.tcp_tw_recycle", 1)
    # a listener, a bind()-locked connection and a live connection toward one of the destinations
    host.restore("tcp", ("0.0.0.0", 5000), state="LISTEN", chosen_by="bind")
    host.restore("tcp", ("127.0.0.1", 40007), ("127.0.0.1", 5001), state="ESTABLISHED", chosen_by="bind")
    host.restore("tcp", ("127.0.0.1", 40002), ("127.0.0.1", 5000), state="ESTABLISHED", chosen_by="connect")
    return host


@settings(max_examples=60)
@given(kernel=st.sampled_from(KERNELS), reuse=st.sampled_from([0, 1, 2]), recycle=st.booleans(),
       timestamps=st.booleans(), entries=st.lists(tw_entry, max_size=40), later=st.integers(0, 70_000))
def test_bulk_restore_equals_one_by_one(kernel: str, reuse: int, recycle: bool, timestamps: bool,
                                        entries: list[tuple[int, int, int, int, int, bool, bool]], later: int) -> None:
    recycle = recycle and kernel == "linux-4.1"
    base = 3600.0
    rows = []
    for li, ri, lport, rport, age_ms, fin_wait2, bind in entries:
        fam, local = LOCALS[li]
        remote = REMOTES[fam][ri]
        lifetime = 30.0 if fin_wait2 else 60.0
        age = min(age_ms / 1000, lifetime)
        rows.append((age, fam, (local, lport), (remote, rport), "bind" if bind else "connect", 0,
                     "FIN_WAIT2" if fin_wait2 else "TIME_WAIT", lifetime))
    rows.sort(key=lambda r: -r[0])
    one, bulk = _host(kernel, reuse, recycle), _host(kernel, reuse, recycle)
    start = base - max((r[0] for r in rows), default=0.0)
    one.sleep(start)
    bulk.sleep(start)
    for age, fam, local, remote, chosen_by, uid, substate, lifetime in rows:
        at = base - age
        if at > one.time:
            one.sleep(at - one.time)
        one.restore("tcp", local, remote, state="TIME_WAIT", chosen_by=chosen_by, family=fam, uid=uid,
                    tw_substate=substate, lifetime=lifetime, timestamps=timestamps)
    bulk.restore_timewaits([(base - age, *rest) for age, *rest in rows], timestamps=timestamps)  # type: ignore[misc]
    assert _state(bulk) == _state(one)
    dsts = [("127.0.0.1", 5000), ("127.0.0.1", 5001), ("127.0.0.3", 5000), ("::1", 5000), ("::1", 5001)]
    srcs = [None, "127.0.0.1", "127.0.0.2"]

    def answers(h: Host) -> list[int]:
        return [h.usable_ports(d, src=s if s is None or (":" in d[0]) == (":" in s) else None).bits
                for d in dsts for s in srcs]

    assert answers(bulk) == answers(one)
    one.sleep(later / 1000)
    bulk.sleep(later / 1000)
    assert answers(bulk) == answers(one)
    assert _state(bulk) == _state(one)


@settings(max_examples=40)
@given(reuse=st.sampled_from(["0", "1", "2"]), ts=st.sampled_from(["0", "1"]),
       tws=st.lists(st.tuples(st.integers(0, 2), st.integers(40000, 40063), st.integers(5000, 5002),
                              st.integers(0, 60_000)), max_size=60),
       est=st.lists(st.tuples(st.integers(40000, 40063), st.integers(5000, 5002)), max_size=8))
def test_snapshot_rebuild_bulk_equals_reference(reuse: str, ts: str, tws: list[tuple[int, int, int, int]],
                                                est: list[tuple[int, int]]) -> None:
    rows = [SockRow("tcp", 4, "LISTEN", ("0.0.0.0", p), None) for p in (5000, 5001, 5002)]
    rows += [SockRow("tcp", 4, "ESTAB", ("127.0.0.1", lp), ("127.0.0.1", dp)) for lp, dp in est]
    rows += [SockRow("tcp", 4, "TIME-WAIT", (["127.0.0.1", "127.0.0.2", "127.0.0.1"][s], lp), ("127.0.0.1", dp),
                     0, left / 1000) for s, lp, dp, left in tws]
    sysctls = {"net.ipv4.ip_local_port_range": "40000 40063", "net.ipv4.tcp_tw_reuse": reuse,
               "net.ipv4.tcp_timestamps": ts}
    snap = HostSnapshot(rows=rows, sysctls=sysctls, source="sock_diag", kernel_release="6.18.0")
    addresses = ["127.0.0.1/8", "::1/128"]
    bulk = snap._rebuild(None, 0, addresses, bulk=True)
    reference = snap._rebuild(None, 0, addresses, bulk=False)
    assert _state(bulk) == _state(reference)
    assert snap.headroom(host=bulk) == snap.headroom(host=reference)


def test_timewait_sock_fills_every_slot_of_sock() -> None:
    # Stack.restore_timewaits makes its Socks slot by slot (_timewait_sock); when Sock gains a slot it falls
    # back to Sock() (slower). This keeps the fast path in use: the slot list must follow Sock's.
    from portalloc.model import stack
    from portalloc.model.sock import SOCK_FIELDS

    assert stack._TIMEWAIT_SOCK_SLOTS == frozenset(SOCK_FIELDS), "update _TIMEWAIT_SOCK_SLOTS, _timewait_sock"
    assert stack._SOCK_FILLED_DIRECTLY
