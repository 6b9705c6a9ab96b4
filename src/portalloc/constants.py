# Socket-option numbers the `socket` module of Python 3.11 may lack, with their Linux values.
"""Linux socket-option constants used by portalloc (values from include/uapi/linux/in.h, socket.h)."""

from __future__ import annotations

import socket

#: SOL_IP option, Linux 4.2+ (commit 90c337da1524): bind() records only the address; the port is
#: chosen at connect() time, 4-tuple aware.
IP_BIND_ADDRESS_NO_PORT: int = getattr(socket, "IP_BIND_ADDRESS_NO_PORT", 24)
#: SOL_IP option, Linux 6.3+ (commit 91d0b78c5177): per-socket ephemeral range, value hi << 16 | lo.
IP_LOCAL_PORT_RANGE: int = getattr(socket, "IP_LOCAL_PORT_RANGE", 51)
#: SOL_IP option: allow bind() to an address the host does not own.
IP_FREEBIND: int = getattr(socket, "IP_FREEBIND", 15)
#: SOL_SOCKET option: bind the socket to one interface (value: the name as bytes).
SO_BINDTODEVICE: int = getattr(socket, "SO_BINDTODEVICE", 25)
#: SOL_SOCKET option: reuse the local port across sockets of the same user.
SO_REUSEPORT: int = getattr(socket, "SO_REUSEPORT", 15)
#: IPPROTO_IPV6 option: restrict an AF_INET6 socket to IPv6 only.
IPV6_V6ONLY: int = getattr(socket, "IPV6_V6ONLY", 26)


def pack_local_port_range(lo: int, hi: int) -> int:
    """The IP_LOCAL_PORT_RANGE value for ``lo..hi`` as ``setsockopt`` takes it.

    The kernel reads a u32 ``hi << 16 | lo`` (0 means "unset" for either end). ``socket.setsockopt``
    passes an int as a C ``int``, so values of 2**31 and above are returned in their two's-complement
    (negative) form, which is the same four bytes; ``getsockopt`` gives the value back the same way.
    """
    if not (0 <= lo <= 0xFFFF and 0 <= hi <= 0xFFFF):
        raise ValueError(f"IP_LOCAL_PORT_RANGE bounds must be 0..65535, got {lo}, {hi}")
    value = (hi << 16) | lo
    return value - (1 << 32) if value >= 1 << 31 else value


def unpack_local_port_range(value: int) -> tuple[int, int]:
    """The ``(lo, hi)`` pair stored in an IP_LOCAL_PORT_RANGE value (signed or unsigned form)."""
    return value & 0xFFFF, (value >> 16) & 0xFFFF

#: The addresses a new host (model or live) owns unless told otherwise: a namespace's lo once it is up.
DEFAULT_ADDRESSES: tuple[str, ...] = ("127.0.0.1/8", "::1/128")
