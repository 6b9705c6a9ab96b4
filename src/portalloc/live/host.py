# LiveHost: the model Host's API, answered by the real kernel inside a private network namespace.
#
# Theory of operation: the constructor starts one agent process (portalloc.live.agent) with
# sys.executable; the agent unshares a new network namespace as its first act and then executes requests
# sent as JSON lines over its stdin, answering on its stdout (protocol.py). A LiveSocket is a handle (an
# integer id) to a real socket held by the agent. Results and exceptions come back with their Python
# types; OSErrors keep the kernel's errno and os.strerror text.
# Rules: (1) every wait is bounded: agent start `start_timeout` (10 s), each request `timeout` (30 s); on
# a timeout, a broken pipe or an interrupt (KeyboardInterrupt) the agent is killed and the host is
# unusable (LiveAgentError). (2) close() is idempotent and leaves nothing behind: it asks the agent to
# exit, waits, kills that one PID if needed, reaps it and closes every pipe/file; a weakref finalizer does
# the same on garbage collection and at interpreter exit. The namespace is unnamed and dies with the
# agent. (3) No kernel emulation here: what the kernel says is the answer. Where real sockets could wait
# forever, the agent bounds the wait (see agent.py) and documents the difference.
"""LiveHost and LiveSocket: real sockets in a private network namespace, same API as the model Host."""

from __future__ import annotations

import builtins
import ipaddress
import os
import select
import socket
import subprocess
import sys
import tempfile
import threading
import time
import weakref
from pathlib import Path
from types import TracebackType
from typing import IO, Any

from portalloc.constants import DEFAULT_ADDRESSES
from portalloc.live import protocol
from portalloc.model.info import SocketInfo
from portalloc.sysctl import SysctlValue, from_text, normalize_name, to_text

#: socket.create_connection's "no timeout given" sentinel.
_DEFAULT_TIMEOUT: Any = socket._GLOBAL_DEFAULT_TIMEOUT  # type: ignore[attr-defined]

#: Kernel names LiveHost accepts (besides "linux-<major>.<minor>" of the running kernel).
KERNEL_NAMES = ("linux-live", "linux", "live")

_UNSET: Any = object()
_SRC_DIR = str(Path(__file__).resolve().parents[2])
# The agent imports only the stdlib, portalloc.constants and portalloc.live.{agent,protocol,diag}: the two
# packages are pre-registered as bare namespace modules so that neither portalloc/__init__.py (the model)
# nor portalloc/live/__init__.py runs in the agent. Start-up stays fast and independent of the model.
_AGENT_CODE = (
    "import sys, types\n"
    "src = sys.argv[1]\n"
    "sys.path.insert(0, src)\n"
    "for name in ('portalloc', 'portalloc.live'):\n"
    "    mod = types.ModuleType(name)\n"
    "    mod.__path__ = [src + '/' + name.replace('.', '/')]\n"
    "    sys.modules[name] = mod\n"
    "from portalloc.live.agent import main\n"
    "main()\n"
)


class LiveUnavailable(RuntimeError):
    """The live backend cannot run here (no permission to create a network namespace, ...)."""


class LiveAgentError(RuntimeError):
    """The agent process died, timed out or broke the protocol; the LiveHost is no longer usable."""


def kernel_release() -> str:
    """``uname -r`` of the running kernel."""
    return os.uname().release


def _check_kernel_name(kernel: str) -> None:
    if not isinstance(kernel, str):
        raise TypeError(f"kernel must be a string, not {type(kernel).__name__}")
    if kernel in KERNEL_NAMES:
        return
    release = kernel_release()
    if kernel.startswith("linux-"):
        wanted = kernel[len("linux-"):]
        if release == wanted or release.startswith(wanted + ".") or release.startswith(wanted + "-"):
            return
    raise ValueError(f"LiveHost runs the real kernel ({release}); kernel={kernel!r} is not it. "
                     f"Use one of {KERNEL_NAMES} or 'linux-<version of the running kernel>', "
                     "or the model Host for other kernels")


def _write_all(pipe: IO[bytes], data: bytes) -> None:
    view = memoryview(data)
    while view:
        n = pipe.write(view)
        view = view[n or 0:]


def _reap(proc: subprocess.Popen[bytes], files: list[IO[Any]], grace: float) -> None:
    """Stop the agent process ``proc`` (by its PID only) and close its pipes; safe to call twice."""
    try:
        if proc.poll() is None and proc.stdin is not None and not proc.stdin.closed:
            try:
                proc.stdin.write(protocol.dumps({"op": "exit"}))
                proc.stdin.flush()
            except (OSError, ValueError):
                pass
        for f in files:
            try:
                f.close()
            except OSError:
                pass
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
    except ProcessLookupError:
        pass


class LiveHost:
    """A host whose sockets are real kernel sockets in a fresh, private network namespace.

    Same API as the model's ``portalloc.Host``: ``socket()``, ``sysctl()``, ``sockets()``, ``sleep()``,
    ``kernel_release``. Use it as a context manager (or call :meth:`close`). Raises
    :class:`LiveUnavailable` when a network namespace cannot be created (not root / no CAP_SYS_ADMIN).

    ``timeout`` bounds every request to the agent; ``wait_cap`` bounds the agent-side wait of a
    blocking-mode ``connect()`` (the real call could wait minutes; the cap turns that into ETIMEDOUT).
    """

    def __init__(self, kernel: str = "linux-live", seed: int | None = None, *,
                 addresses: tuple[str, ...] | list[str] = DEFAULT_ADDRESSES,
                 sysctls: dict[str, Any] | None = None,
                 devices: tuple[str, ...] | list[str] = ("lo",),
                 timeout: float = 30.0, start_timeout: float = 10.0, wait_cap: float = 10.0) -> None:
        _check_kernel_name(kernel)
        self.kernel = kernel
        self.seed = seed
        if isinstance(addresses, str) or isinstance(devices, str):
            raise TypeError("addresses and devices must be sequences of strings")
        self.addresses = tuple(str(ipaddress.ip_interface(a)) for a in addresses)
        self.devices = tuple(str(d) for d in devices)
        self.timeout = float(timeout)
        self._lock = threading.RLock()
        self._buf = b""
        self._closed = False
        self._dead: str | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._stderr = tempfile.TemporaryFile(prefix="portalloc-agent-")
        try:
            self._proc = subprocess.Popen(
                [sys.executable, "-E", "-S", "-c", _AGENT_CODE, _SRC_DIR],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._stderr,
                bufsize=0, close_fds=True)
        except BaseException:
            self._stderr.close()
            raise
        assert self._proc.stdin is not None and self._proc.stdout is not None
        self._finalizer = weakref.finalize(self, _reap, self._proc,
                                           [self._proc.stdin, self._proc.stdout, self._stderr], 5.0)
        try:
            hello = self._read(start_timeout, "start")
            if "fatal" in hello:
                reason = hello["fatal"].get("reason", "unknown error")
                raise LiveUnavailable(f"cannot create a network namespace: {reason}; run as root or with "
                                      "CAP_SYS_ADMIN (e.g. sudo), or use the model Host")
            info = hello.get("hello")
            if not isinstance(info, dict):
                raise LiveAgentError(f"unexpected first message from the agent: {hello!r}")
            self.pid: int = int(info["pid"])
            self._kernel_release = str(info["kernel"])
            self._call("setup", list(self.devices), list(self.addresses), float(wait_cap))
            self._apply_sysctls(dict(sysctls or {}))
        except BaseException:
            self.close()
            raise

    # -- plumbing -----------------------------------------------------------------------------------
    def _stderr_text(self) -> str:
        try:
            self._stderr.seek(0)
            return self._stderr.read()[-4000:].decode("utf-8", "replace").strip()
        except (OSError, ValueError):
            return ""

    def _die(self, why: str) -> LiveAgentError:
        """Kill the agent, remember why, and return the error to raise."""
        proc = self._proc
        if proc is not None:
            if proc.poll() is None:
                proc.kill()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
            code = proc.returncode
            err = self._stderr_text()
            why = f"{why} (agent pid {proc.pid}, exit status {code})"
            if err:
                why += f"\nagent stderr:\n{err}"
        self._dead = why
        return LiveAgentError(why)

    def _read(self, timeout: float, what: str) -> dict[str, Any]:
        proc = self._proc
        assert proc is not None and proc.stdout is not None
        fd = proc.stdout.fileno()
        deadline = time.monotonic() + timeout
        while b"\n" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise self._die(f"the live agent did not answer {what!r} within {timeout:g} s; "
                                "it was stopped")
            poller = select.poll()
            poller.register(fd, select.POLLIN | select.POLLHUP | select.POLLERR)
            if not poller.poll(max(1, int(left * 1000))):
                continue
            chunk = os.read(fd, 1 << 20)
            if not chunk:
                raise self._die(f"the live agent exited during {what!r}")
            self._buf += chunk
        line, self._buf = self._buf.split(b"\n", 1)
        try:
            return protocol.loads(line)
        except ValueError as exc:
            raise self._die(f"the live agent sent a bad line during {what!r}: {exc}") from None

    def _call(self, op: str, *args: Any, timeout: float | None = None) -> Any:
        """Send one request and return its result (or raise the exception the agent forwarded)."""
        with self._lock:
            if self._closed:
                raise ValueError("operation on a closed LiveHost")
            if self._dead is not None:
                raise LiveAgentError(f"the live agent is gone: {self._dead}")
            proc = self._proc
            assert proc is not None and proc.stdin is not None
            try:
                try:
                    _write_all(proc.stdin, protocol.dumps({"op": op, "a": protocol.encode(list(args))}))
                except (BrokenPipeError, ConnectionResetError):
                    raise self._die(f"the live agent is gone (broken pipe during {op!r})") from None
                answer = self._read(self.timeout if timeout is None else timeout, op)
            except LiveAgentError:
                raise
            except BaseException:               # KeyboardInterrupt etc.: the protocol is out of step
                self._die(f"interrupted during {op!r}")
                raise
        if "ok" in answer:
            return protocol.decode(answer["ok"])
        err = answer.get("error")
        if not isinstance(err, dict):
            raise LiveAgentError(f"malformed answer from the live agent: {answer!r}")
        exc = protocol.rebuild_exception(err)
        if exc is None:
            raise LiveAgentError(f"the live agent failed in {op!r}: {err.get('type')}: "
                                 f"{protocol.decode(err.get('args'))}\n{err.get('tb', '')}")
        raise exc

    def _apply_sysctls(self, sysctls: dict[str, Any]) -> None:
        pending = [(normalize_name(k), to_text(v)) for k, v in sysctls.items()]
        # Apply in the given order; a value the kernel rejects only because of another pending one
        # (e.g. ip_local_port_range below ip_unprivileged_port_start) is retried after the others.
        for _round in range(len(pending) + 1):
            failed: list[tuple[str, str, OSError]] = []
            for name, text in pending:
                try:
                    self._call("sysctl_set", name, text)
                except OSError as exc:
                    failed.append((name, text, exc))
            if not failed:
                return
            if len(failed) == len(pending):
                raise failed[0][2]
            pending = [(n, t) for n, t, _ in failed]

    # -- public API ---------------------------------------------------------------------------------
    @property
    def kernel_release(self) -> str:
        """``uname -r`` of the kernel that runs this host's sockets."""
        return self._kernel_release

    @property
    def closed(self) -> bool:
        """True once :meth:`close` has run."""
        return self._closed

    def socket(self, family: int = socket.AF_INET, type: int = socket.SOCK_STREAM, proto: int = 0,
               *, uid: int = 0) -> LiveSocket:
        """A new real socket in the namespace, created (and later used) with effective uid ``uid``."""
        if not isinstance(uid, int) or isinstance(uid, bool) or uid < 0:
            raise ValueError(f"uid must be a non-negative int, not {uid!r}")
        sid, fam, typ, pro, mode = self._call("socket", family, type, proto, uid)
        return LiveSocket(self, sid, fam, typ, pro, uid, mode)

    def create_connection(self, address: tuple[Any, Any],
                          timeout: Any = _DEFAULT_TIMEOUT, source_address: tuple[Any, ...] | None = None, *,
                          all_errors: bool = False, uid: int = 0) -> LiveSocket:
        """``socket.create_connection`` in the namespace, the same steps as the model's Host.create_connection
        (portalloc.model.connection), each a real call on a real socket."""
        from portalloc.model.connection import create_connection

        sock = create_connection(self, address, timeout, source_address, all_errors=all_errors, uid=uid)
        assert isinstance(sock, LiveSocket)
        return sock

    def sysctl(self, name: str, value: SysctlValue = _UNSET) -> SysctlValue | None:
        """Get (one argument) or set (two arguments) a sysctl of this host's namespace.

        Get returns a ``(lo, hi)`` tuple for ``ip_local_port_range``, canonical text for
        ``ip_local_reserved_ports``, an int otherwise (raw text for multi-value sysctls). Set raises the
        kernel's OSError (EINVAL for a rejected value); an unknown name raises FileNotFoundError.
        """
        key = normalize_name(name)
        if value is _UNSET:
            text = self._call("sysctl_get", key)
            try:
                return from_text(key, text)
            except ValueError:
                return str(text).strip()
        self._call("sysctl_set", key, to_text(value))
        return None

    def sockets(self) -> list[SocketInfo]:
        """An ``ss``-like snapshot of the namespace's TCP and UDP sockets (sorted)."""
        rows = self._call("sockets")
        out = [SocketInfo(proto=p, family=f, state=s, local=tuple(lc), remote=tuple(r) if r else None,
                          uid=u, options=frozenset(o), timer=t)
               for p, f, s, lc, r, u, o, t in rows]
        out.sort(key=lambda i: (i.proto, i.family, i.state, i.local, i.remote or ("", -1), i.uid,
                                sorted(i.options)))
        return out

    def sleep(self, seconds: float) -> None:
        """Wait ``seconds`` of real time (kernel timers run meanwhile)."""
        if seconds < 0:
            raise ValueError("sleep length must be non-negative")
        time.sleep(seconds)

    def close(self) -> None:
        """Stop the agent and release everything; the namespace goes with it. Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        if getattr(self, "_finalizer", None) is not None:
            self._finalizer()
        else:
            self._stderr.close()

    def __enter__(self) -> LiveHost:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"agent pid {getattr(self, 'pid', '?')}"
        return f"<LiveHost {self.kernel} ({getattr(self, '_kernel_release', '?')}), {state}>"


class LiveSocket:
    """A real socket inside a LiveHost's namespace; the methods of :class:`socket.socket` that matter.

    ``accept()``, ``recv()`` and ``recvfrom()`` never wait (they raise BlockingIOError when nothing is
    pending, as the model does); a blocking-mode ``connect()`` waits at most the host's ``wait_cap``.
    """

    def __init__(self, host: LiveHost, sid: int, family: int, type: int, proto: int, uid: int,
                 timeout: float | None = None) -> None:
        self.host = host
        self.id = sid
        self.uid = uid
        self._family = family
        self._type = type
        self.proto = proto
        self._timeout: float | None = timeout
        self._closed = False

    @property
    def family(self) -> socket.AddressFamily | int:
        """The address family (as ``socket.socket.family``)."""
        try:
            return socket.AddressFamily(self._family)
        except ValueError:
            return self._family

    @property
    def type(self) -> socket.SocketKind | int:
        """The socket type (as ``socket.socket.type``)."""
        try:
            return socket.SocketKind(self._type)
        except ValueError:
            return self._type

    def _m(self, method: str, *args: Any) -> Any:
        return self.host._call("call", self.id, method, *args)

    def bind(self, address: Any) -> None:
        """bind(address)."""
        self._m("bind", address)

    def listen(self, *backlog: int) -> None:
        """listen([backlog])."""
        self._m("listen", *backlog)

    def connect(self, address: Any) -> None:
        """connect(address); raises the kernel's OSError."""
        self.host._call("connect", self.id, address)

    def connect_ex(self, address: Any) -> int:
        """connect_ex(address): 0 or the errno."""
        return int(self.host._call("connect_ex", self.id, address))

    def accept(self) -> tuple[LiveSocket, Any]:
        """Accept a pending connection without waiting; BlockingIOError (EAGAIN) when there is none."""
        sid, fam, typ, pro, mode, peer = self.host._call("accept", self.id)
        return LiveSocket(self.host, sid, fam, typ, pro, self.uid, mode), peer

    def getsockname(self) -> Any:
        """The local address."""
        return self._m("getsockname")

    def getpeername(self) -> Any:
        """The remote address (OSError ENOTCONN when not connected)."""
        return self._m("getpeername")

    def setsockopt(self, level: int, optname: int, value: Any, *optlen: int) -> None:
        """setsockopt(level, optname, value: int | bytes) or setsockopt(level, optname, None, optlen)."""
        self._m("setsockopt", level, optname, value, *optlen)

    def getsockopt(self, level: int, optname: int, *buflen: int) -> Any:
        """getsockopt(level, optname[, buflen]): an int, or bytes when ``buflen`` is given."""
        return self._m("getsockopt", level, optname, *buflen)

    def setblocking(self, flag: bool) -> None:
        """Blocking (True) or non-blocking (False) mode, set on the real socket (O_NONBLOCK)."""
        self._timeout = self.host._call("setblocking", self.id, flag)

    def getblocking(self) -> bool:
        """True unless the socket is non-blocking (timeout 0.0)."""
        return self._timeout != 0.0

    def settimeout(self, value: float | None) -> None:
        """Timeout mode as in :meth:`socket.socket.settimeout`, set on the real socket: t > 0 makes it
        O_NONBLOCK in the kernel, and CPython's own connect()/accept()/recv() wait (capped at ``wait_cap``)."""
        self._timeout = self.host._call("settimeout", self.id, value)

    def gettimeout(self) -> float | None:
        """The timeout set by :meth:`settimeout` / :meth:`setblocking`."""
        return self._timeout

    def send(self, data: Any, *flags: int) -> int:
        """send(data[, flags]): bytes sent."""
        return int(self._m("send", data, *flags))

    def sendall(self, data: Any, *flags: int) -> None:
        """sendall(data[, flags])."""
        self._m("sendall", data, *flags)

    def sendto(self, data: Any, *args: Any) -> int:
        """sendto(data, address) or sendto(data, flags, address); UDP autobinds on first use."""
        return int(self._m("sendto", data, *args))

    def recv(self, bufsize: int, flags: int = 0) -> bytes:
        """recv() that never waits: BlockingIOError when nothing is queued."""
        return bytes(self.host._call("recv", self.id, "recv", bufsize, flags))

    def recvfrom(self, bufsize: int, flags: int = 0) -> tuple[bytes, Any]:
        """recvfrom() that never waits: BlockingIOError when nothing is queued."""
        data, address = self.host._call("recv", self.id, "recvfrom", bufsize, flags)
        return bytes(data), address

    def shutdown(self, how: int) -> None:
        """shutdown(SHUT_RD | SHUT_WR | SHUT_RDWR)."""
        self._m("shutdown", how)

    def close(self) -> None:
        """Close the socket (idempotent; a no-op once the host is closed)."""
        if self._closed:
            return
        self._closed = True
        if not self.host.closed and self.host._dead is None:
            self.host._call("close", self.id)

    @property
    def closed(self) -> bool:
        """True once :meth:`close` has run."""
        return self._closed

    def __enter__(self) -> LiveSocket:
        return self

    def __exit__(self, exc_type: builtins.type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def __repr__(self) -> str:
        fam = getattr(self.family, "name", self.family)
        typ = getattr(self.type, "name", self.type)
        return f"<LiveSocket #{self.id} {fam} {typ} uid={self.uid}{' closed' if self._closed else ''}>"
