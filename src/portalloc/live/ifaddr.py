# The interface addresses of the current network namespace, read the way `ip -o addr show` reads them.
#
# Theory: one rtnetlink dump (NETLINK_ROUTE, RTM_GETADDR with NLM_F_DUMP, an ifaddrmsg of family AF_UNSPEC)
# answers with one RTM_NEWADDR message per address (include/uapi/linux/rtnetlink.h, if_addr.h): struct
# ifaddrmsg {u8 family, prefixlen, flags, scope; u32 index} and then rtattrs. An IPv4 address's own address
# is IFA_LOCAL (IFA_ADDRESS is the peer's on a point-to-point link; both are equal otherwise, and IFA_LOCAL is
# what `ip addr` prints before the slash); an IPv6 address has IFA_ADDRESS only. Rules: read-only; every read
# is bounded (the dump ends with NLMSG_DONE; a cap on datagrams stops a runaway one); the socket may come from
# another namespace (a netlink socket keeps the namespace it was made in), as portalloc.observe passes it.
"""Interface addresses (rtnetlink RTM_GETADDR) of a network namespace, as "ADDRESS/PREFIX" texts."""

from __future__ import annotations

import ipaddress
import os
import socket
import struct

_NETLINK_ROUTE = 0
_RTM_NEWADDR = 20
_RTM_GETADDR = 22
_NLM_F_REQUEST = 0x1
_NLM_F_DUMP = 0x300
_NLMSG_ERROR = 2
_NLMSG_DONE = 3
_NLMSG_HDR = struct.Struct("=IHHII")       # struct nlmsghdr
_IFADDRMSG = struct.Struct("=BBBBI")       # struct ifaddrmsg
_RTATTR = struct.Struct("=HH")             # struct rtattr
_IFA_ADDRESS = 1
_IFA_LOCAL = 2
_MAX_DATAGRAMS = 10_000


def open_route_socket() -> socket.socket:
    """A NETLINK_ROUTE socket of the current namespace (it keeps that namespace wherever it is used)."""
    return socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, _NETLINK_ROUTE)


def addr_request(seq: int = 1) -> bytes:
    """The RTM_GETADDR dump request for every family."""
    body = _IFADDRMSG.pack(socket.AF_UNSPEC, 0, 0, 0, 0)
    return _NLMSG_HDR.pack(_NLMSG_HDR.size + len(body), _RTM_GETADDR, _NLM_F_REQUEST | _NLM_F_DUMP, seq, 0) + body


def parse_addresses(chunks: list[bytes]) -> tuple[list[str], bool]:
    """The addresses in RTM_NEWADDR messages, as "ADDRESS/PREFIX" texts in the order the kernel gave them, and
    whether the dump ended (NLMSG_DONE). Raises OSError for an NLMSG_ERROR answer with an errno."""
    out: list[str] = []
    for data in chunks:
        off = 0
        while off + _NLMSG_HDR.size <= len(data):
            length, kind, _, _, _ = _NLMSG_HDR.unpack_from(data, off)
            if length < _NLMSG_HDR.size or off + length > len(data):
                break
            if kind == _NLMSG_DONE:
                return out, True
            if kind == _NLMSG_ERROR:
                err = -struct.unpack_from("=i", data, off + _NLMSG_HDR.size)[0]
                if err:
                    raise OSError(err, f"RTM_GETADDR: {os.strerror(err)}")
                return out, True
            if kind == _RTM_NEWADDR:
                text = _address(data[off + _NLMSG_HDR.size:off + length])
                if text is not None:
                    out.append(text)
            off += (length + 3) & ~3
    return out, False


def _address(msg: bytes) -> str | None:
    """One RTM_NEWADDR payload (ifaddrmsg + rtattrs) as "ADDRESS/PREFIX", or None when it carries none."""
    if len(msg) < _IFADDRMSG.size:
        return None
    family, prefixlen, _, _, _ = _IFADDRMSG.unpack_from(msg)
    size = {socket.AF_INET: 4, socket.AF_INET6: 16}.get(family)
    if size is None:
        return None
    attrs: dict[int, bytes] = {}
    off = _IFADDRMSG.size
    while off + _RTATTR.size <= len(msg):
        rta_len, rta_type = _RTATTR.unpack_from(msg, off)
        if rta_len < _RTATTR.size or off + rta_len > len(msg):
            break
        attrs.setdefault(rta_type, msg[off + _RTATTR.size:off + rta_len])
        off += (rta_len + 3) & ~3
    raw = attrs.get(_IFA_LOCAL) if family == socket.AF_INET else None
    raw = raw or attrs.get(_IFA_ADDRESS)
    if raw is None or len(raw) != size:
        return None
    return f"{ipaddress.ip_address(raw)}/{prefixlen}"


def interface_addresses(nl: socket.socket | None = None) -> list[str]:
    """Every interface address of the namespace ``nl`` belongs to (default: a fresh socket of this one), as
    "ADDRESS/PREFIX" texts (IPv4 and IPv6, loopback included). Raises OSError when rtnetlink cannot answer."""
    if nl is None:
        with open_route_socket() as own:
            return interface_addresses(own)
    nl.settimeout(5.0)
    nl.send(addr_request())
    out: list[str] = []
    for _ in range(_MAX_DATAGRAMS):
        data = nl.recv(1 << 16)
        if not data:
            break
        found, done = parse_addresses([data])
        out += found
        if done:
            break
    return out
