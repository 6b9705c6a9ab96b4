# The registry of kernel profiles: names → KernelProfile.
#
# Rule: every name `kernels()` lists resolves; "linux" is the newest Linux; "linux-X.Y" resolves to the
# newest switch at or below X.Y (kernels/linux.py); "linux-live" to the running kernel's version.
"""Kernel profiles by name."""

from __future__ import annotations

import os

from portalloc.kernels import linux
from portalloc.kernels.profile import KernelProfile

__all__ = ["KernelProfile", "kernels", "get_profile", "describe"]


def kernels() -> list[str]:
    """The names of every available kernel profile."""
    return linux.names()


def describe() -> list[tuple[str, str, tuple[str, ...]]]:
    """(name, one-line description, sources) for every profile, in ``kernels()`` order."""
    return [(n, (p := get_profile(n)).description, p.sources) for n in kernels()]


def get_profile(name: str) -> KernelProfile:
    """Resolve a kernel name to its profile; ValueError with the valid names when it is unknown."""
    if not isinstance(name, str):
        raise TypeError(f"kernel name must be a string such as 'linux-6.18', not {type(name).__name__}")
    key = name.strip().lower()
    if key in ("linux", "linux-latest"):
        return linux.build(linux.NEWEST)
    if key == "linux-live":
        v = linux.parse_version(os.uname().release)
        if v is None:
            raise ValueError(f"cannot read a Linux version from uname -r = {os.uname().release!r}")
        return linux.build(min(v, linux.NEWEST), name=f"linux-{v[0]}.{v[1]}")
    if key.startswith("linux-"):
        v = linux.parse_version(key[len("linux-"):])
        if v is not None and v >= linux.BASE.version:
            exact = key in linux.names()
            return linux.build(v, name=None if exact else key)
    raise ValueError(f"unknown kernel {name!r}; choose one of: {', '.join(kernels())} "
                     "(or linux-X.Y for any version from 2.6, 'linux' for the newest, 'linux-live')")
