# The model package: the pure, sans-I/O kernel (stack.py and its OS siblings), its tables and the Host facade.
#
# Rule: importing this package imports only what has no dependency on kernels/ (so kernels/ may use the
# model's leaf modules without a cycle); the Host lives in portalloc.model.host.
"""The model: one network namespace's kernel, pure Python, no I/O."""

from __future__ import annotations

from portalloc.model.api import HostAPI, ModelHostAPI, SocketAPI
from portalloc.model.portset import PortSet

__all__ = ["HostAPI", "ModelHostAPI", "PortSet", "SocketAPI"]
