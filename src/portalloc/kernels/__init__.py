# The registry of kernel profiles: names → KernelProfile.
#
# Rule: profiles come from family modules, each offering `names()` (the names it lists) and `resolve(key)`
# (a profile for a lower-cased name, or None when the name is not its own). Every name `kernels()` lists
# resolves. Linux (kernels/linux.py): "linux" is the newest; "linux-X.Y" resolves to the newest switch at
# or below X.Y; "linux-live" to the running kernel's version, through a family that live/running.py registers
# (reading uname is I/O, which this package never does). RFC 6056 (kernels/rfc6056.py): Linux 6.18 with
# connect()'s search replaced by one of the RFC's algorithms. The BSDs, macOS and Windows: kernels/bsd.py.
"""Kernel profiles by name."""

from __future__ import annotations

from typing import Protocol

from portalloc.kernels import bsd, linux, rfc6056
from portalloc.kernels.profile import KernelProfile

__all__ = ["KernelProfile", "kernels", "get_profile", "describe", "register_family"]


class _Family(Protocol):
    def names(self) -> list[str]: ...

    def resolve(self, key: str) -> KernelProfile | None: ...


#: Family modules, in listing order; ``register_family`` adds one (live/running.py: "linux-live").
FAMILIES: list[_Family] = [linux, rfc6056, bsd]


def register_family(family: _Family) -> None:
    """Add a family of profiles to the registry (once; later families are asked after earlier ones)."""
    if family not in FAMILIES:
        FAMILIES.append(family)


def kernels() -> list[str]:
    """The names of every available kernel profile."""
    return [n for fam in FAMILIES for n in fam.names()]


def describe() -> list[tuple[str, str, tuple[str, ...]]]:
    """(name, one-line description, sources) for every profile, in ``kernels()`` order."""
    return [(n, (p := get_profile(n)).description, p.sources) for n in kernels()]


def get_profile(name: str) -> KernelProfile:
    """Resolve a kernel name to its profile; ValueError with the valid names when it is unknown."""
    if not isinstance(name, str):
        raise TypeError(f"kernel name must be a string such as 'linux-6.18', not {type(name).__name__}")
    key = name.strip().lower()
    for fam in FAMILIES:
        profile = fam.resolve(key)
        if profile is not None:
            return profile
    raise ValueError(f"unknown kernel {name!r}; choose one of: {', '.join(kernels())} "
                     "(or linux-X.Y for any version from 2.6, 'linux' for the newest, 'linux-live')")
