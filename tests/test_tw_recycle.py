# Seed 000: "Do *not* set tcp_tw_recycle. It will cause SYN's to be dropped for users behind a NAT."
#
# The claim as tests, on the model (the live machine runs a kernel without tcp_tw_recycle): a server on
# 10.0.0.2:80, clients behind one NAT address 203.0.113.7 with unrelated timestamp clocks, the server
# closing each connection first (so the server holds the TIME_WAIT, as an HTTP server does). Sources
# (Linux <= 4.11): tcp_time_wait and tcp_timewait_state_process (tcp_minisocks.c), tcp_remember_stamp /
# tcp_tw_remember_stamp and tcp_peer_is_proven (tcp_metrics.c), tcp_conn_request (tcp_input.c, 4.x) and
# tcp_v4_conn_request (tcp_ipv4.c, 3.x); TCP_PAWS_MSL = 60, TCP_PAWS_WINDOW = 1 (include/net/tcp.h).
"""tcp_tw_recycle: per-peer timestamps drop SYNs from clients behind a NAT (Linux <= 4.11)."""

from __future__ import annotations

import errno

import pytest

import portalloc
from portalloc.model.stack import TW_RECYCLE_TIMEOUT

SEED = 7
ADDRESSES = ("127.0.0.1/8", "10.0.0.2/24")
SERVER = ("10.0.0.2", 80)
NAT = "203.0.113.7"
AHEAD = 3 * 3600.0          # client A's timestamp clock runs three hours ahead of client B's
RECYCLE_KERNELS = ["linux-4.11", "linux-3.9"]


def server(kernel: str, recycle: int | None = 1, **sysctls: object) -> tuple[portalloc.Host, portalloc.Socket]:
    """A host with a listener on 10.0.0.2:80 (tcp_tw_recycle set when ``recycle`` is not None)."""
    all_sysctls: dict[str, object] = {k.replace("__", "."): v for k, v in sysctls.items()}
    if recycle is not None:
        all_sysctls["net.ipv4.tcp_tw_recycle"] = recycle
    host = portalloc.Host(kernel, seed=SEED, addresses=ADDRESSES, sysctls=all_sysctls)
    lst = host.socket()
    lst.bind(SERVER)
    lst.listen(128)
    return host, lst


def serve_and_close(host: portalloc.Host, lst: portalloc.Socket, src: tuple[str, int],
                    ts_clock: float | None) -> None:
    """One HTTP-style exchange: the client connects, the server accepts and closes first."""
    assert host.inbound(src, SERVER, ts_clock=ts_clock) == "accepted"
    conn, peer = lst.accept()
    assert peer == src
    conn.close()


def time_waits(host: portalloc.Host) -> list[float | None]:
    """The timers of the server's TIME_WAIT sockets."""
    return [s.timer for s in host.sockets() if s.state == "TIME-WAIT"]


@pytest.mark.parametrize("kernel", RECYCLE_KERNELS)
def test_nat_client_syn_dropped_within_paws_msl(kernel: str) -> None:
    """tcp_time_wait → tcp_remember_stamp keeps client A's TSval for 203.0.113.7; client B's SYN, whose
    TSval lags it by hours, fails tcp_peer_is_proven (4.x tcp_conn_request; 3.x tcp_v4_conn_request):
    ``get_seconds() - tcpm_ts_stamp < TCP_PAWS_MSL && (s32)(tcpm_ts - ts_recent) > TCP_PAWS_WINDOW``.
    The SYN is dropped (PAWSPassive), so B's connect() times out, for as long as the stamp is younger
    than 60 s; after that B is accepted again. A itself, whose clock only moves forward, is accepted."""
    host, lst = server(kernel)
    serve_and_close(host, lst, (NAT, 50000), ts_clock=AHEAD)
    assert host.inbound((NAT, 50001), SERVER, ts_clock=0.0) == "dropped"
    assert host.stats["paws_passive_rejected"] == 1
    host.sleep(58)
    assert host.inbound((NAT, 50001), SERVER, ts_clock=0.0) == "dropped"
    assert host.inbound((NAT, 50002), SERVER, ts_clock=AHEAD) == "accepted"
    host.sleep(3)                                   # 61 s after A's TIME_WAIT: the stamp is stale
    assert host.inbound((NAT, 50001), SERVER, ts_clock=0.0) == "accepted"
    assert host.stats["paws_passive_rejected"] == 2


@pytest.mark.parametrize("kernel", RECYCLE_KERNELS)
def test_remembered_stamp_only_moves_forward(kernel: str) -> None:
    """tcp_remember_stamp replaces the entry only when ``(s32)(tcpm_ts - ts_recent) <= 0`` or the entry is
    older than TCP_PAWS_MSL: B (behind) closes first, then A (ahead) replaces B's stamp; B's later TIME_WAIT
    does not take it back, so B's next SYN is still dropped."""
    host, lst = server(kernel)
    serve_and_close(host, lst, (NAT, 50000), ts_clock=0.0)
    serve_and_close(host, lst, (NAT, 50001), ts_clock=AHEAD)
    assert host.inbound((NAT, 50002), SERVER, ts_clock=0.0) == "dropped"


@pytest.mark.parametrize("kernel", RECYCLE_KERNELS)
def test_stamp_is_per_peer_address(kernel: str) -> None:
    """The stamp is kept per peer address (inet_peer / tcp_metrics): a lagging client at another address
    is not compared with 203.0.113.7's stamp."""
    host, lst = server(kernel)
    serve_and_close(host, lst, (NAT, 50000), ts_clock=AHEAD)
    assert host.inbound(("198.51.100.9", 50001), SERVER, ts_clock=0.0) == "accepted"


@pytest.mark.parametrize("kernel", RECYCLE_KERNELS)
def test_recycle_off_accepts_every_syn(kernel: str) -> None:
    """tcp_tw_recycle = 0 (the default): tcp_conn_request never calls tcp_peer_is_proven with paws_check, and
    tcp_time_wait keeps TCP_TIMEWAIT_LEN (60 s)."""
    host, lst = server(kernel, recycle=0)
    assert host.sysctl("net.ipv4.tcp_tw_recycle") == 0
    serve_and_close(host, lst, (NAT, 50000), ts_clock=AHEAD)
    assert time_waits(host) == [60.0]
    for port in range(50001, 50005):
        assert host.inbound((NAT, port), SERVER, ts_clock=0.0) == "accepted"
    assert host.stats.get("paws_passive_rejected", 0) == 0


def test_client_without_timestamps_passes_on_3x() -> None:
    """3.x tcp_v4_conn_request checks only ``if (tmp_opt.saw_tstamp && tcp_death_row.sysctl_tw_recycle && ...)``:
    a SYN without timestamps is never compared with the remembered stamp."""
    host, lst = server("linux-3.9")
    serve_and_close(host, lst, (NAT, 50000), ts_clock=AHEAD)
    assert host.inbound((NAT, 50001), SERVER, ts_clock=None) == "accepted"


def test_client_without_timestamps_dropped_since_a26552afe894() -> None:
    """a26552afe894 (3.17 per a secondary source; the 4.x text reads ``(s32)(tm->tcpm_ts - req->ts_recent) >
    TCP_PAWS_WINDOW || !timestamps`` in tcp_peer_is_proven): on 4.11 a SYN without timestamps from an address
    whose stamp is under TCP_PAWS_MSL old is dropped too, and accepted once the stamp is older."""
    host, lst = server("linux-4.11")
    serve_and_close(host, lst, (NAT, 50000), ts_clock=AHEAD)
    assert host.inbound((NAT, 50001), SERVER, ts_clock=None) == "dropped"
    host.sleep(61)
    assert host.inbound((NAT, 50002), SERVER, ts_clock=None) == "accepted"


@pytest.mark.parametrize("kernel", RECYCLE_KERNELS)
def test_no_timestamps_nothing_remembered(kernel: str) -> None:
    """tcp_time_wait runs tcp_remember_stamp only ``if (sysctl_tw_recycle && tp->rx_opt.ts_recent_stamp)``: a
    client without timestamps leaves no stamp (and a normal 60 s TIME_WAIT), so a lagging client that
    follows it is accepted."""
    host, lst = server(kernel)
    serve_and_close(host, lst, (NAT, 50000), ts_clock=None)
    assert time_waits(host) == [60.0]
    assert host.inbound((NAT, 50001), SERVER, ts_clock=-AHEAD) == "accepted"


@pytest.mark.parametrize("kernel", RECYCLE_KERNELS)
def test_server_timestamps_off_nothing_remembered(kernel: str) -> None:
    """tcp_parse_options reads a SYN's timestamp only when net.ipv4.tcp_timestamps is on: with it off the server
    never has ts_recent_stamp, remembers nothing, and drops nothing."""
    host, lst = server(kernel, net__ipv4__tcp_timestamps=0)
    serve_and_close(host, lst, (NAT, 50000), ts_clock=AHEAD)
    assert host.inbound((NAT, 50001), SERVER, ts_clock=0.0) == "accepted"


@pytest.mark.parametrize("kernel", RECYCLE_KERNELS)
def test_recycle_shortens_time_wait(kernel: str) -> None:
    """tcp_time_wait with recycle_ok: ``tw->tw_timeout = rto`` where ``rto = (icsk_rto << 2) - (icsk_rto >> 1)``,
    3.5 RTO; the model's RTO is TCP_RTO_MIN (200 ms), so the server's TIME_WAIT lasts 0.7 s, not 60 s, and
    its port and 4-tuple are free after it."""
    host, lst = server(kernel)
    serve_and_close(host, lst, (NAT, 50000), ts_clock=0.0)
    assert TW_RECYCLE_TIMEOUT == pytest.approx(0.7)
    assert time_waits(host) == [0.7]
    host.sleep(0.7)
    assert time_waits(host) == []


@pytest.mark.parametrize("kernel", RECYCLE_KERNELS)
def test_recycle_shortens_client_time_wait(kernel: str) -> None:
    """tcp_time_wait is the same for an active opener: a connect() to a remote peer that sent timestamps,
    closed by us, waits 3.5 RTO with tcp_tw_recycle on."""
    host = portalloc.Host(kernel, seed=SEED, addresses=ADDRESSES, sysctls={"net.ipv4.tcp_tw_recycle": 1})
    s = host.socket()
    s.connect(("10.0.0.9", 80))
    s.close()
    assert time_waits(host) == [0.7]


@pytest.mark.parametrize("kernel", ["linux-4.12", "linux-6.18"])
def test_no_tw_recycle_from_4_12(kernel: str) -> None:
    """4396e46187ca (4.12) removed tcp_tw_recycle: the sysctl does not exist (ENOENT), the TIME_WAIT is
    TCP_TIMEWAIT_LEN, and no SYN is dropped for its timestamp."""
    host, lst = server(kernel, recycle=None)
    with pytest.raises(FileNotFoundError) as exc:
        host.sysctl("net.ipv4.tcp_tw_recycle")
    assert exc.value.errno == errno.ENOENT
    with pytest.raises(FileNotFoundError):
        portalloc.Host(kernel, addresses=ADDRESSES, sysctls={"net.ipv4.tcp_tw_recycle": 1})
    serve_and_close(host, lst, (NAT, 50000), ts_clock=AHEAD)
    assert time_waits(host) == [60.0]
    assert host.inbound((NAT, 50001), SERVER, ts_clock=0.0) == "accepted"
    assert host.inbound((NAT, 50002), SERVER, ts_clock=None) == "accepted"


@pytest.mark.parametrize("kernel", ["linux-3.9", "linux-6.18"])
def test_inbound_refused_without_listener(kernel: str) -> None:
    """No listener on the port (__inet_lookup_listener finds none): the client gets an RST."""
    host, _ = server(kernel, recycle=None)
    assert host.inbound((NAT, 50000), ("10.0.0.2", 81)) == "refused"


def test_inbound_accepted_connection() -> None:
    """An accepted inbound connection sits in the accept queue; accept() returns it with the client's address
    and it holds the listener's port (__inet_inherit_port)."""
    host, lst = server("linux-6.18", recycle=None)
    assert host.inbound((NAT, 50000), SERVER) == "accepted"
    conn, peer = lst.accept()
    assert peer == (NAT, 50000)
    assert conn.getpeername() == (NAT, 50000)
    assert conn.getsockname() == SERVER
    with pytest.raises(BlockingIOError):
        lst.accept()


def test_inbound_syn_on_time_wait_tuple() -> None:
    """A SYN on the 4-tuple of a server TIME_WAIT goes to tcp_timewait_state_process: with a newer TSval it is
    TCP_TW_SYN (the timewait is killed and the listener takes it, skipping the recycle check); an older TSval
    is a PAWS reject (answered by an ACK, the timewait rescheduled for TCP_TIMEWAIT_LEN)."""
    host, lst = server("linux-6.18", recycle=None)
    serve_and_close(host, lst, (NAT, 50000), ts_clock=AHEAD)
    assert host.inbound((NAT, 50000), SERVER, ts_clock=0.0) == "dropped"
    assert host.stats["paws_estab_rejected"] == 1
    assert host.inbound((NAT, 50000), SERVER, ts_clock=AHEAD) == "accepted"
    assert time_waits(host) == []


@pytest.mark.parametrize(("kernel", "paws"), [("freebsd-12", False), ("freebsd-14", False), ("macos", True),
                                             ("linux-6.18", True)])
def test_inbound_syn_on_time_wait_tuple_by_os(kernel: str, paws: bool) -> None:
    """FreeBSD's tcp_twcheck has no PAWS test ("#if 0 /* PAWS not needed at the moment */"): a SYN whose
    TSval lags the TIME_WAIT's closes it (tcp_twclose) and reaches the listener, where Linux drops it."""
    host, lst = server(kernel, recycle=None)
    serve_and_close(host, lst, (NAT, 50000), ts_clock=AHEAD)
    assert len(time_waits(host)) == 1
    assert host.inbound((NAT, 50000), SERVER, ts_clock=0.0) == ("dropped" if paws else "accepted")
    assert host.stats.get("paws_estab_rejected", 0) == (1 if paws else 0)
    assert len(time_waits(host)) == (1 if paws else 0)          # rejected: the TIME_WAIT stays
    if not paws:
        conn, peer = lst.accept()
        assert peer == (NAT, 50000) and conn.getsockname() == SERVER


def test_inbound_rejects_bad_addresses() -> None:
    """``src`` must be remote and ``dst`` local to this host."""
    host, _ = server("linux-6.18", recycle=None)
    with pytest.raises(ValueError):
        host.inbound(("10.0.0.2", 50000), SERVER)
    with pytest.raises(ValueError):
        host.inbound((NAT, 50000), ("192.0.2.1", 80))
