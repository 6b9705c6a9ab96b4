# The running kernel as a profile family: "linux-live" resolves to the profile of `uname -r`.
#
# Rules: reading uname is I/O, so it lives here and not in kernels/ (which is data only); the registry in
# kernels/__init__.py asks this family through `register_family`, done once when portalloc is imported.
# The version arithmetic is kernels/linux.py's `for_release`.
"""The "linux-live" profile: the running kernel's version, resolved with uname."""

from __future__ import annotations

import os

from portalloc.kernels import register_family
from portalloc.kernels.linux import for_release
from portalloc.kernels.profile import KernelProfile

#: The name that means "the kernel this process runs on".
RUNNING_KERNEL = "linux-live"


class RunningKernel:
    """A profile family with one unlisted name, ``linux-live``."""

    def names(self) -> list[str]:
        """No listed names: ``linux-live`` is an alias of a listed version."""
        return []

    def resolve(self, key: str) -> KernelProfile | None:
        """The running kernel's profile for ``linux-live``; None for any other name."""
        if key != RUNNING_KERNEL:
            return None
        return for_release(os.uname().release)


register_family(RunningKernel())
