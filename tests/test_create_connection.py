# Host.create_connection / LiveHost.create_connection: socket.create_connection, step by step, on both backends
# (issue 8). The live backend runs the same steps as real calls on real sockets in its namespace, so each test
# asserts what CPython's create_connection does over Linux 6.18.
"""create_connection(): timeouts, source_address (the plain-bind trap), fallback over addresses."""

from __future__ import annotations

import errno
import socket

import pytest


def _listen(h, addr: str = "127.0.0.1", port: int = 5000, family: int = socket.AF_INET):  # type: ignore[no-untyped-def]
    s = h.socket(family, socket.SOCK_STREAM)
    s.bind((addr, port))
    s.listen(128)
    return s


def test_connects_with_a_timeout(make_host) -> None:
    """A timeout > 0: connected, the socket keeps the timeout (settimeout before connect)."""
    h = make_host()
    _listen(h)
    c = h.create_connection(("127.0.0.1", 5000), timeout=2)
    assert c.getpeername() == ("127.0.0.1", 5000)
    assert c.gettimeout() == 2.0
    assert 40000 <= c.getsockname()[1] <= 40009


def test_fixed_source_address_is_a_plain_bind(make_host) -> None:
    """The trap: source_address=(ip, P) is bind((ip, P)) without SO_REUSEADDR, so a second connection from P
    to *another* server fails with EADDRINUSE although its 4-tuple would be unique."""
    h = make_host()
    _listen(h, port=5000)
    _listen(h, port=5001)
    h.create_connection(("127.0.0.1", 5000), source_address=("127.0.0.1", 40003))
    with pytest.raises(OSError) as exc:
        h.create_connection(("127.0.0.1", 5001), source_address=("127.0.0.1", 40003))
    assert exc.value.errno == errno.EADDRINUSE


def test_source_port_zero_takes_a_port_per_connection(make_host) -> None:
    """source_address=(ip, 0) binds before connecting: bind(0) gives each connection a port of its own, so a
    2-port range holds 2 connections in all, where plain connect() holds 2 per destination."""
    h = make_host(port_range=(40000, 40001))
    _listen(h, port=5000)
    _listen(h, port=5001)
    kept = [h.create_connection(("127.0.0.1", p), source_address=("127.0.0.1", 0)) for p in (5000, 5001)]
    with pytest.raises(OSError) as exc:
        h.create_connection(("127.0.0.1", 5000), source_address=("127.0.0.1", 0))
    assert exc.value.errno == errno.EADDRINUSE
    for s in kept:
        s.close()


def test_plain_connects_share_ports_across_destinations(make_host) -> None:
    """Without source_address: 2 ports x 2 destinations = 4 connections (__inet_hash_connect)."""
    h = make_host(port_range=(40000, 40001))
    _listen(h, port=5000)
    _listen(h, port=5001)
    conns = [h.create_connection(("127.0.0.1", p)) for p in (5000, 5001, 5000, 5001)]
    assert len({(c.getsockname()[1], c.getpeername()[1]) for c in conns}) == 4


def test_refused_and_non_blocking(make_host) -> None:
    """The last error is raised: ECONNREFUSED; timeout=0 gives BlockingIOError(EINPROGRESS)."""
    h = make_host()
    with pytest.raises(ConnectionRefusedError):
        h.create_connection(("127.0.0.1", 5009), timeout=2)
    _listen(h)
    with pytest.raises(BlockingIOError) as exc:
        h.create_connection(("127.0.0.1", 5000), timeout=0)
    assert exc.value.errno == errno.EINPROGRESS


def test_localhost_falls_back_from_ipv6_to_ipv4(make_host) -> None:
    """"localhost" is ::1 then 127.0.0.1: with an IPv4 listener only, ::1 is refused and 127.0.0.1 connects;
    all_errors=True with no listener raises both errors in an ExceptionGroup."""
    h = make_host()
    with pytest.raises(ExceptionGroup) as group:
        h.create_connection(("localhost", 5000), all_errors=True)
    assert [e.errno for e in group.value.exceptions] == [errno.ECONNREFUSED, errno.ECONNREFUSED]
    _listen(h)
    c = h.create_connection(("localhost", 5000))
    assert c.family == socket.AF_INET and c.getpeername() == ("127.0.0.1", 5000)
