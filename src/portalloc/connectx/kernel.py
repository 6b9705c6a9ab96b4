# connectx on the running kernel: the Net of core.py answered with real sockets, /proc and sock_diag.
#
# Rules: this is the one I/O module of the package. Options are detected by probing (setsockopt answering
# ENOPROTOOPT), never from a version string. The one exception is the step-1 walk of a per-socket range
# (Linux 6.8, 207184853dbd): it changes only the ORDER in which connect() visits ports, which no setsockopt
# reveals, so it is read from the release (major.minor >= 6.8); it only chooses between the full window
# and shifting windows, and both reach every port (SourcePool(window=...) overrides it).
# The exact UDP lookup is connectx.py's: one SOCK_DIAG_BY_FAMILY request WITHOUT NLM_F_DUMP, filled with the
# full 4-tuple (src/dst swapped "for historical reasons", as inet_diag.h says), which the kernel answers
# from udp_dump_one() -> __udp4_lib_lookup()/__udp6_lib_lookup(): one reply carrying the best-matching
# socket's cookie, or ENOENT. A socket's own identity is SO_COOKIE (Linux 4.13). Each thread has its own
# netlink socket (replies of concurrent requests on one socket would interleave).
"""The Net for the running kernel (real sockets)."""

from __future__ import annotations

import errno
import os
import random
import re
import socket
import struct
import threading
from collections.abc import Hashable
from typing import Any

from portalloc.connectx.core import Capabilities
from portalloc.connectx.model import probe_capabilities
from portalloc.kernels.sysctls import parse_port_list

SO_COOKIE: int = getattr(socket, "SO_COOKIE", 57)
_NETLINK_SOCK_DIAG = 4
_SOCK_DIAG_BY_FAMILY = 20
_NLM_F_REQUEST = 1
_NLMSG_ERROR = 2
_NLMSG_HDR = struct.Struct("=IHHII")
_REQ_V2 = struct.Struct("=BBBxI")                 # family, protocol, ext, pad, states
_SOCK_ID = struct.Struct("!HH16s16sI8s")          # sport, dport, src, dst, if, cookie
_NO_COOKIE = b"\xff" * 8
_ALL_STATES = 0xFFFFFFFF
_MAX_REPLIES = 16                                 # bound on stale replies skipped per lookup


class PooledSocket(socket.socket):
    """A ``socket.socket`` that tells its SourcePool when it is closed."""

    def close(self) -> None:
        """Close, and release the socket's slot in the pool that handed it out."""
        release = getattr(self, "_connectx_release", None)
        super().close()
        if release is not None:
            release()


def _release_at_least(major: int, minor: int) -> bool:
    found = re.match(r"(\d+)\.(\d+)", os.uname().release)
    return bool(found) and (int(found.group(1)), int(found.group(2))) >= (major, minor)  # type: ignore[union-attr]


RealSocket = socket.socket


class _Diag(threading.local):
    sock: RealSocket | None = None
    seq: int = 0


class KernelNet:
    """core.Net over the running kernel (the current network namespace of the calling process)."""

    def __init__(self) -> None:
        self.rng = random.Random()
        self._caps: Capabilities | None = None
        self._diag = _Diag()

    def socket(self, family: int, kind: int) -> Any:
        """A real socket (PooledSocket)."""
        return PooledSocket(family, kind)

    def capabilities(self) -> Capabilities:
        """Probed once per process (and per KernelNet)."""
        if self._caps is None:
            self._caps = probe_capabilities(lambda: socket.socket(socket.AF_INET, socket.SOCK_STREAM),
                                            _release_at_least(6, 8))
        return self._caps

    @staticmethod
    def _proc(name: str) -> str:
        with open(f"/proc/sys/net/ipv4/{name}", encoding="ascii") as f:
            return f.read(4096)

    def port_range(self) -> tuple[int, int]:
        """/proc/sys/net/ipv4/ip_local_port_range."""
        lo, hi = self._proc("ip_local_port_range").split()
        return int(lo), int(hi)

    def reserved_ports(self) -> frozenset[int]:
        """/proc/sys/net/ipv4/ip_local_reserved_ports."""
        return parse_port_list(self._proc("ip_local_reserved_ports"))

    def identity(self, sock: Any) -> Hashable:
        """SO_COOKIE."""
        return bytes(sock.getsockopt(socket.SOL_SOCKET, SO_COOKIE, 8))

    def _netlink(self) -> RealSocket:
        if self._diag.sock is None:
            nl = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, _NETLINK_SOCK_DIAG)
            nl.settimeout(5.0)
            nl.bind((0, 0))
            self._diag.sock = nl
        return self._diag.sock

    def udp_holder(self, family: int, local: tuple[str, int], remote: tuple[str, int]) -> Hashable | None:
        """The cookie of the socket __udp_lib_lookup returns for this 4-tuple, or None (ENOENT)."""
        nl = self._netlink()
        self._diag.seq += 1
        seq = self._diag.seq
        body = _REQ_V2.pack(family, socket.IPPROTO_UDP, 0, _ALL_STATES) + _SOCK_ID.pack(
            remote[1], local[1], socket.inet_pton(family, remote[0]), socket.inet_pton(family, local[0]),
            0, _NO_COOKIE)
        nl.send(_NLMSG_HDR.pack(_NLMSG_HDR.size + len(body), _SOCK_DIAG_BY_FAMILY, _NLM_F_REQUEST, seq, 0) + body)
        for _ in range(_MAX_REPLIES):
            reply = nl.recv(65536)
            _length, kind, _flags, got_seq, _pid = _NLMSG_HDR.unpack_from(reply, 0)
            if got_seq != seq:
                continue
            if kind == _NLMSG_ERROR:
                code = -struct.unpack_from("=i", reply, _NLMSG_HDR.size)[0]
                if code == errno.ENOENT:
                    return None
                raise OSError(code, f"sock_diag UDP lookup: {os.strerror(code)}")
            if kind == _SOCK_DIAG_BY_FAMILY:
                # struct inet_diag_msg: family, state, timer, retrans (4 bytes), then the sockid.
                return bytes(_SOCK_ID.unpack_from(reply, _NLMSG_HDR.size + 4)[5])
            raise OSError(errno.EPROTO, f"sock_diag UDP lookup: unexpected netlink message type {kind}")
        raise OSError(errno.EPROTO, "sock_diag UDP lookup: no reply with our sequence number")


#: The process-wide Net for real sockets.
KERNEL = KernelNet()
