# Sysctl names and values: one spelling for the model and the live backend.
#
# Rules: a name may be given as `net.ipv4.tcp_tw_reuse`, `net/ipv4/tcp_tw_reuse` or
# `/proc/sys/net/ipv4/tcp_tw_reuse`; it is kept in the dotted form. A value may be given as the text
# one would write to /proc (`"40000 40009"`), an int, or a (lo, hi) pair. Reading gives a Python value:
# a (lo, hi) tuple for the port range, the kernel's canonical text for the reserved-port list
# (`"40000-40003,40008"`, empty string when none), an int for everything else.
"""Sysctl name and value codecs shared by both backends."""

from __future__ import annotations

from collections.abc import Iterable

SysctlValue = int | str | tuple[int, int]

#: Sysctls whose value is a pair of integers.
PAIR_SYSCTLS = frozenset({"net.ipv4.ip_local_port_range"})
#: Sysctls whose value is a port list (read back as canonical text).
PORTLIST_SYSCTLS = frozenset({"net.ipv4.ip_local_reserved_ports"})


def normalize_name(name: str) -> str:
    """Return the dotted form of a sysctl name (``net.ipv4.tcp_tw_reuse``)."""
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"sysctl name must be a non-empty string, not {name!r}")
    n = name.strip()
    if n.startswith("/proc/sys/"):
        n = n[len("/proc/sys/"):]
    return n.strip("/").replace("/", ".")


def to_text(value: object) -> str:
    """The text that writing ``value`` to /proc/sys would use."""
    if isinstance(value, bool):
        return str(int(value))
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, (tuple, list)):
        return " ".join(to_text(v) for v in value)
    raise TypeError(f"sysctl value must be an int, a string or a (lo, hi) pair, not {type(value).__name__}")


def from_text(name: str, text: str) -> SysctlValue:
    """Parse what /proc/sys prints for ``name`` into the Python value ``Host.sysctl`` returns."""
    name = normalize_name(name)
    t = text.strip()
    if name in PAIR_SYSCTLS:
        lo, hi = t.split()
        return int(lo), int(hi)
    if name in PORTLIST_SYSCTLS:
        return t
    return int(t)


def format_port_list(ports: Iterable[int]) -> str:
    """The kernel's canonical text for a set of ports: ascending, runs folded (``40000-40003,40008``).

    Mirrors ``proc_do_large_bitmap`` output in kernel/sysctl.c.
    """
    out: list[str] = []
    run: list[int] = []
    for p in sorted(set(ports)):
        if run and p == run[-1] + 1:
            run.append(p)
            continue
        if run:
            out.append(str(run[0]) if len(run) == 1 else f"{run[0]}-{run[-1]}")
        run = [p]
    if run:
        out.append(str(run[0]) if len(run) == 1 else f"{run[0]}-{run[-1]}")
    return ",".join(out)
