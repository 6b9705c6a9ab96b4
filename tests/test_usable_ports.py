# The port query (Host.usable_ports / Stack.usable_ports) against what connect() then does.
#
# Rules: the query's documented invariant is checked by counting, on every kernel profile: after a random
# set-up (explicit binds and listeners, connections toward the destination and elsewhere, closes that leave
# TIME_WAITs and FIN_WAIT2 orphans, time passing, tcp_tw_reuse changes), len(usable_ports(dst)) fresh
# sockets connect to dst and get exactly the ports of the set, and the next one fails with the OS's
# exhaustion errno. The oracle is connect() itself through the public API, not the query's code.
"""The query "which ports could a new connect() toward D use now" holds its count on every profile."""

from __future__ import annotations

import errno
import socket
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from portalloc import Host, kernels
from portalloc.kernels.strategies import PORT_ORDERS
from portalloc.model import PortSet

LOW, HIGH = 40000, 40007
D = ("127.0.0.1", 5000)
E = ("127.0.0.1", 5001)
#: What an exhausted search returns: Linux and most BSDs EADDRNOTAVAIL, UDP EAGAIN, NetBSD EAGAIN/EINVAL,
#: Windows ENOBUFS (model/bsd.py exhausted_errno, model/windows.py).
EXHAUSTED = {errno.EADDRNOTAVAIL, errno.EAGAIN, errno.EINVAL, errno.ENOBUFS}
#: Orders that draw a fresh random port per try, at most range-size tries, and so may give up while usable
#: ports remain (RFC 6056 sections 3.3.1 and 3.3.5; NetBSD algo_random_pick, algo_randinc): for them the
#: count is an upper bound. Their registry names are also the names of the profiles that use them.
GIVES_UP_EARLY = {name for name, order in PORT_ORDERS.items() if order.gives_up_early}

op = st.one_of(
    st.tuples(st.just("bind"), st.sampled_from(["127.0.0.1", "0.0.0.0", "127.0.0.2"]),
              st.integers(LOW - 1, HIGH + 1), st.booleans()),
    st.tuples(st.just("connect"), st.sampled_from([D, E])),
    st.tuples(st.just("close_client"), st.integers(0, 30)),
    st.tuples(st.just("close_pair"), st.integers(0, 30)),
    st.tuples(st.just("sleep"), st.sampled_from([0.5, 1.5, 61.0])),
    st.tuples(st.just("tw_reuse"), st.integers(0, 2)),
)


def _host(kernel: str, seed: int) -> tuple[Host, dict[tuple[str, int], Any]]:
    """A host with the range LOW-HIGH (Windows: LOW and the smallest range netsh takes, 255 ports) and
    listeners on D and E."""
    h = Host(kernel, seed=seed)
    writes = h.profile.range_sysctls.writes(LOW, HIGH)
    if h.profile.range_sysctls.form == "start-count":
        writes = h.profile.range_sysctls.writes(LOW, LOW + 254)   # KB929851: num >= 255
    for name, text in writes.items():
        h.sysctl(name, text)
    listeners = {}
    for dst in (D, E):
        lst = h.socket()
        lst.bind(dst)
        lst.listen(1024)
        listeners[dst] = lst
    return h, listeners


def _setup(h: Host, listeners: dict[tuple[str, int], Any], ops: list[tuple[Any, ...]]) -> None:
    pairs: list[tuple[Any, Any]] = []
    held: list[Any] = []
    for o in ops:
        try:
            if o[0] == "bind":
                s = h.socket()
                s.bind((o[1], o[2]))
                if o[3]:
                    s.listen(16)
                held.append(s)
            elif o[0] == "connect":
                c = h.socket()
                if c.connect_ex(o[1]) == 0:
                    child, _ = listeners[o[1]].accept()
                    pairs.append((c, child))
                else:
                    c.close()
            elif o[0] in ("close_client", "close_pair") and pairs:
                c, child = pairs.pop(o[1] % len(pairs))
                c.close()                               # FIN_WAIT2 orphan while the child stays open
                if o[0] == "close_pair":
                    child.close()                       # the client's side becomes TIME_WAIT
            elif o[0] == "sleep":
                h.sleep(o[1])
            elif o[0] == "tw_reuse":
                h.sysctl("net.ipv4.tcp_tw_reuse", o[1])
        except OSError:
            continue


def _count_connects(h: Host, dst: tuple[str, int], proto: str, limit: int) -> tuple[list[int], int]:
    """Fresh sockets connect to ``dst`` (kept open) until one fails: (their ports, the failing errno)."""
    kind = socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM
    ports: list[int] = []
    keep = []
    for _ in range(limit):
        s = h.socket(socket.AF_INET, kind)
        e = s.connect_ex(dst)
        if e:
            return ports, e
        ports.append(s.getsockname()[1])
        keep.append(s)
    return ports, 0


@settings(max_examples=120, deadline=None)
@given(kernel=st.sampled_from(kernels()), seed=st.integers(0, 2**16), ops=st.lists(op, max_size=25))
def test_tcp_count_matches_connects(kernel: str, seed: int, ops: list[tuple[Any, ...]]) -> None:
    """len(usable_ports(D)) further connect() calls toward D get a port, exactly those ports; the next
    fails with the exhaustion errno."""
    h, listeners = _host(kernel, seed)
    _setup(h, listeners, ops)
    usable = h.usable_ports(D)
    assert h.usable_ports(D) == usable                  # asking changes nothing
    assert all(LOW <= p <= LOW + 254 for p in usable)
    ports, err = _count_connects(h, D, "tcp", 255 + 2)
    assert err in EXHAUSTED, errno.errorcode.get(err)
    if kernel in GIVES_UP_EARLY:
        assert set(ports) <= set(usable)
        return
    assert len(ports) == len(usable), (kernel, ports, list(usable), errno.errorcode.get(err))
    assert sorted(ports) == list(usable)
    assert len(h.usable_ports(D)) == 0


FIXED_PROGRAM = [("connect", D), ("connect", D), ("connect", E), ("close_pair", 0), ("close_client", 0),
                 ("bind", "127.0.0.1", LOW + 1, False), ("bind", "0.0.0.0", LOW + 4, True), ("sleep", 1.5),
                 ("connect", D)]


@pytest.mark.parametrize("kernel", kernels())
def test_tcp_count_every_profile(kernel: str) -> None:
    """The same invariant on every profile with one fixed program (TIME_WAIT, FIN_WAIT2 orphan, explicit
    binds, a listener in the range, another destination)."""
    test_tcp_count_matches_connects.hypothesis.inner_test(kernel, 3, FIXED_PROGRAM)  # type: ignore[attr-defined]


@settings(max_examples=60, deadline=None)
@given(kernel=st.sampled_from(kernels()), seed=st.integers(0, 2**16),
       binds=st.lists(st.tuples(st.sampled_from(["127.0.0.1", "0.0.0.0"]), st.integers(LOW, HIGH)), max_size=5),
       before=st.integers(0, 4))
def test_udp_count_matches_connects(kernel: str, seed: int, binds: list[tuple[str, int]], before: int) -> None:
    """UDP: len(usable_ports(D, proto="udp")) further connect() calls get a port (autobind), then none."""
    h, _ = _host(kernel, seed)
    keep = []
    for addr, port in binds:
        s = h.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            s.bind((addr, port))
        except OSError:
            continue
        keep.append(s)
    for _ in range(before):
        s = h.socket(socket.AF_INET, socket.SOCK_DGRAM)
        if s.connect_ex(E) == 0:
            keep.append(s)
    usable = h.usable_ports(D, proto="udp")
    ports, err = _count_connects(h, D, "udp", 255 + 2)
    assert err in EXHAUSTED, errno.errorcode.get(err)
    if kernel in GIVES_UP_EARLY:
        assert set(ports) <= set(usable)
        return
    assert sorted(ports) == list(usable), (kernel, ports, list(usable))


def test_linux_counts_time_wait_reuse() -> None:
    """Linux 6.18: a TIME_WAIT toward D is usable once tcp_tw_reuse's 1 s delay has passed (tcp_twsk_unique,
    test vectors 15-20), never with tcp_tw_reuse=0; a port held toward E stays usable toward D."""
    h, listeners = _host("linux-6.18", 1)
    c = h.socket()
    c.connect(D)
    child, _ = listeners[D].accept()
    port = c.getsockname()[1]
    c.close()
    child.close()                                       # c is in TIME_WAIT toward D
    assert port not in h.usable_ports(D)                # the reuse delay has not passed
    assert port in h.usable_ports(E)                    # another destination does not care
    h.sleep(1.5)
    assert port in h.usable_ports(D)                    # tcp_tw_reuse=2 on loopback, delay passed
    h.sysctl("net.ipv4.tcp_tw_reuse", 0)
    assert port not in h.usable_ports(D)
    assert len(h.usable_ports(D)) == HIGH - LOW


def test_source_and_udp_and_errors() -> None:
    """``src`` selects the source address (4-tuples from another source do not block); bad input raises."""
    h, listeners = _host("linux-6.18", 2)
    c = h.socket()
    c.connect(D)
    port = c.getsockname()[1]
    assert port not in h.usable_ports(D)
    assert port in h.usable_ports(D, src="127.0.0.2")
    assert len(h.usable_ports(D, proto="udp")) == HIGH - LOW + 1   # UDP autobind ignores TCP
    with pytest.raises(ValueError):
        h.usable_ports(D, proto="sctp")
    with pytest.raises(TypeError):
        h.usable_ports("127.0.0.1")  # type: ignore[arg-type]


def test_orders_that_give_up_early() -> None:
    """The registry marks exactly the random-pick and random-increment orders (RFC 6056 algorithms 1, 5)."""
    assert GIVES_UP_EARLY == {"rfc6056-1", "rfc6056-5", "netbsd-random-pick", "netbsd-randinc"}
    assert GIVES_UP_EARLY <= set(kernels())


def test_portset() -> None:
    """PortSet: immutable bitset with len, in, ascending iteration and count."""
    s = PortSet.of([40003, 40001, 5])
    assert len(s) == s.count == 3
    assert list(s) == [5, 40001, 40003]
    assert 40001 in s and 40002 not in s and "x" not in s
    assert s.first == 5 and s.last == 40003
    assert (s - PortSet.of([5])) == PortSet.of([40001, 40003])
    assert not PortSet() and PortSet().first is None
    with pytest.raises(ValueError):
        PortSet.of([70000])
