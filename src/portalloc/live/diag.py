# The socket table of the current network namespace, read the way `ss` reads it.
#
# Theory: runs inside the agent, so "current namespace" is the private one. Primary source is
# sock_diag netlink (NETLINK_SOCK_DIAG, SOCK_DIAG_BY_FAMILY, inet_diag_req_v2) with every state bit set;
# on 6.8+ (91051f003948) that includes TCP sockets that are only bound (reported in state CLOSE, printed UNCONN, like
# `ss -B` of iproute2 >= 6.8). Fallback when sock_diag is missing: /proc/net/{tcp,tcp6,udp,udp6}, which
# omits bound-only TCP sockets. Rules: state names as `ss` prints them; addresses as inet_ntop prints them
# (v4-mapped IPv6 stays "::ffff:a.b.c.d", family stays 6); remote is None when the peer is unset; timer
# only for timewait sockets (TIME-WAIT, FIN-WAIT-2 substate) and orphaned FIN-WAIT-2 sockets, in seconds.
# Every read is bounded (netlink replies end with NLMSG_DONE; a cap on messages stops a runaway dump).
"""Socket-table snapshot (sock_diag netlink, /proc/net fallback) for the live agent."""

from __future__ import annotations

import os
import socket
import struct
from dataclasses import dataclass

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


def _diag_dump(family: int, protocol: int) -> list[RawRow]:
    proto = "tcp" if protocol == socket.IPPROTO_TCP else "udp"
    fam = 4 if family == socket.AF_INET else 6
    req = struct.pack("=BBBBI", family, protocol, 0, 0, 0xFFFFFFFF) + bytes(48)
    msg = _NLMSG_HDR.pack(_NLMSG_HDR.size + len(req), _SOCK_DIAG_BY_FAMILY,
                          _NLM_F_REQUEST | _NLM_F_DUMP, 1, 0) + req
    rows: list[RawRow] = []
    with socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, _NETLINK_SOCK_DIAG) as nl:
        nl.settimeout(10.0)
        nl.send(msg)
        seen = 0
        while seen < _MAX_MESSAGES:
            data = nl.recv(1 << 20)
            if not data:
                return rows
            off = 0
            while off + _NLMSG_HDR.size <= len(data):
                length, mtype, _flags, _seq, _pid = _NLMSG_HDR.unpack_from(data, off)
                if length < _NLMSG_HDR.size:
                    return rows
                seen += 1
                if mtype == _NLMSG_DONE:
                    return rows
                if mtype == _NLMSG_ERROR:
                    (err,) = struct.unpack_from("=i", data, off + _NLMSG_HDR.size)
                    if err:
                        raise OSError(-err, os.strerror(-err))
                    return rows
                if mtype == _SOCK_DIAG_BY_FAMILY and length - _NLMSG_HDR.size >= _DIAG_MSG_LEN:
                    rows.append(_diag_row(proto, fam, data, off + _NLMSG_HDR.size))
                off += (length + 3) & ~3
    return rows


#: struct inet_diag_msg in one unpack: family, state, timer, retrans, sport, dport (network order), src, dst,
#: (if, cookie skipped), expires, rqueue, wqueue, uid, inode.
_DIAG_MSG = struct.Struct("=BBBBHH16s16s12xIIIII")


def _diag_row(proto: str, fam: int, data: bytes, off: int = 0) -> RawRow:
    (family, state, timer_kind, _retrans, sport, dport, src, dst, expires, _rq, _wq, uid,
     inode) = _DIAG_MSG.unpack_from(data, off)
    sport, dport = socket.ntohs(sport), socket.ntohs(dport)
    local = (_addr(family, src), sport)
    remote = _remote(_addr(family, dst), dport)
    return RawRow(proto, fam, STATE_NAMES.get(state, f"STATE-{state}"), local, remote, uid, inode,
                  _timer(state, timer_kind, expires / 1000.0, inode))


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
