# Who may share a port: the kernel's bind-conflict predicates, one function per decision.
#
# Rules (inet_connection_sock.c inet_bind_conflict / inet_csk_bind_conflict; udp.c udp_lib_lport_inuse):
# - TCP: sk2 blocks sk when devices are compatible, addresses overlap (inet_rcv_saddr_equal with
#   wildcards), and neither sharing rule lets them share: SO_REUSEADDR needs both sockets to have it and
#   sk2 not to be listening; SO_REUSEPORT needs both, the same uid (TIME_WAIT owners exempt), and sk not
#   already in a reuseport group without closed sockets. `relax=False` (the bind(0) search) turns every
#   overlapping owner into a conflict; `reuseport_ok=False` (also the search) disables the
#   SO_REUSEPORT exemption.
# - UDP: sk2 blocks sk unless both have SO_REUSEADDR or both have SO_REUSEPORT with the same uid; there
#   is no LISTEN or TIME_WAIT. The kernel walks the slot newest first and, for an explicit port, stops
#   at the first overlapping owner: a SO_REUSEPORT match there means "no conflict".
"""Bind-conflict predicates for TCP and UDP."""

from __future__ import annotations

from collections.abc import Iterable

from portalloc.model.addr import devices_compatible, rcv_saddr_equal
from portalloc.model.sock import LISTEN, TIME_WAIT, Sock


def reuseport_cb_ok(sk: Sock) -> bool:
    """sk is in no reuseport group, or in one that has closed sockets (sock_reuseport num_closed_socks)."""
    return sk.group is None or sk.group.num_closed > 0


def pair_blocks(sk: Sock, sk2: Sock, relax: bool, reuseport_ok: bool) -> bool:
    """inet_bind_conflict(): do the sharing rules forbid sk next to sk2 (addresses not yet compared)?"""
    cb_ok = reuseport_cb_ok(sk)
    if sk.reuseaddr and sk2.reuseaddr and sk2.state != LISTEN:
        return (not relax) or (
            not reuseport_ok and sk.reuseport and sk2.reuseport and cb_ok
            and (sk2.state == TIME_WAIT or sk.uid == sk2.uid)
        )
    return (not reuseport_ok or not sk.reuseport or not sk2.reuseport or not cb_ok
            or (sk2.state != TIME_WAIT and sk.uid != sk2.uid))


def tcp_bind_conflict(sk: Sock, owners: Iterable[Sock], relax: bool, reuseport_ok: bool) -> bool:
    """inet_csk_bind_conflict(): does any owner of the port block ``sk``?"""
    key = sk.key()
    for sk2 in owners:
        if sk2 is sk or not devices_compatible(sk.dev, sk2.dev):
            continue
        if pair_blocks(sk, sk2, relax, reuseport_ok) and rcv_saddr_equal(key, sk2.key(), True):
            return True
    return False


def _udp_overlapping(sk: Sock, sk2: Sock) -> bool:
    return (sk2 is not sk and not (sk.reuseaddr and sk2.reuseaddr)
            and devices_compatible(sk.dev, sk2.dev) and rcv_saddr_equal(sk.key(), sk2.key(), True))


def _udp_reuseport_match(sk: Sock, sk2: Sock) -> bool:
    return sk.reuseport and sk2.reuseport and sk.group is None and sk.uid == sk2.uid


def udp_slot_order(owners: list[Sock]) -> list[Sock]:
    """Hash-slot order: sk_add_node_rcu puts new sockets at the head, IPv6 SO_REUSEPORT ones at the tail."""
    tail = [s for s in owners if s.reuseport and s.family == 6]
    head = [s for s in reversed(owners) if not (s.reuseport and s.family == 6)]
    return head + tail


def udp_bind_conflict(sk: Sock, owners: list[Sock]) -> bool:
    """udp_lib_lport_inuse() for an explicit port: the first overlapping owner decides."""
    for sk2 in udp_slot_order(owners):
        if _udp_overlapping(sk, sk2):
            return not _udp_reuseport_match(sk, sk2)
    return False


def udp_port_taken(sk: Sock, owners: list[Sock]) -> bool:
    """udp_lib_lport_inuse() in bitmap mode (autobind): any overlapping owner without a reuseport match."""
    return any(_udp_overlapping(sk, sk2) and not _udp_reuseport_match(sk, sk2) for sk2 in owners)
