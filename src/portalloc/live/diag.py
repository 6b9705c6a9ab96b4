# The socket table of the current network namespace, read the way `ss` reads it.
#
# Theory: runs inside the agent, so "current namespace" is the private one. Primary source is
# sock_diag netlink (NETLINK_SOCK_DIAG, SOCK_DIAG_BY_FAMILY, inet_diag_req_v2) with every state bit set;
# on 6.8+ (91051f003948) that includes TCP sockets that are only bound (reported in state CLOSE, printed UNCONN, like
# `ss -B` of iproute2 >= 6.8). Fallback when sock_diag is missing: /proc/net/{tcp,tcp6,udp,udp6}, which
# omits bound-only TCP sockets. Rules: state names as `ss` prints them; addresses as inet_ntop prints them
# (v4-mapped IPv6 stays "::ffff:a.b.c.d", family stays 6); remote is None when the peer is unset; timer
# only for timewait sockets (TIME-WAIT, FIN-WAIT-2 substate) and orphaned FIN-WAIT-2 sockets, in seconds.
# Every read is bounded (netlink replies end with NLMSG_DONE; a cap on datagrams stops a runaway dump).
# Parsing (parse_chunks) is one struct unpack per socket over the fixed layouts of include/uapi/linux/netlink.h
# (struct nlmsghdr) and include/uapi/linux/inet_diag.h (struct inet_diag_msg, inet_diag_sockid); the request
# asks for no extensions, so the attributes after the header are skipped by nlmsg_len. A datagram of messages of
# one length (a dump of TIME_WAITs) is recognised by its header bytes and read with one iter_unpack. diag_chunks
# returns the datagrams unparsed and can dump through a socket made in another namespace (portalloc.observe
# reads another namespace that way: the child that entered it passes its socket back).
"""Socket-table snapshot (sock_diag netlink, /proc/net fallback) for the live agent."""

from __future__ import annotations

import os
import socket
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

#: Kernel TCP state numbers (include/net/tcp_states.h) → `ss` names. 12 is TCP_NEW_SYN_RECV.
STATE_NAMES: dict[int, str] = {
    1: "ESTAB", 2: "SYN-SENT", 3: "SYN-RECV", 4: "FIN-WAIT-1", 5: "FIN-WAIT-2", 6: "TIME-WAIT",
    7: "UNCONN", 8: "CLOSE-WAIT", 9: "LAST-ACK", 10: "LISTEN", 11: "CLOSING", 12: "SYN-RECV",
}

_NETLINK_SOCK_DIAG = 4
_SOCK_DIAG_BY_FAMILY = 20
_NLM_F_REQUEST = 0x1
_NLM_F_DUMP = 0x300
_NLMSG_ERROR = 2
_NLMSG_DONE = 3
_NLMSG_HDR = struct.Struct("=IHHII")
_LEN_TYPE = struct.Struct("=IH")     # nlmsg_len, nlmsg_type
_DIAG_MSG_LEN = 72          # struct inet_diag_msg
_MAX_MESSAGES = 1_000_000   # bound on one dump
_TIMER_TIMEWAIT = 3
_FIN_WAIT2 = 5


@dataclass(slots=True)
class RawRow:
    """One socket as the kernel reports it (before options are attached)."""

    proto: str
    family: int
    state: str
    local: tuple[str, int]
    remote: tuple[str, int] | None
    uid: int
    inode: int
    timer: float | None


_ADDR_TEXT: dict[bytes, str] = {}


def _addr(family: int, raw: bytes) -> str:
    key = raw[:4] if family == socket.AF_INET else raw[:16]
    text = _ADDR_TEXT.get(key)
    if text is None:   # a dump of 100k sockets has few distinct addresses: inet_ntop once each
        text = socket.inet_ntop(family, key)
        if len(_ADDR_TEXT) < 65536:
            _ADDR_TEXT[key] = text
    return text


def _remote(host: str, port: int) -> tuple[str, int] | None:
    if port == 0 and host in ("0.0.0.0", "::"):
        return None
    return (host, port)


def _timer(state_num: int, timer_kind: int, seconds: float, inode: int) -> float | None:
    if timer_kind == _TIMER_TIMEWAIT:
        return seconds
    if state_num == _FIN_WAIT2 and inode == 0 and timer_kind != 0:
        return seconds
    return None


def diag_request(family: int, protocol: int, states: int = 0xFFFFFFFF) -> bytes:
    """The SOCK_DIAG_BY_FAMILY dump request: nlmsghdr + struct inet_diag_req_v2 (family, protocol, ext 0,
    pad, the state bitmask, a zero inet_diag_sockid) - include/uapi/linux/inet_diag.h."""
    req = struct.pack("=BBBBI", family, protocol, 0, 0, states) + bytes(48)
    return _NLMSG_HDR.pack(_NLMSG_HDR.size + len(req), _SOCK_DIAG_BY_FAMILY,
                           _NLM_F_REQUEST | _NLM_F_DUMP, 1, 0) + req


def open_socket() -> socket.socket:
    """A NETLINK_SOCK_DIAG socket of the current namespace (it keeps that namespace wherever it is used)."""
    return socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, _NETLINK_SOCK_DIAG)


def diag_chunks(family: int, protocol: int, nl: socket.socket | None = None) -> list[bytes]:
    """One sock_diag dump as the kernel sent it: the datagrams (each whole netlink messages), the last one
    holding NLMSG_DONE or NLMSG_ERROR. Raises OSError for an error answer. Parsing is ``parse_chunks``.
    ``nl``: the socket to dump through (``open_socket``, perhaps made in another namespace); a fresh one of
    this namespace by default."""
    if nl is None:
        with open_socket() as own:
            return diag_chunks(family, protocol, own)
    chunks: list[bytes] = []
    nl.settimeout(10.0)
    nl.send(diag_request(family, protocol))
    # recv_into one buffer: recv(1 MiB) would map and unmap a fresh 1 MiB for every ~32 KB datagram.
    buf = bytearray(1 << 20)
    view = memoryview(buf)
    for _ in range(_MAX_MESSAGES):
        n = nl.recv_into(buf)
        if not n:
            break
        data = bytes(view[:n])
        chunks.append(data)
        if _ends_dump(data):
            break
    return chunks


def _equal_messages(data: bytes) -> bool:
    """Is this datagram whole SOCK_DIAG_BY_FAMILY messages of one length (a dump of TIME_WAITs: 96 bytes each)?
    Checked column by column on the header bytes (C-level slices), not message by message."""
    if len(data) < _NLMSG_HDR.size:
        return False
    length, mtype = _LEN_TYPE.unpack_from(data, 0)
    size = (length + 3) & ~3
    if mtype != _SOCK_DIAG_BY_FAMILY or length != size or length < _NLMSG_HDR.size or len(data) % size:
        return False
    count = len(data) // size
    head = _LEN_TYPE.pack(length, mtype)
    return all(data[i::size] == head[i:i + 1] * count for i in range(len(head)))


def _ends_dump(data: bytes) -> bool:
    """Does this datagram hold NLMSG_DONE or NLMSG_ERROR (the end of a dump)? Raises OSError for an error."""
    if _equal_messages(data):
        return False
    off = 0
    while off + _NLMSG_HDR.size <= len(data):
        length, mtype, _flags, _seq, _pid = _NLMSG_HDR.unpack_from(data, off)
        if length < _NLMSG_HDR.size:
            return True
        if mtype == _NLMSG_ERROR:
            (err,) = struct.unpack_from("=i", data, off + _NLMSG_HDR.size)
            if err:
                raise OSError(-err, os.strerror(-err))
            return True
        if mtype == _NLMSG_DONE:
            return True
        off += (length + 3) & ~3
    return False


#: nlmsghdr + struct inet_diag_msg in one unpack (include/uapi/linux/netlink.h, inet_diag.h): nlmsg_len,
#: nlmsg_type, (flags, seq, pid skipped), idiag_family, idiag_state, idiag_timer, (idiag_retrans), id.sport
#: (network order), then id.dport, id.src, id.dst (__be16, __be32[4], __be32[4]) as one 34-byte string - the
#: key of the (local address text, remote endpoint) pair, which a dump of 100k sockets has a handful of -
#: (id.if, id.cookie skipped), idiag_expires (ms), (rqueue, wqueue), idiag_uid, idiag_inode. Attributes after
#: it are not read (the request asks for none).
_MSG_FORMAT = "=IH10xBBBxH34s12xI8xII"
_MSG = struct.Struct(_MSG_FORMAT)
_STRIDES: dict[int, struct.Struct] = {}
_SWAPPED: list[int] = []


def _stride(size: int) -> struct.Struct:
    """The message struct padded to ``size`` bytes (nlmsg_len aligned to 4), for iter_unpack over a datagram
    of equal messages."""
    found = _STRIDES.get(size)
    if found is None:
        found = _STRIDES[size] = struct.Struct(f"{_MSG_FORMAT}{size - _MSG.size}x")
    return found


def _endpoints(family: int, key: bytes) -> tuple[str, tuple[str, int] | None]:
    """(local address text, remote endpoint or None when the peer is unset) of id.dport + id.src + id.dst."""
    n = 4 if family == socket.AF_INET else 16
    dport = int.from_bytes(key[:2], "big")
    local = _addr(family, key[2:2 + n])
    dhost = _addr(family, key[18:18 + n])
    return local, None if dport == 0 and dhost in ("0.0.0.0", "::") else (dhost, dport)


def parse_chunks(chunks: list[bytes], proto: str, fam: int, make: Callable[..., Any] | None = None,
                 with_inode: bool = True) -> list[Any]:
    """The rows of one dump (``diag_chunks``), made by ``make(proto, fam, state, local, remote, uid, inode,
    timer)`` (RawRow by default; without ``inode`` when not ``with_inode``), one unpack per message. Rows
    with the same remote endpoint share one tuple for it.

    Speed (100k TIME_WAITs, measured on 6.18): a datagram whose messages all have one length (a dump of
    TIME_WAITs: 96 bytes each) is read with one iter_unpack; the addresses are decoded once per distinct
    (dport, src, dst) and ports byte-swapped through a table. Any other datagram is walked message by message."""
    factory: Any = make or RawRow
    if not _SWAPPED:             # port p's bytes swapped, for every p (built in C: a genexpr cost 14 ms)
        _SWAPPED.extend(struct.unpack("<65536H", struct.pack(">65536H", *range(65536))))
    swapped = _SWAPPED
    rows: list[Any] = []
    append = rows.append
    unpack = _MSG.unpack_from
    hdr = _NLMSG_HDR.size
    need = hdr + _DIAG_MSG_LEN
    names = STATE_NAMES
    assert _MSG.size == need
    v4 = socket.AF_INET
    caches: dict[int, dict[bytes, tuple[str, tuple[str, int] | None]]] = {v4: {}, socket.AF_INET6: {}}
    head = _LEN_TYPE.unpack_from
    endpoints = _endpoints

    def one(fields: tuple[Any, ...]) -> None:
        (_len, _type, family, state, timer_kind, sport, key, expires, uid, inode) = fields
        cache = caches.get(family)
        if cache is None:
            cache = caches[family] = {}
        pair = cache.get(key)
        if pair is None:
            pair = cache[key] = endpoints(family, key)
        timer = (expires / 1000.0 if timer_kind == _TIMER_TIMEWAIT
                 or (state == _FIN_WAIT2 and inode == 0 and timer_kind != 0) else None)
        name = names.get(state) or f"STATE-{state}"
        if with_inode:
            append(factory(proto, fam, name, (pair[0], swapped[sport]), pair[1], uid, inode, timer))
        else:
            append(factory(proto, fam, name, (pair[0], swapped[sport]), pair[1], uid, timer))

    for data in chunks:
        end = len(data)
        length = head(data, 0)[0] if end >= hdr else 0
        if length >= need and _equal_messages(data):         # the fast path: one length throughout
            v4_cache = caches[v4]
            for fields in _stride(length).iter_unpack(data):
                if fields[2] != v4 or fields[4] != _TIMER_TIMEWAIT:
                    one(fields)
                    continue
                # AF_INET TIME_WAIT (timer 3): one() inlined
                pair = v4_cache.get(fields[6])
                if pair is None:
                    pair = v4_cache[fields[6]] = endpoints(v4, fields[6])
                name = names.get(fields[3]) or f"STATE-{fields[3]}"
                if with_inode:
                    append(factory(proto, fam, name, (pair[0], swapped[fields[5]]), pair[1], fields[8], fields[9],
                                   fields[7] / 1000.0))
                else:
                    append(factory(proto, fam, name, (pair[0], swapped[fields[5]]), pair[1], fields[8],
                                   fields[7] / 1000.0))
            continue
        off = 0
        while off + hdr <= end:
            length, mtype = head(data, off)
            if length < hdr:
                break
            if length >= need and mtype == _SOCK_DIAG_BY_FAMILY:
                one(unpack(data, off))
            off += (length + 3) & ~3
    return rows


def _diag_dump(family: int, protocol: int) -> list[RawRow]:
    proto = "tcp" if protocol == socket.IPPROTO_TCP else "udp"
    return parse_chunks(diag_chunks(family, protocol), proto, 4 if family == socket.AF_INET else 6)


def _proc_hex_addr(text: str) -> tuple[str, int]:
    host_hex, port_hex = text.split(":")
    words = [int(host_hex[i:i + 8], 16) for i in range(0, len(host_hex), 8)]
    raw = b"".join(struct.pack("=I", w) for w in words)
    family = socket.AF_INET if len(raw) == 4 else socket.AF_INET6
    return _addr(family, raw), int(port_hex, 16)


def _proc_table(path: str, proto: str, fam: int) -> list[RawRow]:
    ticks = os.sysconf("SC_CLK_TCK") or 100
    rows: list[RawRow] = []
    with open(path, encoding="ascii") as f:
        lines = f.read().splitlines()[1:]
    for line in lines:
        parts = line.split()
        if len(parts) < 10:
            continue
        local = _proc_hex_addr(parts[1])
        rem_host, rem_port = _proc_hex_addr(parts[2])
        state = int(parts[3], 16)
        timer_kind, when = (int(x, 16) for x in parts[5].split(":"))
        uid, inode = int(parts[7]), int(parts[9])
        rows.append(RawRow(proto, fam, STATE_NAMES.get(state, f"STATE-{state}"), local,
                           _remote(rem_host, rem_port), uid, inode,
                           _timer(state, timer_kind, when / ticks, inode)))
    return rows


def snapshot_proc() -> list[RawRow]:
    """The socket table from /proc/net (no bound-only TCP sockets: /proc/net/tcp does not list them)."""
    rows: list[RawRow] = []
    for name, proto, fam in (("tcp", "tcp", 4), ("tcp6", "tcp", 6), ("udp", "udp", 4), ("udp6", "udp", 6)):
        path = f"/proc/net/{name}"
        if os.path.exists(path):
            rows.extend(_proc_table(path, proto, fam))
    return rows


def snapshot_diag() -> list[RawRow]:
    """The socket table from sock_diag netlink (includes bound-only TCP sockets on 6.8+, 91051f003948)."""
    rows: list[RawRow] = []
    for family in (socket.AF_INET, socket.AF_INET6):
        for protocol in (socket.IPPROTO_TCP, socket.IPPROTO_UDP):
            rows.extend(_diag_dump(family, protocol))
    return rows


def snapshot() -> tuple[list[RawRow], str]:
    """The socket table and the name of the source used (``"sock_diag"`` or ``"proc"``)."""
    try:
        return snapshot_diag(), "sock_diag"
    except OSError:
        return snapshot_proc(), "proc"
