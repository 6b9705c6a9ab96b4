# Errors, raised the way the kernel and the `socket` module raise them.
#
# Rule: every failure of a socket call is an OSError whose errno is the kernel's and whose text is
# os.strerror(errno). OSError's constructor picks the matching subclass itself (EADDRINUSE stays a
# plain OSError, ECONNREFUSED becomes ConnectionRefusedError, EAGAIN/EINPROGRESS BlockingIOError), so
# callers can catch exactly what they would catch around real sockets.
"""Kernel-style errors for the model."""

from __future__ import annotations

import os
from typing import NoReturn


def kernel_error(code: int, filename: str | None = None) -> OSError:
    """Return the OSError the kernel's ``-code`` becomes in Python (subclass chosen by errno)."""
    if filename is None:
        return OSError(code, os.strerror(code))
    return OSError(code, os.strerror(code), filename)


def fail(code: int) -> NoReturn:
    """Raise the OSError for errno ``code``."""
    raise kernel_error(code)

