# RFC 6056 (BCP 156) section 3.3 algorithms 1-5 as kernel profiles, for like-for-like comparisons.
#
# Rule: a profile "rfc6056-N" is Linux 6.18 with only connect()'s choice of port replaced by the RFC's
# algorithm N (kernels/strategies.py rfc6056_algN). check_suitable_port() is Linux's test (reserved ports
# and explicitly bound ports skipped, the 4-tuple checked, TIME_WAIT take-over by tcp_tw_reuse). F() and G()
# are the SipHash port_offset under the boot secret, without Linux's 10-second time seed (4dfa9b438ee3):
# the RFC's F(local IP, remote IP, remote port, secret key) has no time input. Source: others.md section 1.
"""The rfc6056-1 .. rfc6056-5 profiles."""

from __future__ import annotations

import dataclasses

from portalloc.kernels import linux
from portalloc.kernels.profile import KernelProfile

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


def names() -> list[str]:
    """rfc6056-1 .. rfc6056-5."""
    return [f"rfc6056-{n}" for n in ALGORITHMS]


def resolve(key: str) -> KernelProfile | None:
    """The profile for ``rfc6056-N``; None for any other name."""
    if key not in names():
        return None
    n = int(key.rsplit("-", 1)[1])
    section, title, what = ALGORITHMS[n]
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
