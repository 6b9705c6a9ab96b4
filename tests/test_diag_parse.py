# The sock_diag parser (live/diag.py parse_chunks) on datagrams built byte by byte from the uapi layouts, so
# it is checked without root: struct nlmsghdr (include/uapi/linux/netlink.h: len u32, type u16, flags u16,
# seq u32, pid u32) then struct inet_diag_msg (include/uapi/linux/inet_diag.h: family, state, timer, retrans
# u8; id = sport, dport __be16, src, dst __be32[4], if u32, cookie u32[2]; expires, rqueue, wqueue, uid,
# inode u32), attributes after it (skipped by nlmsg_len), NLMSG_DONE at the end.
"""parse_chunks reads nlmsghdr + inet_diag_msg as the kernel lays them out."""

from __future__ import annotations

import socket
import struct

from portalloc.live import diag
from portalloc.observe.snapshot import SockRow


def _msg(family: int, state: int, timer: int, sport: int, dport: int, src: str, dst: str, expires: int,
         uid: int, inode: int, attrs: bytes = b"") -> bytes:
    def addr(text: str) -> bytes:
        return socket.inet_pton(family, text).ljust(16, b"\0")

    body = struct.pack("=BBBB", family, state, timer, 0) + struct.pack("!HH", sport, dport) + addr(src) + addr(dst)
    body += struct.pack("=III", 0, 0, 0) + struct.pack("=IIIII", expires, 0, 0, uid, inode) + attrs
    return struct.pack("=IHHII", 16 + len(body), 20, 2, 1, 0) + body


DONE = struct.pack("=IHHII", 20, 3, 2, 1, 0) + struct.pack("=i", 0)


def test_parse_chunks_reads_the_uapi_layout() -> None:
    tw = _msg(socket.AF_INET, 6, 3, 40001, 5000, "127.0.0.1", "127.0.0.2", 59_250, 0, 0)
    # a listener with an 8-byte attribute after the header (INET_DIAG_SHUTDOWN-sized), padded to 4
    lst = _msg(socket.AF_INET6, 10, 0, 5000, 0, "::1", "::", 0, 1000, 4242, attrs=struct.pack("=HHI", 8, 8, 0))
    fw2 = _msg(socket.AF_INET, 5, 1, 40002, 5000, "127.0.0.1", "127.0.0.2", 1_500, 0, 0)   # orphan FIN-WAIT-2
    rows = diag.parse_chunks([tw + lst, fw2 + DONE], "tcp", 4)
    assert [(r.state, r.local, r.remote, r.uid, r.inode, r.timer) for r in rows] == [
        ("TIME-WAIT", ("127.0.0.1", 40001), ("127.0.0.2", 5000), 0, 0, 59.25),
        ("LISTEN", ("::1", 5000), None, 1000, 4242, None),
        ("FIN-WAIT-2", ("127.0.0.1", 40002), ("127.0.0.2", 5000), 0, 0, 1.5),
    ]
    assert diag._ends_dump(fw2 + DONE) and not diag._ends_dump(tw + lst)


def test_parse_chunks_makes_snapshot_rows() -> None:
    tw = _msg(socket.AF_INET, 6, 3, 40001, 5000, "127.0.0.1", "127.0.0.2", 1_000, 0, 0)
    rows = diag.parse_chunks([tw], "tcp", 4, SockRow, with_inode=False)
    assert rows == [SockRow("tcp", 4, "TIME-WAIT", ("127.0.0.1", 40001), ("127.0.0.2", 5000), 0, 1.0)]


def _walked(chunks: list[bytes]) -> list[tuple[object, ...]]:
    """parse_chunks' rows with the fast path off (every datagram walked message by message)."""
    saved = diag._equal_messages
    diag._equal_messages = lambda data: False   # type: ignore[assignment]
    try:
        return [(r.state, r.local, r.remote, r.uid, r.inode, r.timer) for r in diag.parse_chunks(chunks, "tcp", 4)]
    finally:
        diag._equal_messages = saved


def test_equal_length_datagram_fast_path_reads_the_same_rows() -> None:
    # A dump of TIME_WAITs comes as datagrams of equal messages (96 bytes each on 6.18: an 8-byte attribute);
    # parse_chunks reads those with one iter_unpack. Mixed here: IPv4 and IPv6 TIME_WAITs (timer 3), an orphan
    # FIN-WAIT-2 (timer 1), a listener (no remote), all padded to the same length.
    pad = struct.pack("=HHI", 8, 8, 0)
    msgs = [_msg(socket.AF_INET, 6, 3, 40000 + i, 5000 + i % 2, "127.0.0.1", "127.0.0.2", 59_000 + i, 0, 0, pad)
            for i in range(5)]
    msgs.append(_msg(socket.AF_INET6, 6, 3, 40100, 5000, "::1", "::1", 1_000, 0, 0, pad))
    msgs.append(_msg(socket.AF_INET, 5, 1, 40200, 5000, "127.0.0.1", "127.0.0.2", 1_500, 0, 0, pad))
    msgs.append(_msg(socket.AF_INET, 10, 0, 5000, 0, "0.0.0.0", "0.0.0.0", 0, 1000, 77, pad))
    equal = b"".join(msgs)
    assert diag._equal_messages(equal) and not diag._ends_dump(equal)
    assert not diag._equal_messages(equal + DONE) and diag._ends_dump(equal + DONE)
    odd = equal + _msg(socket.AF_INET, 6, 3, 40300, 5000, "127.0.0.1", "127.0.0.2", 1, 0, 0)   # no attribute
    assert not diag._equal_messages(odd)
    chunks = [equal, odd, DONE]
    rows = diag.parse_chunks(chunks, "tcp", 4)
    assert [(r.state, r.local, r.remote, r.uid, r.inode, r.timer) for r in rows] == _walked(chunks)
    assert rows[0].remote == ("127.0.0.2", 5000) and rows[1].remote == ("127.0.0.2", 5001)
    assert rows[5].local == ("::1", 40100) and rows[7].remote is None and rows[7].inode == 77
    assert rows[6].timer == 1.5 and rows[7].timer is None
    # one tuple per remote endpoint: the rebuild's per-destination lookups run once per change of object
    assert rows[0].remote is rows[2].remote is rows[4].remote
