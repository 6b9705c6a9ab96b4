# Timeouts and blocking modes as CPython over the kernel (issue 8), on both backends, plus the model's clock.
#
# Why: settimeout(t > 0) is a non-blocking connect in the kernel plus CPython's poll and SO_ERROR read
# (Modules/socketmodule.c internal_connect, sock_call_ex), so the kernel socket stays SS_CONNECTING
# (__inet_stream_connect). Every assertion below was measured on Linux 6.18.44 and runs on the model and on
# LiveHost. The model never waits: the last tests pin what happens to its simulated clock instead.
"""settimeout/setblocking/SO_ERROR semantics, model and live; the model's simulated clock."""

from __future__ import annotations

import errno
import math
import socket

import pytest

from portalloc import Host


def _listener(h):  # type: ignore[no-untyped-def]
    s = h.socket()
    s.bind(("127.0.0.1", 5000))
    s.listen(128)
    return s


def test_modes_and_getblocking(make_host) -> None:
    """gettimeout/getblocking as CPython: only timeout 0 is non-blocking; setblocking(True) clears a timeout."""
    h = make_host()
    s = h.socket()
    assert (s.gettimeout(), s.getblocking()) == (None, True)
    s.settimeout(2)
    assert (s.gettimeout(), s.getblocking()) == (2.0, True)
    s.setblocking(False)
    assert (s.gettimeout(), s.getblocking()) == (0.0, False)
    s.setblocking(True)
    assert (s.gettimeout(), s.getblocking()) == (None, True)


@pytest.mark.parametrize("value, exc", [(float("nan"), ValueError), (-1, ValueError), ("1", TypeError),
                                        (1e300, OverflowError), (2**70, OverflowError)])
def test_settimeout_rejects_what_cpython_rejects(make_host, value: object, exc: type) -> None:
    """socket_parse_timeout: NaN and negative values are ValueError, too large OverflowError, a str TypeError."""
    s = make_host().socket()
    with pytest.raises(exc):
        s.settimeout(value)


def test_success_with_a_timeout_leaves_ss_connecting(make_host) -> None:
    """After a successful timed connect, connect() returns 0 once more, then EISCONN."""
    h = make_host()
    _listener(h)
    c = h.socket()
    c.settimeout(2)
    c.connect(("127.0.0.1", 5000))
    assert c.connect_ex(("127.0.0.1", 5000)) == 0
    assert c.connect_ex(("127.0.0.1", 5000)) == errno.EISCONN


def test_refusal_with_a_timeout(make_host) -> None:
    """Refused: ECONNREFUSED (SO_ERROR already read), listen() EINVAL, then ECONNABORTED, then afresh."""
    h = make_host()
    c = h.socket()
    c.settimeout(2)
    assert c.connect_ex(("127.0.0.1", 5009)) == errno.ECONNREFUSED
    assert c.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0
    with pytest.raises(OSError) as exc:
        c.listen(8)
    assert exc.value.errno == errno.EINVAL
    assert c.connect_ex(("127.0.0.1", 5009)) == errno.ECONNABORTED
    assert c.connect_ex(("127.0.0.1", 5009)) == errno.ECONNREFUSED


def test_non_blocking_refusal_is_reported_once_by_so_error(make_host) -> None:
    """EINPROGRESS; SO_ERROR reports ECONNREFUSED and clears it; the next connect() is ECONNABORTED."""
    h = make_host()
    c = h.socket()
    c.setblocking(False)
    assert c.connect_ex(("127.0.0.1", 5009)) == errno.EINPROGRESS
    assert c.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == errno.ECONNREFUSED
    assert c.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0
    assert c.connect_ex(("127.0.0.1", 5009)) == errno.ECONNABORTED


def test_accept_and_recv_time_out(make_host) -> None:
    """With a timeout and nothing to read, accept() and recvfrom() raise TimeoutError("timed out"); a never
    connected TCP socket is readable at once (POLLHUP) and recv() answers ENOTCONN."""
    h = make_host()
    lst = _listener(h)
    lst.settimeout(0.05)
    with pytest.raises(TimeoutError):
        lst.accept()
    u = h.socket(socket.AF_INET, socket.SOCK_DGRAM)
    u.settimeout(0.05)
    with pytest.raises(TimeoutError):
        u.recvfrom(16)
    t = h.socket()
    t.settimeout(0.05)
    with pytest.raises(OSError) as exc:
        t.recv(16)
    assert exc.value.errno == errno.ENOTCONN


def test_model_clock_advances_only_where_cpython_would_wait() -> None:
    """Model only: a timed connect that completes costs no simulated time; a timed accept() with nothing
    pending costs the whole timeout (timers run during it)."""
    h = Host("linux-6.18", seed=1)
    _listener(h)
    c = h.socket()
    c.settimeout(5)
    c.connect(("127.0.0.1", 5000))
    assert h.time == 0.0
    lst = h.socket()
    lst.bind(("127.0.0.1", 5001))
    lst.listen(8)
    lst.settimeout(2.5)
    with pytest.raises(TimeoutError):
        lst.accept()
    assert math.isclose(h.time, 2.5)
    lst.settimeout(None)
    with pytest.raises(BlockingIOError):
        lst.accept()                                  # blocking mode: the model does not wait at all
    assert math.isclose(h.time, 2.5)
