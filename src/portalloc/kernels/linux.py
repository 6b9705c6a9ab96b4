# Linux, version by version, as one table of switches.
#
# Rule: a profile for version V is BASE with every switch at or below V applied in order. Each switch
# names the commit(s) it comes from; nothing else in portalloc knows version numbers. A name such as
# "linux-5.15" resolves to the newest switch at or below 5.15 (here 5.12), keeping the asked-for name.
# Sources: shared/research/linux.md sections 2-10 (read from torvalds/linux, checked live on 6.18).
"""Linux kernel profiles (2.6 to 6.18) built from a table of version switches."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from portalloc.kernels.profile import KernelProfile


@dataclass(frozen=True)
class Switch:
    """One behaviour change of Linux: the version that shipped it, its commits and the fields it sets."""

    version: tuple[int, int]
    commits: tuple[str, ...]
    summary: str
    changes: dict[str, Any]


#: Linux 2.6.x as the seed article describes it (inet_hashtables.c @ 1bbdceef1e53, a 3.13 tree).
BASE = KernelProfile(
    name="linux-2.6",
    version=(2, 6),
    connect_search="hint-scan",
    perturb_table_size=0,
    perturb_index="none",
    perturb_increment="none",
    time_seed=False,
    port_offset_64=False,
    local_range_step_one=False,
    bind_search="random-rover",
    smallest_size_fallback=True,
    ip_bind_address_no_port=False,
    ip_local_port_range_option=False,
    so_reuseport=False,
    ip_autobind_reuse=False,
    ip_unprivileged_port_start=False,
    tw_reuse_loopback_mode=False,
    tw_reuse_delay_sysctl=False,
    tw_reuse_tick_margin=1,
    tw_recycle=True,
    default_port_range=(32768, 61000),
    fin_wait2_not_reused=False,
    release_resets_bucket=False,
)

SWITCHES: tuple[Switch, ...] = (
    Switch((3, 9), ("c617f398edd4",), "SO_REUSEPORT for TCP and UDP", {"so_reuseport": True}),
    Switch((3, 17), ("a26552afe894",),
           "tcp_tw_recycle also drops SYNs without timestamps from a peer seen less than 60 s ago "
           "(release from a secondary source; the 4.x tcp_peer_is_proven text has the rule)",
           {"tw_recycle_drops_untimestamped": True}),
    Switch((4, 2), ("07f4c90062f8", "90c337da1524"),
           "connect() starts at an even offset, hint += (i+2)&~1; default range 32768-60999; "
           "IP_BIND_ADDRESS_NO_PORT",
           {"connect_search": "hint-even", "default_port_range": (32768, 60999),
            "ip_bind_address_no_port": True}),
    Switch((4, 6), ("1580ab63fc9a", "ea8add2b1903"),
           "connect(): even pass then odd pass, step 2; bind(0): random odd-first, attempt_half",
           {"connect_search": "hint-two-pass", "bind_search": "odd-first"}),
    Switch((4, 11), ("7cd23e5300c1", "4548b683b781", "b9470c27607b"),
           "SipHash port_offset; ip_unprivileged_port_start; smallest_size fallback removed",
           {"ip_unprivileged_port_start": True, "smallest_size_fallback": False}),
    Switch((4, 12), ("4396e46187ca",), "tcp_tw_recycle removed", {"tw_recycle": False}),
    Switch((4, 18), ("79e9fed46038",), "tcp_tw_reuse=2 (loopback only) becomes the default",
           {"tw_reuse_loopback_mode": True}),
    Switch((4, 19), ("cca9bab1b72c",),
           "TIME_WAIT reuse after one whole second (ktime_get_seconds() > stamp), not two",
           {"tw_reuse_tick_margin": 0}),
    Switch((5, 7), ("4b01a9674231",), "ip_autobind_reuse", {"ip_autobind_reuse": True}),
    Switch((5, 12), ("190cc82489f4", "c579bd1b4021"),
           "RFC 6056 algorithm 4: table_perturb[256], hash_32 index, 1/16 noise",
           {"connect_search": "perturb-table", "perturb_table_size": 256, "perturb_index": "hash32",
            "perturb_increment": "noise-1-in-16"}),
    Switch((5, 18), ("4c2c8f03a5ab", "ca7af0402550", "4dfa9b438ee3", "e8161345ddbb"),
           "table_perturb[65536] indexed by port_offset's low bits; random 0..7-step increment; "
           "10-second time seed in the hash; 64-bit port_offset",
           {"perturb_table_size": 1 << 16, "perturb_index": "low-bits",
            "perturb_increment": "random-0-to-7-steps", "time_seed": True, "port_offset_64": True}),
    Switch((6, 3), ("91d0b78c5177",), "IP_LOCAL_PORT_RANGE socket option",
           {"ip_local_port_range_option": True}),
    Switch((6, 8), ("207184853dbd",), "connect() uses step 1 and one pass under IP_LOCAL_PORT_RANGE",
           {"local_range_step_one": True}),
    Switch((6, 12), ("0d9e5df4a257",), "tcp_tw_reuse never takes over a FIN_WAIT2-substate timewait",
           {"fin_wait2_not_reused": True}),
    Switch((6, 14), ("19ce8cd30465", "ca6a6f93867a"), "tcp_tw_reuse_delay (ms) replaces the 1 s tick",
           {"tw_reuse_delay_sysctl": True}),
    Switch((6, 18), ("d57f4b874946",),
           "a port's bucket returns to connect()-shareable when its last explicit binder leaves",
           {"release_resets_bucket": True}),
)

NEWEST: tuple[int, int] = SWITCHES[-1].version


def _version_name(v: tuple[int, ...]) -> str:
    return f"linux-{v[0]}.{v[1]}"


def parse_version(text: str) -> tuple[int, int] | None:
    """``"5.15"``, ``"6.18.44-fc-v669"`` → (major, minor); None when it is not a version."""
    parts = text.split("-", 1)[0].split(".")
    try:
        major, minor = int(parts[0]), int(parts[1]) if len(parts) > 1 else 0
    except (ValueError, IndexError):
        return None
    return major, minor


def build(version: tuple[int, int], name: str | None = None) -> KernelProfile:
    """The profile of Linux ``version``: BASE plus every switch at or below it."""
    if version < BASE.version:
        raise ValueError(f"Linux {version[0]}.{version[1]} is older than the oldest modelled kernel (2.6)")
    changes: dict[str, Any] = {}
    applied: list[Switch] = []
    for sw in SWITCHES:
        if sw.version <= version:
            changes.update(sw.changes)
            applied.append(sw)
    base_version = applied[-1].version if applied else BASE.version
    last = applied[-1].summary if applied else "the 2.6-era hint search, as in the seed article"
    own = applied[-1].commits if applied else ()
    return dataclasses.replace(
        BASE,
        name=name or _version_name(base_version),
        version=version,
        description=f"Linux {version[0]}.{version[1]}: {last}",
        sources=("torvalds/linux net/ipv4/inet_hashtables.c, inet_connection_sock.c, tcp_ipv4.c",) + own,
        **changes,
    )


def for_release(release: str) -> KernelProfile:
    """The profile of a running kernel whose ``uname -r`` is ``release`` (versions newer than the newest
    switch behave as the newest), named after its version."""
    v = parse_version(release)
    if v is None:
        raise ValueError(f"cannot read a Linux version from uname -r = {release!r}")
    return build(min(v, NEWEST), name=f"linux-{v[0]}.{v[1]}")


def names() -> list[str]:
    """Every Linux profile name with a switch of its own, oldest first."""
    return [_version_name(BASE.version)] + [_version_name(sw.version) for sw in SWITCHES]


def resolve(key: str) -> KernelProfile | None:
    """The profile for a lower-cased name: "linux", "linux-latest" or "linux-X.Y"; else None. ("linux-live",
    the running kernel, needs ``uname -r``: live/running.py resolves it with ``for_release``.)"""
    if key in ("linux", "linux-latest"):
        return build(NEWEST)
    if key.startswith("linux-"):
        v = parse_version(key[len("linux-"):])
        if v is not None and v >= BASE.version:
            return build(v, name=None if key in names() else key)
    return None
