# The sysctls a Linux profile has, their defaults, and how a write is validated.
#
# Rule: a write is parsed from the text one would echo into /proc/sys and checked the way the
# kernel's proc handler checks it; a bad value raises OSError(EINVAL), an unknown name
# FileNotFoundError(ENOENT), exactly what the write to /proc would raise. Validation that looks at
# other sysctls (the port range against ip_unprivileged_port_start, both ways) reads them through the
# `current` mapping. Sources: linux.md section 9; net/ipv4/sysctl_net_ipv4.c ipv4_local_port_range(),
# ipv4_privileged_ports(); verified on 6.18.
"""Linux sysctl schema: names, defaults, validators."""

from __future__ import annotations

import errno
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from portalloc.errors import kernel_error
from portalloc.kernels.profile import KernelProfile
from portalloc.sysctl import SysctlValue, format_port_list

Validator = Callable[[str, Mapping[str, SysctlValue]], SysctlValue]


def _einval() -> OSError:
    return kernel_error(errno.EINVAL)


def _ints(text: str, n: int) -> list[int]:
    parts = text.replace(",", " ").split()
    if len(parts) != n:
        raise _einval()
    try:
        return [int(p) for p in parts]
    except ValueError:
        raise _einval() from None


def int_range(lo: int, hi: int) -> Validator:
    """proc_dointvec_minmax over [lo, hi]."""

    def check(text: str, current: Mapping[str, SysctlValue]) -> SysctlValue:
        (v,) = _ints(text, 1)
        if not lo <= v <= hi:
            raise _einval()
        return v

    return check


def any_int(text: str, current: Mapping[str, SysctlValue]) -> SysctlValue:
    """proc_dointvec: any int."""
    (v,) = _ints(text, 1)
    return v


def port_range(text: str, current: Mapping[str, SysctlValue]) -> SysctlValue:
    """ipv4_local_port_range(): 1 <= low <= high <= 65535 and low >= ip_unprivileged_port_start."""
    low, high = _ints(text, 2)
    if not (1 <= low <= high <= 65535):
        raise _einval()
    start = current.get("net.ipv4.ip_unprivileged_port_start")
    if isinstance(start, int) and low < start:
        raise _einval()
    return low, high


def unprivileged_start(text: str, current: Mapping[str, SysctlValue]) -> SysctlValue:
    """ipv4_privileged_ports(): 0..65535 and not above the port range's low end."""
    (v,) = _ints(text, 1)
    if not 0 <= v <= 65535:
        raise _einval()
    rng = current.get("net.ipv4.ip_local_port_range")
    if isinstance(rng, tuple) and v > rng[0]:
        raise _einval()
    return v


def parse_port_list(text: str) -> frozenset[int]:
    """``"40000-40003,40008"`` → the ports; EINVAL for anything proc_do_large_bitmap rejects."""
    ports: set[int] = set()
    t = text.strip()
    if not t:
        return frozenset()
    for item in t.split(","):
        item = item.strip()
        if not item:
            raise _einval()
        try:
            if "-" in item:
                a, b = (int(x) for x in item.split("-", 1))
            else:
                a = b = int(item)
        except ValueError:
            raise _einval() from None
        if not (0 <= a <= b <= 65535):
            raise _einval()
        ports.update(range(a, b + 1))
    return frozenset(ports)


def reserved_ports(text: str, current: Mapping[str, SysctlValue]) -> SysctlValue:
    """ip_local_reserved_ports: a list of ports and ranges, stored as the kernel's canonical text."""
    return format_port_list(parse_port_list(text))


@dataclass(frozen=True)
class SysctlSpec:
    """One sysctl: its dotted name, default for a profile, validator, and whether the profile has it."""

    name: str
    default: Callable[[KernelProfile], SysctlValue]
    validate: Validator
    present: Callable[[KernelProfile], bool] = lambda p: True


def _tw_reuse_validator(p: KernelProfile) -> Validator:
    """0..2 since 79e9fed46038 (4.18); before, plain proc_dointvec: any integer, non-zero meaning on."""
    return int_range(0, 2) if p.tw_reuse_loopback_mode else any_int


SPECS: tuple[SysctlSpec, ...] = (
    SysctlSpec("net.ipv4.ip_local_port_range", lambda p: p.default_port_range, port_range),
    SysctlSpec("net.ipv4.ip_local_reserved_ports", lambda p: "", reserved_ports),
    SysctlSpec("net.ipv4.ip_unprivileged_port_start", lambda p: 1024, unprivileged_start,
               lambda p: p.ip_unprivileged_port_start),
    SysctlSpec("net.ipv4.ip_autobind_reuse", lambda p: 0, int_range(0, 1), lambda p: p.ip_autobind_reuse),
    SysctlSpec("net.ipv4.tcp_tw_reuse", lambda p: 2 if p.tw_reuse_loopback_mode else 0,
               lambda t, c: any_int(t, c)),  # replaced per profile in specs_for()
    SysctlSpec("net.ipv4.tcp_tw_reuse_delay", lambda p: 1000, int_range(1, 60000),
               lambda p: p.tw_reuse_delay_sysctl),
    SysctlSpec("net.ipv4.tcp_tw_recycle", lambda p: 0, int_range(0, 1), lambda p: p.tw_recycle),
    SysctlSpec("net.ipv4.tcp_timestamps", lambda p: 1, int_range(0, 2)),
    SysctlSpec("net.ipv4.tcp_fin_timeout", lambda p: 60, any_int),
    SysctlSpec("net.ipv4.tcp_max_tw_buckets", lambda p: 131072, int_range(0, 2**31 - 1)),
    SysctlSpec("net.ipv4.ip_nonlocal_bind", lambda p: 0, int_range(0, 1)),
    SysctlSpec("net.ipv6.ip_nonlocal_bind", lambda p: 0, int_range(0, 1)),
    SysctlSpec("net.core.somaxconn", lambda p: 4096, int_range(0, 2**31 - 1)),
)


def specs_for(profile: KernelProfile) -> dict[str, SysctlSpec]:
    """The sysctls ``profile`` has, by name."""
    out: dict[str, SysctlSpec] = {}
    for spec in SPECS:
        if not spec.present(profile):
            continue
        if spec.name == "net.ipv4.tcp_tw_reuse":
            spec = SysctlSpec(spec.name, spec.default, _tw_reuse_validator(profile))
        out[spec.name] = spec
    return out


def unknown_sysctl(name: str) -> FileNotFoundError:
    """What writing or reading a missing /proc/sys file raises."""
    path = "/proc/sys/" + name.replace(".", "/")
    return FileNotFoundError(errno.ENOENT, "No such file or directory", path)
