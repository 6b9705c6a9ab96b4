# Tests of portalloc.live.LiveHost against the running kernel, in private network namespaces.
#
# Rules: every test that needs the kernel is marked `live` and skips (with the LiveUnavailable reason) when
# a namespace cannot be created. Only 127.0.0.0/8 and ::1, ranges of 10 ports, listeners outside the range.
# Every host is closed by the fixture; the lifecycle tests check that no agent process and no fd is left.
# The protocol codec tests need no kernel. Whole file: a few seconds.
"""Tests for the live backend (real sockets in a private network namespace)."""

from __future__ import annotations

import errno
import gc
import os
import signal
import socket
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import portalloc.live.host as live_host_module
from portalloc.live import LiveAgentError, LiveHost, LiveUnavailable, kernel_release, protocol
from portalloc.live.bench import live_connect_rate, live_fill
from portalloc.model.info import SocketInfo

RANGE = {"net.ipv4.ip_local_port_range": "40000 40009"}
A = ("127.0.0.1", 5000)

HostFactory = Callable[..., LiveHost]


@pytest.fixture
def make_host() -> Iterator[HostFactory]:
    """Factory for LiveHosts (range 40000-40009 unless told); skips when the backend is unavailable."""
    hosts: list[LiveHost] = []

    def make(**kw: Any) -> LiveHost:
        kw.setdefault("sysctls", dict(RANGE))
        try:
            host = LiveHost("linux-live", **kw)
        except LiveUnavailable as exc:
            pytest.skip(str(exc))
        hosts.append(host)
        return host

    yield make
    for h in hosts:
        h.close()


@pytest.fixture
def host(make_host: HostFactory) -> LiveHost:
    """One LiveHost with the 10-port range."""
    return make_host()


def _errno_of(fn: Callable[..., Any], *args: Any) -> int | None:
    try:
        fn(*args)
    except OSError as exc:
        return exc.errno
    return None


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie would still answer kill(0): look at the state too
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def _fd_count() -> int:
    return len(os.listdir("/proc/self/fd"))


def _listener(host: LiveHost, addr: tuple[str, int] = A, **kw: Any) -> Any:
    s = host.socket(**kw)
    s.bind(addr)
    s.listen(16)
    return s


# -- protocol (no kernel needed) ---------------------------------------------------------------------------
def test_protocol_roundtrip() -> None:
    values = [None, True, 3, -1 << 70, 1.5, float("inf"), "x", b"\x00lo", bytearray(b"ab"),
              ("::1", 5000, 0, 0), [("127.0.0.1", 1)], {"k": (1, 2)}]
    for v in values:
        assert protocol.decode(protocol.encode(v)) == v
        assert type(protocol.decode(protocol.encode(v))) is type(v)


def test_protocol_exceptions() -> None:
    for exc in (OSError(errno.EADDRINUSE, os.strerror(errno.EADDRINUSE)),
                ConnectionRefusedError(errno.ECONNREFUSED, os.strerror(errno.ECONNREFUSED)),
                FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), "/proc/sys/net/x"),
                TypeError("bind(): AF_INET address must be tuple, not str"), TimeoutError("timed out"),
                socket.gaierror(-2, "Name or service not known")):
        back = protocol.rebuild_exception(protocol.encode_exception(exc))
        assert type(back) is type(exc)
        assert back.args == exc.args
        if isinstance(exc, OSError):
            assert isinstance(back, OSError)
            assert (back.errno, back.strerror, back.filename) == (exc.errno, exc.strerror, exc.filename)
    assert protocol.rebuild_exception(protocol.encode_exception(KeyError("x"))) is None
    stand_in = protocol.decode(protocol.encode(object()))
    assert type(stand_in).__name__ == "object"


def test_kernel_names() -> None:
    assert kernel_release() == os.uname().release
    with pytest.raises(ValueError, match="real kernel"):
        LiveHost("linux-4.19")


# -- basics --------------------------------------------------------------------------------------------------
@pytest.mark.live
def test_lo_up_listen_connect_accept(host: LiveHost) -> None:
    assert host.kernel_release == os.uname().release
    lst = _listener(host)
    c = host.socket(socket.AF_INET, socket.SOCK_STREAM)
    c.connect(A)
    local = c.getsockname()
    assert local[0] == "127.0.0.1" and 40000 <= local[1] <= 40009
    assert c.getpeername() == A
    conn, peer = lst.accept()
    assert peer == local and conn.getsockname() == A
    with pytest.raises(BlockingIOError) as ei:
        lst.accept()
    assert ei.value.errno == errno.EAGAIN
    assert c.send(b"hi") == 2
    assert conn.recv(10) == b"hi"
    with pytest.raises(BlockingIOError):
        conn.recv(10)
    c6 = host.socket(socket.AF_INET6)
    l6 = _listener(host, ("::1", 5001), family=socket.AF_INET6)
    c6.connect(("::1", 5001))
    assert c6.getpeername()[:2] == ("::1", 5001)
    l6.close()
    assert c.family == socket.AF_INET and c.type == socket.SOCK_STREAM


@pytest.mark.live
def test_sysctl(host: LiveHost) -> None:
    machine = {n: open(f"/proc/sys/net/ipv4/{n}").read() for n in ("tcp_tw_reuse", "ip_local_port_range")}
    assert host.sysctl("net.ipv4.ip_local_port_range") == (40000, 40009)
    assert host.sysctl("net.ipv4.tcp_tw_reuse") == 2
    host.sysctl("net.ipv4.tcp_tw_reuse", 1)
    assert host.sysctl("/proc/sys/net/ipv4/tcp_tw_reuse") == 1
    host.sysctl("net.ipv4.ip_local_reserved_ports", "40003,40000-40002,40008")
    assert host.sysctl("net.ipv4.ip_local_reserved_ports") == "40000-40003,40008"
    host.sysctl("net.ipv4.ip_local_port_range", (40010, 40019))
    assert host.sysctl("net.ipv4.ip_local_port_range") == (40010, 40019)
    for name, bad in (("net.ipv4.tcp_tw_reuse", 3), ("net.ipv4.ip_local_port_range", "40010 40000"),
                      ("net.ipv4.ip_local_port_range", "1000 40000")):
        with pytest.raises(OSError) as ei:
            host.sysctl(name, bad)
        assert ei.value.errno == errno.EINVAL and ei.value.strerror == os.strerror(errno.EINVAL)
    with pytest.raises(FileNotFoundError):
        host.sysctl("net.ipv4.no_such_sysctl")
    with pytest.raises(FileNotFoundError):
        host.sysctl("net.ipv4.no_such_sysctl", 1)
    with pytest.raises(PermissionError):
        host.sysctl("kernel.hostname", "x")          # never the machine's own settings
    # the machine's own namespace is untouched
    assert machine == {n: open(f"/proc/sys/net/ipv4/{n}").read() for n in machine}


@pytest.mark.live
def test_sysctls_order_independent(make_host: HostFactory) -> None:
    h = make_host(sysctls={"net.ipv4.ip_local_port_range": "100 200",
                           "net.ipv4.ip_unprivileged_port_start": 0})
    assert h.sysctl("net.ipv4.ip_local_port_range") == (100, 200)
    with pytest.raises(OSError) as ei:
        make_host(sysctls={"net.ipv4.tcp_tw_reuse": 7})
    assert ei.value.errno == errno.EINVAL


@pytest.mark.live
def test_errnos(host: LiveHost) -> None:
    _listener(host)
    a = host.socket()
    a.bind(("127.0.0.1", 45000))
    assert _errno_of(a.bind, ("127.0.0.1", 45001)) == errno.EINVAL           # bind twice
    assert _errno_of(host.socket().bind, ("127.0.0.1", 45000)) == errno.EADDRINUSE
    assert _errno_of(host.socket().bind, ("0.0.0.0", 45000)) == errno.EADDRINUSE
    assert _errno_of(host.socket().bind, ("192.0.2.1", 45000)) == errno.EADDRNOTAVAIL   # never sent
    c = host.socket()
    c.connect(A)
    assert _errno_of(c.connect, A) == errno.EISCONN
    assert _errno_of(c.listen) == errno.EINVAL
    with pytest.raises(ConnectionRefusedError) as ei:
        host.socket().connect(("127.0.0.1", 5999))
    assert ei.value.errno == errno.ECONNREFUSED and str(ei.value) == "[Errno 111] Connection refused"
    assert host.socket().connect_ex(("127.0.0.1", 5999)) == errno.ECONNREFUSED
    with pytest.raises(PermissionError) as ei2:
        host.socket(uid=65534).bind(("127.0.0.1", 80))
    assert ei2.value.errno == errno.EACCES
    host.socket(uid=65534).bind(("127.0.0.1", 1024))
    host.socket(uid=0).bind(("127.0.0.1", 80))
    nb = host.socket()
    nb.setblocking(False)
    assert not nb.getblocking()
    with pytest.raises(BlockingIOError) as ei3:
        nb.connect(A)
    assert ei3.value.errno == errno.EINPROGRESS
    # wrong argument types: the socket module's own TypeError, carried back
    with pytest.raises(TypeError, match="must be tuple"):
        host.socket().bind("127.0.0.1")
    with pytest.raises(TypeError):
        host.socket().setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, "yes")
    with pytest.raises(TypeError):
        host.socket().bind(("127.0.0.1", object()))
    closed = host.socket()
    closed.close()
    closed.close()


@pytest.mark.live
def test_blocking_modes(make_host: HostFactory) -> None:
    h = make_host(wait_cap=0.3)
    lst = h.socket()
    lst.bind(A)
    lst.listen(0)                                   # accept queue holds 1
    nb = h.socket(socket.AF_INET, socket.SOCK_STREAM | socket.SOCK_NONBLOCK)
    assert nb.gettimeout() == 0.0 and not nb.getblocking()
    assert nb.connect_ex(A) == errno.EINPROGRESS
    assert nb.getpeername() == A                    # loopback: established at once
    t0 = time.monotonic()
    with pytest.raises(TimeoutError) as ei:         # queue full: SYN dropped; the wait is capped
        h.socket().connect(A)
    assert ei.value.errno == errno.ETIMEDOUT and time.monotonic() - t0 < 5
    t = h.socket()
    t.settimeout(0.2)
    with pytest.raises(TimeoutError, match="timed out"):
        t.connect(A)
    assert t.gettimeout() == 0.2
    with pytest.raises(ValueError):
        t.settimeout(-1)


@pytest.mark.live
def test_connect_exhaustion_and_udp(host: LiveHost) -> None:
    _listener(host)
    ports = []
    for _ in range(10):
        s = host.socket()
        s.connect(A)
        ports.append(s.getsockname()[1])
    assert sorted(ports) == list(range(40000, 40010))
    assert all(p % 2 == 0 for p in ports[:5])
    assert _errno_of(host.socket().connect, A) == errno.EADDRNOTAVAIL
    u = host.socket(socket.AF_INET, socket.SOCK_DGRAM)
    assert u.sendto(b"x", ("127.0.0.1", 9)) == 1             # autobind on first sendto
    assert 40000 <= u.getsockname()[1] <= 40009


@pytest.mark.live
def test_uid_sockets(host: LiveHost) -> None:
    rp = socket.SO_REUSEPORT
    a = host.socket(uid=0)
    a.setsockopt(socket.SOL_SOCKET, rp, 1)
    a.bind(("127.0.0.1", 45600))
    b = host.socket(uid=65534)
    b.setsockopt(socket.SOL_SOCKET, rp, 1)
    assert _errno_of(b.bind, ("127.0.0.1", 45600)) == errno.EADDRINUSE   # different uid
    b.bind(("127.0.0.1", 45601))
    c = host.socket(uid=65534)
    c.setsockopt(socket.SOL_SOCKET, rp, 1)
    c.bind(("127.0.0.1", 45601))                                       # same uid shares
    rows = {(r.local, r.uid) for r in host.sockets()}
    assert (("127.0.0.1", 45600), 0) in rows and (("127.0.0.1", 45601), 65534) in rows
    assert os.geteuid() == 0


@pytest.mark.live
def test_sockets_snapshot(host: LiveHost) -> None:
    lst = host.socket()
    lst.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    lst.bind(A)
    lst.listen(16)
    bound = host.socket(uid=65534)
    bound.bind(("127.0.0.3", 45000))
    est = host.socket()
    est.connect(A)
    conn, _ = lst.accept()
    tw = host.socket()
    tw.connect(A)
    tw_local = tw.getsockname()
    tw_conn, _ = lst.accept()
    tw.close()                       # client closes first ...
    tw_conn.close()                  # ... then the server: client TIME-WAIT
    u = host.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    u.bind(("::1", 45001))
    rows = host.sockets()
    assert all(isinstance(r, SocketInfo) for r in rows)
    by_state: dict[str, list[SocketInfo]] = {}
    for r in rows:
        by_state.setdefault(r.state, []).append(r)
    assert by_state["LISTEN"] == [SocketInfo("tcp", 4, "LISTEN", A, None, 0, frozenset({"SO_REUSEADDR"}))]
    assert SocketInfo("tcp", 4, "UNCONN", ("127.0.0.3", 45000), None, 65534, frozenset()) in rows
    estab = {(r.local, r.remote) for r in by_state["ESTAB"]}
    assert (est.getsockname(), A) in estab and (A, est.getsockname()) in estab
    server_side = [r for r in by_state["ESTAB"] if r.local == A]
    assert server_side[0].options == frozenset({"SO_REUSEADDR"})        # inherited from the listener
    (tw_row,) = by_state["TIME-WAIT"]
    assert (tw_row.proto, tw_row.family, tw_row.local, tw_row.remote) == ("tcp", 4, tw_local, A)
    assert tw_row.options == frozenset() and tw_row.timer is not None and 55.0 < tw_row.timer <= 60.0
    # options are read back from the kernel: bind() to a specific non-mapped IPv6 address sets V6ONLY
    assert SocketInfo("udp", 6, "UNCONN", ("::1", 45001), None, 0, frozenset({"IPV6_V6ONLY"})) in rows
    assert conn.getpeername() == est.getsockname()
    # the /proc/net fallback agrees, except that it cannot see bound-only TCP sockets
    proc_rows = {tuple(r[:6]) for r in host._call("sockets", "proc")}
    diag_rows = {tuple(r[:6]) for r in host._call("sockets", "sock_diag")}
    assert proc_rows == {r for r in diag_rows if not (r[0] == "tcp" and r[2] == "UNCONN")}


@pytest.mark.live
def test_devices_and_addresses(make_host: HostFactory) -> None:
    h = make_host(devices=("lo", "v0"))
    a = h.socket()
    a.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, b"lo")
    a.bind(("0.0.0.0", 45000))
    b = h.socket()
    b.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, b"v0")
    b.bind(("0.0.0.0", 45000))                                          # different devices: OK
    assert _errno_of(h.socket().bind, ("0.0.0.0", 45000)) == errno.EADDRINUSE
    assert "SO_BINDTODEVICE" in next(r for r in h.sockets() if r.local == ("0.0.0.0", 45000)).options
    v4only = make_host(addresses=("127.0.0.2/32",))
    assert _errno_of(v4only.socket(socket.AF_INET6).bind, ("::1", 0)) == errno.EADDRNOTAVAIL
    assert _errno_of(v4only.socket().bind, ("127.0.0.1", 0)) == errno.EADDRNOTAVAIL
    v4only.socket().bind(("127.0.0.2", 0))


# -- lifecycle -----------------------------------------------------------------------------------------------
@pytest.mark.live
def test_no_leftovers() -> None:
    fds = _fd_count()
    try:
        with LiveHost(sysctls=RANGE) as h:
            pid = h.pid
            assert _pid_alive(pid)
            _listener(h)
    except LiveUnavailable as exc:
        pytest.skip(str(exc))
    assert not _pid_alive(pid)
    assert h.closed
    h.close()                                                     # idempotent
    with pytest.raises(ValueError):
        h.socket()
    with pytest.raises(RuntimeError, match="boom"), LiveHost() as h2:
        pid2 = h2.pid
        h2.socket().bind(("127.0.0.1", 45000))
        raise RuntimeError("boom")
    assert not _pid_alive(pid2)
    h3 = LiveHost()
    pid3 = h3.pid
    del h3
    gc.collect()
    assert not _pid_alive(pid3)
    assert _fd_count() == fds


@pytest.mark.live
def test_agent_death_is_reported(make_host: HostFactory) -> None:
    h = make_host()
    os.kill(h.pid, signal.SIGKILL)                                # our own child, by PID
    time.sleep(0.05)
    with pytest.raises(LiveAgentError, match="agent"):
        h.socket()
    with pytest.raises(LiveAgentError):
        h.sockets()
    h.close()
    assert not _pid_alive(h.pid)


@pytest.mark.live
def test_request_timeout_kills_agent(make_host: HostFactory) -> None:
    h = make_host(timeout=0.5)
    os.kill(h.pid, signal.SIGSTOP)                                 # agent frozen: the request must time out
    try:
        with pytest.raises(LiveAgentError, match="did not answer"):
            h.socket()
    finally:
        if _pid_alive(h.pid):
            os.kill(h.pid, signal.SIGCONT)
    assert not _pid_alive(h.pid)


def test_unavailable_message(monkeypatch: pytest.MonkeyPatch) -> None:
    code = ("import json, sys; sys.stdout.write(json.dumps({'fatal': {'reason': "
            "'PermissionError: [Errno 1] Operation not permitted'}}) + '\\n'); sys.stdout.flush()")
    monkeypatch.setattr(live_host_module, "_AGENT_CODE", code)
    fds = _fd_count()
    with pytest.raises(LiveUnavailable) as ei:
        LiveHost()
    assert isinstance(ei.value, RuntimeError)
    msg = str(ei.value)
    assert msg.startswith("cannot create a network namespace: PermissionError")
    assert "CAP_SYS_ADMIN" in msg and "model Host" in msg
    assert _fd_count() == fds


@pytest.mark.live
def test_bench_small() -> None:
    try:
        res = live_connect_rate(200)
    except LiveUnavailable as exc:
        pytest.skip(str(exc))
    assert res["count"] == 200 and res["ops_per_sec"] > 0 and res["kernel"] == os.uname().release


@pytest.mark.live
def test_bench_fill_small() -> None:
    """The fill benchmark's loop on both backends: exactly the range's ports connect toward one destination,
    then every further connect() fails with EADDRNOTAVAIL (the kernel's and the model's figures are timings
    of that same outcome)."""
    from portalloc.bench import model_fill

    try:
        live = live_fill(low=40000, size=64, fails=10, parts=4, max_seconds=30.0)
    except LiveUnavailable as exc:
        pytest.skip(str(exc))
    model = model_fill(low=40000, size=64, fails=10, parts=4)
    for res in (live, model):
        assert (res["range"], res["connected"], res["first_error"], res["failed"]) == (64, 64, 0, 10)
        assert len(res["slice_seconds"]) == 4 and all(s > 0 for s in res["slice_seconds"])
    assert model["kernel_probes"] > 64       # the failures each examined the whole range
