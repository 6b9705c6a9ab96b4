# Addresses as the port allocator sees them.
#
# Rules:
# - A socket's local address is kept as an `ipaddress` object of the socket's own family; an AF_INET6
#   socket bound to ::ffff:a.b.c.d keeps the mapped IPv6 form, and its "IPv4 view" is a.b.c.d.
# - 4-tuples in the established table use the *wire* family: a v4-mapped IPv6 socket talks IPv4, so
#   its tuple is stored with IPv4 addresses (tcp_v6_connect hands such sockets to tcp_v4_connect).
# - `rcv_saddr_equal` is the kernel's inet_rcv_saddr_equal(sk, sk2, match_wildcard), written over
#   (family, address, v6only) triples so the same predicate serves single sockets and whole address
#   slots of the port table.
"""Address parsing and the kernel's address-overlap predicate."""

from __future__ import annotations

import operator
import socket
from ipaddress import IPv4Address, IPv6Address, ip_address, ip_interface
from typing import NamedTuple

IPAddress = IPv4Address | IPv6Address

ANY4 = IPv4Address(0)
ANY6 = IPv6Address(0)


class AddrKey(NamedTuple):
    """What decides whether two bound sockets overlap: socket family (4 or 6), local address, v6only, device."""

    family: int
    addr: IPAddress
    v6only: bool
    dev: int


_V6 = 1 << 128


def addr_key(addr: IPAddress) -> int:
    """A wire address as a dict key: its integer, IPv6 ones offset past the IPv4 space (ipaddress objects
    hash slowly; this keeps the per-connect table work to integer hashing)."""
    ip: int = addr._ip  # type: ignore[union-attr]  # the integer ipaddress keeps; int(addr) is slower
    return ip if addr.__class__ is IPv4Address else ip | _V6


def family_number(af: int) -> int:
    """4 for AF_INET, 6 for AF_INET6."""
    return 4 if af == socket.AF_INET else 6


def v4_view(family: int, addr: IPAddress) -> IPv4Address | None:
    """The socket's ``inet_rcv_saddr``: its IPv4 address, 0.0.0.0 for ``::``, None for a plain IPv6 address.

    (Kernels up to 6.0 stored 127.0.0.6, LOOPBACK4_IPV6, for a plain IPv6 address; the bhash2 code of 6.1+
    never compares it, which is what None models: it matches only an IPv4 wildcard.)
    """
    if family == 4:
        assert isinstance(addr, IPv4Address)
        return addr
    assert isinstance(addr, IPv6Address)
    if addr == ANY6:
        return ANY4
    return addr.ipv4_mapped


def _kind6(addr: IPAddress) -> str:
    """ipv6_addr_type() reduced to what the predicate needs: 'any', 'mapped' or 'other'."""
    if isinstance(addr, IPv4Address):
        return "mapped"
    if addr == ANY6:
        return "any"
    if addr.ipv4_mapped is not None:
        return "mapped"
    return "other"


def rcv_saddr_equal(a: AddrKey, b: AddrKey, match_wildcard: bool = True) -> bool:
    """inet_rcv_saddr_equal(sk=a, sk2=b): do the two local addresses overlap? (inet_connection_sock.c)

    IPv4 ``a``: b's IPv4 view must equal a's, or either be 0.0.0.0 — never when b is v6only.
    IPv6 ``a`` (ipv6_rcv_saddr_equal): both v4-mapped (an IPv4 b counts as mapped) → the IPv4 rule;
    both ``::`` → equal; one side ``::`` → equal unless that side is v6only and the other is mapped;
    otherwise exact IPv6 equality.
    """
    if a.family == 4:
        if b.v6only:
            return False
        bv4 = v4_view(b.family, b.addr)
        if bv4 is not None and bv4 == a.addr:
            return True
        return match_wildcard and (a.addr == ANY4 or bv4 == ANY4)
    t1 = _kind6(a.addr)
    t2 = _kind6(b.addr) if b.family == 6 else "mapped"
    if t1 == "mapped" and t2 == "mapped":
        if b.v6only:
            return False
        av4 = v4_view(6, a.addr)
        bv4 = v4_view(b.family, b.addr)
        if av4 == bv4:
            return True
        return match_wildcard and (av4 == ANY4 or bv4 == ANY4)
    if t1 == "any" and t2 == "any":
        return True
    if t2 == "any" and match_wildcard and not (b.v6only and t1 == "mapped"):
        return True
    if t1 == "any" and match_wildcard and not (a.v6only and t2 == "mapped"):
        return True
    return b.family == 6 and a.addr == b.addr


def devices_compatible(dev1: int, dev2: int) -> bool:
    """SO_BINDTODEVICE: sockets bound to different devices never conflict; bound vs unbound do."""
    return not dev1 or not dev2 or dev1 == dev2


def wire_address(addr: IPAddress) -> IPAddress:
    """The address as it appears on the wire: a v4-mapped IPv6 address becomes IPv4."""
    if isinstance(addr, IPv6Address) and addr.ipv4_mapped is not None:
        return addr.ipv4_mapped
    return addr


def is_loopback(addr: IPAddress) -> bool:
    """127.0.0.0/8, ::1 or ::ffff:127.0.0.0/104 (the tcp_tw_reuse=2 test in tcp_twsk_unique: ipv4_is_loopback,
    ipv6_addr_loopback, ipv6_addr_v4mapped_loopback), on the address's integer."""
    ip: int = addr._ip  # type: ignore[union-attr]
    if isinstance(addr, IPv4Address):
        return ip >> 24 == 127
    return ip == 1 or ip >> 24 == 0xFFFF7F


def is_multicast(addr: IPAddress) -> bool:
    """224.0.0.0/4 or ff00::/8 (what ``ipaddress``'s is_multicast answers), on the address's integer."""
    ip: int = addr._ip  # type: ignore[union-attr]
    return ip >> 28 == 0xE if addr.__class__ is IPv4Address else ip >> 120 == 0xFF


def is_any(addr: IPAddress) -> bool:
    """0.0.0.0 or ::."""
    ip: int = addr._ip  # type: ignore[union-attr]  # int(addr) costs a Python-level __int__
    return ip == 0


def is_unspecified(addr: IPAddress) -> bool:
    """0.0.0.0, :: or the v4-mapped wildcard ::ffff:0.0.0.0, which an AF_INET6 socket may bind (__inet6_bind
    checks the IPv4 part with inet_addr_valid_or_nonlocal, which admits INADDR_ANY) and connect to
    (tcp_v6_connect/ip6_datagram_connect hand it to the IPv4 code, where daddr 0 means the loopback
    address): it then behaves as the IPv4 wildcard. Measured on 6.18 (regression trace
    mapped-wildcard-bind-connect)."""
    return is_any(wire_address(addr))


def format_host(addr: IPAddress) -> str:
    """The host part as the kernel and the socket module print it (inet_ntop: ``::ffff:127.0.0.1``,
    where Python 3.11's ``str()`` would give ``::ffff:7f00:1``)."""
    text = _HOST_TEXT.get(addr_key(addr))
    if text is None:
        text = socket.inet_ntop(socket.AF_INET6, addr.packed) if isinstance(addr, IPv6Address) else str(addr)
        if len(_HOST_TEXT) < 100_000:
            _HOST_TEXT[addr_key(addr)] = text
    return text


_HOST_TEXT: dict[int, str] = {}


#: 255.255.255.255, the limited broadcast address (parsed once: an IPv4Address from text costs microseconds).
LIMITED_BROADCAST = IPv4Address("255.255.255.255")


class HostAddresses:
    """The addresses a host owns, and the model's routing decisions over them.

    Given as interface addresses with prefixes (``"127.0.0.1/8"``, ``"::1/128"``, ``"10.0.0.2/16"``).
    As on Linux, a loopback interface address makes its whole prefix local (the kernel adds
    ``local 127.0.0.0/8 dev lo``); other interface addresses are local only as themselves.
    """

    def __init__(self, specs: tuple[str, ...] | list[str]) -> None:
        self._local: dict[int, bool] = {}
        self._broadcast: dict[int, bool] = {}
        self._source: dict[int, IPAddress | None] = {}
        self.interfaces = []
        for spec in specs:
            try:
                iface = ip_interface(spec)
            except ValueError as exc:
                raise ValueError(
                    f"bad host address {spec!r}: give an interface address such as '127.0.0.1/8' or '::1/128'"
                ) from exc
            self.interfaces.append(iface)
        if not self.interfaces:
            raise ValueError("a host needs at least one address, e.g. addresses=('127.0.0.1/8', '::1/128')")

    def is_broadcast(self, addr: IPAddress) -> bool:
        """An RTN_BROADCAST destination: 255.255.255.255, or the broadcast address of an IPv4 interface prefix
        shorter than /31 (fib_add_ifaddr adds it to the local table, e.g. 127.255.255.255 for lo's /8)."""
        if not isinstance(addr, IPv4Address):
            return False
        key = addr_key(addr)
        known = self._broadcast.get(key)
        if known is None:
            known = self._broadcast[key] = addr == LIMITED_BROADCAST or any(
                i.version == 4 and i.network.prefixlen < 31 and addr == i.network.broadcast_address
                for i in self.interfaces)
        return known

    def is_local(self, addr: IPAddress) -> bool:
        """Would the kernel's local routing table accept ``addr`` as one of this host's own?"""
        key = addr_key(addr)
        known = self._local.get(key)
        if known is None:
            known = self._local[key] = self._is_local(wire_address(addr))
        return known

    def _is_local(self, addr: IPAddress) -> bool:
        for iface in self.interfaces:
            if iface.version != addr.version:
                continue
            if iface.ip == addr:
                return True
            if iface.ip.is_loopback and addr in iface.network:
                return True
        return False

    def source_for(self, daddr: IPAddress) -> IPAddress | None:
        """The source address route selection would pick toward ``daddr`` (inet_select_addr, simplified).

        A local loopback destination is reached from the loopback interface address (127.0.0.1 for any
        127.x.y.z); another local address from itself; an on-link destination from that interface; any
        other destination through the first non-loopback address of the family (the model's default
        route), or failing that the first address of the family. None: no address of that family.
        """
        key = addr_key(daddr)
        try:
            return self._source[key]
        except KeyError:
            src = self._source[key] = self._source_for(wire_address(daddr))
            return src

    def _source_for(self, daddr: IPAddress) -> IPAddress | None:
        same = [i for i in self.interfaces if i.version == daddr.version]
        if not same:
            return None
        for iface in same:
            if iface.ip.is_loopback and daddr in iface.network:
                return iface.ip
        for iface in same:
            if iface.ip == daddr:
                return daddr
        for iface in same:
            if daddr in iface.network:
                return iface.ip
        for iface in same:
            if not iface.ip.is_loopback:
                return iface.ip
        return same[0].ip


_HOST_CACHE: dict[tuple[str, int], IPAddress] = {}


def parse_host(host: object, family: int, fn: str) -> IPAddress:
    """Turn the host part of a sockaddr into an address, as the socket module would (numeric only).

    ``""`` is the wildcard, ``"localhost"`` the loopback address, ``"<broadcast>"`` 255.255.255.255.
    Names needing DNS raise socket.gaierror, as an unresolvable name would.
    """
    if isinstance(host, str):
        hit = _HOST_CACHE.get((host, family))
        if hit is not None:
            return hit
    if isinstance(host, bytes):
        host = host.decode("idna")
    if not isinstance(host, str):
        raise TypeError(f"str, bytes or bytearray expected, not {type(host).__name__}")
    if host == "":
        return ANY4 if family == 4 else ANY6
    if host == "localhost":
        return IPv4Address("127.0.0.1") if family == 4 else IPv6Address(1)
    if host == "<broadcast>" and family == 4:
        return IPv4Address("255.255.255.255")
    h = host.split("%", 1)[0] if family == 6 else host
    try:
        addr = ip_address(h)
    except ValueError:
        if family != 4 or not h or h[-1:].isspace():
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known") from None
        try:                                      # getaddrinfo's inet_aton form: "127.1", "0x7f.1"
            addr = IPv4Address(socket.inet_aton(h))
        except OSError:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known") from None
    if family == 4 and isinstance(addr, IPv6Address) and addr.ipv4_mapped is not None:
        # glibc's getaddrinfo(AF_INET) turns a v4-mapped literal into its IPv4 address (measured: an AF_INET
        # socket binds "::ffff:127.0.0.1" as 127.0.0.1)
        addr = addr.ipv4_mapped
    elif addr.version != family:
        # e.g. "::1" on an AF_INET socket: getaddrinfo(AF_INET) cannot resolve it.
        raise socket.gaierror(socket.EAI_ADDRFAMILY if hasattr(socket, "EAI_ADDRFAMILY") else -9,
                              "Address family for hostname not supported")
    if len(_HOST_CACHE) < 100_000:
        _HOST_CACHE[(host, family)] = addr
    return addr


_SOCKADDR_CACHE: dict[tuple[object, int], tuple[IPAddress, int]] = {}


def parse_sockaddr(addr: object, family: int, fn: str) -> tuple[IPAddress, int]:
    """Validate a sockaddr tuple the way socketmodule.c's getsockaddrarg does; return (address, port).

    A plain (str, int) pair that parsed before is answered from a cache (its answer depends on nothing else)."""
    plain = addr.__class__ is tuple and len(addr) == 2 and addr[0].__class__ is str \
        and addr[1].__class__ is int
    if plain:
        hit = _SOCKADDR_CACHE.get((addr, family))
        if hit is not None:
            return hit
    parsed = _parse_sockaddr(addr, family, fn)
    if plain and len(_SOCKADDR_CACHE) < 100_000:
        _SOCKADDR_CACHE[(addr, family)] = parsed
    return parsed


def _parse_sockaddr(addr: object, family: int, fn: str) -> tuple[IPAddress, int]:
    fam_name = "AF_INET" if family == 4 else "AF_INET6"
    if not isinstance(addr, tuple):
        raise TypeError(f"{fam_name} address must be tuple, not {type(addr).__name__}")
    if family == 4 and len(addr) != 2:
        raise TypeError("AF_INET address must be a pair (host, port)")
    if family == 6 and not 2 <= len(addr) <= 4:
        raise TypeError("AF_INET6 address must be a tuple (host, port[, flowinfo[, scopeid]])")
    # getsockaddrarg: "O&i|II" (host type, port, flowinfo, scope id), then the name lookup, then the ranges.
    host = addr[0]
    if not isinstance(host, (str, bytes, bytearray)):
        raise TypeError(f"str, bytes or bytearray expected, not {type(host).__name__}")
    port = _index(addr[1])                        # True is port 1, as the socket module takes it
    if port > 0x7FFFFFFF or port < -0x80000000:
        raise OverflowError("signed integer is greater than maximum" if port > 0 else
                            "signed integer is less than minimum")
    flowinfo = _index(addr[2]) if family == 6 and len(addr) > 2 else 0
    if family == 6 and len(addr) > 3:
        _index(addr[3])
    parsed = parse_host(host, family, fn)
    if not 0 <= port <= 0xFFFF:
        raise OverflowError(f"{fn}(): port must be 0-65535.")
    if not 0 <= flowinfo & 0xFFFFFFFF <= 0xFFFFF:
        raise OverflowError(f"{fn}(): flowinfo must be 0-1048575.")
    return parsed, port


def _index(value: object) -> int:
    """An integer argument as PyArg_ParseTuple's "i"/"I" formats take one (``__index__``; bool is an int)."""
    try:
        return operator.index(value)              # type: ignore[arg-type]
    except TypeError:
        raise TypeError(f"'{type(value).__name__}' object cannot be interpreted as an integer") from None


def sockaddr_scope_id(addr: tuple[object, ...]) -> int:
    """The sin6_scope_id of a checked AF_INET6 sockaddr tuple (its 4th item), 0 when absent."""
    return _index(addr[3]) & 0xFFFFFFFF if len(addr) > 3 else 0


def needs_scope_id(addr: IPAddress) -> bool:
    """__ipv6_addr_needs_scope_id: a link-local unicast address, or a multicast address of interface- or
    link-local scope (ff01::/16, ff02::/16): bind() and connect() need a device for it."""
    if not isinstance(addr, IPv6Address) or addr.ipv4_mapped is not None:
        return False
    if addr.is_multicast:
        return (addr.packed[1] & 0x0F) in (1, 2)
    return addr.is_link_local
