# Running a trace on a host (the model Host or a LiveHost) and recording each op's outcome.
#
# Rules: (1) one Outcome per op, in order, whatever happens: "ok", or the errno name of the OSError the
# call raised ("EADDRINUSE"; getaddrinfo codes as "EAI_ADDRFAMILY"), or the exception type for a refused
# argument ("TypeError"). An unexpected exception from the backend (a model bug) is recorded as
# "crash:<Type>" with the message in `detail`, so a differential run reports it as a divergence instead
# of dying. Only a dead live agent (LiveAgentError) propagates: the backend itself failed, not the op.
# (2) The runner never calls the backend for an op on a socket that does not exist (closed by an earlier
# `close`, or never created because its `accept`/`socket` op failed): that op's outcome is "EBADF", as
# a closed socket object answers. Closing twice is "ok" (socket.close() is idempotent).
# (3) Ports are recorded for display only (after bind/connect/accept, from getsockname()); `same_as`
# resolves to the last local port the named socket held (its getsockname() after its latest op, kept
# after close so a trace can bind over a TIME_WAIT). A socket that never had a port gives 0.
"""Replay a Trace on a host and record each op's outcome."""

from __future__ import annotations

import errno
import socket
import struct
import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from portalloc.constants import (
    IP_BIND_ADDRESS_NO_PORT,
    IP_FREEBIND,
    IP_LOCAL_PORT_RANGE,
    IPV6_V6ONLY,
    SO_BINDTODEVICE,
    SO_REUSEPORT,
    pack_local_port_range,
)
from portalloc.live.host import LiveAgentError
from portalloc.model.api import HostAPI, SocketAPI
from portalloc.trace.format import Op, Trace, TraceError

OK = "ok"
SOL_IP = 0
_FAMILY = {"inet": socket.AF_INET, "inet6": socket.AF_INET6}
_TYPE = {"stream": socket.SOCK_STREAM, "dgram": socket.SOCK_DGRAM}
_OPTION = {
    "SO_REUSEADDR": (socket.SOL_SOCKET, socket.SO_REUSEADDR),
    "SO_REUSEPORT": (socket.SOL_SOCKET, SO_REUSEPORT),
    "SO_BINDTODEVICE": (socket.SOL_SOCKET, SO_BINDTODEVICE),
    "IP_BIND_ADDRESS_NO_PORT": (SOL_IP, IP_BIND_ADDRESS_NO_PORT),
    "IP_LOCAL_PORT_RANGE": (SOL_IP, IP_LOCAL_PORT_RANGE),
    "IP_FREEBIND": (SOL_IP, IP_FREEBIND),
    "IPV6_V6ONLY": (socket.IPPROTO_IPV6, IPV6_V6ONLY),
    "SO_LINGER": (socket.SOL_SOCKET, socket.SO_LINGER),
}
_EAI = {getattr(socket, n): n for n in dir(socket) if n.startswith("EAI_") and isinstance(getattr(socket, n), int)}
#: Linux's own names where Python's errno.errorcode picks an alias (95 is ENOTSUP there).
_ERRNO_NAMES = {**errno.errorcode, errno.EOPNOTSUPP: "EOPNOTSUPP", errno.EDEADLK: "EDEADLK",
                errno.EAGAIN: "EAGAIN"}
#: Exceptions that are an op's outcome (the call refused its arguments or the kernel said no).
_OUTCOME_ERRORS = (OSError, TypeError, ValueError, OverflowError)
#: Default bound on a live blocking connect() (seconds); loopback answers at once or never.
LIVE_WAIT_CAP = 2.0


@dataclass(frozen=True)
class Outcome:
    """What one op did: ``result`` is ``"ok"`` or an errno name; ``port`` is for display only.

    ``index`` is the op's position in ``trace.ops`` (0-based); ``detail`` is the exception text, if any.
    """

    index: int
    op: Op
    result: str
    port: int | None = None
    detail: str = ""

    @property
    def line(self) -> int:
        """The trace line of the op."""
        return self.op.line

    @property
    def expected(self) -> bool | None:
        """Whether ``result`` is one of the op's ``expect`` outcomes (``None`` when it has none)."""
        e = self.op.expect
        return None if e is None else self.result in e

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict: index, line, op, result, port (when known), detail (when any)."""
        d: dict[str, Any] = {"index": self.index, "line": self.line, "op": self.op.to_json(),
                             "result": self.result}
        if self.port is not None:
            d["port"] = self.port
        if self.detail:
            d["detail"] = self.detail
        return d


def outcome_name(exc: BaseException) -> str:
    """``"EADDRINUSE"`` for an OSError with errno 98; the type name for other refusals."""
    if isinstance(exc, OSError) and exc.errno is not None:
        code = exc.errno
        if code in _ERRNO_NAMES:
            return _ERRNO_NAMES[code]
        if code in _EAI:
            return _EAI[code]
        return f"E{code}"
    return type(exc).__name__


def _sockaddr(addr: str, port: int) -> tuple[str, int]:
    return (addr, port)


class _Run:
    """State of one replay: the named sockets and the last port each held."""

    def __init__(self, host: HostAPI) -> None:
        self.host = host
        self.socks: dict[str, SocketAPI] = {}           # name -> socket object, absent when gone/never made
        self.last_port: dict[str, int] = {}

    def port_of(self, spec: int | Mapping[str, str]) -> int:
        if isinstance(spec, Mapping):
            return self.last_port.get(spec["same_as"], 0)
        return spec

    def refresh(self, name: str) -> int | None:
        s = self.socks.get(name)
        if s is None:
            return None
        try:
            port = int(s.getsockname()[1])
        except _OUTCOME_ERRORS:
            return None
        self.last_port[name] = port
        return port

    def do(self, op: Op) -> tuple[str, int | None]:
        """Perform ``op``; return (result, port for display). Outcome exceptions propagate to the caller."""
        a = op.args
        k = op.kind
        h = self.host
        if k == "sysctl":
            v = a["value"]
            h.sysctl(a["name"], tuple(v) if isinstance(v, list) else v)
            return OK, None
        if k == "sleep":
            h.sleep(float(a["seconds"]))
            return OK, None
        if k == "peer":
            if not hasattr(h, "set_peer"):
                raise OSError(errno.EOPNOTSUPP, "remote peers exist only on the model (Host.set_peer)")
            h.set_peer(a["addr"], a["behaviour"], a.get("port"))
            return OK, None
        if k == "socket":
            self.socks[a["name"]] = h.socket(_FAMILY[a["family"]], _TYPE[a["type"]], uid=a.get("uid", 0))
            self.last_port[a["name"]] = 0
            return OK, None
        name = a["sock"]
        s = self.socks.get(name)
        if k == "close":
            if s is not None:
                self.refresh(name)
                del self.socks[name]
                s.close()
            return OK, None
        if s is None:
            return errno.errorcode[errno.EBADF], None
        try:
            if k == "setsockopt":
                level, optname = _OPTION[a["option"]]
                v = a["value"]
                if a["option"] == "IP_LOCAL_PORT_RANGE":
                    v = pack_local_port_range(*v)
                elif a["option"] == "SO_LINGER":
                    v = struct.pack("ii", *v)
                elif a["option"] == "SO_BINDTODEVICE":
                    v = v.encode()
                s.setsockopt(level, optname, v)
                return OK, None
            if k == "bind":
                s.bind(_sockaddr(a["addr"], self.port_of(a["port"])))
                return OK, self.refresh(name)
            if k == "connect":
                s.connect(_sockaddr(a["addr"], self.port_of(a["port"])))
                return OK, self.refresh(name)
            if k == "listen":
                s.listen(a.get("backlog", 128))
                return OK, self.refresh(name)
            if k == "settimeout":
                s.settimeout(a["value"])
                return OK, None
            if k == "setblocking":
                s.setblocking(a["flag"])
                return OK, None
            if k == "getsockopt":
                pending = int(s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR))
                return (OK if pending == 0 else "so_error:" + _ERRNO_NAMES.get(pending, f"E{pending}")), None
            if k == "accept":
                conn, _peer = s.accept()
                self.socks[a["name"]] = conn
                self.last_port[a["name"]] = 0
                return OK, self.refresh(a["name"])
        finally:
            if name in self.socks:
                self.refresh(name)
        raise AssertionError(f"unhandled op {k!r}")   # pragma: no cover - the schema lists every op


def run_trace(trace: Trace, host: HostAPI, *,
              on_outcome: Callable[[Outcome], None] | None = None) -> list[Outcome]:
    """Replay ``trace`` on ``host`` (a ``portalloc.Host`` or ``LiveHost`` built for it) op by op.

    The ``host`` header is not applied here (see :func:`build_host`). Returns one :class:`Outcome` per
    op. ``on_outcome`` is called after each op. Raises ``LiveAgentError`` only if the live agent dies.
    """
    run = _Run(host)
    out: list[Outcome] = []
    for i, op in enumerate(trace.ops):
        try:
            result, port = run.do(op)
            detail = ""
        except LiveAgentError:
            raise
        except _OUTCOME_ERRORS as exc:
            result, port, detail = outcome_name(exc), None, str(exc)
        except Exception as exc:  # noqa: BLE001 - a backend bug becomes a visible outcome
            tb = traceback.extract_tb(exc.__traceback__)[-1:]
            where = f" at {tb[0].filename.rsplit('/', 1)[-1]}:{tb[0].lineno}" if tb else ""
            result, port, detail = f"crash:{type(exc).__name__}", None, f"{exc!r}{where}"
        o = Outcome(i, op, result, port, detail)
        out.append(o)
        if on_outcome is not None:
            on_outcome(o)
    return out


def build_host(trace: Trace, backend: str = "model", *, kernel: str | None = None, seed: int | None = None,
               wait_cap: float = LIVE_WAIT_CAP) -> HostAPI:
    """A fresh host configured by the trace's ``host`` header (addresses, sysctls, devices, seed).

    ``backend`` is ``"model"`` (``kernel`` overrides the header's; default ``"linux"``, the newest
    profile; ``seed`` overrides the header's) or ``"live"`` (the running kernel: the header's kernel name
    is not used; raises ``LiveUnavailable`` when no namespace can be made). A header the backend rejects
    (unknown kernel, invalid sysctl value) raises :class:`TraceError` naming the header line.
    """
    hdr = trace.header
    kwargs: dict[str, Any] = {}
    if "addresses" in hdr:
        kwargs["addresses"] = tuple(hdr["addresses"])
    if "devices" in hdr:
        kwargs["devices"] = tuple(hdr["devices"])
    if "sysctls" in hdr:
        kwargs["sysctls"] = {k: tuple(v) if isinstance(v, list) else v for k, v in hdr["sysctls"].items()}
    line = trace.header_line
    try:
        if backend == "model":
            from portalloc import Host

            return Host(kernel or hdr.get("kernel", "linux"), seed=seed if seed is not None else hdr.get("seed", 0),
                        **kwargs)
        if backend == "live":
            from portalloc.live import LiveHost

            return LiveHost("linux-live", wait_cap=wait_cap, **kwargs)
    except (OSError, ValueError, KeyError) as exc:
        why = f"{outcome_name(exc)}: {exc}" if isinstance(exc, OSError) else str(exc)
        raise TraceError(trace.source, line, f"the host header cannot be applied on the {backend} backend: "
                         f"{why}") from None
    raise ValueError(f"backend must be 'model' or 'live', not {backend!r}")


def results(outcomes: Sequence[Outcome]) -> list[str]:
    """Just the result strings of ``outcomes``."""
    return [o.result for o in outcomes]
