# The claims about Linux made by the seed documents (shared/seeds/), each held to the kernel.
#
# Sources: 000/001 = "Bind before connect" (idea.popcount.org, 2014-04-03, two copies);
# 003 = FreeBSD PR 174087 "Problems with ephemeral port selection" (its Linux-relevant expectations);
# 004 = the Q&A on Linux 4.2's even connect() ports (commit 07f4c90062f8). Where a seed is out of date
# or slightly wrong, the test asserts the kernel's truth and a comment names the discrepancy. Tests that
# need the full default range, a 60-second TIME_WAIT or an old kernel run on the model only (`model_host`);
# everything else runs on both backends through `make_host`.
"""Seed-document claims about Linux port allocation, as tests."""

from __future__ import annotations

import errno
import socket

import pytest

from helpers import (
    BIND_INUSE,
    EVENS,
    LO,
    NOTAVAIL,
    ODDS,
    OK,
    RANGE,
    A,
    B,
    accept_any,
    accept_one,
    bound,
    client_closes_first,
    connect_many,
    even_then_odd,
    listener,
    new_socket,
    one_connect_each,
    outcome,
    parities,
    rows,
    server_closes_first,
    try_bind,
    wait_states,
)

DEFAULT_RANGE = (32768, 60999)
DEFAULT_PORTS = DEFAULT_RANGE[1] - DEFAULT_RANGE[0] + 1


def _fill(host, lst, n, dst, **opts):
    """``n`` connects to ``dst``, each accepted at once (keeps the accept queue short); returns outcomes,
    ports and every socket (client and server ends) so they stay open."""
    outcomes, ports, keep = [], [], []
    fam = socket.AF_INET6 if ":" in dst[0] else socket.AF_INET
    for _ in range(n):
        s = new_socket(host, fam, **opts)
        try:
            s.connect(dst)
        except OSError as exc:
            outcomes.append(errno.errorcode.get(exc.errno, str(exc.errno)))
            s.close()
            continue
        outcomes.append(OK)
        ports.append(s.getsockname()[1])
        keep.append(s)
        keep.append(accept_one(host, lst))
    return outcomes, ports, keep


# --- "Ephemeral port range" -------------------------------------------------------------------------


def test_default_range_is_32768_60999_on_6_18(make_host):
    """Seed 000: "by default [the range] is set to range from 32768 to 61000". Out of date: commit
    07f4c90062f8 (Linux 4.2, quoted by seed 004) changed the default to 32768-60999 so that the range has
    an even number of ports; 6.18 (inet_init_net) has 32768 60999 = 28,232 ports."""
    host = make_host(port_range=None)
    lo, hi = host.sysctl("net.ipv4.ip_local_port_range")
    assert (lo, hi) == DEFAULT_RANGE
    assert hi - lo + 1 == 28232


def test_old_kernels_default_range_32768_61000(model_host):
    """Seed 000's `cat ip_local_port_range` shows 32768 61000: the pre-4.2 default (07f4c90062f8).
    Note the seed's "28232 ports" is the size of 32768-60999; 32768-61000 holds 28,233."""
    assert model_host(kernel="linux-3.13", port_range=None).sysctl("net.ipv4.ip_local_port_range") == (
        32768, 61000)
    assert model_host(kernel="linux-4.2", port_range=None).sysctl("net.ipv4.ip_local_port_range") == (
        32768, 60999)


def test_per_destination_limit_is_the_full_default_range(model_host):
    """Seed 000: "By default there are 28232 ports in the ephemeral range, so the first condition [an
    unused port] could be matched at most that number of times" — __inet_hash_connect gives exactly one
    connection per port to one destination: 28,232 connects succeed, the 28,233rd is EADDRNOTAVAIL.

    (The seed's number is right for today's 32768-60999; for the 32768-61000 it quotes it would be
    28,233.) Model only: 28k live sockets are too many for the live test run; this must run fast.
    """
    host = model_host(port_range=None)
    lst = listener(host, A)
    outcomes, ports, keep = _fill(host, lst, DEFAULT_PORTS, A)
    assert outcomes == [OK] * DEFAULT_PORTS
    assert set(ports) == set(range(DEFAULT_RANGE[0], DEFAULT_RANGE[1] + 1))
    assert all(p % 2 == 0 for p in ports[: DEFAULT_PORTS // 2])
    extra = new_socket(host)
    assert outcome(extra.connect, A) == "EADDRNOTAVAIL"
    # Seed: "If you have more than 28k connections Linux will need to find a port that passes
    # check_established" — other destinations reuse the same ports.
    lst_b = listener(host, B)
    more, more_ports, keep_b = _fill(host, lst_b, 100, B)
    assert more == [OK] * 100
    assert set(more_ports) <= set(ports)
    assert len(keep) == 2 * DEFAULT_PORTS and len(keep_b) == 200


def test_maximum_range_connection_count(model_host):
    """Seed 000: "Setting it to maximum range will allow 64511 concurrent connections (65535-1024)".
    Off by one: the range 1024-65535 is inclusive and holds 65535 - 1024 + 1 = 64,512 ports, and the
    kernel gives one connection per port per destination (the destination here listens on port 80,
    outside the range; a listener inside the range would take its own port out of the search, §2.2).
    Model only (size)."""
    host = model_host(port_range=(1024, 65535))
    n = 65535 - 1024 + 1
    lst = listener(host, (LO, 80))
    outcomes, ports, keep = _fill(host, lst, n, (LO, 80))
    assert outcomes == [OK] * n
    extra = new_socket(host)
    assert outcome(extra.connect, (LO, 80)) == "EADDRNOTAVAIL"
    assert len(set(ports)) == n and len(keep) == 2 * n


def test_maximum_range_is_accepted(make_host):
    """Seed 000's "maximum range" 1024-65535 is a valid ip_local_port_range (ipv4_local_port_range(): low
    >= ip_unprivileged_port_start = 1024, high <= 65535)."""
    host = make_host()
    host.sysctl("net.ipv4.ip_local_port_range", "1024 65535")
    assert host.sysctl("net.ipv4.ip_local_port_range") == (1024, 65535)


def test_per_destination_limit_small_range(make_host):
    """Seed 000: a port can be reused "if no connection already exists between the same source and
    destination endpoints" — N ports give N connections per destination, and more in total."""
    host = make_host()
    dsts = [A, B, ("127.0.0.2", 5000)]
    lsts = [listener(host, d) for d in dsts]
    total = 0
    for d in dsts:
        r = connect_many(host, 11, d)
        assert r.outcomes == [OK] * 10 + [NOTAVAIL], d
        assert set(r.ports) == RANGE
        total += r.ok
        lsts.append(r)
    assert total == 30 > len(RANGE)
    assert len(rows(host, state="ESTAB", ports=RANGE)) == 30


def test_range_is_shared_by_all_local_addresses(make_host):
    """Seed 000: "the ephemeral port range is a global resource, it's not a specific setting local to an IP
    address" — one ip_local_port_range (per netns since 3.16) serves every source address, IPv4 and IPv6."""
    host = make_host()
    keep = [listener(host, A), listener(host, ("::1", 5000))]
    s = new_socket(host, no_port=True)
    s.bind(("127.0.0.2", 0))
    s.connect(A)
    assert s.getsockname()[1] in RANGE
    v6 = connect_many(host, 1, ("::1", 5000))
    assert v6.ports[0] in RANGE
    u = bound(host, ("127.0.0.3", 0), socket.SOCK_DGRAM)
    assert u.getsockname()[1] in RANGE
    keep += [s, v6, u]


def test_more_source_addresses_more_connections(make_host):
    """Seed 001: "If you really want to establish even more than 64k connections to a single destination
    address you'll have to use more than one source IP address" — the 4-tuple includes the source
    address, so a second source IP gives another full range to the same destination."""
    host = make_host()
    lst = listener(host, A)
    first = connect_many(host, 11, A)
    assert first.outcomes == [OK] * 10 + [NOTAVAIL]
    second = connect_many(host, 11, A, bind=("127.0.0.2", 0), no_port=True)
    assert second.outcomes == [OK] * 10 + [NOTAVAIL]
    assert set(second.ports) == RANGE
    assert lst is not None


def test_tw_reuse_lets_connect_take_over_time_wait(make_host):
    """Seed 000: "Set tcp_tw_reuse sysctl to enable reusing of TIME_WAIT sockets" (tcp_twsk_unique).
    With tcp_tw_reuse=0 client TIME_WAITs exhaust the range for that destination; with 1, after the
    reuse delay (1 s by default on 6.18), connect() takes them over. Requires TCP timestamps."""
    for reuse, expect in ((0, [NOTAVAIL] * 3), (1, [OK] * 3)):
        host = make_host(sysctls={"net.ipv4.tcp_tw_reuse": reuse})
        lst = listener(host, A)
        ports, _ = client_closes_first(host, lst, A, 10)
        assert len(wait_states(host, "TIME-WAIT", RANGE, 10)) == 10
        host.sleep(1.2)
        r = connect_many(host, 3, A)
        assert r.outcomes == expect, reuse


def test_tw_recycle_no_longer_exists(make_host):
    """Seed 000: "Do not set tcp_tw_recycle". It was removed in Linux 4.12 (4396e46187ca); on 6.18
    /proc/sys/net/ipv4/tcp_tw_recycle does not exist (reading it is ENOENT)."""
    host = make_host()
    with pytest.raises(OSError) as exc:
        host.sysctl("net.ipv4.tcp_tw_recycle")
    assert exc.value.errno == errno.ENOENT


def test_tw_recycle_existed_before_4_12(model_host):
    """Seed 000 was written for a kernel that still had tcp_tw_recycle (removed in 4.12, 4396e46187ca)."""
    assert model_host(kernel="linux-3.13").sysctl("net.ipv4.tcp_tw_recycle") == 0
    with pytest.raises(OSError):
        model_host(kernel="linux-4.12").sysctl("net.ipv4.tcp_tw_recycle")


def test_seed_hint_scan_is_sequential_on_old_kernels(model_host):
    """Seed 000's excerpt of __inet_hash_connect (1bbdceef1e53, ~3.14): port = low + (i + hint) % remaining
    from i = 1, hint += i — successive connections to one destination take successive ports. 6.18 no
    longer does this (random 2..16 steps, test_vectors TV35); this pins the seed's algorithm on 3.13."""
    host = model_host(kernel="linux-3.13", port_range=(40000, 40099))
    lst = listener(host, A)
    r = connect_many(host, 30, A)
    assert r.ok == 30
    assert all((b - a) % 100 == 1 for a, b in zip(r.ports, r.ports[1:], strict=False)), r.ports
    assert lst is not None


# --- "Bind before connect" --------------------------------------------------------------------------


def test_bind_before_connect_exhausts_in_total(make_host):
    """Seed 001: with bind(ip, 0) before connect() "it's impossible to establish more than [the range]
    outgoing connections in total. After that the attempt to call bind() will fail with an EADDRINUSE
    error" — inet_csk_find_open_port never shares an (addr, port), whatever the destination."""
    host = make_host()
    la, lb = listener(host, A), listener(host, B)
    r = connect_many(host, 11, A, bind=(LO, 0))
    assert r.outcomes == [OK] * 10 + [BIND_INUSE]
    r2 = connect_many(host, 3, B, bind=(LO, 0))
    assert r2.outcomes == [BIND_INUSE] * 3
    # SO_REUSEADDR does not help bind(ip, 0): the search runs with relax = false.
    r3 = connect_many(host, 3, B, bind=(LO, 0), reuseaddr=True)
    assert r3.outcomes == [BIND_INUSE] * 3
    assert la is not None and lb is not None


def test_ip_bind_address_no_port_lifts_the_total_limit(make_host):
    """IP_BIND_ADDRESS_NO_PORT (4.2, 90c337da1524), the fix for the seed's bind-before-connect limit:
    bind(ip, 0) only records the address and connect() chooses the port per destination."""
    host = make_host()
    la, lb = listener(host, A), listener(host, B)
    r = connect_many(host, 11, A, bind=(LO, 0), no_port=True)
    assert r.outcomes == [OK] * 10 + [NOTAVAIL]
    r2 = connect_many(host, 11, B, bind=(LO, 0), no_port=True)
    assert r2.outcomes == [OK] * 10 + [NOTAVAIL]
    assert set(r.ports) == set(r2.ports) == RANGE
    assert la is not None and lb is not None


# --- SO_REUSEADDR: the seed's three uses -----------------------------------------------------------


def test_reuseaddr_use1_server_restart_over_time_wait(make_host):
    """Seed 001, use 1: "after ... stopping a server it's necessary to wait for a socket to time out before
    another server can bind to the same port. With SO_REUSEADDR set it's possible to rebind immediately,
    even if the socket is in a TIME_WAIT state." True only if the old server had SO_REUSEADDR too (the
    TIME_WAIT inherits it; inet_bind_conflict needs it on both sides): with a plain old server even an
    SO_REUSEADDR rebind fails EADDRINUSE until the TIME_WAIT dies."""
    srv = ("0.0.0.0", 5000)
    for old_ra in (False, True):
        host = make_host()
        old = listener(host, srv, reuseaddr=old_ra)
        server_closes_first(host, old, A)
        assert len(wait_states(host, "TIME-WAIT", {5000}, 1)) == 1
        old.close()
        keep: list = []
        assert try_bind(host, keep, srv) == "EADDRINUSE"
        res = try_bind(host, keep, srv, reuseaddr=True)
        assert res == ("ok" if old_ra else "EADDRINUSE"), old_ra
        if old_ra:
            assert outcome(keep[-1].listen, 128) == OK


def test_reuseaddr_use1_wait_for_time_wait_to_expire(model_host):
    """Seed 001, use 1, first half: without SO_REUSEADDR the restart has to "wait for a socket to time
    out" — TCP_TIMEWAIT_LEN, 60 s. Model only (simulated time)."""
    host = model_host()
    srv = ("0.0.0.0", 5000)
    old = listener(host, srv)
    server_closes_first(host, old, A)
    old.close()
    keep: list = []
    assert try_bind(host, keep, srv) == "EADDRINUSE"
    host.sleep(59)
    assert try_bind(host, keep, srv) == "EADDRINUSE"
    host.sleep(2)
    assert try_bind(host, keep, srv) == OK


def test_reuseaddr_use2_wildcard_and_specific(make_host):
    """Seed 001, use 2: "When one server binds to INADDR_ANY, say 0.0.0.0:1234, it's impossible to have
    another server binding to a specific address ... With SO_REUSEADDR flag this behaviour is allowed."
    Kernel truth (inet_bind_conflict, and the socket(7) text the seed quotes): allowed only while the
    wildcard socket is not listening — against a listening 0.0.0.0:P the specific bind is EADDRINUSE
    even with SO_REUSEADDR on both. So "another server" next to a running wildcard server is refused."""
    host = make_host()
    keep: list = []
    keep.append(bound(host, ("0.0.0.0", 6000)))
    assert try_bind(host, keep, (LO, 6000)) == "EADDRINUSE"
    wild = bound(host, ("0.0.0.0", 6001), reuseaddr=True)
    assert try_bind(host, keep, (LO, 6001), reuseaddr=True) == OK
    assert outcome(keep[-1].listen, 128) == OK
    keep.append(listener(host, ("0.0.0.0", 6002), reuseaddr=True))
    assert try_bind(host, keep, (LO, 6002), reuseaddr=True) == "EADDRINUSE"
    assert wild is not None


def test_reuseaddr_use3_shared_source_port_distinct_destinations(make_host):
    """Seed 001, use 3: with bind-before-connect "only a single connection can use a single outgoing source
    port. With this flag, it's possible for many connections to reuse the same source port, given that
    they connect to different destination addresses." True for an explicit port (bind(ip, P)): the
    4-tuple must differ (__inet_check_established); a duplicate is EADDRNOTAVAIL. Not for bind(ip, 0)
    (see test_bind_before_connect_exhausts_in_total)."""
    host = make_host()
    d1, d2 = (LO, 5000), ("127.0.0.2", 5000)
    lsts = [listener(host, d1), listener(host, d2)]
    keep: list = []
    keep.append(bound(host, (LO, 45000)))
    assert try_bind(host, keep, (LO, 45000)) == "EADDRINUSE"
    x, y, z = (bound(host, (LO, 45001), reuseaddr=True) for _ in range(3))
    assert [outcome(x.connect, d1), outcome(y.connect, d2), outcome(z.connect, d1)] == [
        OK, OK, "EADDRNOTAVAIL"]
    assert x.getsockname()[1] == y.getsockname()[1] == 45001
    assert len(lsts) == 2


# --- SO_REUSEPORT ----------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", [socket.SOCK_STREAM, socket.SOCK_DGRAM], ids=["tcp", "udp"])
def test_reuseport_same_ip_port_single_user(make_host, kind):
    """Seed 001: SO_REUSEPORT lets "different sockets ... bind to exactly the same IP and port", "but only
    for a single user" (sk_reuseport_match / udp_lib_lport_inuse compare the owner uid)."""
    host = make_host()
    keep: list = []
    a = bound(host, (LO, 6000), kind, reuseport=True)
    b = bound(host, (LO, 6000), kind, reuseport=True)
    if kind == socket.SOCK_STREAM:
        assert [outcome(a.listen, 128), outcome(b.listen, 128)] == [OK, OK]
    assert try_bind(host, keep, (LO, 6000), kind, reuseport=True, uid=65534) == "EADDRINUSE"
    assert try_bind(host, keep, (LO, 6000), kind) == "EADDRINUSE"


def test_reuseport_tcp_is_hashed_not_round_robin(make_host):
    """Seed 001 says SO_REUSEPORT distributes incoming TCP connections "in round-robin way". Kernel truth
    (reuseport_select_sock): the listener is chosen from the 4-tuple hash, so repeated connections from
    the same source port land on the same listener every time — a round-robin would rotate them."""
    host = make_host()
    dst = (LO, 7400)
    lsts = [listener(host, dst, reuseport=True) for _ in range(4)]
    seen = []
    for _ in range(4):
        c = bound(host, (LO, 45000), reuseaddr=True)
        assert outcome(c.connect, dst) == OK
        i, conn = accept_any(host, lsts)
        seen.append(i)
        c.close()
        conn.close()
    assert len(set(seen)) == 1, seen


# --- Seed 004: even ports for connect() (Linux 4.2) ------------------------------------------------


def test_connect_prefers_even_ports_bind_odd(make_host):
    """Seed 004 (07f4c90062f8, 4.2): "I do not start a single TCP handshake with an odd source port" —
    connect() favours even ports (low's parity), "leaving odd ports for bind()". Many destinations, one
    connection each: all even; bind(ip, 0) takes odd ports."""
    host = make_host(port_range=(40000, 40099))
    ports, lsts = one_connect_each(host, [(LO, 5000 + i) for i in range(20)])
    assert len(ports) == 20 and all(p % 2 == 0 for p in ports), ports
    b = [bound(host, ("127.0.0.2", 0)) for _ in range(20)]
    assert all(s.getsockname()[1] % 2 == 1 for s in b)


def test_parity_follows_range_low(make_host):
    """Seed 004: "The odd/even property depends on ip_local_port_range values parity" — with an odd low
    (40001-40010) connect() takes odd ports first and bind(0) even ones."""
    host = make_host(port_range=(40001, 40010))
    lst = listener(host, A)
    r = connect_many(host, 10, A)
    odd = {p for p in range(40001, 40011) if p % 2}
    assert even_then_odd(r.ports, odd, set(range(40001, 40011)) - odd), parities(r.ports)
    b = bound(host, ("127.0.0.2", 0))
    assert b.getsockname()[1] % 2 == 0
    assert lst is not None


def test_even_count_range_uses_every_port(make_host):
    """Seed 004: "This strategy only works well if ip_local_port_range is even" — with an even number of
    ports the two passes cover the whole range (EVENS then ODDS)."""
    host = make_host()
    lst = listener(host, A)
    r = connect_many(host, 10, A)
    assert even_then_odd(r.ports, EVENS, ODDS), parities(r.ports)
    assert lst is not None


@pytest.mark.parametrize("kernel, even_only", [("linux-3.16", False), ("linux-4.9", True)],
                         ids=["jessie-3.16", "stretch-4.9"])
def test_even_ports_appeared_in_4_2(model_host, kernel, even_only):
    """Seed 004: the even-port behaviour "appeared in Linux 4.2; Jessie has 3.16 and Stretch has 4.9".
    Model only (old kernels): one connection to each of 40 destinations — 4.9 uses only even ports,
    3.16 (sequential hint scan) uses both parities."""
    host = model_host(kernel=kernel, port_range=(40000, 40999))
    ports, keep = one_connect_each(host, [(LO, 5000 + i) for i in range(40)])
    assert len(ports) == 40
    if even_only:
        assert all(p % 2 == 0 for p in ports), ports
    else:
        assert any(p % 2 for p in ports) and any(p % 2 == 0 for p in ports), ports


# --- Seed 003 (FreeBSD PR 174087): what Linux does -----------------------------------------------------


def test_linux_connect_is_uniform_with_or_without_reuseaddr(make_host):
    """Seed 003 asks that connect() "behave uniformly whether or not SO_REUSEADDR has been set" and "re-use
    a local port number, so long as the remaining elements of the tuple (laddr, fport, faddr) are
    unique". Linux does: SO_REUSEADDR has no effect on the connect() search, each destination port gets
    the full range, and exhaustion is EADDRNOTAVAIL — never EADDRINUSE (the FreeBSD 7.2 symptom)."""
    host = make_host()
    la, lb = listener(host, A, reuseaddr=True), listener(host, B, reuseaddr=True)
    with_ra = connect_many(host, 12, A, reuseaddr=True)
    without = connect_many(host, 12, B)
    assert with_ra.outcomes == without.outcomes == [OK] * 10 + [NOTAVAIL] * 2
    assert set(with_ra.ports) == set(without.ports) == RANGE
    assert la is not None and lb is not None


def test_linux_connect_avoids_listening_ports(make_host):
    """Seed 003 notes that its FreeBSD patch would let connect() pick a port that has a listener (RFC 6056
    §3.1 "port stealing"). Linux never does: a bucket with a listener has fastreuse >= 0 and
    __inet_hash_connect skips it."""
    host = make_host()
    la = listener(host, A)
    held = listener(host, ("0.0.0.0", 40005))
    r = connect_many(host, 10, A)
    assert r.outcomes == [OK] * 9 + [NOTAVAIL]
    assert 40005 not in r.ports
    assert la is not None and held is not None
