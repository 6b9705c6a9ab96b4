# The kernel-side socket: what the port allocator knows about one socket.
#
# Rules: one `Sock` per kernel socket, including TIME_WAIT and orphaned FIN_WAIT2 sockets (Linux keeps
# those as inet_timewait_sock; here they are the same record with state TIME_WAIT and a `tw_substate`),
# and accepted children. The user's handle (model/host.py `Socket`) points at a Sock and lets go of it
# on close(); the Sock lives on while the kernel still holds its port.
"""The Sock record and TCP state names."""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING, Any

from mypy_extensions import mypyc_attr

from portalloc.model.addr import AddrKey, IPAddress

if TYPE_CHECKING:
    from portalloc.model.reuseport import ReuseportGroup

# TCP states (include/net/tcp_states.h), by name.
CLOSE = "CLOSE"
LISTEN = "LISTEN"
SYN_SENT = "SYN_SENT"
ESTABLISHED = "ESTABLISHED"
FIN_WAIT2 = "FIN_WAIT2"
CLOSE_WAIT = "CLOSE_WAIT"
TIME_WAIT = "TIME_WAIT"

#: How `ss` prints each state (UDP: UNCONN unless connected).
SS_NAMES = {
    CLOSE: "UNCONN", LISTEN: "LISTEN", SYN_SENT: "SYN-SENT", ESTABLISHED: "ESTAB",
    FIN_WAIT2: "FIN-WAIT-2", CLOSE_WAIT: "CLOSE-WAIT", TIME_WAIT: "TIME-WAIT",
}


_new_tuple = tuple.__new__   # builds an AddrKey without the NamedTuple constructor's Python frame


#: Every field of a Sock (its __slots__; a compiled class keeps no __slots__ to read back).
SOCK_FIELDS: tuple[str, ...] = (
    "id", "family", "proto", "uid",
    "reuseaddr", "reuseport", "v6only", "dev", "bind_no_port", "freebind", "local_range",
    "state", "laddr", "lport", "raddr", "rport", "saddr_wire",
    "bindaddr_lock", "bindport_lock", "connect_bind",
    "peer", "parent", "accept_queue", "backlog", "orphan",
    "tw_substate", "ts_stamp", "expires", "group", "so_error", "blocking", "sock_state",
    "hashed", "rx", "tkey", "sport", "v4_ops", "broadcast", "scope_id", "linger_abort",
)


@mypyc_attr(allow_interpreted_subclasses=True)      # PcbSock (model/pcb.py) extends it
class Sock:
    """One kernel socket (struct sock / inet_timewait_sock) as far as port accounting needs it."""

    __slots__ = SOCK_FIELDS

    def __init__(self, sid: int, family: int, proto: str, uid: int) -> None:
        self.id = sid
        self.family = family              # 4 or 6: the socket's own family
        self.proto = proto                # "tcp" or "udp"
        self.uid = uid
        self.reuseaddr = False            # sk_reuse (SO_REUSEADDR)
        self.reuseport = False            # sk_reuseport (SO_REUSEPORT)
        self.v6only = False               # IPV6_V6ONLY
        self.dev = 0                      # sk_bound_dev_if (SO_BINDTODEVICE), an ifindex
        self.bind_no_port = False         # IP_BIND_ADDRESS_NO_PORT
        self.freebind = False             # IP_FREEBIND
        self.broadcast = False            # SO_BROADCAST (SOCK_BROADCAST): UDP may connect to a broadcast address
        self.scope_id = 0                 # sin6_scope_id of the sockaddr of the bind()/connect() in progress
        self.linger_abort = False         # SO_LINGER {l_onoff=1, l_linger=0}: close() sends RST
        self.local_range = 0              # IP_LOCAL_PORT_RANGE, hi << 16 | lo (u32)
        self.state = CLOSE
        self.laddr: IPAddress | None = None   # rcv_saddr in the socket's own family, None = unbound
        self.lport = 0                    # inet_num; 0 = no port
        self.sport = 0                    # inet_sport: the last port held; not cleared when it is released
        self.v4_ops = False               # AF_INET6 TCP: icsk_af_ops left as ipv6_mapped by a v4-mapped connect
        self.raddr: IPAddress | None = None   # peer address on the wire (IPv4 for v4-mapped)
        self.rport = 0
        self.saddr_wire: IPAddress | None = None  # local address on the wire, once connected
        self.bindaddr_lock = False        # SOCK_BINDADDR_LOCK
        self.bindport_lock = False        # SOCK_BINDPORT_LOCK: the port was chosen by the user
        self.connect_bind = False         # SOCK_CONNECT_BIND (6.18): the port was chosen by connect()
        self.peer: Any = None             # the other end: a Sock on this host or a RemotePeer
        self.parent: Sock | None = None   # the listener, while a child waits in its accept queue
        self.accept_queue: deque[Sock] | None = None   # a listener's queue, created by listen()
        self.backlog = 0
        self.orphan = False               # the user has closed it; the kernel still holds it
        self.tw_substate = ""             # TIME_WAIT or FIN_WAIT2 while state == TIME_WAIT
        self.ts_stamp: float | None = None  # tw_ts_recent_stamp: when the peer's last timestamp came
        self.expires: float | None = None  # TIME_WAIT / FIN_WAIT2 timer
        self.group: ReuseportGroup | None = None
        self.so_error = 0
        self.blocking = True
        self.sock_state = "unconnected"   # struct socket state: unconnected, connecting, connected
        self.hashed = False               # in the established table
        self.rx: deque[tuple[bytes, tuple[IPAddress, int]]] | None = None   # UDP datagrams waiting
        self.tkey: tuple[int, int, int, int, int] | None = None   # the 4-tuple (+ device) key while hashed

    def key(self) -> AddrKey:
        """The bind-overlap identity: family, local address, v6only, device."""
        assert self.laddr is not None
        return _new_tuple(AddrKey, (self.family, self.laddr, self.v6only, self.dev))

    def __repr__(self) -> str:
        return (f"<Sock {self.id} {self.proto}{self.family} {self.state} {self.laddr}:{self.lport}"
                f" -> {self.raddr}:{self.rport}>")
