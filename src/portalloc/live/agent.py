# The live agent: a child process that owns a private network namespace and real sockets in it.
#
# Theory of operation: LiveHost starts `python -E -S -c ...main()` (only the stdlib, portalloc.constants and
# portalloc.live.{agent,protocol,diag} are imported) with pipes on stdin/stdout. The agent's first
# act is unshare(CLONE_NEWNET); the namespace is unnamed, so it dies with this process (nothing to clean
# up: no `ip netns`, no mount). It then answers JSON lines (see protocol.py): "setup" (lo up, extra
# devices, addresses), sysctl get/set (writes /proc/sys/net/..., which resolves to this task's namespace),
# socket operations on integer handles, a sock_diag snapshot, a benchmark loop, and "exit". EOF on stdin
# also means exit, so a dead parent never leaves an agent behind.
# Rules: (1) nothing touches the host namespace: before any sysctl write or device change the agent checks
# that /proc/self/ns/net is the namespace it created, not the one it started in; only net.* sysctls are
# writable. (2) Every wait is bounded: blocking-mode connect() is emulated with a poll capped at
# `wait_cap` seconds; accept()/recv() never wait (like the model, which cannot block); subprocesses have
# timeouts. (3) Socket calls for a socket owned by uid N run with the effective uid N (os.seteuid), and
# the agent returns to euid 0 before answering. (4) Errors are the real exceptions of the real calls,
# forwarded unchanged (errno and text), so the parent re-raises exactly what the kernel said.
"""Agent process for portalloc.live: real sockets in a private network namespace, driven over a pipe."""

from __future__ import annotations

import ctypes
import errno
import fcntl
import ipaddress
import os
import re
import resource
import select
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, BinaryIO

from portalloc.constants import (
    DEFAULT_ADDRESSES,
    IP_BIND_ADDRESS_NO_PORT,
    IP_FREEBIND,
    IP_LOCAL_PORT_RANGE,
    IPV6_V6ONLY,
    SO_BINDTODEVICE,
    SO_REUSEPORT,
)
from portalloc.live import diag, protocol

CLONE_NEWNET = 0x40000000
_SIOCGIFFLAGS = 0x8913
_SIOCSIFFLAGS = 0x8914
_IFF_UP = 0x1
_IFREQ = struct.Struct("16sh22x")
_SUBPROCESS_TIMEOUT = 10.0
_NAME_RE = re.compile(r"^[A-Za-z0-9_.:-]{1,15}$")
_SYSCTL_PART_RE = re.compile(r"^[A-Za-z0-9_:-]+$")
#: Device that receives non-loopback addresses (created on demand, like a dummy interface).
ADDRESS_DEVICE = "portalloc0"
#: Link types tried, in order, for an extra device (this 6.18 build has no `dummy` driver; ifb is alike).
DEVICE_KINDS = ("dummy", "ifb", "bridge")

#: Sharing-relevant options reported in SocketInfo.options: (name, level, optname, buflen or None).
OPTION_TABLE: tuple[tuple[str, int, int, int | None], ...] = (
    ("SO_REUSEADDR", socket.SOL_SOCKET, socket.SO_REUSEADDR, None),
    ("SO_REUSEPORT", socket.SOL_SOCKET, SO_REUSEPORT, None),
    ("SO_BINDTODEVICE", socket.SOL_SOCKET, SO_BINDTODEVICE, 16),
    ("IPV6_V6ONLY", socket.IPPROTO_IPV6, IPV6_V6ONLY, None),
    ("IP_BIND_ADDRESS_NO_PORT", socket.SOL_IP, IP_BIND_ADDRESS_NO_PORT, None),
    ("IP_LOCAL_PORT_RANGE", socket.SOL_IP, IP_LOCAL_PORT_RANGE, None),
    ("IP_FREEBIND", socket.SOL_IP, IP_FREEBIND, None),
)


class SetupError(RuntimeError):
    """The namespace could not be configured as asked (device or address)."""


@dataclass
class _Rec:
    sock: socket.socket
    uid: int
    mode: float | None      # what the caller asked: None blocking, 0.0 non-blocking, t > 0 timeout


def _netns_inode() -> int:
    return os.stat("/proc/self/ns/net").st_ino


def _unshare_net() -> None:
    unshare = getattr(os, "unshare", None)
    if unshare is not None:          # Python 3.12+
        unshare(CLONE_NEWNET)
        return
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(ctypes.c_int(CLONE_NEWNET)) != 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code))


class Agent:
    """Serves one LiveHost: executes requests in the private namespace created by :meth:`start`."""

    def __init__(self, out: BinaryIO) -> None:
        self.out = out
        self.host_ns = _netns_inode()
        self.own_ns: int | None = None
        self.socks: dict[int, _Rec] = {}
        self.next_id = 1
        self.wait_cap = 10.0

    # -- namespace ---------------------------------------------------------------------------------
    def start(self) -> dict[str, Any]:
        """unshare(CLONE_NEWNET) and bring lo up; the hello message for the parent."""
        _unshare_net()
        ns = _netns_inode()
        if ns == self.host_ns:
            raise OSError(errno.EPERM, "unshare(CLONE_NEWNET) returned but the namespace did not change")
        self.own_ns = ns
        self._set_up("lo")
        return {"pid": os.getpid(), "kernel": os.uname().release, "netns": ns}

    def _check_private(self) -> None:
        ns = _netns_inode()
        if self.own_ns is None or ns != self.own_ns or ns == self.host_ns:
            raise RuntimeError("refusing to act: not inside the agent's private network namespace")

    def _set_up(self, name: str) -> None:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            res = fcntl.ioctl(s.fileno(), _SIOCGIFFLAGS, _IFREQ.pack(name.encode(), 0))
            flags = _IFREQ.unpack(res)[1]
            fcntl.ioctl(s.fileno(), _SIOCSIFFLAGS, _IFREQ.pack(name.encode(), flags | _IFF_UP))

    def _ip(self, *args: str) -> subprocess.CompletedProcess[str]:
        self._check_private()
        ip = shutil.which("ip") or next((p for p in ("/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip")
                                          if os.path.exists(p)), None)
        if ip is None:
            raise SetupError("the `ip` command (iproute2) is needed to create devices and add addresses")
        return subprocess.run([ip, *args], capture_output=True, text=True, timeout=_SUBPROCESS_TIMEOUT,
                              stdin=subprocess.DEVNULL, check=False)

    def _add_device(self, name: str) -> None:
        if not _NAME_RE.match(name) or name in (".", ".."):
            raise ValueError(f"invalid device name {name!r}")
        try:
            socket.if_nametoindex(name)
            exists = True
        except OSError:
            exists = False
        if not exists:
            errors = []
            for kind in DEVICE_KINDS:
                r = self._ip("link", "add", name, "type", kind)
                if r.returncode == 0:
                    break
                errors.append(f"{kind}: {r.stderr.strip()}")
            else:
                raise SetupError(f"cannot create device {name!r}: " + "; ".join(errors))
        self._set_up(name)

    def op_setup(self, devices: list[str], addresses: list[str], wait_cap: float) -> dict[str, Any]:
        """Create extra devices (up) and make the namespace own exactly ``addresses``."""
        self._check_private()
        self.wait_cap = float(wait_cap)
        for name in devices:
            if name != "lo":
                self._add_device(name)
        wanted = [ipaddress.ip_interface(a) for a in addresses]
        defaults = [ipaddress.ip_interface(a) for a in DEFAULT_ADDRESSES]
        for d in defaults:
            if d not in wanted:
                r = self._ip("addr", "del", str(d), "dev", "lo")
                if r.returncode != 0:
                    raise SetupError(f"cannot remove {d} from lo: {r.stderr.strip()}")
        covered = [d for d in defaults if d in wanted]
        for a in wanted:
            if a in defaults or any(a.version == d.version and a.ip in d.network for d in covered):
                continue
            dev = "lo" if a.ip.is_loopback else ADDRESS_DEVICE
            if dev != "lo":
                self._add_device(dev)
            extra = ["nodad"] if a.version == 6 else []
            r = self._ip("addr", "add", str(a), "dev", dev, *extra)
            if r.returncode != 0:
                raise SetupError(f"cannot add address {a} to {dev}: {r.stderr.strip()}")
        return {"devices": sorted(socket.if_nameindex(), key=lambda t: t[0])}

    # -- sysctls ------------------------------------------------------------------------------------
    @staticmethod
    def _sysctl_path(name: str) -> str:
        parts = name.split(".")
        if not all(_SYSCTL_PART_RE.match(p) for p in parts):
            raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), name)
        return "/proc/sys/" + "/".join(parts)

    def op_sysctl_get(self, name: str) -> str:
        """The text /proc/sys prints for ``name`` (dotted form)."""
        with open(self._sysctl_path(name), encoding="utf-8") as f:
            return f.read()

    def op_sysctl_set(self, name: str, text: str) -> None:
        """Write ``text`` to the namespace's sysctl ``name`` (net.* only)."""
        path = self._sysctl_path(name)
        if not name.startswith("net."):
            raise PermissionError(errno.EPERM, "portalloc.live writes only per-namespace net.* sysctls", name)
        self._check_private()
        fd = os.open(path, os.O_WRONLY)
        try:
            os.write(fd, text.encode("utf-8"))
        finally:
            os.close(fd)

    # -- sockets ------------------------------------------------------------------------------------
    def _as_uid(self, uid: int, fn: Callable[..., Any], *args: Any) -> Any:
        if uid == 0:
            return fn(*args)
        os.seteuid(uid)
        try:
            return fn(*args)
        finally:
            os.seteuid(0)

    def _rec(self, sid: int) -> _Rec:
        rec = self.socks.get(sid)
        if rec is None:
            raise OSError(errno.EBADF, os.strerror(errno.EBADF))
        return rec

    def _register(self, sock: socket.socket, uid: int, mode: float | None) -> list[Any]:
        sid = self.next_id
        self.next_id += 1
        self.socks[sid] = _Rec(sock, uid, mode)
        return [sid, int(sock.family), int(sock.type), sock.proto, mode]

    def op_socket(self, family: Any, type_: Any, proto: Any, uid: int) -> list[Any]:
        """Create a socket as ``uid``; [handle, family, type, proto, timeout mode]."""
        sock = self._as_uid(uid, socket.socket, family, type_, proto)
        return self._register(sock, uid, sock.gettimeout())

    def _blocking_connect(self, sock: socket.socket, addr: Any) -> int:
        # A blocking connect() is the non-blocking one plus inet_wait_for_connect(); after the wait the
        # kernel runs the same tail again when connect() is repeated (SS_CONNECTED, or sock_error() and
        # disconnect), so repeating connect_ex() after poll() reproduces the blocking call exactly.
        deadline = time.monotonic() + self.wait_cap
        sock.setblocking(False)
        try:
            err = sock.connect_ex(addr)
            while err in (errno.EINPROGRESS, errno.EALREADY):
                left = deadline - time.monotonic()
                if left <= 0:
                    return errno.ETIMEDOUT
                poller = select.poll()
                poller.register(sock.fileno(), select.POLLOUT)
                poller.poll(max(1, int(left * 1000)))
                err = sock.connect_ex(addr)
            return err
        finally:
            sock.setblocking(True)

    def _connect(self, rec: _Rec, addr: Any) -> int | None:
        if rec.mode is None:
            return self._as_uid(rec.uid, self._blocking_connect, rec.sock, addr)
        return self._as_uid(rec.uid, rec.sock.connect_ex, addr)

    def op_connect(self, sid: int, *args: Any) -> None:
        """connect(): blocking mode waits at most ``wait_cap`` seconds (then ETIMEDOUT)."""
        rec = self._rec(sid)
        if rec.mode is not None and rec.mode > 0:
            self._as_uid(rec.uid, rec.sock.connect, *args)
            return
        if len(args) != 1:
            rec.sock.connect(*args)      # let the socket module raise its own TypeError
        err = self._connect(rec, args[0])
        if err:
            raise OSError(err, os.strerror(err))

    def op_connect_ex(self, sid: int, *args: Any) -> int:
        """connect_ex(): the errno (0 on success)."""
        rec = self._rec(sid)
        if (rec.mode is not None and rec.mode > 0) or len(args) != 1:
            return self._as_uid(rec.uid, rec.sock.connect_ex, *args)
        return self._connect(rec, args[0]) or 0

    def op_accept(self, sid: int) -> list[Any]:
        """Non-blocking accept: [handle, family, type, proto, mode, peer]; BlockingIOError if none pending.
        A socket with a timeout t > 0 is CPython's own accept(): it waits (t capped at ``wait_cap``, set by
        op_settimeout) and raises TimeoutError, as a program's socket would."""
        rec = self._rec(sid)
        if rec.mode is not None and rec.mode > 0:
            conn, peer = self._as_uid(rec.uid, rec.sock.accept)
            conn.settimeout(None)
            return [*self._register(conn, rec.uid, None), peer]
        old = rec.sock.gettimeout()
        rec.sock.setblocking(False)
        try:
            conn, peer = self._as_uid(rec.uid, rec.sock.accept)
        finally:
            if rec.sock.fileno() >= 0:
                rec.sock.settimeout(old)
        conn.settimeout(None)
        return [*self._register(conn, rec.uid, None), peer]

    def op_recv(self, sid: int, method: str, bufsize: Any, flags: Any = 0) -> Any:
        """recv()/recvfrom() that never waits (MSG_DONTWAIT): BlockingIOError when nothing is queued."""
        rec = self._rec(sid)
        fn = rec.sock.recv if method == "recv" else rec.sock.recvfrom
        if not isinstance(flags, int) or isinstance(flags, bool):
            return fn(bufsize, flags)
        return self._as_uid(rec.uid, fn, bufsize, flags | socket.MSG_DONTWAIT)

    def op_settimeout(self, sid: int, value: Any) -> float | None:
        """settimeout() on the real socket (its O_NONBLOCK flag included), recorded as the mode; a real
        timeout is capped at ``wait_cap``. Returns the mode (what gettimeout() says)."""
        rec = self._rec(sid)
        rec.sock.settimeout(value)               # validation and errors exactly as the socket module
        return self._record_mode(rec)

    def op_setblocking(self, sid: int, flag: Any) -> float | None:
        """setblocking() on the real socket (its own argument check: None or a float is a TypeError)."""
        rec = self._rec(sid)
        rec.sock.setblocking(flag)
        return self._record_mode(rec)

    def _record_mode(self, rec: _Rec) -> float | None:
        mode = rec.sock.gettimeout()
        rec.mode = mode
        if mode is not None and mode > 0:
            rec.sock.settimeout(min(mode, self.wait_cap))
        return mode

    def op_close(self, sid: int) -> None:
        """close(); the handle keeps answering EBADF like a closed Python socket."""
        rec = self.socks.get(sid)
        if rec is not None:
            rec.sock.close()

    _PLAIN_METHODS = frozenset({
        "bind", "listen", "getsockname", "getpeername", "setsockopt", "getsockopt", "shutdown",
        "send", "sendto", "sendall",
    })

    def op_call(self, sid: int, method: str, *args: Any) -> Any:
        """A plain socket method, run as the socket's uid."""
        if method not in self._PLAIN_METHODS:
            raise AttributeError(method)
        rec = self._rec(sid)
        return self._as_uid(rec.uid, getattr(rec.sock, method), *args)

    # -- snapshot -----------------------------------------------------------------------------------
    @staticmethod
    def _options(sock: socket.socket) -> list[str]:
        names = []
        for name, level, opt, buflen in OPTION_TABLE:
            if name == "IPV6_V6ONLY" and sock.family != socket.AF_INET6:
                continue
            try:
                value = sock.getsockopt(level, opt) if buflen is None else sock.getsockopt(level, opt, buflen)
            except OSError:
                continue
            if (value.rstrip(b"\0") if isinstance(value, bytes) else value):
                names.append(name)
        return names

    def op_sockets(self, source: str = "auto") -> list[Any]:
        """The namespace's socket table: [proto, family, state, local, remote, uid, options, timer].

        ``source`` is ``"auto"`` (sock_diag, else /proc/net), ``"sock_diag"`` or ``"proc"``.
        """
        if source == "proc":
            rows = diag.snapshot_proc()
        elif source == "sock_diag":
            rows = diag.snapshot_diag()
        else:
            rows, _source = diag.snapshot()
        by_inode: dict[int, socket.socket] = {}
        for rec in self.socks.values():
            if rec.sock.fileno() >= 0:
                by_inode[os.fstat(rec.sock.fileno()).st_ino] = rec.sock
        out = []
        for r in rows:
            sock = by_inode.get(r.inode) if r.inode else None
            options = self._options(sock) if sock is not None else []
            out.append([r.proto, r.family, r.state, r.local, r.remote, r.uid, options, r.timer])
        return out

    def op_snapshot_source(self) -> str:
        """Which socket-table source works here: ``"sock_diag"`` or ``"proc"``."""
        return diag.snapshot()[1]

    # -- benchmark ----------------------------------------------------------------------------------
    def op_bench(self, count: int, port: int, max_seconds: float) -> dict[str, Any]:
        """connect()+accept()+close() loop on loopback, timed inside the agent."""
        self._check_private()
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", port))
        listener.listen(4096)
        done = 0
        t0 = time.perf_counter()
        deadline = t0 + max_seconds
        try:
            while done < count and time.perf_counter() < deadline:
                c = socket.socket()
                try:
                    c.connect(("127.0.0.1", port))
                    s, _ = listener.accept()
                    c.close()
                    s.close()
                finally:
                    c.close()
                done += 1
            elapsed = time.perf_counter() - t0
        finally:
            listener.close()
        return {"count": done, "seconds": elapsed, "ops_per_sec": done / elapsed if elapsed > 0 else 0.0}

    def op_bench_fill(self, port: int, fails: int, parts: int, max_seconds: float) -> dict[str, Any]:
        """Fill the namespace's ephemeral range toward one listener, then make ``fails`` connects that must
        fail; each connect() timed here. The listener (127.0.0.1:``port``, backlog 65535) never accepts, so
        the range costs one descriptor per port: the range must fit under RLIMIT_NOFILE's hard limit.
        Returns the seconds spent in connect() per ``parts`` equal slices of the fill, and for the failures."""
        # The same loop as portalloc.workload's fill_until_failure + count_failures, written again on purpose:
        # the agent imports only the standard library and portalloc.constants (live/host.py _AGENT_CODE), and
        # timing it here, next to the kernel, keeps the agent's pipe out of the figures.
        self._check_private()
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            lo, hi = (int(x) for x in f.read().split())
        size = hi - lo + 1
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        need = size + 64
        if need > hard:
            raise OSError(errno.EMFILE, f"filling {size} ports needs {need} descriptors; the hard limit is "
                                        f"{hard}: give a smaller ip_local_port_range")
        resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, need), hard))
        listener = socket.socket()
        keep: list[socket.socket] = []
        slices = [0.0] * parts
        connected = failed = 0
        fail_seconds = 0.0
        first_error = 0
        pc = time.perf_counter
        deadline = pc() + max_seconds
        try:
            listener.bind(("127.0.0.1", port))
            listener.listen(65535)
            while connected < size and pc() < deadline:
                c = socket.socket()
                t = pc()
                err = c.connect_ex(("127.0.0.1", port))
                t = pc() - t
                if err:
                    c.close()
                    first_error = err
                    break
                keep.append(c)
                slices[min(parts - 1, connected * parts // size)] += t
                connected += 1
            while failed < fails and pc() < deadline:
                with socket.socket() as c:
                    t = pc()
                    err = c.connect_ex(("127.0.0.1", port))
                    fail_seconds += pc() - t
                if err != errno.EADDRNOTAVAIL:
                    break
                failed += 1
        finally:
            for c in keep:
                c.close()
            listener.close()
            resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
        return {"range": size, "connected": connected, "first_error": first_error, "slice_seconds": slices,
                "failed": failed, "fail_seconds": fail_seconds}

    # -- loop ---------------------------------------------------------------------------------------
    def send(self, obj: dict[str, Any]) -> None:
        """Write one answer line."""
        self.out.write(protocol.dumps(obj))
        self.out.flush()

    def serve(self, inp: BinaryIO) -> None:
        """Answer requests until "exit" or EOF."""
        while True:
            line = inp.readline()
            if not line:
                return
            try:
                req = protocol.loads(line)
                op = str(req["op"])
                args = protocol.decode(req.get("a", []))
                handler = getattr(self, "op_" + op, None) if op != "exit" else None
                if op == "exit":
                    self.send({"ok": None})
                    return
                if handler is None:
                    raise RuntimeError(f"unknown agent op {op!r}")
                result = handler(*args)
                answer: dict[str, Any] = {"ok": protocol.encode(result)}
            except Exception as exc:  # noqa: BLE001 - every failure is forwarded to the parent
                if os.geteuid() != 0:
                    os.seteuid(0)
                answer = {"error": protocol.encode_exception(exc, traceback.format_exc())}
            self.send(answer)

    def close_all(self) -> None:
        """Close every socket (the namespace goes with the process anyway)."""
        for rec in self.socks.values():
            try:
                rec.sock.close()
            except OSError:
                pass
        self.socks.clear()


def main() -> None:
    """Entry point of the agent process."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)       # the parent decides when the agent ends
    out = os.fdopen(os.dup(1), "wb", buffering=0)
    os.dup2(2, 1)                                      # stray prints must not corrupt the protocol
    sys.stdout = sys.stderr
    agent = Agent(out)
    try:
        hello = agent.start()
    except Exception as exc:  # noqa: BLE001
        agent.send({"fatal": {"reason": f"{type(exc).__name__}: {exc}"}})
        return
    agent.send({"hello": hello})
    try:
        agent.serve(sys.stdin.buffer)
    except BrokenPipeError:
        pass
    finally:
        agent.close_all()


if __name__ == "__main__":
    main()
