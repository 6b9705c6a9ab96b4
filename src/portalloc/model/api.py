# The socket API that both backends offer, as typing Protocols.
#
# Rules:
# - HostAPI and SocketAPI list what a caller may use on either a model Host (model/host.py) or a LiveHost
#   (live/host.py): trace replay, the simulator and the host tools program against these, never against one
#   backend's class. Both classes satisfy them structurally (no inheritance); tests/test_api.py checks it.
# - Methods follow socket.socket's positional style; where the two backends spell optional arguments
#   differently (LiveSocket.listen(*backlog), setsockopt(..., *optlen)) the Protocol takes the common,
#   positional-only form. What only the model has (usable_ports, inbound, set_peer, stats) is on
#   ModelHostAPI.
"""HostAPI and SocketAPI: the socket API common to the model and the live backend."""

from __future__ import annotations

from types import TracebackType
from typing import Any, Protocol, runtime_checkable

from portalloc.model.info import SocketInfo
from portalloc.model.portset import PortSet
from portalloc.sysctl import SysctlValue


@runtime_checkable
class SocketAPI(Protocol):
    """One socket of a HostAPI: the methods of ``socket.socket`` that port allocation needs."""

    @property
    def family(self) -> int:
        """AF_INET or AF_INET6."""
        ...

    @property
    def type(self) -> int:
        """SOCK_STREAM or SOCK_DGRAM."""
        ...

    def bind(self, address: Any, /) -> None:
        """bind(2)."""
        ...

    def listen(self, backlog: int = ..., /) -> None:
        """listen(2)."""
        ...

    def connect(self, address: Any, /) -> None:
        """connect(2), raising OSError with the kernel's errno."""
        ...

    def connect_ex(self, address: Any, /) -> int:
        """connect(2) returning the errno (0 on success)."""
        ...

    def accept(self) -> tuple[SocketAPI, Any]:
        """accept(2): the connection and the peer's address."""
        ...

    def getsockname(self) -> Any:
        """The local address and port."""
        ...

    def getpeername(self) -> Any:
        """The peer's address and port (ENOTCONN without one)."""
        ...

    def setsockopt(self, level: int, optname: int, value: Any, /) -> None:
        """setsockopt(2) with an int or bytes value."""
        ...

    def getsockopt(self, level: int, optname: int, /) -> Any:
        """getsockopt(2) as an int."""
        ...

    def setblocking(self, flag: bool, /) -> None:
        """Blocking or not."""
        ...

    def getblocking(self) -> bool:
        """Whether the socket blocks."""
        ...

    def settimeout(self, value: float | None, /) -> None:
        """As socket.settimeout."""
        ...

    def gettimeout(self) -> float | None:
        """The timeout set with settimeout()."""
        ...

    def send(self, data: bytes, /) -> int:
        """send(2)."""
        ...

    def sendto(self, data: bytes, address: Any, /) -> int:
        """sendto(2)."""
        ...

    def recvfrom(self, bufsize: int, /) -> tuple[bytes, Any]:
        """recvfrom(2), never waiting."""
        ...

    def close(self) -> None:
        """close(2)."""
        ...


@runtime_checkable
class HostAPI(Protocol):
    """One network namespace with the socket API: a model ``portalloc.Host`` or a ``LiveHost``."""

    @property
    def kernel(self) -> str:
        """The kernel name the host was built for."""
        ...

    def socket(self, family: int = ..., type: int = ..., proto: int = ..., *, uid: int = ...) -> SocketAPI:
        """socket(2) as ``uid``."""
        ...

    def sysctl(self, name: str, value: SysctlValue = ..., /) -> SysctlValue | None:
        """Read a sysctl, or write it when ``value`` is given."""
        ...

    def sockets(self) -> list[SocketInfo]:
        """An ``ss``-like snapshot of every socket that holds a port."""
        ...

    def sleep(self, seconds: float, /) -> None:
        """Let time pass (simulated on the model, real on the live kernel)."""
        ...

    def close(self) -> None:
        """Release the host (the live agent and its namespace; nothing for the model)."""
        ...

    def __enter__(self) -> HostAPI:
        ...

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None, /) -> None:
        ...


@runtime_checkable
class ModelHostAPI(HostAPI, Protocol):
    """What only the model's Host answers, on top of HostAPI: the port query, simulated peers, counters."""

    @property
    def time(self) -> float:
        """Simulated seconds since the host started."""
        ...

    @property
    def stats(self) -> dict[str, int]:
        """Counters: connects, connect_searches, connect_probes, ..."""
        ...

    def usable_ports(self, dst: tuple[str, int], *, proto: str = ..., src: str | None = ...) -> PortSet:
        """The ports a new connect() toward ``dst`` could take now."""
        ...

    def set_peer(self, address: str, behaviour: str, port: int | None = ...) -> None:
        """What remote peers at ``address`` do with a connection."""
        ...

    def inbound(self, src: tuple[str, int], dst: tuple[str, int], ts_clock: float | None = ...) -> str:
        """A remote client opens a connection to this host."""
        ...
