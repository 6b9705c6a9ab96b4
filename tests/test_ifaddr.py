# The interface-address reader (live/ifaddr.py) against rtnetlink's layouts and a real namespace.
#
# Rules: the parse tests build RTM_NEWADDR messages byte by byte from include/uapi/linux/netlink.h (nlmsghdr),
# rtnetlink.h (rtattr) and if_addr.h (ifaddrmsg, IFA_ADDRESS = 1, IFA_LOCAL = 2), so they run without root. The
# live test reads a private namespace (unshare -n, as root) after adding 127.3.4.5/32 to its lo: the addresses
# `ip addr` shows there, and nothing else.
"""live/ifaddr.py: RTM_GETADDR dump parsing, and one real read."""

from __future__ import annotations

import os
import shutil
import socket
import struct
import subprocess
import sys

import pytest

from portalloc.live.ifaddr import addr_request, parse_addresses


def _rtattr(kind: int, payload: bytes) -> bytes:
    size = 4 + len(payload)
    return struct.pack("=HH", size, kind) + payload + b"\0" * (-size % 4)


def _newaddr(family: int, prefix: int, attrs: list[tuple[int, bytes]]) -> bytes:
    body = struct.pack("=BBBBI", family, prefix, 0, 0, 1) + b"".join(_rtattr(k, v) for k, v in attrs)
    return struct.pack("=IHHII", 16 + len(body), 20, 2, 1, 0) + body


_DONE = struct.pack("=IHHII", 20, 3, 2, 1, 0) + struct.pack("=i", 0)


def test_request_is_a_dump_of_every_family() -> None:
    length, kind, flags, _, _ = struct.unpack_from("=IHHII", addr_request())
    assert (length, kind, flags) == (24, 22, 0x301)                # RTM_GETADDR, NLM_F_REQUEST | NLM_F_DUMP
    assert addr_request()[16] == socket.AF_UNSPEC


def test_ipv4_local_beats_the_peer_and_ipv6_reads_address() -> None:
    """A point-to-point IPv4 address: IFA_LOCAL is this host's, IFA_ADDRESS the peer's (`ip addr` prints
    "10.0.0.1 peer 10.0.0.2/32"); IPv6 has IFA_ADDRESS only."""
    ptp = _newaddr(socket.AF_INET, 32, [(1, bytes([10, 0, 0, 2])), (2, bytes([10, 0, 0, 1]))])
    v6 = _newaddr(socket.AF_INET6, 64, [(1, socket.inet_pton(socket.AF_INET6, "fd00::7"))])
    lo = _newaddr(socket.AF_INET, 8, [(1, bytes([127, 0, 0, 1])), (2, bytes([127, 0, 0, 1]))])
    assert parse_addresses([ptp + v6, lo + _DONE]) == (["10.0.0.1/32", "fd00::7/64", "127.0.0.1/8"], True)


def test_odd_messages_are_skipped_and_errors_raise() -> None:
    other_family = _newaddr(socket.AF_PACKET, 0, [(1, b"\0" * 6)])
    wrong_size = _newaddr(socket.AF_INET, 24, [(2, b"\1\2\3")])
    assert parse_addresses([other_family + wrong_size]) == ([], False)
    error = struct.pack("=IHHII", 36, 2, 0, 1, 0) + struct.pack("=i", -1) + b"\0" * 16      # NLMSG_ERROR, EPERM
    with pytest.raises(OSError) as exc:
        parse_addresses([error])
    assert exc.value.errno == 1


def test_reads_a_private_namespace() -> None:
    if os.geteuid() != 0 or shutil.which("unshare") is None or shutil.which("ip") is None:
        pytest.skip("needs root, unshare and ip (iproute2) for a private namespace")
    code = ("import subprocess, sys\n"
            "for cmd in (['ip', 'link', 'set', 'lo', 'up'], ['ip', 'addr', 'add', '127.3.4.5/32', 'dev', 'lo']):\n"
            "    subprocess.run(cmd, check=True, timeout=10)\n"
            "from portalloc.live.ifaddr import interface_addresses\n"
            "print(' '.join(interface_addresses()))\n")
    out = subprocess.run(["unshare", "-n", sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                         check=True)
    assert sorted(out.stdout.split()) == ["127.0.0.1/8", "127.3.4.5/32", "::1/128"]
