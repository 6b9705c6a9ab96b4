# portalloc: TCP/UDP local-port allocation, executable.
#
# The public surface is small on purpose: Host (the pure model of one kernel's network namespace),
# kernels() (the profile names), and portalloc.live.LiveHost (the same API on the real kernel).
"""portalloc — a faithful, versioned model of TCP/UDP local-port allocation behind the BSD socket API."""

from __future__ import annotations

# First: importing portalloc.compiled decides between the compiled core and its source, before any compiled
# module loads.
from portalloc import compiled as _compiled  # noqa: F401
from portalloc.kernels import get_profile, kernels
from portalloc.live import running as _running  # noqa: F401  registers "linux-live" (uname is I/O: live/)
from portalloc.model.api import HostAPI, ModelHostAPI, SocketAPI
from portalloc.model.host import Host, Socket
from portalloc.model.info import SocketInfo
from portalloc.model.portset import PortSet

__version__ = "0.1.0"
__all__ = ["Host", "Socket", "SocketInfo", "HostAPI", "ModelHostAPI", "SocketAPI", "PortSet", "kernels",
           "get_profile", "__version__"]
