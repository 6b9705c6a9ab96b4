# The registry of kernel profiles: names → KernelProfile.
#
# Rule: profiles come from family modules (kernels/linux.py, ...), each offering `names()` (the names it
# lists) and `resolve(key)` (a profile for a lower-cased name, or None when the name is not its own).
# Every name `kernels()` lists resolves. For Linux: "linux" is the newest; "linux-X.Y" resolves to the
# newest switch at or below X.Y; "linux-live" to the running kernel's version. "rfc6056-1".."rfc6056-5"
# are Linux 6.18 with connect()'s search replaced by one of RFC 6056's algorithms (the family `_RFC6056`
# below, kept in this file; it could move to kernels/rfc6056.py unchanged).
"""Kernel profiles by name."""

from __future__ import annotations

import dataclasses
import importlib
from typing import Protocol

from portalloc.kernels import linux
from portalloc.kernels.profile import KernelProfile

__all__ = ["KernelProfile", "kernels", "get_profile", "describe"]

#: Family modules, in listing order. Optional ones are imported if present.
_FAMILY_MODULES = ("portalloc.kernels.linux", "portalloc.kernels.rfc6056", "portalloc.kernels.bsd")


class _Family(Protocol):
    def names(self) -> list[str]: ...

    def resolve(self, key: str) -> KernelProfile | None: ...


class _Rfc6056Family:
    """RFC 6056 (BCP 156) §3.3 algorithms 1-5 as profiles: Linux 6.18's rules for everything but the choice
    of connect()'s port, which is kernels/strategies.py ``rfc6056_algN`` (shared/research/others.md §1).

    ``check_suitable_port()`` is Linux's test (reserved ports and explicitly bound ports skipped, the
    4-tuple checked, TIME_WAIT take-over by tcp_tw_reuse). F() and G() are the SipHash ``port_offset``
    keyed by the boot secret, without Linux's 10-second time seed (4dfa9b438ee3): the RFC's F(local IP,
    remote IP, remote port, secret key) has no time input, so ``time_seed`` is off.
    """

    #: N → (RFC section, the RFC's name, what it does)
    ALGORITHMS: dict[int, tuple[str, str, str]] = {
        1: ("3.3.1", "Simple Port Randomization",
            "a fresh random port on every probe, at most num probes (can miss a free port)"),
        2: ("3.3.2", "Simple Port Randomization with a linear search",
            "a random start, then a linear search with wrap-around"),
        3: ("3.3.3", "Simple Hash-Based Port Selection",
            "offset = F(laddr, faddr, fport) plus one global counter advanced per probe"),
        4: ("3.3.4", "Double-Hash Port Selection",
            "offset = F(...) plus table[G(...)], 10 counters advanced per probe"),
        5: ("3.3.5", "Random-Increments Port Selection",
            "one global counter advanced by random() % 500 + 1 per probe"),
    }

    def names(self) -> list[str]:
        return [f"rfc6056-{n}" for n in self.ALGORITHMS]

    def resolve(self, key: str) -> KernelProfile | None:
        if key not in self.names():
            return None
        n = int(key.rsplit("-", 1)[1])
        section, title, what = self.ALGORITHMS[n]
        return dataclasses.replace(
            linux.build(linux.NEWEST),
            name=key,
            connect_search=key,
            time_seed=False,
            description=f"RFC 6056 algorithm {n}, {title} (§{section}): {what}; Linux 6.18 rules otherwise",
            sources=("RFC 6056 (BCP 156, Larsen and Gont, 2011) https://www.rfc-editor.org/rfc/rfc6056",
                     f"RFC 6056 §{section}", f"kernels/strategies.py rfc6056_alg{n}",
                     "shared/research/others.md §1", "bind(), check_established, TIME_WAIT: linux-6.18"),
        )


_RFC6056 = _Rfc6056Family()


def _families() -> list[_Family]:
    mods: list[_Family] = [linux]
    for name in _FAMILY_MODULES[1:]:
        if name == "portalloc.kernels.rfc6056":
            mods.append(_RFC6056)
            continue
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
