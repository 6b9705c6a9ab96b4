# portalloc.live: the model Host's API on the real kernel, in a private network namespace.
#
# Rules: real sockets exist only inside a namespace created by the agent process (unshare(CLONE_NEWNET));
# nothing is written to the machine's own /proc/sys; each LiveHost owns exactly one agent process and
# reaps it on close. LiveUnavailable (a RuntimeError) says why the backend cannot run here, so callers
# and tests can fall back to the model or skip.
"""Live backend: ``LiveHost`` runs the ``Host`` API against the running Linux kernel."""

from __future__ import annotations

from portalloc.constants import DEFAULT_ADDRESSES
from portalloc.live.host import (
    KERNEL_NAMES,
    LiveAgentError,
    LiveHost,
    LiveSocket,
    LiveUnavailable,
    kernel_release,
)

__all__ = [
    "DEFAULT_ADDRESSES",
    "KERNEL_NAMES",
    "LiveAgentError",
    "LiveHost",
    "LiveSocket",
    "LiveUnavailable",
    "kernel_release",
]
