# The registry of kernel profiles: names → KernelProfile.
#
# Rule: profiles come from family modules (kernels/linux.py, ...), each offering `names()` (the names it
# lists) and `resolve(key)` (a profile for a lower-cased name, or None when the name is not its own).
# Every name `kernels()` lists resolves. For Linux: "linux" is the newest; "linux-X.Y" resolves to the
# newest switch at or below X.Y; "linux-live" to the running kernel's version.
"""Kernel profiles by name."""

from __future__ import annotations

import importlib
from types import ModuleType

from portalloc.kernels import linux
from portalloc.kernels.profile import KernelProfile

__all__ = ["KernelProfile", "kernels", "get_profile", "describe"]

#: Family modules, in listing order. Optional ones are imported if present.
_FAMILY_MODULES = ("portalloc.kernels.linux", "portalloc.kernels.rfc6056", "portalloc.kernels.bsd")


def _families() -> list[ModuleType]:
    mods = [linux]
    for name in _FAMILY_MODULES[1:]:
        try:
            mods.append(importlib.import_module(name))
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise
    return mods


def kernels() -> list[str]:
    """The names of every available kernel profile."""
    return [n for fam in _families() for n in fam.names()]


def describe() -> list[tuple[str, str, tuple[str, ...]]]:
    """(name, one-line description, sources) for every profile, in ``kernels()`` order."""
    return [(n, (p := get_profile(n)).description, p.sources) for n in kernels()]


def get_profile(name: str) -> KernelProfile:
    """Resolve a kernel name to its profile; ValueError with the valid names when it is unknown."""
    if not isinstance(name, str):
        raise TypeError(f"kernel name must be a string such as 'linux-6.18', not {type(name).__name__}")
    key = name.strip().lower()
    for fam in _families():
        profile = fam.resolve(key)
        if profile is not None:
            return profile
    raise ValueError(f"unknown kernel {name!r}; choose one of: {', '.join(kernels())} "
                     "(or linux-X.Y for any version from 2.6, 'linux' for the newest, 'linux-live')")
