# SO_REUSEPORT groups and which listener gets a connection (net/core/sock_reuseport.c).
#
# Rules: a group holds sockets with the same family, v6only, device, port, owner and exact address,
# all with SO_REUSEPORT, formed at listen() for TCP. Members keep join order; a leaving member's slot
# is filled by the last member (reuseport_detach_sock), so indices shift. Selection without a BPF
# program is reciprocal_scale(hash, n) = (hash * n) >> 32 over the 4-tuple hash: deterministic per
# 4-tuple, not round-robin.
"""Reuseport groups and listener selection."""

from __future__ import annotations

from portalloc.model.sock import Sock


class ReuseportGroup:
    """struct sock_reuseport: the members, in slot order."""

    __slots__ = ("members", "num_closed")

    def __init__(self) -> None:
        self.members: list[Sock] = []
        self.num_closed = 0

    def add(self, sk: Sock) -> None:
        """reuseport_add_sock: append."""
        self.members.append(sk)
        sk.group = self

    def detach(self, sk: Sock) -> None:
        """reuseport_detach_sock: the last member moves into the leaving member's slot."""
        i = self.members.index(sk)
        last = self.members.pop()
        if last is not sk:
            self.members[i] = last
        sk.group = None

    def select(self, hash32: int) -> Sock:
        """reuseport_select_sock without BPF: reciprocal_scale(hash, num_socks)."""
        return self.members[(hash32 * len(self.members)) >> 32]


def same_group_identity(a: Sock, b: Sock) -> bool:
    """Could ``a`` join ``b``'s group (reuseport_add_sock's match in inet_reuseport_add_sock)?"""
    return (a.reuseport and b.reuseport and a.family == b.family and a.v6only == b.v6only
            and a.dev == b.dev and a.lport == b.lport and a.uid == b.uid and a.laddr == b.laddr)
