# Address classes the kernel treats specially, on both backends (model and live), issue 8.
#
# Why: bind()/connect() outcomes for the wildcards, the v4-mapped wildcard, loopback broadcast, multicast and
# link-local IPv6 with and without a scope id depend on rules of their own in __inet_bind/__inet6_bind,
# tcp_v4_connect/tcp_v6_connect and ip4/ip6 datagram connect. Each case below was measured on Linux 6.18.44 and
# is asserted on both backends. Nothing here sends a packet off loopback: the refusals happen before output,
# and a bind sends nothing. Destinations that need a route (a non-local unicast or multicast address) are left
# out: the namespace has no route there (ENETUNREACH) while the model simulates the remote network on purpose
# (docs/design.md, "Deliberate differences"). The trace-format cases are in
# tests/traces/regressions/address-classes.jsonl and mapped-wildcard-bind-connect.jsonl.
"""bind/connect on special address classes: scope ids, broadcast, multicast, v4-mapped literals."""

from __future__ import annotations

import errno
import socket

import pytest

from portalloc.constants import IP_FREEBIND, SO_BINDTODEVICE

SOL_IP = 0
LO_INDEX = 1


def _errno(call: object, *args: object) -> int:
    try:
        call(*args)  # type: ignore[operator]
    except OSError as exc:
        return exc.errno or -1
    return 0


def test_link_local_scope_id_binds_the_device(make_host) -> None:
    """__inet6_bind: the scope id sets sk_bound_dev_if before the address check, so fe80::1%lo is
    EADDRNOTAVAIL (lo does not own it), ok with IP_FREEBIND, and the socket is then bound to lo."""
    h = make_host()
    s = h.socket(socket.AF_INET6, socket.SOCK_STREAM)
    assert _errno(s.bind, ("fe80::1", 0, 0, LO_INDEX)) == errno.EADDRNOTAVAIL
    f = h.socket(socket.AF_INET6, socket.SOCK_STREAM)
    f.setsockopt(SOL_IP, IP_FREEBIND, 1)
    assert _errno(f.bind, ("fe80::1", 0)) == errno.EINVAL            # no scope id, no device
    g = h.socket(socket.AF_INET6, socket.SOCK_STREAM)
    g.setsockopt(SOL_IP, IP_FREEBIND, 1)
    g.bind(("fe80::1", 0, 0, LO_INDEX))
    assert g.getsockopt(socket.SOL_SOCKET, SO_BINDTODEVICE, 16).rstrip(b"\0") == b"lo"


def test_link_local_multicast_needs_a_scope_id(make_host) -> None:
    """UDP may bind ff02::1 with a scope id (multicast is exempt from the address check); without one it
    is EINVAL. TCP may not bind IPv6 multicast at all, scope id or not (EINVAL, __inet6_bind's first check)."""
    h = make_host()
    u = h.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    assert _errno(u.bind, ("ff02::1", 0)) == errno.EINVAL
    u.bind(("ff02::1", 0, 0, LO_INDEX))
    t = h.socket(socket.AF_INET6, socket.SOCK_STREAM)
    assert _errno(t.bind, ("ff02::1", 0, 0, LO_INDEX)) == errno.EINVAL


def test_loopback_broadcast_needs_so_broadcast(make_host) -> None:
    """127.255.255.255 is lo's broadcast address: a UDP connect() is EACCES without SO_BROADCAST
    (ip4_datagram_connect) and ok with it; TCP is ENETUNREACH (tcp_v4_connect)."""
    h = make_host()
    u = h.socket(socket.AF_INET, socket.SOCK_DGRAM)
    assert _errno(u.connect, ("127.255.255.255", 5000)) == errno.EACCES
    u.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
    u.connect(("127.255.255.255", 5000))
    assert u.getpeername() == ("127.255.255.255", 5000)
    t = h.socket(socket.AF_INET, socket.SOCK_STREAM)
    assert _errno(t.connect, ("127.255.255.255", 5000)) == errno.ENETUNREACH


@pytest.mark.parametrize("literal", ["::ffff:127.0.0.1", "::ffff:127.0.0.5"])
def test_af_inet_takes_a_v4_mapped_literal(make_host, literal: str) -> None:
    """glibc's getaddrinfo(AF_INET) resolves a v4-mapped literal to its IPv4 address."""
    h = make_host()
    s = h.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind((literal, 0))
    assert s.getsockname()[0] == literal.removeprefix("::ffff:")


def test_true_is_port_one(make_host) -> None:
    """The socket module parses the port with "i": True is 1 (a privileged port: uid 65534 gets EACCES)."""
    h = make_host()
    s = h.socket(socket.AF_INET, socket.SOCK_DGRAM, uid=65534)
    assert _errno(s.bind, ("127.0.0.1", True)) == errno.EACCES
