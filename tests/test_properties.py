# Invariants of the model under random operation sequences (hypothesis).
#
# Rules: each test drives a model Host with a random program of socket calls (any of which may fail, as
# on the kernel), and after every call checks a property the kernel guarantees, using only the public API
# (getsockname, sockets()) and an oracle written from the spec's wording, not from the model's code:
#   1. no two sockets hold the same TCP 4-tuple (ehash uniqueness, __inet_check_established);
#   2. no two bound/listening sockets on overlapping addresses share a port unless the sharing rules allow
#      it: both SO_REUSEADDR and not both listening, or both SO_REUSEPORT with one uid (inet_bind_conflict);
#   3. every port the kernel chose itself (bind(0), listen() autobind, connect()) lies in the effective
#      range (ip_local_port_range narrowed by IP_LOCAL_PORT_RANGE) and outside ip_local_reserved_ports.
"""Property tests: the model never breaks the kernel's allocation invariants."""

from __future__ import annotations

import errno
import socket
from collections import Counter

from hypothesis import given, settings
from hypothesis import strategies as st

from helpers import examples
from portalloc import Host
from portalloc.constants import IP_BIND_ADDRESS_NO_PORT, IP_LOCAL_PORT_RANGE, pack_local_port_range

LOW, HIGH = 40000, 40007
RESERVED = {40002, 40005}
ADDRS = ["127.0.0.1", "127.0.0.2", "0.0.0.0"]
DESTS = [("127.0.0.1", 5000), ("127.0.0.1", 5001), ("127.0.0.2", 5000)]

op = st.one_of(
    st.tuples(st.just("socket"), st.sampled_from([socket.SOCK_STREAM, socket.SOCK_DGRAM]),
              st.sampled_from([0, 65534])),
    st.tuples(st.just("opt"), st.integers(0, 7),
              st.sampled_from(["RA", "RP", "NOPORT", "RANGE"])),
    st.tuples(st.just("bind"), st.integers(0, 7), st.sampled_from(ADDRS),
              st.sampled_from([0, 0, LOW, LOW + 1, LOW + 3, 45000])),
    st.tuples(st.just("listen"), st.integers(0, 7)),
    st.tuples(st.just("connect"), st.integers(0, 7), st.sampled_from(DESTS)),
    st.tuples(st.just("accept"), st.integers(0, 7)),
    st.tuples(st.just("close"), st.integers(0, 7)),
    st.tuples(st.just("sleep"), st.sampled_from([0.5, 1.2, 61.0])),
    st.tuples(st.just("sysctl"), st.sampled_from(["net.ipv4.tcp_tw_reuse", "net.ipv4.ip_autobind_reuse"]),
              st.integers(0, 1)),
)


def _host(seed: int) -> Host:
    h = Host("linux-6.18", seed=seed, sysctls={
        "net.ipv4.ip_local_port_range": f"{LOW} {HIGH}",
        "net.ipv4.ip_local_reserved_ports": ",".join(map(str, sorted(RESERVED)))})
    for port in (5000, 5001):
        lst = h.socket()
        lst.bind(("127.0.0.1", port))
        lst.listen(1024)
    lst = h.socket()
    lst.bind(("127.0.0.2", 5000))
    lst.listen(1024)
    return h


def _overlap(a: str, b: str) -> bool:
    return a == b or a == "0.0.0.0" or b == "0.0.0.0"


def _check_invariants(h: Host, autobound: dict[int, tuple[int, int]]) -> None:
    rows = h.sockets()
    tcp_tuples = Counter((r.local, r.remote) for r in rows if r.proto == "tcp" and r.remote is not None)
    dup = [t for t, n in tcp_tuples.items() if n > 1]
    assert not dup, f"two TCP sockets share a 4-tuple: {dup}"
    bound = [r for r in rows if r.proto == "tcp" and r.remote is None and r.local[1] not in (5000, 5001)]
    for i, a in enumerate(bound):
        for b in bound[i + 1:]:
            if a.local[1] != b.local[1] or not _overlap(a.local[0], b.local[0]):
                continue
            ra = "SO_REUSEADDR" in a.options and "SO_REUSEADDR" in b.options
            rp = "SO_REUSEPORT" in a.options and "SO_REUSEPORT" in b.options and a.uid == b.uid
            both_listen = a.state == b.state == "LISTEN"
            assert (ra and not both_listen) or rp, f"conflicting binds coexist: {a} / {b}"
    for port, (lo, hi) in autobound.values():
        assert lo <= port <= hi, f"autobound port {port} outside {lo}-{hi}"
        assert port not in RESERVED, f"autobound port {port} is reserved"


@settings(max_examples=examples(150), deadline=None)
@given(seed=st.integers(0, 2**16), program=st.lists(op, max_size=40))
def test_random_programs_keep_the_kernel_invariants(seed: int, program: list[tuple]) -> None:
    """Random socket programs never produce a duplicate 4-tuple, a forbidden port share, or an autobound
    port outside the effective range or inside the reserved list."""
    h = _host(seed)
    socks: list[socket.socket] = []
    ranges: dict[int, tuple[int, int]] = {}
    autobound: dict[int, tuple[int, tuple[int, int]]] = {}
    for step in program:
        kind = step[0]
        try:
            if kind == "socket":
                socks.append(h.socket(socket.AF_INET, step[1], uid=step[2]))  # type: ignore[arg-type]
                continue
            if kind == "sleep":
                h.sleep(step[1])
            elif kind == "sysctl":
                h.sysctl(step[1], step[2])
            elif socks:
                s = socks[step[1] % len(socks)]
                key = id(s)
                if kind == "opt":
                    name = step[2]
                    if name == "RA":
                        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                    elif name == "RP":
                        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
                    elif name == "NOPORT":
                        s.setsockopt(socket.SOL_IP, IP_BIND_ADDRESS_NO_PORT, 1)
                    else:
                        s.setsockopt(socket.SOL_IP, IP_LOCAL_PORT_RANGE, pack_local_port_range(LOW + 1, HIGH - 1))
                        ranges[key] = (LOW + 1, HIGH - 1)
                elif kind == "bind":
                    s.bind((step[2], step[3]))
                    if step[3] == 0 and s.getsockname()[1]:
                        autobound[key] = (s.getsockname()[1], ranges.get(key, (LOW, HIGH)))
                elif kind in ("listen", "connect"):
                    before = s.getsockname()[1]
                    if kind == "listen":
                        s.listen(8)
                    else:
                        s.connect_ex(step[2])
                    after = s.getsockname()[1]
                    if after and not before:
                        autobound[key] = (after, ranges.get(key, (LOW, HIGH)))
                elif kind == "accept":
                    conn, _ = s.accept()
                    socks.append(conn)
                elif kind == "close":
                    s.close()
                    autobound.pop(key, None)
        except OSError:
            pass
        # A port the socket no longer holds (a failed connect released it) is no longer "autobound".
        for s in socks:
            k = id(s)
            if k in autobound and (s.fileno() < 0 or s.getsockname()[1] != autobound[k][0]):
                del autobound[k]
        _check_invariants(h, autobound)


@settings(max_examples=examples(60), deadline=None)
@given(seed=st.integers(0, 2**16), n=st.integers(1, 30))
def test_connect_search_properties(seed: int, n: int) -> None:
    """__inet_hash_connect with an even-sized range: every even port before any odd one toward one
    destination, each port at most once, EADDRNOTAVAIL exactly when the range is used up."""
    h = Host("linux-6.18", seed=seed, sysctls={"net.ipv4.ip_local_port_range": "40000 40015"})
    lst = h.socket()
    lst.bind(("127.0.0.1", 5000))
    lst.listen(64)
    ports, errs = [], []
    for _ in range(n):
        s = h.socket()
        err = s.connect_ex(("127.0.0.1", 5000))
        (errs if err else ports).append(err or s.getsockname()[1])
    assert len(ports) == min(n, 16) and len(set(ports)) == len(ports)
    assert all(e == errno.EADDRNOTAVAIL for e in errs) and len(errs) == max(0, n - 16)
    parities = [p % 2 for p in ports]
    assert parities == sorted(parities), "an odd port came before an even one"


_V4_NEAR_LOOPBACK = st.one_of(st.integers(0, 2**32 - 1), st.integers(126 << 24, (128 << 24) + 5))
_V6_NEAR_LOOPBACK = st.one_of(st.integers(0, 2**128 - 1), st.integers(0, 5),
                              st.integers(0xFFFF7E << 24, (0xFFFF80 << 24) + 5))


@given(_V4_NEAR_LOOPBACK, _V6_NEAR_LOOPBACK)
@settings(max_examples=examples(500), deadline=None)
def test_is_loopback_is_the_kernels_definition(v4: int, v6: int) -> None:
    """tcp_twsk_unique's loopback test for tcp_tw_reuse=2 (79e9fed46038): ipv4_is_loopback (127.0.0.0/8),
    ipv6_addr_loopback (::1) and ipv6_addr_v4mapped_loopback (::ffff:127.0.0.0/104), whatever integer
    shortcut the model uses for them."""
    from ipaddress import IPv4Address, IPv6Address, ip_network

    from portalloc.model.addr import is_loopback

    a4, a6 = IPv4Address(v4), IPv6Address(v6)
    assert is_loopback(a4) == (a4 in ip_network("127.0.0.0/8"))
    assert is_loopback(a6) == (v6 == 1 or a6 in ip_network("::ffff:127.0.0.0/104"))
