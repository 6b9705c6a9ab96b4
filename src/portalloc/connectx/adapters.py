# requests / urllib3 integration: HTTP(S) connections opened with connectx() from a SourcePool.
#
# Theory: urllib3 opens every connection in HTTPConnection._new_conn() with
# urllib3.util.connection.create_connection(..., source_address=...), which does the plain bind(ip, 0)
# that limits a source address to one port range in total. We replace only that method: resolve the
# host (getaddrinfo, in the pool's family), call connectx(), apply the connection's socket_options (the
# TCP_NODELAY urllib3 sets by default), and map errors the way _new_conn does (timeout ->
# ConnectTimeoutError, other OSError -> NewConnectionError), so retries and error messages of requests
# and urllib3 keep working. TLS is untouched: HTTPSConnection wraps the socket _new_conn returns.
# Rules: needs the optional extra "http" (requests, urllib3 >= 2); nothing else in portalloc imports it.
"""SourcePoolAdapter (requests) and SourcePoolManager (urllib3): HTTP over connectx."""

from __future__ import annotations

import socket
from typing import Any

import requests.adapters
import urllib3
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import ConnectTimeoutError, NameResolutionError, NewConnectionError

from portalloc.connectx import connectx
from portalloc.connectx.pool import SourcePool


class _ConnectxMixin:
    """The _new_conn of urllib3's HTTPConnection, with connectx() instead of create_connection()."""

    source_pool: SourcePool

    def _new_conn(self) -> socket.socket:
        conn: Any = self
        family = socket.AF_INET if self.source_pool.version == 4 else socket.AF_INET6
        try:
            infos = socket.getaddrinfo(conn._dns_host, conn.port, family, socket.SOCK_STREAM)
        except socket.gaierror as exc:
            raise NameResolutionError(conn.host, conn, exc) from exc
        timeout = conn.timeout if isinstance(conn.timeout, (int, float)) else None
        try:
            sock: socket.socket = connectx(infos[0][4], self.source_pool, "tcp", timeout)
        except TimeoutError as exc:
            raise ConnectTimeoutError(
                conn, f"Connection to {conn.host} timed out. (connect timeout={timeout})") from exc
        except OSError as exc:
            raise NewConnectionError(conn, f"Failed to establish a new connection: {exc}") from exc
        for option in conn.socket_options or ():
            sock.setsockopt(*option)
        return sock


def pool_classes(source_pool: SourcePool) -> dict[str, type[HTTPConnectionPool]]:
    """urllib3 connection-pool classes (by scheme) whose connections use connectx with ``source_pool``."""
    http_conn = type("ConnectxHTTPConnection", (_ConnectxMixin, HTTPConnection), {"source_pool": source_pool})
    https_conn = type("ConnectxHTTPSConnection", (_ConnectxMixin, HTTPSConnection), {"source_pool": source_pool})
    return {
        "http": type("ConnectxHTTPConnectionPool", (HTTPConnectionPool,), {"ConnectionCls": http_conn}),
        "https": type("ConnectxHTTPSConnectionPool", (HTTPSConnectionPool,), {"ConnectionCls": https_conn}),
    }


class SourcePoolManager(urllib3.PoolManager):
    """A urllib3 PoolManager whose connections come from :func:`connectx` over ``source_pool``."""

    def __init__(self, source_pool: SourcePool, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.source_pool = source_pool
        self.pool_classes_by_scheme = pool_classes(source_pool)


class SourcePoolAdapter(requests.adapters.HTTPAdapter):
    """A requests transport adapter: ``session.mount("http://", SourcePoolAdapter(pool))``.

    Every new connection of the session is opened with :func:`connectx` from ``source_pool``, so a
    session can hold one port range of connections per (source, destination) instead of per source.
    Other keyword arguments go to ``HTTPAdapter`` (pool_connections, pool_maxsize, max_retries, ...).
    """

    def __init__(self, source_pool: SourcePool, **kwargs: Any) -> None:
        self.source_pool = source_pool
        super().__init__(**kwargs)

    def init_poolmanager(self, connections: int, maxsize: int, block: bool = False, **pool_kwargs: Any) -> None:
        """requests' pool manager, with the connectx pool classes."""
        super().init_poolmanager(connections, maxsize, block, **pool_kwargs)
        self.poolmanager.pool_classes_by_scheme = pool_classes(self.source_pool)
