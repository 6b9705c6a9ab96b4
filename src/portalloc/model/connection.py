# socket.create_connection, step by step, over any host with the portalloc socket API (Host or LiveHost).
#
# Rules: this is CPython's Lib/socket.py create_connection (3.11+) with the host's socket() in place of the
# module's: for each address getaddrinfo(host, port, 0, SOCK_STREAM) returns, make a socket, set the timeout
# unless it is the module default, bind(source_address) when one is given — a plain bind(), so a fixed source
# port is taken for every destination, the trap urllib3/requests users fall into (issue 8) — then connect();
# on failure close that socket and try the next address; raise the last error (or an ExceptionGroup of all of
# them with all_errors=True). Name lookup is numeric only, with no I/O: an address literal, or "localhost",
# which glibc's getaddrinfo returns as ::1 then 127.0.0.1 (RFC 6724 order; /etc/hosts of the measured
# machine). Any other name raises socket.gaierror(EAI_NONAME) as an unknown name would.
"""create_connection(): the standard library's client connect over a portalloc host."""

from __future__ import annotations

import socket as _socket
from typing import TYPE_CHECKING, Any

from portalloc.model.addr import parse_host

if TYPE_CHECKING:
    from portalloc.model.api import HostAPI, SocketAPI


def stream_addresses(host: object, port: object) -> list[tuple[int, tuple[Any, ...]]]:
    """getaddrinfo(host, port, 0, SOCK_STREAM) for numeric hosts and "localhost": (family, sockaddr) pairs."""
    if host is None or host == "localhost":
        names: list[tuple[int, str]] = [(_socket.AF_INET6, "::1"), (_socket.AF_INET, "127.0.0.1")]
    else:
        if isinstance(host, (bytes, bytearray)):
            host = bytes(host).decode("idna")
        if not isinstance(host, str):
            raise TypeError(f"getaddrinfo() argument 1 must be string or None, not {type(host).__name__}")
        family = _socket.AF_INET6 if ":" in host else _socket.AF_INET
        parse_host(host, 6 if family == _socket.AF_INET6 else 4, "getaddrinfo")   # gaierror for a name
        names = [(family, host)]
    if isinstance(port, str):
        if not port.isdigit():
            raise _socket.gaierror(_socket.EAI_SERVICE, "Servname not supported for ai_socktype")
        port = int(port)
    if not isinstance(port, int) or isinstance(port, bool):
        raise OSError("Int or String expected")
    return [(fam, (name, port) if fam == _socket.AF_INET else (name, port, 0, 0)) for fam, name in names]


def create_connection(host: HostAPI, address: tuple[Any, Any], timeout: Any = _socket._GLOBAL_DEFAULT_TIMEOUT,  # type: ignore[attr-defined]
                      source_address: tuple[Any, ...] | None = None, *, all_errors: bool = False,
                      uid: int = 0) -> SocketAPI:
    """Lib/socket.py create_connection over ``host`` (a Host or LiveHost); sockets are made as ``uid``."""
    target_host, port = address
    exceptions: list[OSError] = []
    for family, sockaddr in stream_addresses(target_host, port):
        sock = None
        try:
            sock = host.socket(family, _socket.SOCK_STREAM, 0, uid=uid)
            if timeout is not _socket._GLOBAL_DEFAULT_TIMEOUT:  # type: ignore[attr-defined]
                sock.settimeout(timeout)
            if source_address:
                sock.bind(source_address)
            sock.connect(sockaddr)
            exceptions.clear()
            return sock
        except OSError as exc:
            if not all_errors:
                exceptions.clear()
            exceptions.append(exc)
            if sock is not None:
                sock.close()
    if exceptions:
        try:
            if not all_errors:
                raise exceptions[0]
            raise ExceptionGroup("create_connection failed", exceptions)
        finally:
            exceptions.clear()
    raise OSError("getaddrinfo returns an empty list")
