# The BSD-family and Windows profiles, held to what shared/research/others.md (sections 2, 3, 7, 8) and the
# sources it cites say: one parametrized bind table per OS, each OS's sysctls (names, defaults, how a bad
# write is refused or clamped), FreeBSD's randomcps/randomtime throttle, NetBSD's algorithm selection,
# each OS's connect() uniqueness scope, the options that exist or not, and profile registration.
#
# Rules: model only (these kernels cannot run here); every host is seeded and every assertion is a
# property the source states (a scope, an order, an errno), never a lucky port number. Each table row
# names the source function it transcribes.
"""Tests of the FreeBSD, OpenBSD, NetBSD, macOS and Windows profiles."""

from __future__ import annotations

import errno
import json
import os
import socket
from typing import Any

import pytest
from typer.testing import CliRunner

from portalloc import Host, get_profile, kernels
from portalloc.cli.main import app
from portalloc.constants import IP_BIND_ADDRESS_NO_PORT, IP_FREEBIND, IP_LOCAL_PORT_RANGE, SO_BINDTODEVICE
from portalloc.kernels import bsd as bsd_profiles
from portalloc.model import bsd, windows

SEED = int(os.environ.get("PORTALLOC_TEST_SEED", "7"))   # conftest's override, for luck checks
P = 7000                       # the contested port (unprivileged everywhere)
LISTENER = ("127.0.0.1", 5000)
RA, RP, LB = ("SO_REUSEADDR",), ("SO_REUSEPORT",), ("SO_REUSEPORT_LB",)
OPTION = {"SO_REUSEADDR": socket.SO_REUSEADDR, "SO_REUSEPORT": socket.SO_REUSEPORT,
          "SO_REUSEPORT_LB": bsd.SO_REUSEPORT_LB, "SO_EXCLUSIVEADDRUSE": windows.SO_EXCLUSIVEADDRUSE}
BSD_NAMES = ["freebsd-12", "freebsd-13", "freebsd-14", "openbsd", "netbsd", "netbsd-bsd", "netbsd-random-start",
             "netbsd-random-pick", "netbsd-hash", "netbsd-doublehash", "netbsd-randinc", "macos", "windows"]


def ename(code: int | None) -> str:
    return errno.errorcode.get(code or 0, "ok")


def outcome(fn: Any, *args: Any) -> str:
    try:
        fn(*args)
    except OSError as exc:
        return ename(exc.errno)
    return "ok"


def opts(sock: Any, names: tuple[str, ...]) -> Any:
    for name in names:
        sock.setsockopt(socket.SOL_SOCKET, OPTION[name], 1)
    return sock


def host(kernel: str, **kw: Any) -> Host:
    return Host(kernel, seed=kw.pop("seed", SEED), **kw)


def existing(h: Host, keep: list[Any], state: str, addr: str, names: tuple[str, ...], uid: int) -> Any:
    """The socket already on port P: bound, listening, connected (to LISTENER) or in TIME_WAIT."""
    if state in ("connected", "timewait") and not any(getattr(k, "_is_listener", False) for k in keep):
        lst = h.socket()
        lst.bind(LISTENER)
        lst.listen()
        keep.append(lst)
    t = opts(h.socket(uid=uid), names)
    t.bind((addr, P))
    if state == "listen":
        t.listen()
    elif state in ("connected", "timewait"):
        t.connect(LISTENER)
        child, _ = keep[0].accept()
        keep.append(child)
        if state == "timewait":
            t.close()                      # we close first: FIN_WAIT2, then TIME_WAIT once the peer closes
            child.close()
            return None
    keep.append(t)
    return t


def bind_next(kernel: str, state: str, t_addr: str, t_opts: tuple[str, ...], t_uid: int, addr: str,
              new_opts: tuple[str, ...], uid: int) -> str:
    h = host(kernel)
    keep: list[Any] = []
    existing(h, keep, state, t_addr, t_opts, t_uid)
    s = opts(h.socket(uid=uid), new_opts)
    return outcome(s.bind, (addr, P))


# ------------------------------------------------------------------ bind truth tables

#: FreeBSD in_pcbbind_setup for an explicit port (others.md §2.8, S3 14.x text; S1 12.x equivalent here).
FREEBSD_BIND = [
    # id, existing state, its address, its options, its uid, new address, new options, new uid, result
    ("none-vs-wildcard", "bound", "", (), 0, "", (), 0, "EADDRINUSE"),
    ("none-any-over-specific", "listen", "127.0.0.1", (), 0, "", (), 0, "EADDRINUSE"),
    ("none-vs-connected", "connected", "127.0.0.1", (), 0, "127.0.0.1", (), 0, "EADDRINUSE"),
    ("none-vs-timewait", "timewait", "127.0.0.1", (), 0, "127.0.0.1", (), 0, "EADDRINUSE"),
    ("reuseaddr-vs-connected", "connected", "127.0.0.1", (), 0, "", RA, 0, "ok"),
    ("reuseaddr-vs-timewait", "timewait", "127.0.0.1", (), 0, "127.0.0.1", RA, 0, "ok"),
    ("reuseaddr-same-address-unconnected", "bound", "127.0.0.1", RA, 0, "127.0.0.1", RA, 0, "EADDRINUSE"),
    ("reuseaddr-specific-next-to-wildcard", "listen", "", (), 0, "127.0.0.1", RA, 0, "ok"),
    ("reuseaddr-wildcard-next-to-specific", "listen", "127.0.0.1", (), 0, "", RA, 0, "ok"),
    ("reuseport-both", "bound", "127.0.0.1", RP, 0, "127.0.0.1", RP, 0, "ok"),
    ("reuseport-new-only", "bound", "127.0.0.1", (), 0, "127.0.0.1", RP, 0, "EADDRINUSE"),
    ("reuseport-lb-both", "listen", "", LB, 0, "", LB, 0, "ok"),
    ("lb-then-reuseport", "bound", "", LB, 0, "", RP, 0, "EADDRINUSE"),
    ("reuseport-then-lb", "bound", "", RP, 0, "", LB, 0, "EADDRINUSE"),
    ("uid-differs-reuseport", "bound", "", RP, 1001, "", RP, 1002, "EADDRINUSE"),
    ("uid-same-reuseport", "bound", "", RP, 1001, "", RP, 1001, "ok"),
    ("uid-differs-connected-stream-skipped", "connected", "127.0.0.1", (), 1001, "", RA, 1002, "ok"),
    ("root-skips-uid-check", "bound", "", RP, 1001, "", RP, 0, "ok"),
    ("uid-differs-lb-wildcards-oddity", "listen", "", LB, 1001, "", LB, 1002, "ok"),
]


@pytest.mark.parametrize("kernel", ["freebsd-12", "freebsd-13", "freebsd-14"])
@pytest.mark.parametrize("row", FREEBSD_BIND, ids=[r[0] for r in FREEBSD_BIND])
def test_freebsd_bind_table(kernel: str, row: tuple[Any, ...]) -> None:
    """One socket holds port P; a second binds it. A wildcard lookup (no SO_REUSE*) sees every PCB on
    the port, connected and TIME_WAIT ones too; SO_REUSEADDR narrows it to unconnected PCBs on exactly
    the address; SO_REUSEPORT/_LB must be on the found PCB as well, and the two do not satisfy each
    other; a non-root caller of another uid is refused unless (14.x text) both are wildcard and the
    found PCB has only SO_REUSEPORT_LB."""
    assert bind_next(kernel, *row[1:8]) == row[8]


#: OpenBSD in_pcbaddrisavail (others.md §3.1, S5).
OPENBSD_BIND = [
    ("euid-differs-reuseport", "bound", "127.0.0.1", RP, 1001, "127.0.0.1", RP, 1002, "EADDRINUSE"),
    ("euid-same-reuseport", "bound", "127.0.0.1", RP, 1001, "127.0.0.1", RP, 1001, "ok"),
    ("euid-differs-even-vs-connected", "connected", "127.0.0.1", (), 1001, "", RA, 1002, "EADDRINUSE"),
    ("root-skips-euid-check", "bound", "127.0.0.1", RP, 1001, "127.0.0.1", RP, 0, "ok"),
    ("none-specific-next-to-wildcard", "listen", "", (), 0, "127.0.0.1", (), 0, "EADDRINUSE"),
    ("reuseaddr-specific-next-to-wildcard", "listen", "", (), 0, "127.0.0.1", RA, 0, "ok"),
    ("reuseaddr-vs-timewait", "timewait", "127.0.0.1", (), 0, "127.0.0.1", RA, 0, "ok"),
    ("reuseport-new-only", "bound", "127.0.0.1", (), 0, "127.0.0.1", RP, 0, "EADDRINUSE"),
    ("reuseport-both", "bound", "", RP, 0, "", RP, 0, "ok"),
]


@pytest.mark.parametrize("row", OPENBSD_BIND, ids=[r[0] for r in OPENBSD_BIND])
def test_openbsd_bind_table(row: tuple[Any, ...]) -> None:
    """A non-root euid never shares a port with another euid on an overlapping address, whatever the
    options or the other socket's state; otherwise classic BSD sharing."""
    assert bind_next("openbsd", *row[1:8]) == row[8]


#: NetBSD inpcb_bind_port (NetBSD/src sys/netinet/in_pcb.c, stored id 2337914991).
NETBSD_BIND = [
    ("uid-differs-wildcards-reuseport", "bound", "", RP, 1001, "", RP, 1002, "ok"),
    ("uid-differs-specific-reuseport", "bound", "127.0.0.1", RP, 1001, "127.0.0.1", RP, 1002, "EADDRINUSE"),
    ("uid-differs-found-lacks-reuseport", "bound", "", (), 1001, "", RP, 1002, "EADDRINUSE"),
    ("none-vs-connected", "connected", "127.0.0.1", (), 0, "127.0.0.1", (), 0, "EADDRINUSE"),
    ("reuseaddr-vs-connected", "connected", "127.0.0.1", (), 0, "127.0.0.1", RA, 0, "ok"),
    ("reuseaddr-wildcard-next-to-specific", "listen", "127.0.0.1", (), 0, "", RA, 0, "ok"),
    ("reuseport-new-only", "bound", "127.0.0.1", (), 0, "127.0.0.1", RP, 0, "EADDRINUSE"),
    ("reuseport-both", "bound", "127.0.0.1", RP, 0, "127.0.0.1", RP, 0, "ok"),
]


@pytest.mark.parametrize("row", NETBSD_BIND, ids=[r[0] for r in NETBSD_BIND])
def test_netbsd_bind_table(row: tuple[Any, ...]) -> None:
    """A different uid may share only a wildcard/wildcard pair whose found socket has SO_REUSEPORT."""
    assert bind_next("netbsd", *row[1:8]) == row[8]


#: XNU in_pcbbind for an explicit port (others.md §3.3, S6).
XNU_BIND = [
    ("uid-differs-wildcards", "bound", "", RP, 1001, "", RP, 1002, "ok"),
    ("uid-differs-specific", "bound", "127.0.0.1", RP, 1001, "127.0.0.1", RP, 1002, "EADDRINUSE"),
    ("none-vs-timewait", "timewait", "127.0.0.1", (), 0, "127.0.0.1", (), 0, "EADDRINUSE"),
    ("reuseaddr-vs-connected", "connected", "127.0.0.1", (), 0, "", RA, 0, "ok"),
    ("reuseaddr-specific-next-to-wildcard", "listen", "", (), 0, "127.0.0.1", RA, 0, "ok"),
    ("reuseport-new-only", "bound", "127.0.0.1", (), 0, "127.0.0.1", RP, 0, "EADDRINUSE"),
]


@pytest.mark.parametrize("row", XNU_BIND, ids=[r[0] for r in XNU_BIND])
def test_macos_bind_table(row: tuple[Any, ...]) -> None:
    """XNU's uid rule applies only when one side is a specific address; otherwise classic BSD sharing."""
    assert bind_next("macos", *row[1:8]) == row[8]


#: W3 "Using SO_REUSEADDR and SO_EXCLUSIVEADDRUSE", Windows Server 2003 and later (others.md §3.4,
#: verified orientation: rows = first bind, columns = second bind).
WIN_COLUMNS = ["Default W", "Default S", "REUSEADDR W", "REUSEADDR S", "EXCLUSIVE W", "EXCLUSIVE S"]
WIN_SAME = {
    "Default W": "INUSE Success ACCESS Success INUSE Success",
    "Default S": "Success INUSE Success ACCESS INUSE INUSE",
    "REUSEADDR W": "INUSE Success Success Success INUSE Success",
    "REUSEADDR S": "Success INUSE Success Success INUSE INUSE",
    "EXCLUSIVE W": "INUSE ACCESS ACCESS ACCESS INUSE ACCESS",
    "EXCLUSIVE S": "Success INUSE Success ACCESS INUSE INUSE",
}
WIN_DIFFERENT = {
    "Default W": "INUSE ACCESS ACCESS ACCESS INUSE ACCESS",
    "Default S": "Success INUSE Success ACCESS INUSE INUSE",
    "REUSEADDR W": "INUSE ACCESS Success Success INUSE ACCESS",
    "REUSEADDR S": "Success INUSE Success Success INUSE INUSE",
    "EXCLUSIVE W": "INUSE ACCESS ACCESS ACCESS INUSE ACCESS",
    "EXCLUSIVE S": "Success INUSE Success ACCESS INUSE INUSE",
}
WIN_RESULT = {"INUSE": "EADDRINUSE", "ACCESS": "EACCES", "Success": "ok"}
WIN_CELLS = [(acct, first, second, table[first].split()[i])
             for acct, table in (("same", WIN_SAME), ("different", WIN_DIFFERENT))
             for first in WIN_COLUMNS for i, second in enumerate(WIN_COLUMNS)]


def _win_socket(h: Host, kind: str, uid: int) -> tuple[Any, tuple[str, int]]:
    option, where = kind.split()
    s = h.socket(uid=uid)
    if option == "REUSEADDR":
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    elif option == "EXCLUSIVE":
        s.setsockopt(socket.SOL_SOCKET, windows.SO_EXCLUSIVEADDRUSE, 1)
    return s, ("" if where == "W" else "127.0.0.1", P)


@pytest.mark.parametrize("acct, first, second, cell", WIN_CELLS,
                         ids=[f"{a}-{f}-then-{s}".replace(" ", "") for a, f, s, _ in WIN_CELLS])
def test_windows_bind_tables(acct: str, first: str, second: str, cell: str) -> None:
    """All 72 cells of the two Server 2003+ tables: INUSE is WSAEADDRINUSE, ACCESS WSAEACCES."""
    h = host("windows")
    a, addr_a = _win_socket(h, first, 1001)
    a.bind(addr_a)
    b, addr_b = _win_socket(h, second, 1001 if acct == "same" else 1002)
    assert outcome(b.bind, addr_b) == WIN_RESULT[cell]


def test_windows_different_specific_addresses_never_conflict() -> None:
    """W6: two sockets bound to different specific addresses never conflict, whatever the options."""
    h = host("windows", addresses=("127.0.0.1/8", "10.0.0.1/24"))
    a = h.socket(uid=1001)
    a.setsockopt(socket.SOL_SOCKET, windows.SO_EXCLUSIVEADDRUSE, 1)
    a.bind(("10.0.0.1", P))
    assert outcome(h.socket(uid=1002).bind, ("127.0.0.1", P)) == "ok"


# ------------------------------------------------------------------ errnos of bind() (others.md §2.9, §3)

@pytest.mark.parametrize("kernel, addr, uid, expected", [
    ("freebsd-14", "127.0.0.1", 1000, "EACCES"),       # reservedlow..reservedhigh = 0..1023
    ("freebsd-14", "127.0.0.1", 0, "ok"),
    ("openbsd", "127.0.0.1", 1000, "EACCES"),
    ("netbsd", "127.0.0.1", 1000, "EACCES"),
    ("macos", "127.0.0.1", 1000, "EACCES"),
    ("macos", "", 1000, "ok"),                         # XNU: privileged only on a specific address
    ("windows", "127.0.0.1", 1000, "ok"),              # no privileged ports
])
def test_privileged_ports(kernel: str, addr: str, uid: int, expected: str) -> None:
    h = host(kernel)
    assert outcome(h.socket(uid=uid).bind, (addr, 80)) == expected


def test_freebsd_reserved_range_follows_its_sysctls() -> None:
    """portrange.reservedlow/reservedhigh bound the privileged ports (S3 "GROSS" check)."""
    h = host("freebsd-13", sysctls={"net.inet.ip.portrange.reservedhigh": 79})
    assert outcome(h.socket(uid=1000).bind, ("127.0.0.1", 80)) == "ok"
    assert outcome(h.socket(uid=1000).bind, ("127.0.0.1", 79)) == "EACCES"


@pytest.mark.parametrize("kernel, first", [("openbsd", "EADDRINUSE"), ("freebsd-14", "EACCES"),
                                           ("netbsd", "EACCES")])
def test_privilege_versus_conflict_order(kernel: str, first: str) -> None:
    """OpenBSD checks in_pcbaddrisavail (the euid rule) before in_rootonly; FreeBSD and NetBSD check the
    privileged port first."""
    h = host(kernel)
    h.socket().bind(("", 80))
    assert outcome(h.socket(uid=1000).bind, ("127.0.0.1", 80)) == first


@pytest.mark.parametrize("kernel", ["freebsd-12", "freebsd-14", "openbsd", "netbsd", "macos", "windows"])
def test_bind_errnos_common(kernel: str) -> None:
    """A non-local address: EADDRNOTAVAIL; binding a bound socket again: EINVAL."""
    h = host(kernel)
    assert outcome(h.socket().bind, ("192.0.2.1", P)) == "EADDRNOTAVAIL"
    s = h.socket()
    s.bind(("127.0.0.1", P))
    assert outcome(s.bind, ("127.0.0.1", P + 1)) == "EINVAL"


def test_freebsd_bindany_and_multicast() -> None:
    """IP_BINDANY (root only) allows a non-local address; TCP refuses a multicast one (tcp_usr_bind)."""
    h = host("freebsd-14")
    s = h.socket()
    s.setsockopt(socket.SOL_IP, bsd.IP_BINDANY, 1)
    s.bind(("192.0.2.1", P))
    assert s.getsockopt(socket.SOL_IP, bsd.IP_BINDANY) == 1
    user = h.socket(uid=1000)
    with pytest.raises(OSError) as exc:
        user.setsockopt(socket.SOL_IP, bsd.IP_BINDANY, 1)
    assert exc.value.errno == errno.EPERM
    assert outcome(h.socket().bind, ("224.0.0.9", P)) == "EAFNOSUPPORT"
    udp = h.socket(socket.AF_INET, socket.SOCK_DGRAM)
    assert outcome(udp.bind, ("224.0.0.9", P)) == "ok"


def test_freebsd_dual_stack_bind() -> None:
    """AF_INET6 sockets start v6only (net.inet6.ip6.v6only = 1), so [::]:P sits next to 0.0.0.0:P; a
    dual-stack one (v6only 0) meets the IPv4 socket in the IPv4 lookup and is refused."""
    h = host("freebsd-14")
    h.socket().bind(("", P))
    v6 = h.socket(socket.AF_INET6)
    assert v6.getsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY) == 1
    assert outcome(v6.bind, ("::", P)) == "ok"
    dual = h.socket(socket.AF_INET6)
    dual.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    assert outcome(dual.bind, ("::", P + 1)) == "ok"
    h.socket().bind(("", P + 2))
    dual2 = h.socket(socket.AF_INET6)
    dual2.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    assert outcome(dual2.bind, ("::", P + 2)) == "EADDRINUSE"


# ------------------------------------------------------------------ options that exist or not

@pytest.mark.parametrize("kernel", [n for n in BSD_NAMES if n != "netbsd-bsd"])
@pytest.mark.parametrize("level, name", [(socket.SOL_IP, IP_BIND_ADDRESS_NO_PORT),
                                         (socket.SOL_IP, IP_LOCAL_PORT_RANGE)])
def test_linux_only_options_enoprotoopt_through_the_facade(kernel: str, level: int, name: int) -> None:
    """IP_BIND_ADDRESS_NO_PORT and IP_LOCAL_PORT_RANGE do not exist: ip_ctloutput's ENOPROTOOPT."""
    s = host(kernel).socket()
    with pytest.raises(OSError) as exc:
        s.setsockopt(level, name, 1)
    assert exc.value.errno == errno.ENOPROTOOPT


@pytest.mark.parametrize("kernel", ["freebsd-14", "openbsd", "netbsd", "macos", "windows"])
@pytest.mark.parametrize("level, name", [(socket.SOL_IP, IP_FREEBIND), (socket.SOL_SOCKET, SO_BINDTODEVICE),
                                         (socket.SOL_IP, IP_BIND_ADDRESS_NO_PORT)])
def test_linux_only_options_enoprotoopt_through_the_os_hook(kernel: str, level: int, name: int) -> None:
    s = host(kernel).socket()
    with pytest.raises(OSError) as exc:
        s.setsockopt(level, name, b"lo\0\0" if name == SO_BINDTODEVICE else 1)
    assert exc.value.errno == errno.ENOPROTOOPT


@pytest.mark.parametrize("kernel, level, name, exists", [
    ("freebsd-12", socket.SOL_SOCKET, bsd.SO_REUSEPORT_LB, True),
    ("openbsd", socket.SOL_SOCKET, bsd.SO_REUSEPORT_LB, False),
    ("macos", socket.SOL_SOCKET, bsd.SO_REUSEPORT_LB, False),
    ("openbsd", socket.SOL_SOCKET, bsd.SO_BINDANY, True),
    ("freebsd-14", socket.SOL_SOCKET, bsd.SO_BINDANY, False),
    ("windows", socket.SOL_SOCKET, socket.SO_REUSEPORT, False),
    ("windows", socket.SOL_IP, bsd.IP_PORTRANGE, False),
    ("freebsd-14", socket.SOL_SOCKET, windows.SO_EXCLUSIVEADDRUSE, False),
    ("windows", socket.SOL_SOCKET, windows.SO_EXCLUSIVEADDRUSE, True),
])
def test_os_specific_options(kernel: str, level: int, name: int, exists: bool) -> None:
    s = host(kernel).socket()
    assert outcome(s.setsockopt, level, name, 1) == ("ok" if exists else "ENOPROTOOPT")


def test_windows_option_rules() -> None:
    """SO_RANDOMIZE_PORT fails after SO_REUSE_UNICASTPORT (W4); Windows options are set before bind."""
    h = host("windows")
    s = h.socket()
    s.setsockopt(socket.SOL_SOCKET, windows.SO_REUSE_UNICASTPORT, 1)
    assert outcome(s.setsockopt, socket.SOL_SOCKET, windows.SO_RANDOMIZE_PORT, 1) == "EINVAL"
    t = h.socket()
    t.bind(("", P))
    assert outcome(t.setsockopt, socket.SOL_SOCKET, windows.SO_EXCLUSIVEADDRUSE, 1) == "EINVAL"


# ------------------------------------------------------------------ sysctls

SYSCTL_DEFAULTS = [
    ("freebsd-12", "net.inet.ip.portrange.first", 10000), ("freebsd-12", "net.inet.ip.portrange.last", 65535),
    ("freebsd-12", "net.inet.ip.portrange.hifirst", 49152), ("freebsd-12", "net.inet.ip.portrange.hilast", 65535),
    ("freebsd-12", "net.inet.ip.portrange.lowfirst", 1023), ("freebsd-12", "net.inet.ip.portrange.lowlast", 600),
    ("freebsd-12", "net.inet.ip.portrange.reservedhigh", 1023),
    ("freebsd-12", "net.inet.ip.portrange.reservedlow", 0),
    ("freebsd-12", "net.inet.ip.portrange.randomized", 1), ("freebsd-12", "net.inet.ip.portrange.randomcps", 10),
    ("freebsd-12", "net.inet.ip.portrange.randomtime", 45), ("freebsd-13", "net.inet.tcp.require_unique_port", 0),
    ("freebsd-13", "net.inet.ip.portrange.randomcps", 10), ("freebsd-14", "net.inet.tcp.require_unique_port", 0),
    ("openbsd", "net.inet.ip.portfirst", 1024), ("openbsd", "net.inet.ip.portlast", 49151),
    ("openbsd", "net.inet.ip.porthifirst", 49152), ("openbsd", "net.inet.ip.porthilast", 65535),
    ("netbsd", "net.inet.ip.anonportmin", 49152), ("netbsd", "net.inet.ip.anonportmax", 65535),
    ("netbsd", "net.inet.ip.lowportmin", 600), ("netbsd", "net.inet.ip.lowportmax", 1023),
    ("netbsd", "net.inet.ip.anonportalgo.selected", "bsd"),
    ("netbsd-randinc", "net.inet.ip.anonportalgo.selected", "randinc"),
    ("macos", "net.inet.ip.portrange.first", 49152), ("macos", "net.inet.ip.portrange.last", 65535),
    ("macos", "net.inet.tcp.randomize_ports", 0), ("macos", "net.inet.udp.randomize_ports", 1),
    ("windows", "netsh.int.ipv4.dynamicport.tcp", (49152, 16384)),
    ("windows", "tcpip.parameters.TcpTimedWaitDelay", 240),
]


@pytest.mark.parametrize("kernel, name, default", SYSCTL_DEFAULTS)
def test_sysctl_defaults(kernel: str, name: str, default: Any) -> None:
    assert host(kernel).sysctl(name) == default


@pytest.mark.parametrize("kernel, name", [
    ("freebsd-14", "net.inet.ip.portrange.randomcps"), ("freebsd-14", "net.inet.ip.portrange.randomtime"),
    ("freebsd-12", "net.inet.tcp.require_unique_port"), ("freebsd-13", "net.ipv4.ip_local_port_range"),
    ("openbsd", "net.inet.ip.portrange.first"), ("windows", "net.ipv4.tcp_tw_reuse"),
])
def test_sysctls_an_os_lacks(kernel: str, name: str) -> None:
    with pytest.raises(FileNotFoundError):
        host(kernel).sysctl(name)


@pytest.mark.parametrize("name, written, stored", [
    ("net.inet.ip.portrange.first", 80000, 65535), ("net.inet.ip.portrange.first", 5, 1024),
    ("net.inet.ip.portrange.hilast", 999, 1024), ("net.inet.ip.portrange.lowfirst", 0, 1),
    ("net.inet.ip.portrange.lowlast", 5000, 1023), ("net.inet.ip.portrange.last", 40000, 40000),
])
def test_freebsd_port_range_writes_are_clamped(name: str, written: int, stored: int) -> None:
    """sysctl_net_ipport_check: RANGECHK clamps (lowfirst/lowlast into 1..1023, the others into
    1024..65535); nothing is refused."""
    h = host("freebsd-12")
    h.sysctl(name, written)
    assert h.sysctl(name) == stored


@pytest.mark.parametrize("kernel, name, value", [
    ("freebsd-14", "net.inet.ip.portrange.first", "ten"),
    ("netbsd", "net.inet.ip.anonportmin", 1000),        # below IPPORT_RESERVED
    ("netbsd", "net.inet.ip.anonportmin", 65535),       # not below anonportmax
    ("netbsd", "net.inet.ip.anonportmax", 49152),       # not above anonportmin
    ("netbsd", "net.inet.ip.lowportmin", 500),          # below IPPORT_RESERVEDMIN (600)
    ("netbsd", "net.inet.ip.lowportmax", 1024),         # above IPPORT_RESERVEDMAX
    ("netbsd", "net.inet.ip.anonportmax", 70000),
    ("netbsd", "net.inet.ip.anonportalgo.selected", "fastest"),
    ("openbsd", "net.inet.ip.portlast", 70000),
    ("windows", "netsh.int.ipv4.dynamicport.tcp", "10000 100"),    # num < 255
    ("windows", "netsh.int.ipv4.dynamicport.tcp", "1000 1000"),    # start < 1025
    ("windows", "netsh.int.ipv4.dynamicport.tcp", "65000 1000"),   # past 65535
])
def test_sysctl_writes_refused(kernel: str, name: str, value: Any) -> None:
    h = host(kernel)
    before = h.sysctl(name)
    with pytest.raises(OSError) as exc:
        h.sysctl(name, value)
    assert exc.value.errno == errno.EINVAL
    assert h.sysctl(name) == before


def test_netbsd_algorithms_listed_read_only() -> None:
    h = host("netbsd")
    assert str(h.sysctl("net.inet.ip.anonportalgo.available")).split() == list(bsd_profiles.NETBSD_ALGORITHMS)
    with pytest.raises(OSError) as exc:
        h.sysctl("net.inet.ip.anonportalgo.available", "bsd")
    assert exc.value.errno == errno.EPERM


def test_windows_dynamicport_sets_the_range() -> None:
    h = host("windows", sysctls={"netsh.int.ipv4.dynamicport.tcp": "10000 1000"})
    s = h.socket()
    s.bind(("", 0))
    assert 10000 <= s.getsockname()[1] <= 10999


# ------------------------------------------------------------------ connect() scope per OS

def _range_sysctls(kernel: str, lo: int, hi: int) -> dict[str, Any]:
    fam = get_profile(kernel).os
    if fam in ("freebsd", "macos"):
        return {"net.inet.ip.portrange.first": lo, "net.inet.ip.portrange.last": hi}
    if fam == "openbsd":
        return {"net.inet.ip.portfirst": lo, "net.inet.ip.portlast": hi}
    if fam == "netbsd":
        return {"net.inet.ip.anonportmax": hi, "net.inet.ip.anonportmin": lo}
    return {"netsh.int.ipv4.dynamicport.tcp": f"{lo} {hi - lo + 1}"}


def connects(h: Host, dests: list[tuple[str, int]], keep: list[Any], **kw: Any) -> list[str]:
    out = []
    for d in dests:
        s = h.socket()
        if kw.get("reuse"):
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        r = outcome(s.connect, d)
        out.append(r if r != "ok" else str(s.getsockname()[1]))
        keep.append(s)
    return out


ADDRS = ("127.0.0.1/8", "10.0.0.1/24", "10.0.1.1/24")
RANGE = (50000, 50254)         # 255 ports: the smallest range Windows' netsh accepts
N = RANGE[1] - RANGE[0] + 1


def scope_host(kernel: str) -> Host:
    return host(kernel, addresses=ADDRS, sysctls=_range_sysctls(kernel, *RANGE))


@pytest.mark.parametrize("kernel, per_destination", [
    ("freebsd-12", False), ("freebsd-13", True), ("freebsd-14", True), ("macos", False), ("netbsd", False),
    ("netbsd-random-start", False), ("windows", True), ("openbsd", False),
])
def test_connect_uniqueness_scope(kernel: str, per_destination: bool) -> None:
    """Fill the range toward one destination, then connect to a second one from the same source address.
    4-tuple uniqueness (FreeBSD >= 13 in_pcb_lport_dest, Windows auto-reuse) serves the second
    destination from the same ports; pre-binding kernels (FreeBSD 12, XNU, NetBSD) and OpenBSD (unique
    per source address) have nothing left."""
    h = scope_host(kernel)
    keep: list[Any] = []
    first = connects(h, [("10.0.0.5", 80)] * N, keep)
    assert all(r.isdigit() for r in first) and len(set(first)) == N
    second = connects(h, [("10.0.0.6", 80)] * 3, keep)
    if per_destination:
        assert all(r.isdigit() for r in second) and set(second) <= set(first)
    else:
        assert not any(r.isdigit() for r in second)


@pytest.mark.parametrize("kernel, err", [("freebsd-12", "EADDRNOTAVAIL"), ("freebsd-13", "EADDRNOTAVAIL"),
                                         ("macos", "EADDRNOTAVAIL"), ("openbsd", "EADDRNOTAVAIL"),
                                         ("netbsd", "EAGAIN"), ("netbsd-random-start", "EINVAL"),
                                         ("windows", "ENOBUFS")])
def test_exhaustion_errno(kernel: str, err: str) -> None:
    """in_pcb_lport's EADDRNOTAVAIL; NetBSD's algo_bsd EAGAIN and other algorithms EINVAL (portalgo.c);
    Windows WSAENOBUFS (⚠ partly remembered, others.md §3.4)."""
    h = scope_host(kernel)
    keep: list[Any] = []
    res = connects(h, [("10.0.0.5", 80)] * (N + 1), keep)
    assert res[-1] == err and all(r.isdigit() for r in res[:-1])


def test_openbsd_unique_per_source_address() -> None:
    """OpenBSD in_pcbconnect binds with the selected source address: each source has the whole range."""
    h = scope_host("openbsd")
    keep: list[Any] = []
    a = connects(h, [("10.0.0.5", 80)] * N, keep)
    b = connects(h, [("10.0.1.5", 80)] * N, keep)        # from 10.0.1.1
    assert len(set(a)) == N and set(a) == set(b)
    assert connects(h, [("10.0.0.6", 80)], keep) == ["EADDRNOTAVAIL"]


def test_openbsd_reuseaddr_duplicate_tuple_eaddrinuse() -> None:
    """With SO_REUSEADDR the pick only avoids unconnected sockets on exactly the source address, so a
    port whose 4-tuple exists can be picked: EADDRINUSE (same hazard as FreeBSD <= 12, per address)."""
    h = scope_host("openbsd")
    keep: list[Any] = []
    res = connects(h, [("10.0.0.5", 80)] * (N + 1), keep, reuse=True)
    assert "EADDRINUSE" in res
    first = res.index("EADDRINUSE")
    assert first < N and len(set(res[:first])) == first


def test_freebsd12_reuseaddr_picks_used_port_and_keeps_it() -> None:
    """PR 174087 problem #2: with SO_REUSEADDR in_pcbbind ignores connected PCBs, in_pcbconnect_setup's
    exact lookup finds the duplicate: EADDRINUSE, no retry; the socket stays bound to ANY:port."""
    h = scope_host("freebsd-12")
    keep: list[Any] = []
    connects(h, [("10.0.0.5", 80)] * N, keep)            # every port is in use toward 10.0.0.5:80
    s = h.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    assert outcome(s.connect, ("10.0.0.5", 80)) == "EADDRINUSE"
    local = s.getsockname()
    assert local[0] == "0.0.0.0" and RANGE[0] <= local[1] <= RANGE[1]
    assert outcome(s.connect, ("10.0.0.6", 80)) == "ok"   # the same socket, another peer: fine


def test_freebsd13_require_unique_port_restores_prebind() -> None:
    """net.inet.tcp.require_unique_port = 1: tcp_connect pre-binds again (S4)."""
    h = scope_host("freebsd-13")
    h.sysctl("net.inet.tcp.require_unique_port", 1)
    keep: list[Any] = []
    connects(h, [("10.0.0.5", 80)] * N, keep)
    assert connects(h, [("10.0.0.6", 80)], keep) == ["EADDRNOTAVAIL"]


def test_freebsd13_avoids_listeners_and_bound_ports() -> None:
    """in_pcb_lport_dest's WILDCARD hash lookup rejects a port an unconnected socket holds on the source
    address or ANY, even for a new destination (no self-connect, no port stealing)."""
    h = scope_host("freebsd-13")
    lst = h.socket()
    lst.bind(("", RANGE[0] + 3))
    lst.listen()
    b = h.socket()
    b.bind(("10.0.0.1", RANGE[0] + 4))
    keep: list[Any] = [lst, b]
    res = connects(h, [("10.0.0.5", 80)] * (N - 2), keep)
    assert all(r.isdigit() for r in res)
    assert {str(RANGE[0] + 3), str(RANGE[0] + 4)} & set(res) == set()
    assert connects(h, [("10.0.0.5", 80)], keep) == ["EADDRNOTAVAIL"]


def test_freebsd13_bind_then_connect_keeps_the_old_hazard() -> None:
    """bind(ANY, 0) with SO_REUSEADDR still uses in_pcb_lport (non-wildcard lookup): it can return a port
    connected sockets use, and connect() then fails with EADDRINUSE (the libuv case, others.md §2.7)."""
    h = scope_host("freebsd-13")
    keep: list[Any] = []
    connects(h, [("10.0.0.5", 80)] * N, keep)
    s = h.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("", 0))
    assert outcome(s.connect, ("10.0.0.5", 80)) == "EADDRINUSE"


def test_freebsd13_options_do_not_matter() -> None:
    """The connect search is the same with and without SO_REUSEADDR (lookupflags hard-coded)."""
    runs = []
    for reuse in (False, True):
        h = scope_host("freebsd-13")
        keep: list[Any] = []
        runs.append(connects(h, [("10.0.0.5", 80)] * (N + 1), keep, reuse=reuse))
    assert runs[0] == runs[1] and runs[0][-1] == "EADDRNOTAVAIL"


def test_macos_tcp_sequential_udp_random() -> None:
    """randomize_ports: TCP 0 (sequential from the shared cursor), UDP 1 (random start)."""
    h = host("macos")
    keep: list[Any] = []
    ports: list[int] = []
    lst = h.socket()
    lst.bind(LISTENER)
    lst.listen()
    for _ in range(20):
        c = h.socket()
        c.connect(LISTENER)
        keep += [c, lst.accept()[0]]
        ports.append(c.getsockname()[1])
    assert ports == list(range(ports[0], ports[0] + 20)) and ports[0] == 49152
    udp = []
    for _ in range(20):
        u = h.socket(socket.AF_INET, socket.SOCK_DGRAM)
        u.sendto(b"x", ("127.0.0.1", 9))
        keep.append(u)
        udp.append(u.getsockname()[1])
    assert not _consecutive(udp)
    h.sysctl("net.inet.tcp.randomize_ports", 1)
    c = h.socket()
    c.connect(LISTENER)
    assert c.getsockname()[1] != ports[-1] + 1


def test_windows_bind_zero_unique_and_sequential_connect_shared() -> None:
    """bind(0) reserves a port nobody uses (sequential in the model, ⚠ undocumented order);
    SO_RANDOMIZE_PORT randomizes it; SO_REUSE_UNICASTPORT defers the port to connect() where it may be
    shared; listen() on an unbound socket is WSAEINVAL."""
    h = host("windows", addresses=ADDRS)
    keep: list[Any] = []
    ports = []
    for _ in range(5):
        s = h.socket()
        s.bind(("", 0))
        keep.append(s)
        ports.append(s.getsockname()[1])
    assert ports == list(range(49152, 49157))
    r = h.socket()
    r.setsockopt(socket.SOL_SOCKET, windows.SO_RANDOMIZE_PORT, 1)
    r.bind(("", 0))
    assert r.getsockname()[1] != 49157
    d = h.socket()
    d.setsockopt(socket.SOL_SOCKET, windows.SO_REUSE_UNICASTPORT, 1)
    d.bind(("10.0.0.1", 0))
    assert d.getsockname()[1] == 0
    d.connect(("10.0.0.5", 80))
    assert d.getsockname()[1] >= 49152
    assert outcome(h.socket().listen) == "EINVAL"


def test_windows_udp_sendto_after_deferred_bind_holds_one_port() -> None:
    """A UDP socket bound (addr, 0) with SO_REUSE_UNICASTPORT has no port yet (W4); its first sendto() takes
    one unique port (the implicit bind of every non-connect() case), and the socket holds only that port.
    The model used to run BSD's NetBSD late-bind search on top and leave the socket in two buckets."""
    h = host("windows", addresses=ADDRS)
    s = h.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, windows.SO_REUSE_UNICASTPORT, 1)
    s.bind(("10.0.0.1", 0))
    assert s.getsockname()[1] == 0
    s.sendto(b"x", ("10.0.0.5", 9))
    port = s.getsockname()[1]
    assert port == 49152                          # the sequential unique port (⚠ model order)
    stack = h._stack
    held = [p for p in range(49152, 65536) if stack.udp.owners(p)]
    assert held == [port]
    t = h.socket(socket.AF_INET, socket.SOCK_DGRAM)
    t.bind(("", 0))
    assert t.getsockname()[1] == port + 1         # the next unique port: nothing else was taken


# ------------------------------------------------------------------ FreeBSD's randomization throttle

def _seq_run(h: Host, n: int, keep: list[Any], dport: int = 80) -> list[int]:
    out = []
    for i in range(n):
        s = h.socket()
        s.connect(("10.0.0.5", dport + i))
        keep.append(s)
        out.append(s.getsockname()[1])
    return out


def _consecutive(ports: list[int]) -> bool:
    return all(b == a + 1 for a, b in zip(ports, ports[1:], strict=False))


@pytest.mark.parametrize("kernel, throttled", [("freebsd-12", True), ("freebsd-13", True), ("freebsd-14", False)])
def test_randomcps_switches_to_sequential(kernel: str, throttled: bool) -> None:
    """ipport_tick (S1): more than randomcps (10) allocations between two ticks make TCP allocation
    sequential (from the shared cursor) for randomtime (45) ticks; 14.0 removed it."""
    h = host(kernel, addresses=ADDRS)
    keep: list[Any] = []
    h.sleep(0.5)
    burst = _seq_run(h, 11, keep)
    assert not _consecutive(burst)                # random while no tick has seen the rate
    h.sleep(1.0)                                  # the tick at t = 1 counts 11 > 10
    after = _seq_run(h, 10, keep, dport=200)
    assert _consecutive(after) == throttled


def test_randomcps_boundary_and_randomtime() -> None:
    """Exactly randomcps allocations per second do not switch; once switched, randomtime ticks without
    excess pass before random allocation returns (the comment in S1)."""
    h = host("freebsd-12", addresses=ADDRS)
    keep: list[Any] = []
    h.sleep(0.5)
    _seq_run(h, 10, keep)
    h.sleep(1.0)
    assert not _consecutive(_seq_run(h, 6, keep, dport=100))    # 10 <= 10: still random
    h.sleep(1.0)                                                 # tick at 2: 6 allocations, fine
    _seq_run(h, 11, keep, dport=200)                             # 11 more before the tick at 3
    h.sleep(1.0)                                                 # t = 3.5: switched at tick 3
    last = _seq_run(h, 2, keep, dport=300)
    assert last[1] == last[0] + 1
    h.sleep(44.0)                                                # t = 47.5: ticks 4..47 (44) passed
    mid = _seq_run(h, 1, keep, dport=400)[0]
    assert mid == last[1] + 1                                    # 45 - 44 = 1 tick left: sequential
    h.sleep(1.0)                                                 # tick 48: back to random
    assert not _consecutive([mid] + _seq_run(h, 3, keep, dport=500))


def test_udp_counts_toward_the_tcp_rate_but_stays_random() -> None:
    """`if (pcbinfo != &V_udbinfo || pcbinfo != &V_ulitecbinfo)` is always true: UDP allocations raise the
    TCP count; UDP itself is always randomized (dorandom ignores stoprandom for udbinfo)."""
    h = host("freebsd-12", addresses=ADDRS)
    keep: list[Any] = []
    h.sleep(0.5)
    for _ in range(11):
        u = h.socket(socket.AF_INET, socket.SOCK_DGRAM)
        u.sendto(b"x", ("10.0.0.5", 53))
        keep.append(u)
    h.sleep(1.0)
    assert _consecutive(_seq_run(h, 5, keep))
    udp = []
    for _ in range(5):
        u = h.socket(socket.AF_INET, socket.SOCK_DGRAM)
        u.sendto(b"x", ("10.0.0.5", 53))
        keep.append(u)
        udp.append(u.getsockname()[1])
    assert not _consecutive(udp)


# ------------------------------------------------------------------ NetBSD's algorithms

def _netbsd_fill(kernel: str, n: int, extra: int = 1) -> tuple[Host, list[str]]:
    limits = {"net.inet.ip.anonportmin": 60000, "net.inet.ip.anonportmax": 60000 + n - 1}
    h = host(kernel, addresses=ADDRS, sysctls=limits)
    keep: list[Any] = []
    res = connects(h, [("10.0.0.5", 80)] * (n + extra), keep)
    h._keep = keep  # type: ignore[attr-defined]
    return h, res


def test_netbsd_bsd_counts_down() -> None:
    """algo_bsd: sequential descending from anonportmax, wrapping to anonportmax below anonportmin."""
    h, res = _netbsd_fill("netbsd", 16, extra=0)
    assert [int(p) for p in res] == list(range(60015, 59999, -1))


@pytest.mark.parametrize("algo", ["bsd", "random_start", "hash", "doublehash"])
def test_netbsd_complete_algorithms_use_every_port(algo: str) -> None:
    """Algorithms 2, 3, 4 and BSD walk the whole range once: every port is handed out, then the search
    fails with the algorithm's errno."""
    kernel = "netbsd-" + algo.replace("_", "-")
    _, res = _netbsd_fill(kernel, 32)
    assert sorted(int(p) for p in res[:-1]) == list(range(60000, 60032))
    assert res[-1] == ("EAGAIN" if algo == "bsd" else "EINVAL")


@pytest.mark.parametrize("algo", ["random_pick", "randinc"])
def test_netbsd_incomplete_algorithms_never_reuse(algo: str) -> None:
    """Algorithms 1 and 5 may give up while ports are free (portalgo.c's comment; others.md §1.10), but
    never hand out a port in use; they end in EINVAL."""
    kernel = "netbsd-" + algo.replace("_", "-")
    _, res = _netbsd_fill(kernel, 32, extra=40)
    got = [int(p) for p in res if p.isdigit()]
    assert len(got) == len(set(got)) <= 32 and all(60000 <= p < 60032 for p in got)
    assert res[-1] == "EINVAL"


def test_netbsd_algorithm_selected_by_sysctl() -> None:
    """net.inet.ip.anonportalgo.selected switches the algorithm of a running host."""
    h = host("netbsd", addresses=ADDRS)
    keep: list[Any] = []
    down = [int(p) for p in connects(h, [("10.0.0.5", 80)] * 4, keep)]
    assert down == list(range(65535, 65531, -1))
    h.sysctl("net.inet.ip.anonportalgo.selected", "random_start")
    rand = [int(p) for p in connects(h, [("10.0.0.5", 80)] * 4, keep)]
    assert rand != list(range(65531, 65527, -1))


def test_netbsd_hash_binds_at_connect() -> None:
    """iscompletetuple() is false at bind(0): the port stays 0 until connect() (inp_bindportonsend), and
    is then unique on the source address only (check_suitable_port with that laddr)."""
    h = host("netbsd-hash", addresses=ADDRS)
    s = h.socket()
    s.bind(("10.0.0.1", 0))
    assert s.getsockname() == ("10.0.0.1", 0)
    s.connect(("10.0.0.5", 80))
    assert 49152 <= s.getsockname()[1] <= 65535


# ------------------------------------------------------------------ IP_PORTRANGE

@pytest.mark.parametrize("kernel, lo, hi", [("freebsd-14", 49152, 65535), ("macos", 49152, 65535),
                                            ("openbsd", 49152, 65535)])
def test_ip_portrange_high(kernel: str, lo: int, hi: int) -> None:
    s = host(kernel).socket()
    s.setsockopt(socket.SOL_IP, bsd.IP_PORTRANGE, bsd.IP_PORTRANGE_HIGH)
    s.bind(("", 0))
    assert lo <= s.getsockname()[1] <= hi
    assert s.getsockopt(socket.SOL_IP, bsd.IP_PORTRANGE) == bsd.IP_PORTRANGE_HIGH


@pytest.mark.parametrize("kernel, err", [("freebsd-14", "EPERM"), ("openbsd", "EACCES"), ("netbsd", "EACCES")])
def test_ip_portrange_low_needs_root(kernel: str, err: str) -> None:
    """FreeBSD in_pcb_lport returns priv_check_cred's EPERM; OpenBSD and NetBSD refuse with EACCES."""
    h = host(kernel)
    s = h.socket(uid=1000)
    s.setsockopt(socket.SOL_IP, bsd.IP_PORTRANGE, bsd.IP_PORTRANGE_LOW)
    assert outcome(s.bind, ("", 0)) == err
    r = h.socket()
    r.setsockopt(socket.SOL_IP, bsd.IP_PORTRANGE, bsd.IP_PORTRANGE_LOW)
    r.bind(("", 0))
    assert 600 <= r.getsockname()[1] <= 1023


# ------------------------------------------------------------------ TIME_WAIT length

@pytest.mark.parametrize("kernel, seconds", [("freebsd-14", 60.0), ("openbsd", 60.0), ("macos", 30.0),
                                             ("windows", 240.0)])
def test_timewait_length(kernel: str, seconds: float) -> None:
    """2 * MSL (net.inet.tcp.msl 30 s FreeBSD, 15 s XNU ⚠), OpenBSD 60 s, Windows TcpTimedWaitDelay 240 s."""
    h = host(kernel)
    lst = h.socket()
    lst.bind(LISTENER)
    lst.listen()
    c = h.socket()
    c.connect(LISTENER)
    child, _ = lst.accept()
    c.close()
    child.close()
    tw = [r for r in h.sockets() if r.state == "TIME-WAIT"]
    assert len(tw) == 1 and tw[0].timer == seconds


# ------------------------------------------------------------------ registration

def test_profiles_registered() -> None:
    names = kernels()
    assert [n for n in names if n in BSD_NAMES] == BSD_NAMES
    for name in BSD_NAMES:
        p = get_profile(name)
        assert p.name == name and p.description and p.sources


@pytest.mark.parametrize("asked, base", [("freebsd-13.2", "freebsd-13"), ("freebsd-12.4", "freebsd-12"),
                                         ("freebsd", "freebsd-14"), ("freebsd-15", "freebsd-14")])
def test_freebsd_version_resolves_to_newest_switch(asked: str, base: str) -> None:
    p, q = get_profile(asked), get_profile(base)
    assert bsd_profiles.rules_of(p) == bsd_profiles.rules_of(q)


def test_freebsd_before_12_not_modelled() -> None:
    with pytest.raises(ValueError):
        get_profile("freebsd-11")


def test_cli_kernels_json_shows_descriptions_and_sources() -> None:
    res = CliRunner().invoke(app, ["kernels", "--json"])
    assert res.exit_code == 0, res.output
    rows = {k["name"]: k for k in json.loads(res.stdout)}
    for name in BSD_NAMES:
        assert rows[name]["description"] and rows[name]["sources"]
    assert "PR 174087" in " ".join(rows["freebsd-12"]["sources"])
    assert "undocumented" in rows["windows"]["description"]


def test_macos_low_range_counts_down() -> None:
    """XNU's mirror branch for first > last: the low range 1023 -> 600 is walked downwards from 1023
    (sequential TCP: randomize_ports = 0)."""
    h = host("macos")
    ports = []
    for _ in range(3):
        s = h.socket()
        s.setsockopt(socket.SOL_IP, bsd.IP_PORTRANGE, bsd.IP_PORTRANGE_LOW)
        s.bind(("", 0))
        ports.append(s.getsockname()[1])
    assert ports == [1023, 1022, 1021]


@pytest.mark.parametrize("kernel, seconds", [("freebsd-12", 675.0), ("freebsd-14", 675.0), ("openbsd", 675.0),
                                             ("netbsd", 675.0), ("macos", 675.0), ("windows", 60.0)])
def test_finwait2_orphan_lifetime_is_the_os_own(kernel: str, seconds: float) -> None:
    """An orphaned FIN_WAIT_2 (the peer never closes) lives tcp_maxidle + one keepintvl re-check on the
    4.4BSD line (8 * 75 s + 75 s: tcp_usrclosed / tcp_input arm TCPT_2MSL with TP_MAXIDLE, tcp_timer_2msl
    re-arms for TP_KEEPINTVL while idle <= TP_MAXIDLE), not Linux's tcp_fin_timeout (60 s) as the model had
    it before; Windows keeps the model's undocumented 60 s (⚠)."""
    h = Host(kernel, seed=1, addresses=("127.0.0.1/8", "10.0.0.2/8"))
    h.set_peer("10.9.9.0/24", "hold")
    s = h.socket()
    s.connect(("10.9.9.9", 80))
    s.close()
    [row] = [r for r in h.sockets() if r.remote == ("10.9.9.9", 80)]
    assert row.state == "FIN-WAIT-2" and row.timer == seconds
    h.sleep(seconds - 0.5)
    assert any(r.remote == ("10.9.9.9", 80) for r in h.sockets())
    h.sleep(1.0)
    assert not any(r.remote == ("10.9.9.9", 80) for r in h.sockets())
    with pytest.raises(FileNotFoundError):
        h.sysctl("net.ipv4.tcp_fin_timeout")


def test_freebsd_fast_finwait2_recycle() -> None:
    """FreeBSD: net.inet.tcp.fast_finwait2_recycle=1 closes the orphan at net.inet.tcp.finwait2_timeout (ms,
    TCPTV_FINWAIT2_TIMEOUT = 60 s); keepintvl/keepcnt tune the default path."""
    h = Host("freebsd-14", seed=1, addresses=("127.0.0.1/8", "10.0.0.2/8"))
    h.set_peer("10.9.9.0/24", "hold")
    h.sysctl("net.inet.tcp.fast_finwait2_recycle", 1)
    h.sysctl("net.inet.tcp.finwait2_timeout", 30000)
    s = h.socket()
    s.connect(("10.9.9.9", 80))
    s.close()
    assert [r.timer for r in h.sockets() if r.state == "FIN-WAIT-2"] == [30.0]
    h.sysctl("net.inet.tcp.fast_finwait2_recycle", 0)
    h.sysctl("net.inet.tcp.keepintvl", 10000)
    t = h.socket()
    t.connect(("10.9.9.9", 81))
    t.close()
    assert sorted(r.timer or 0 for r in h.sockets() if r.state == "FIN-WAIT-2") == [30.0, 90.0]


@pytest.mark.parametrize("kernel, seconds", [("freebsd-14", 60.0), ("netbsd", 60.0), ("openbsd", 60.0),
                                             ("macos", 30.0), ("windows", 240.0)])
def test_timewait_length_is_two_msl_in_the_os_units(kernel: str, seconds: float) -> None:
    """TIME_WAIT lasts 2 * MSL: FreeBSD net.inet.tcp.msl 30000 ms (TCPTV_MSL 30 s), NetBSD net.inet.tcp.msl
    30 (seconds: TCPTV_MSL = 30 * PR_SLOWHZ), XNU 15000 ms (⚠ remembered), OpenBSD TCPTV_MSL 30 s, Windows
    TcpTimedWaitDelay 240 s (W2). The model read NetBSD's 30 as milliseconds (a 0.06 s TIME_WAIT) before."""
    h = Host(kernel, seed=1, addresses=("127.0.0.1/8", "10.0.0.2/8"))
    s = h.socket()
    s.connect(("10.9.9.9", 80))
    s.close()
    assert [(r.state, r.timer) for r in h.sockets()] == [("TIME-WAIT", seconds)]


@pytest.mark.parametrize(("kernel", "newest"), [("freebsd-12", False), ("freebsd-13", False), ("freebsd-14", True)])
def test_which_of_two_wildcard_reuseport_listeners_gets_the_syn(kernel: str, newest: bool) -> None:
    """Two listeners on 0.0.0.0:P with plain SO_REUSEPORT (no load balancing): FreeBSD <= 13's
    in_pcblookup_hash_locked keeps the last wildcard match of its head-inserted chain, the oldest listener;
    FreeBSD 14's SMR lookup takes the first of the wild chain, the newest. A listener on the exact address
    still beats both."""
    h = host(kernel)
    old, new = (opts(h.socket(), RP) for _ in range(2))
    for s in (old, new):
        s.bind(("0.0.0.0", P))
        s.listen()
    c = h.socket()
    assert c.connect_ex(("127.0.0.1", P)) == 0
    winner, loser = (new, old) if newest else (old, new)
    assert winner.accept()[1] == c.getsockname()
    assert outcome(loser.accept) == "EAGAIN"
    exact = opts(h.socket(), RP)
    exact.bind(("127.0.0.1", P))
    exact.listen()
    c2 = h.socket()
    assert c2.connect_ex(("127.0.0.1", P)) == 0
    assert exact.accept()[1] == c2.getsockname()
