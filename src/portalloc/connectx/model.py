# connectx on a portalloc model Host: the Net of core.py answered by the model instead of the kernel.
#
# Rules: sockets come from host.socket(), so the model decides every bind/connect exactly as it does for
# any other program; the capabilities are probed the same way as on a real kernel (setsockopt answering
# ENOPROTOOPT), except the step-1 walk, which the profile states (KernelProfile.local_range_step_one,
# Linux 6.8+, 207184853dbd). The exact UDP lookup is the model's equivalent of sock_diag's udp_dump_one()
# -> __udp4_lib_lookup(): sockets bound to the exact local address first, then the wildcard; a connected
# socket matches only its own peer; the highest score wins (a connected socket beats an unconnected one),
# ties go to the socket bound first. It reads the model's UDP bind table (as sock_diag reads the kernel's),
# so one lookup costs the sockets on that port, not the whole table. Identity is the model's socket id.
"""The Net for a portalloc model Host (simulations)."""

from __future__ import annotations

import random
import socket
from collections.abc import Hashable
from functools import cached_property
from ipaddress import ip_address
from typing import Any

from portalloc.connectx.core import Capabilities
from portalloc.constants import IP_BIND_ADDRESS_NO_PORT, IP_LOCAL_PORT_RANGE, pack_local_port_range
from portalloc.kernels.sysctls import parse_port_list
from portalloc.model.addr import ANY4, ANY6, v4_view
from portalloc.model.host import Host


def probe_capabilities(new_tcp_socket: Any, step_one: bool) -> Capabilities:
    """Which options the kernel accepts: one TCP socket, two setsockopt calls, ENOPROTOOPT means no."""
    sock = new_tcp_socket()
    try:
        found = []
        for level, name, value in ((socket.SOL_IP, IP_BIND_ADDRESS_NO_PORT, 1),
                                   (socket.SOL_IP, IP_LOCAL_PORT_RANGE, pack_local_port_range(0, 0))):
            try:
                sock.setsockopt(level, name, value)
                found.append(True)
            except OSError as exc:
                if exc.errno not in (95, 92):          # EOPNOTSUPP, ENOPROTOOPT: the option does not exist
                    raise
                found.append(False)
    finally:
        sock.close()
    return Capabilities(found[0], found[1], found[1] and step_one)


class ModelNet:
    """core.Net over a model Host: sockets, sysctls and the UDP lookup come from the model."""

    def __init__(self, host: Host, seed: int = 0) -> None:
        self.host = host
        self.rng = random.Random(seed)

    def socket(self, family: int, kind: int) -> Any:
        """A model socket."""
        return self.host.socket(family, kind)

    @cached_property
    def _capabilities(self) -> Capabilities:
        return probe_capabilities(lambda: self.host.socket(socket.AF_INET, socket.SOCK_STREAM),
                                  self.host.profile.local_range_step_one)

    def capabilities(self) -> Capabilities:
        """Probed once per ModelNet."""
        return self._capabilities

    def port_range(self) -> tuple[int, int]:
        """The model's net.ipv4.ip_local_port_range."""
        value = self.host.sysctl("net.ipv4.ip_local_port_range")
        assert isinstance(value, tuple)
        return int(value[0]), int(value[1])

    def reserved_ports(self) -> frozenset[int]:
        """The model's net.ipv4.ip_local_reserved_ports."""
        return parse_port_list(str(self.host.sysctl("net.ipv4.ip_local_reserved_ports") or ""))

    def udp_holder(self, family: int, local: tuple[str, int], remote: tuple[str, int]) -> Hashable | None:
        """__udp4_lib_lookup as udp_dump_one asks it: exact local address first, then the wildcard."""
        laddr, port = ip_address(local[0]), local[1]
        raddr, rport = ip_address(remote[0]), remote[1]
        owners = self.host._stack.udp.owners(port)
        for wanted in (laddr, ANY4 if laddr.version == 4 else ANY6):
            best, best_score = None, -1
            for sk in owners:
                if sk.laddr is None:
                    continue
                if laddr.version == 4:
                    if sk.family == 6 and sk.v6only:
                        continue
                    if v4_view(sk.family, sk.laddr) != wanted:
                        continue
                    score = 2 if sk.family == 4 else 1
                else:
                    if sk.family != 6 or sk.laddr != wanted:
                        continue
                    score = 1
                if sk.raddr is not None:
                    if sk.raddr != raddr or sk.rport != rport:
                        continue
                    score += 8
                if score > best_score:
                    best, best_score = sk, score
            if best is not None:
                return int(best.id)
        return None

    def identity(self, sock: Any) -> Hashable:
        """The model socket's id."""
        return int(sock._sk.id)
