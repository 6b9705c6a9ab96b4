# FreeBSD, OpenBSD, NetBSD, macOS (XNU) and Windows as kernel profiles.
#
# Rules:
# - A profile is data. Everything the BSD model (model/bsd.py, model/windows.py) consults is a field of
#   `BsdRules` (kernels/profile.py), the typed field KernelProfile.bsd; the model never asks "which OS is
#   this?", it reads those fields. FreeBSD is built like Linux (kernels/linux.py): FREEBSD_12 plus every switch
#   at or below the asked-for version, so "freebsd-13.2" resolves to the 13.0 switch.
# - Each profile names its sources (file, function, stored revision) from shared/research/others.md
#   sections 2-3 and the NetBSD files read for this module. Where a behaviour is undocumented or was
#   only remembered by the research, the description says so rather than inventing it.
# - Sysctls keep each OS's own names, defaults and write checks: FreeBSD's handler clamps the port
#   range silently (RANGECHK in sysctl_net_ipport_check), NetBSD's refuses with EINVAL
#   (sysctl_net_inet_ip_ports), OpenBSD's bounds are remembered, not read (⚠).
"""BSD-family and Windows kernel profiles, their sysctls and version switches."""

from __future__ import annotations

import dataclasses
import errno
from collections.abc import Mapping
from typing import Any

from portalloc.errors import kernel_error
from portalloc.kernels.linux import Switch
from portalloc.kernels.profile import BsdRules, KernelProfile, PortRange, RangeSysctls
from portalloc.kernels.sysctls import SysctlSpec, Validator, parse_port_list
from portalloc.sysctl import SysctlValue, format_port_list

#: NetBSD portalgo.c algos[], in the kernel's order (the index is what IP_PORTALGO would take).
NETBSD_ALGORITHMS = ("bsd", "random_start", "random_pick", "hash", "doublehash", "randinc")


def rules_of(profile: KernelProfile) -> BsdRules:
    """The BsdRules of a profile made by this module."""
    if profile.bsd is None:
        raise TypeError(f"{profile.name} is not a BSD-family profile")
    return profile.bsd


# ------------------------------------------------------------------ sysctl write checks

def _einval() -> OSError:
    return kernel_error(errno.EINVAL)


def _one_int(text: str) -> int:
    parts = text.split()
    if len(parts) != 1:
        raise _einval()
    try:
        return int(parts[0])
    except ValueError:
        raise _einval() from None


def any_int(text: str, current: Mapping[str, SysctlValue]) -> SysctlValue:
    """SYSCTL_INT without a handler: any int."""
    return _one_int(text)


def clamped(lo: int, hi: int) -> Validator:
    """FreeBSD sysctl_net_ipport_check: the write is taken, then RANGECHK clamps it into [lo, hi]."""

    def check(text: str, current: Mapping[str, SysctlValue]) -> SysctlValue:
        return min(max(_one_int(text), lo), hi)

    return check


def bounded(lo: int, hi: int) -> Validator:
    """A write outside [lo, hi] is refused with EINVAL."""

    def check(text: str, current: Mapping[str, SysctlValue]) -> SysctlValue:
        v = _one_int(text)
        if not lo <= v <= hi:
            raise _einval()
        return v

    return check


def netbsd_port(kind: str, prefix: str) -> Validator:
    """NetBSD sysctl_net_inet_ip_ports (netinet/tcp_usrreq.c): 0..65535, then per node: anonportmin <
    anonportmax and both >= IPPORT_RESERVED (1024); lowportmin < lowportmax, both within 600..1023."""

    def check(text: str, current: Mapping[str, SysctlValue]) -> SysctlValue:
        v = _one_int(text)
        if not 0 <= v <= 65535:
            raise _einval()

        def cur(name: str, default: int) -> int:
            c = current.get(prefix + name, default)
            return c if isinstance(c, int) else default

        if kind == "anonportmin" and (v >= cur("anonportmax", 65535) or v < 1024):
            raise _einval()
        if kind == "anonportmax" and (cur("anonportmin", 49152) >= v or v < 1024):
            raise _einval()
        if kind == "lowportmin" and (v >= cur("lowportmax", 1023) or not 600 <= v <= 1023):
            raise _einval()
        if kind == "lowportmax" and (cur("lowportmin", 600) >= v or not 600 <= v <= 1023):
            raise _einval()
        return v

    return check


def netbsd_algorithm(text: str, current: Mapping[str, SysctlValue]) -> SysctlValue:
    """portalgo_algo_name_select: one of the algorithm names, else EINVAL."""
    name = text.strip()
    if name not in NETBSD_ALGORITHMS:
        raise _einval()
    return name


def read_only(text: str, current: Mapping[str, SysctlValue]) -> SysctlValue:
    """A CTLFLAG_READONLY node: writing is refused with EPERM."""
    raise kernel_error(errno.EPERM)


def port_list(text: str, current: Mapping[str, SysctlValue]) -> SysctlValue:
    """A list of ports (OpenBSD baddynamic), kept in canonical text."""
    return format_port_list(parse_port_list(text))


def windows_dynamicport(text: str, current: Mapping[str, SysctlValue]) -> SysctlValue:
    """`netsh int ipv4 set dynamicport tcp start=S num=N` (KB929851): start >= 1025, num >= 255, and the
    range must end at or below 65535; anything else is refused (EINVAL here; netsh prints an error)."""
    parts = text.replace(",", " ").split()
    if len(parts) != 2:
        raise _einval()
    try:
        start, num = int(parts[0]), int(parts[1])
    except ValueError:
        raise _einval() from None
    if start < 1025 or num < 255 or start + num - 1 > 65535:
        raise _einval()
    return start, num


def _spec(name: str, default: SysctlValue, validate: Validator) -> SysctlSpec:
    def value(profile: KernelProfile) -> SysctlValue:
        return default

    return SysctlSpec(name, value, validate)


def _freebsd_sysctls(throttle: bool, unique: bool) -> tuple[SysctlSpec, ...]:
    """S3 (14.x) / S1 (12.x) in_pcb.c: net.inet.ip.portrange.*, clamped by sysctl_net_ipport_check."""
    pr = "net.inet.ip.portrange."
    specs = [
        _spec(pr + "first", 10000, clamped(1024, 65535)),
        _spec(pr + "last", 65535, clamped(1024, 65535)),
        _spec(pr + "hifirst", 49152, clamped(1024, 65535)),
        _spec(pr + "hilast", 65535, clamped(1024, 65535)),
        _spec(pr + "lowfirst", 1023, clamped(1, 1023)),
        _spec(pr + "lowlast", 600, clamped(1, 1023)),
        _spec(pr + "reservedhigh", 1023, any_int),
        _spec(pr + "reservedlow", 0, any_int),
        _spec(pr + "randomized", 1, any_int),
        _spec("net.inet.tcp.msl", 30000, bounded(1, 2**31 - 1)),     # ms; TIME_WAIT = 2 * MSL
        _spec("net.inet6.ip6.v6only", 1, any_int),
        # tcp_timer.c: the FIN_WAIT_2 orphan's timers (ms; sysctl_msec_to_ticks), TCPTV_* defaults.
        _spec("net.inet.tcp.keepintvl", 75000, bounded(1, 2**31 - 1)),
        _spec("net.inet.tcp.keepcnt", 8, bounded(1, 2**31 - 1)),
        _spec("net.inet.tcp.fast_finwait2_recycle", 0, any_int),
        _spec("net.inet.tcp.finwait2_timeout", 60000, bounded(0, 2**31 - 1)),
    ]
    if throttle:
        specs += [_spec(pr + "randomcps", 10, any_int), _spec(pr + "randomtime", 45, any_int)]
    if unique:
        specs.append(_spec("net.inet.tcp.require_unique_port", 0, any_int))
    return tuple(specs)


def _openbsd_sysctls() -> tuple[SysctlSpec, ...]:
    """OpenBSD net.inet.ip.port{first,last,hifirst,hilast} and the baddynamic lists (names and bounds
    remembered by the research, ⚠; the real default baddynamic contents are not modelled: empty)."""
    return (
        _spec("net.inet.ip.portfirst", 1024, bounded(0, 65535)),
        _spec("net.inet.ip.portlast", 49151, bounded(0, 65535)),
        _spec("net.inet.ip.porthifirst", 49152, bounded(0, 65535)),
        _spec("net.inet.ip.porthilast", 65535, bounded(0, 65535)),
        _spec("net.inet.tcp.baddynamic", "", port_list),
        _spec("net.inet.udp.baddynamic", "", port_list),
    )


def _netbsd_sysctls(algorithm: str) -> tuple[SysctlSpec, ...]:
    """NetBSD in_pcb.c anonportmin/max (IPPORT_ANONMIN/MAX), lowportmin/max, and portalgo.c's nodes."""
    specs: list[SysctlSpec] = []
    for prefix in ("net.inet.ip.", "net.inet6.ip6."):
        specs += [
            _spec(prefix + "anonportmin", 49152, netbsd_port("anonportmin", prefix)),
            _spec(prefix + "anonportmax", 65535, netbsd_port("anonportmax", prefix)),
            _spec(prefix + "lowportmin", 600, netbsd_port("lowportmin", prefix)),
            _spec(prefix + "lowportmax", 1023, netbsd_port("lowportmax", prefix)),
            _spec(prefix + "anonportalgo.selected", algorithm, netbsd_algorithm),
            _spec(prefix + "anonportalgo.available", " ".join(NETBSD_ALGORITHMS), read_only),
        ]
    specs.append(_spec("net.inet.tcp.msl", 30, bounded(0, 2**31 - 1)))   # seconds (PR_SLOWHZ ticks ⚠)
    return tuple(specs)


def _xnu_sysctls() -> tuple[SysctlSpec, ...]:
    """XNU in_pcb.c net.inet.ip.portrange.* (sysctl_net_ipport_check, as FreeBSD's), tcp_subr.c and
    udp_usrreq.c randomize_ports."""
    pr = "net.inet.ip.portrange."
    return (
        _spec(pr + "first", 49152, clamped(1024, 65535)),
        _spec(pr + "last", 65535, clamped(1024, 65535)),
        _spec(pr + "hifirst", 49152, clamped(1024, 65535)),
        _spec(pr + "hilast", 65535, clamped(1024, 65535)),
        _spec(pr + "lowfirst", 1023, clamped(1, 1023)),
        _spec(pr + "lowlast", 600, clamped(1, 1023)),
        _spec("net.inet.tcp.randomize_ports", 0, any_int),
        _spec("net.inet.udp.randomize_ports", 1, any_int),
        _spec("net.inet.tcp.msl", 15000, bounded(1, 2**31 - 1)),     # ms ⚠ (remembered default)
    )


def _windows_sysctls() -> tuple[SysctlSpec, ...]:
    """The dynamic port ranges as `netsh int ipvX show dynamicport tcp|udp` prints them (start, num), and
    TcpTimedWaitDelay (W2: 240 s by default; its accepted bounds are not modelled)."""
    specs = [_spec(f"netsh.int.{ip}.dynamicport.{proto}", (49152, 16384), windows_dynamicport)
             for ip in ("ipv4", "ipv6") for proto in ("tcp", "udp")]
    specs.append(_spec("tcpip.parameters.TcpTimedWaitDelay", 240, bounded(0, 2**31 - 1)))
    return tuple(specs)


# ------------------------------------------------------------------ profiles

_BASE = KernelProfile(
    stack="bsd",
    connect_search="bsd",
    perturb_table_size=0,
    perturb_index="none",
    perturb_increment="none",
    time_seed=False,
    port_offset_64=False,
    local_range_step_one=False,
    bind_search="bsd",
    smallest_size_fallback=False,
    ip_bind_address_no_port=False,
    ip_local_port_range_option=False,
    so_reuseport=True,
    ip_autobind_reuse=False,
    ip_unprivileged_port_start=False,
    tw_reuse_loopback_mode=False,
    tw_reuse_delay_sysctl=False,
    tw_recycle=False,
    fin_wait2_not_reused=False,
    release_resets_bucket=False,
)

_S1 = "freebsd/freebsd-src sys/netinet/in_pcb.c in_pcb_lport, in_pcbbind_setup, ipport_tick (12.x, stored id 260511298)"
_S2 = "freebsd/freebsd-src sys/netinet/tcp_usrreq.c tcp_connect: in_pcbbind(inp, NULL) first (12.x, id 2347397093)"
_S3 = ("freebsd/freebsd-src sys/netinet/in_pcb.c in_pcb_lport_dest, in_pcbconnect_setup, in_pcblookup_local "
       "(14.x, id 158598247)")
_S4 = "freebsd/freebsd-src sys/netinet/tcp_usrreq.c net.inet.tcp.require_unique_port (13.x, id 8466115)"
_PR = "FreeBSD PR 174087 (shared/seeds/003); D24781 / r361228"

FREEBSD_12 = BsdRules(
    family="freebsd",
    connect_port="prebind-wildcard",
    udp_connect_port="bind-source",
    implicit_bind_honours_reuse=True,
    throttle=True,
    order="freebsd",
    privileged_ports="reserved-sysctls",
    bind_conflict="freebsd",
    v6_answers_v4_cost=3,
    tcp_multicast_bind_errno=errno.EAFNOSUPPORT,
    multicast_reuse_lb=True,
    low_range_errno=errno.EPERM,
    keep_sysctls=True,
    fast_finwait2_recycle=True,
    timewait_sysctl="net.inet.tcp.msl",
    timewait_per_unit=0.002,
    tw_syn_paws=False,
    wild_listener_newest=False,
    options=("SO_REUSEPORT_LB", "IP_PORTRANGE", "IP_BINDANY"),
)

#: FreeBSD behaviour changes, oldest first; a version takes every switch at or below it.
FREEBSD_SWITCHES: tuple[Switch, ...] = (
    Switch((13, 0), ("r361228", "D24781"),
           "connect() chooses its port after the source address with in_pcb_lport_dest: unique per 4-tuple, "
           "SO_REUSEADDR irrelevant; net.inet.tcp.require_unique_port=1 restores the pre-bind",
           {"connect_port": "lport-dest", "udp_connect_port": "", "require_unique_port": True}),
    Switch((14, 0), ("ipport_tick removal (commit not identified)",
                     "in_pcb.c in_pcblookup_hash_wild_smr, _in_pcbinshash_wild (14.x, stored id 158598247)"),
           "no randomcps/randomtime throttle: every allocation starts at a random port; of several wildcard "
           "listeners on one port the newest gets the SYN (the SMR lookup takes the first on the wild chain), "
           "not the oldest",
           {"throttle": False, "wild_listener_newest": True}),
)

_FREEBSD_NOTES = {
    (12, 0): "FreeBSD 12: tcp_connect pre-binds with laddr ANY: ports globally unique (EADDRNOTAVAIL at the "
             "range size); with SO_REUSEADDR the search skips connected sockets and a duplicate 4-tuple fails "
             "with EADDRINUSE (PR 174087); randomcps/randomtime switch to sequential under load",
}


def freebsd(version: tuple[int, int], name: str | None = None) -> KernelProfile:
    """FreeBSD ``version`` (12.0 or later): FREEBSD_12 with every switch at or below it."""
    if version < (12, 0):
        raise ValueError("FreeBSD before 12 is not modelled (its default range differs; others.md §2.1 ⚠)")
    rules = FREEBSD_12
    applied = [sw for sw in FREEBSD_SWITCHES if sw.version <= version]
    for sw in applied:
        rules = dataclasses.replace(rules, **sw.changes)
    rules = dataclasses.replace(rules, sysctls=_freebsd_sysctls(rules.throttle, rules.require_unique_port))
    base = applied[-1].version if applied else (12, 0)
    if applied:
        desc = f"FreeBSD {version[0]}: {applied[-1].summary}"
        if rules.throttle:
            desc += "; randomcps/randomtime throttle still present"
    else:
        desc = _FREEBSD_NOTES[(12, 0)]
    sources: tuple[str, ...] = (_S1, _S2, _PR) if not applied else (_S3, _S4, _PR) + tuple(applied[-1].commits)
    return dataclasses.replace(
        _BASE, name=name or f"freebsd-{base[0]}", os="freebsd", version=version, description=desc,
        sources=sources, default_port_range=(10000, 65535), bsd=rules,
        range_sysctls=RangeSysctls(("net.inet.ip.portrange.first", "net.inet.ip.portrange.last"), "first-last"))


def openbsd(name: str = "openbsd") -> KernelProfile:
    """OpenBSD (current in_pcb.c, S5)."""
    rules = BsdRules(
        family="openbsd", connect_port="after-source", implicit_bind_honours_reuse=True, order="openbsd",
        privileged_ports="below-1024", privilege_first=False, bind_conflict="openbsd", udp_broadcast_bind=True,
        baddynamic=True,
        range_default=PortRange("net.inet.ip.portfirst", 1024, "net.inet.ip.portlast", 49151, "{proto}:default"),
        range_high=PortRange("net.inet.ip.porthifirst", 49152, "net.inet.ip.porthilast", 65535, "{proto}:hi"),
        range_low=PortRange("", 600, "", 1023, "{proto}:low"),
        options=("IP_PORTRANGE", "SO_BINDANY"), sysctls=_openbsd_sysctls())
    return dataclasses.replace(
        _BASE, name=name, os="openbsd", version=(7, 0),
        description="OpenBSD: random start (arc4random_uniform) + linear probe skipping baddynamic ports, range "
                    "1024-49151; the port is chosen after the source address (unique per source address); "
                    "sysctl names and baddynamic defaults remembered, not read (⚠)",
        sources=("openbsd/src sys/netinet/in_pcb.c in_pcbpickport, in_pcbaddrisavail, in_pcbconnect "
                 "(stored id 7844750530)",),
        default_port_range=(1024, 49151), bsd=rules,
        range_sysctls=RangeSysctls(("net.inet.ip.portfirst", "net.inet.ip.portlast"), "first-last"))


def netbsd(algorithm: str = "bsd", name: str | None = None) -> KernelProfile:
    """NetBSD with ``algorithm`` as net.inet.ip.anonportalgo.selected (portalgo.c, S7)."""
    if algorithm not in NETBSD_ALGORITHMS:
        raise ValueError(f"unknown NetBSD port algorithm {algorithm!r}; one of {', '.join(NETBSD_ALGORITHMS)}")
    anon = PortRange("{inet}.anonportmin", 49152, "{inet}.anonportmax", 65535, "{proto}:{af}:high")
    rules = BsdRules(
        family="netbsd", connect_port="check-then-bind", implicit_bind_honours_reuse=False, order="netbsd",
        netbsd_algorithm=algorithm, algorithm_sysctl="{inet}.anonportalgo.selected",
        privileged_ports="below-1024", bind_conflict="netbsd", v4_implicit_bind_wildcard=True,
        range_default=anon, range_high=anon,
        range_low=PortRange("{inet}.lowportmin", 600, "{inet}.lowportmax", 1023, "{proto}:{af}:low"),
        timewait_sysctl="net.inet.tcp.msl", timewait_per_unit=2.0,
        options=("IP_PORTRANGE",), sysctls=_netbsd_sysctls(algorithm))
    what = {
        "bsd": "the traditional BSD algorithm counting down from anonportmax (the default)",
        "random_start": "RFC 6056 algorithm 2 (random start, linear search)",
        "random_pick": "RFC 6056 algorithm 1 (a fresh random port per try; may give up early)",
        "hash": "RFC 6056 algorithm 3, but Fhash draws a new secret per call; the port is bound at connect",
        "doublehash": "RFC 6056 algorithm 4 with dhtable[8], Fhash re-keyed per call; bound at connect",
        "randinc": "RFC 6056 algorithm 5 (random increments, N = 500)",
    }[algorithm]
    return dataclasses.replace(
        _BASE, name=name or ("netbsd-" + algorithm.replace("_", "-")), os="netbsd", version=(10, 0),
        description=f"NetBSD, anonportalgo {algorithm}: {what}; implicit connect() port unique host-wide "
                    "(bound before the source address); exhaustion EAGAIN (bsd) or EINVAL (others)",
        sources=("NetBSD/src sys/netinet/portalgo.c algo_* and check_suitable_port (stored id 749032271)",
                 "NetBSD/src sys/netinet/in_pcb.c inpcb_bind_port, inpcb_connect (stored id 2337914991)",
                 "NetBSD/src sys/netinet/tcp_usrreq.c sysctl_net_inet_ip_ports (stored id 4710049294)"),
        default_port_range=(49152, 65535), bsd=rules,
        range_sysctls=RangeSysctls(("net.inet.ip.anonportmin", "net.inet.ip.anonportmax"), "first-last"))


def macos(name: str = "macos") -> KernelProfile:
    """macOS / XNU (S6)."""
    rules = BsdRules(
        family="macos", connect_port="prebind-wildcard", udp_connect_port="check-then-bind",
        implicit_bind_honours_reuse=False, order="xnu", timewait=30.0, v6only_default=False,
        privileged_ports="below-1024-specific-address", bind_conflict="xnu",
        tcp_multicast_bind_errno=errno.EAFNOSUPPORT, timewait_sysctl="net.inet.tcp.msl", timewait_per_unit=0.002,
        range_default=PortRange("net.inet.ip.portrange.first", 49152, "net.inet.ip.portrange.last", 65535,
                                "{proto}:default"),
        options=("IP_PORTRANGE",), sysctls=_xnu_sysctls())
    return dataclasses.replace(
        _BASE, name=name, os="macos", version=(0, 0),
        description="macOS (XNU): range 49152-65535; TCP sequential by default (net.inet.tcp.randomize_ports=0), "
                    "UDP random start; the implicit bind forces a wildcard lookup, so connect() ports come from "
                    "one host-wide pool; restricted ports, Skywalk netns and TIME_WAIT recycling not modelled (⚠)",
        sources=("apple-oss-distributions/xnu bsd/netinet/in_pcb.c in_pcbbind (stored ids 57046288705, "
                 "657195750)", "apple-oss-distributions/xnu bsd/netinet/tcp_subr.c tcp_use_randomport = 0, "
                 "udp_usrreq.c udp_use_randomport = 1 (older release; id 230366126)"),
        default_port_range=(49152, 65535), bsd=rules,
        range_sysctls=RangeSysctls(("net.inet.ip.portrange.first", "net.inet.ip.portrange.last"), "first-last"))


def windows(name: str = "windows") -> KernelProfile:
    """Windows Vista / Server 2008 and later, from Microsoft's documentation only (W1-W6)."""
    dynamic = PortRange("netsh.int.ipv{af}.dynamicport.{proto}", 49152, "", 16384, "{proto}:{af}", "start-count")
    rules = BsdRules(
        family="windows", connect_port="auto-reuse", implicit_bind_honours_reuse=False, order="windows",
        timewait=240.0, privileged_ports="none", bind_conflict="", range_default=dynamic, range_high=dynamic,
        range_low=dynamic, low_range_errno=0,
        finwait2_seconds=60.0,          # undocumented: the value the model used so far, kept (⚠ model choice)
        timewait_sysctl="tcpip.parameters.TcpTimedWaitDelay", timewait_per_unit=1.0,
        options=("SO_EXCLUSIVEADDRUSE", "SO_REUSE_UNICASTPORT", "SO_PORT_SCALABILITY", "SO_RANDOMIZE_PORT"),
        sysctls=_windows_sysctls())
    return dataclasses.replace(
        _BASE, name=name, os="windows", version=(6, 0), stack="windows", so_reuseport=False,
        release_resets_bucket=True,
        description="Windows (documentation only): range 49152-65535; bind() sharing from the documented "
                    "SO_REUSEADDR/SO_EXCLUSIVEADDRUSE tables; connect() without bind() shares ports across "
                    "destinations (auto-reuse, randomized); bind(0) takes a unique port; the selection "
                    "algorithm and exhaustion errno are undocumented (model choices, ⚠)",
        sources=("MS KB929851 default dynamic port range (W1)", "MS Troubleshoot port exhaustion (W2)",
                 "MS Using SO_REUSEADDR and SO_EXCLUSIVEADDRUSE (W3, MicrosoftDocs/win32 08f5ed21d569)",
                 "MS SOL_SOCKET socket options (W4, 01fb6093604)", "MS SO_PORT_SCALABILITY (W5)"),
        default_port_range=(49152, 65535), bsd=rules,
        range_sysctls=RangeSysctls(("netsh.int.ipv4.dynamicport.tcp", "netsh.int.ipv4.dynamicport.udp"),
                                   "start-count"))


_SINGLE: dict[str, Any] = {
    "openbsd": openbsd,
    "macos": macos,
    "windows": windows,
    "netbsd": lambda: netbsd("bsd", name="netbsd"),
}


def names() -> list[str]:
    """Every BSD-family and Windows profile name."""
    out = ["freebsd-12"] + [f"freebsd-{sw.version[0]}" for sw in FREEBSD_SWITCHES]
    out += ["openbsd", "netbsd"] + ["netbsd-" + a.replace("_", "-") for a in NETBSD_ALGORITHMS]
    out += ["macos", "windows"]
    return out


def _parse_freebsd(text: str) -> tuple[int, int] | None:
    parts = text.split("-", 1)[0].split(".")
    try:
        return int(parts[0]), int(parts[1]) if len(parts) > 1 else 0
    except (ValueError, IndexError):
        return None


def resolve(key: str) -> KernelProfile | None:
    """The profile for a lower-cased name, or None when the name is not one of this module's."""
    if key in _SINGLE:
        built: KernelProfile = _SINGLE[key]()
        return built
    if key.startswith("netbsd-"):
        algo = key[len("netbsd-"):].replace("-", "_")
        return netbsd(algo) if algo in NETBSD_ALGORITHMS else None
    if key == "freebsd":
        return freebsd(FREEBSD_SWITCHES[-1].version)
    if key.startswith("freebsd-"):
        v = _parse_freebsd(key[len("freebsd-"):])
        if v is not None and v >= (12, 0):
            listed = key in names()
            return freebsd(v, name=None if listed else key)
    return None
