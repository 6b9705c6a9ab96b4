# Reading a real host's socket table and the sysctls that decide its ports (I/O lives here).
#
# Rules:
# - Read-only, always: nothing here writes a sysctl, closes or kills a socket. Root is needed only where
#   the kernel asks for it (entering another namespace).
# - Sources, best first: sock_diag netlink (portalloc.live.diag: one dump per family and protocol with every
#   state bit set, bit 13 TCP_BOUND_INACTIVE included, so bound-only TCP sockets come back as state CLOSE on
#   kernels with 91051f003948, first released in 6.8); /proc/net/{tcp,tcp6,udp,udp6} when sock_diag is
#   missing (bound-only TCP sockets are invisible there); a saved `ss -tanpeH` / `ss -uanpeH` dump (`--from`).
#   The snapshot says which source it came from and what that source cannot see.
# - Another namespace (`netns`: a name under /run/netns, or a path such as /proc/PID/ns/net) is read through a
#   forked child that setns()-es into it, opens a NETLINK_SOCK_DIAG socket there (a socket keeps the namespace
#   it was made in), reads the sysctls and the interface addresses (live/ifaddr.py, rtnetlink), and passes the
#   socket back over an AF_UNIX socketpair (SCM_RIGHTS);
#   the parent dumps through it and parses once (live/diag.py parse_chunks). Earlier versions dumped in the
#   child and sent the datagrams back through a pipe: at 100k sockets that copy (10 MB, pickled) cost about
#   0.1 s, and parsing in the child and pickling row objects back cost twice as much again. /proc/net is
#   read by the child (its files follow the opening task's namespace). The caller's own namespace never
#   changes (/proc/net and /proc/sys/net follow the reading task's namespace).
# - Speed: pyroute2's DiagSocket.get_sock_stats builds a tree of nla objects per message: measured on 6.18 with
#   20,000 TIME_WAITs, 2.3 s against 0.09-0.15 s for diag_chunks + parse_chunks (the same rows). So sock_diag
#   is parsed here with struct, and reading needs nothing outside the standard library (setns(2) through
#   ctypes on Python 3.11, os.setns from 3.12).
# - Every wait is bounded: the child is given READ_TIMEOUT seconds, then killed.
"""read_host: a HostSnapshot of a live namespace or of a saved ``ss`` dump."""

from __future__ import annotations

import os
import pickle
import re
import select
import signal
import socket
import time
from typing import Any

from portalloc.live import diag, ifaddr
from portalloc.observe.snapshot import HostSnapshot, SockRow, no_gc

#: The sysctls that decide which ports a connect() can take, read from /proc/sys of the namespace.
SYSCTLS = (
    "net.ipv4.ip_local_port_range",
    "net.ipv4.ip_local_reserved_ports",
    "net.ipv4.ip_unprivileged_port_start",
    "net.ipv4.ip_autobind_reuse",
    "net.ipv4.tcp_tw_reuse",
    "net.ipv4.tcp_tw_reuse_delay",
    "net.ipv4.tcp_timestamps",
    "net.ipv4.tcp_fin_timeout",
    "net.ipv4.tcp_max_tw_buckets",
)
#: Bound on reading another namespace (the child is killed after it).
READ_TIMEOUT = 60.0
CLONE_NEWNET = 0x40000000


class ReadError(RuntimeError):
    """The host could not be read as asked (unknown namespace, unreadable file, malformed dump)."""


def read_sysctls() -> dict[str, str]:
    """The sysctls of SYSCTLS that this namespace has, as the text /proc/sys holds (whitespace normalised)."""
    out: dict[str, str] = {}
    for name in SYSCTLS:
        path = "/proc/sys/" + name.replace(".", "/")
        try:
            with open(path, encoding="ascii") as f:
                out[name] = " ".join(f.read().split())
        except OSError:
            continue
    return out


def _rows(raw: list[diag.RawRow]) -> list[SockRow]:
    return [SockRow(r.proto, r.family, r.state, r.local, r.remote, r.uid, r.timer) for r in raw]


#: The four sock_diag dumps: (address family, protocol, proto name, family as 4/6).
DUMPS = ((socket.AF_INET, socket.IPPROTO_TCP, "tcp", 4), (socket.AF_INET6, socket.IPPROTO_TCP, "tcp", 6),
         (socket.AF_INET, socket.IPPROTO_UDP, "udp", 4), (socket.AF_INET6, socket.IPPROTO_UDP, "udp", 6))


def _dump_raw(source: str) -> tuple[list[list[bytes]] | list[diag.RawRow], str]:
    """The table as sock_diag sent it (one list of datagrams per dump of DUMPS), or /proc/net's rows."""
    if source != "proc":
        try:
            return [diag.diag_chunks(family, protocol) for family, protocol, _, _ in DUMPS], "sock_diag"
        except OSError:
            pass
    return diag.snapshot_proc(), "proc"


def _parse_raw(raw: list[list[bytes]] | list[diag.RawRow], used: str) -> list[SockRow]:
    if used != "sock_diag":
        return _rows(raw)  # type: ignore[arg-type]
    rows: list[SockRow] = []
    for (_, _, proto, fam), chunks in zip(DUMPS, raw, strict=True):
        rows.extend(diag.parse_chunks(chunks, proto, fam, SockRow, with_inode=False))  # type: ignore[arg-type]
    return rows


def read_here(source: str = "auto") -> HostSnapshot:
    """Read the namespace this process is in: sock_diag (``source="auto"`` or ``"sock_diag"``), falling
    back to /proc/net; ``"proc"`` forces /proc/net."""
    t0 = time.perf_counter()
    raw, used = _dump_raw(source)
    with no_gc():                # one burst of allocations, nothing to collect
        rows = _parse_raw(raw, used)
    return HostSnapshot(rows=rows, sysctls=read_sysctls(), source=used, kernel_release=os.uname().release,
                        read_seconds=time.perf_counter() - t0, interfaces=_interfaces())


def _interfaces() -> list[str] | None:
    """This namespace's interface addresses (rtnetlink), or None when rtnetlink does not answer."""
    try:
        return ifaddr.interface_addresses()
    except OSError:
        return None


def _netns_path(netns: str) -> str:
    if netns.startswith("/"):
        path = netns
    elif re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", netns):
        path = f"/run/netns/{netns}"
    else:
        raise ReadError(f"bad namespace name {netns!r}: give a name from `ip netns list` or a path like "
                        "/proc/PID/ns/net")
    if not os.path.exists(path):
        raise ReadError(f"no network namespace at {path}: check `ip netns list` (or the PID)")
    return path


def _setns(fd: int) -> None:
    setns = getattr(os, "setns", None)       # Python 3.12+
    if setns is not None:
        setns(fd, CLONE_NEWNET)
        return
    # Python 3.11 has no os.setns: glibc's setns(2) through ctypes (importing pyroute2.netns for it cost the
    # child 0.3 s per read, measured: most of a 20k-socket doctor's read time).
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    if libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"setns: {os.strerror(err)}")


def _child_job(source: str) -> tuple[Any, list[int]]:
    """In the other namespace: (what to send back, descriptors to pass). For sock_diag, a NETLINK_SOCK_DIAG
    socket made here (it belongs to this namespace for good) goes back as a descriptor and the parent dumps
    through it: the 10 MB of a 100k-socket dump then never crosses a pipe or pickle. Otherwise /proc/net's
    rows, which only a task in the namespace can open."""
    if source != "proc":
        try:
            nl = diag.open_socket()
        except OSError:
            pass
        else:
            return ("sock_diag", read_sysctls(), os.uname().release, _interfaces()), [nl.detach()]
    rows = [(r.proto, r.family, r.state, r.local, r.remote, r.uid, r.timer) for r in diag.snapshot_proc()]
    return ("proc", read_sysctls(), os.uname().release, _interfaces(), rows), []


def _from_netns(path: str, fd: int, source: str) -> tuple[Any, list[int]]:
    """Fork a child that enters the namespace open at ``fd`` and runs _child_job; its answer (pickled, after
    an 8-byte length that carries the descriptors, SCM_RIGHTS) comes back over an AF_UNIX socketpair."""
    here, there = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    pid = os.fork()
    if pid == 0:                                             # the child: enter, read, send, exit
        code = 0
        try:
            here.close()
            try:
                _setns(fd)
                payload, passed = _child_job(source)
            except BaseException as exc:  # noqa: B036 - every failure goes back to the parent as text
                payload, passed, code = f"{type(exc).__name__}: {exc}", [], 1
            data = pickle.dumps(payload)
            socket.send_fds(there, [len(data).to_bytes(8, "little")], passed)
            there.sendall(data)
        finally:
            os._exit(code)
    there.close()
    deadline = time.monotonic() + READ_TIMEOUT
    chunks: list[bytes] = []
    fds: list[int] = []
    try:
        with here:
            here.setblocking(False)
            size = -1
            got = 0
            while size < 0 or got < size:
                left = deadline - time.monotonic()
                if left <= 0:
                    os.kill(pid, signal.SIGKILL)
                    raise ReadError(f"reading {path} took longer than {READ_TIMEOUT:.0f} s")
                ready, _, _ = select.select([here], [], [], left)
                if not ready:
                    continue
                if size < 0:
                    head, fds, _flags, _addr = socket.recv_fds(here, 8, 4)
                    if len(head) < 8:
                        break                                # the child died before answering
                    size = int.from_bytes(head, "little")
                    continue
                chunk = here.recv(min(size - got, 1 << 22))
                if not chunk:
                    break
                chunks.append(chunk)
                got += len(chunk)
    finally:
        os.waitpid(pid, 0)
    if size < 0 or got < size:
        for d in fds:
            os.close(d)
        return "no answer from the reading child", []
    return pickle.loads(b"".join(chunks)), fds


def read_netns(netns: str, source: str = "auto") -> HostSnapshot:
    """Read another network namespace through a forked child (the caller's namespace never changes): the
    child makes a sock_diag socket there and passes it back, and this process dumps and parses; /proc/net
    (no sock_diag, or ``source="proc"``) is read by the child itself."""
    t0 = time.perf_counter()
    path = _netns_path(netns)
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError as exc:
        raise ReadError(f"cannot open {path}: {exc.strerror} (reading another namespace needs root)") from exc
    try:
        result, fds = _from_netns(path, fd, source)
        if not isinstance(result, str) and result[0] == "sock_diag":
            with socket.socket(fileno=fds[0]) as nl:
                try:
                    raw: Any = [diag.diag_chunks(family, protocol, nl) for family, protocol, _, _ in DUMPS]
                except OSError:                              # a protocol without sock_diag: /proc/net instead
                    raw = None
            if raw is None:
                result, fds = _from_netns(path, fd, "proc")
            else:
                _, sysctls, release, interfaces = result
                with no_gc():            # 100k rows at once: generational passes would rescan them all
                    rows = _parse_raw(raw, "sock_diag")
                return HostSnapshot(rows=rows, sysctls=sysctls, source="sock_diag", kernel_release=release,
                                    read_seconds=time.perf_counter() - t0, interfaces=interfaces)
    finally:
        os.close(fd)
    if isinstance(result, str):
        raise ReadError(f"cannot read namespace {netns}: {result}")
    used, sysctls, release, interfaces, tuples = result
    with no_gc():
        return HostSnapshot(rows=[SockRow(*t) for t in tuples], sysctls=sysctls, source=used,
                            kernel_release=release, read_seconds=time.perf_counter() - t0, interfaces=interfaces)


def read_host(netns: str | None = None, source: str = "auto") -> HostSnapshot:
    """The socket table and port sysctls of the current namespace, or of ``netns`` (a name under
    /run/netns or a path such as /proc/PID/ns/net). ``source``: ``"auto"`` (sock_diag, else /proc/net)
    or ``"proc"``."""
    if source not in ("auto", "sock_diag", "proc"):
        raise ReadError(f"unknown source {source!r}: give auto, sock_diag or proc")
    if netns is None:
        return read_here(source)
    return read_netns(netns, source)


# ----------------------------------------------------------------------------------- saved `ss` output

_SS_STATES = {"ESTAB", "SYN-SENT", "SYN-RECV", "FIN-WAIT-1", "FIN-WAIT-2", "TIME-WAIT", "UNCONN", "CLOSE-WAIT",
              "LAST-ACK", "LISTEN", "CLOSING"}
_TIMER_RE = re.compile(r"timer:\((\w+),([0-9]{1,12}(?:\.[0-9]{0,9})?)(ms|sec|min)")
_UID_RE = re.compile(r"\buid:(\d{1,10})\b")
#: The largest dump read (100,000 sockets of `ss -tanpeH` are about 20 MiB).
MAX_SS_BYTES = 256 * 2**20


def _ss_endpoint(text: str) -> tuple[str, int] | None:
    host, _, port = text.rpartition(":")
    if port == "*":
        return None
    host = host.strip("[]").split("%", 1)[0]
    if host == "*":
        host = "0.0.0.0"
    try:
        socket.inet_pton(socket.AF_INET6 if ":" in host else socket.AF_INET, host)
        if not (port.isascii() and port.isdigit() and len(port) <= 5 and int(port) <= 65535):
            raise ValueError(port)
        return host, int(port)
    except (OSError, ValueError):
        shown = text if len(text) <= 60 else text[:57] + "..."
        raise ReadError(f"not an address:port (port 0-65535): {shown!r}") from None


def _ss_timer(rest: str) -> float | None:
    m = _TIMER_RE.search(rest)
    if not m or m.group(1) != "timewait":
        return None
    value = float(m.group(2))
    return value / 1000 if m.group(3) == "ms" else value * 60 if m.group(3) == "min" else value


def _guess_proto(text: str) -> str:
    """The protocol of a dump without a Netid column: UDP when it has UNCONN lines and no TCP-only state."""
    states = {line.split()[0] for line in text.splitlines() if line.split()}
    return "udp" if "UNCONN" in states and not states & (_SS_STATES - {"UNCONN", "ESTAB"}) else "tcp"


def parse_ss(text: str, proto: str | None = None) -> list[SockRow]:
    """Rows of a saved ``ss -tanpeH`` / ``ss -uanpeH`` dump (``-H``: no header; a header line is skipped
    anyway). Lines start ``State Recv-Q Send-Q Local Peer`` or, with ``-tu`` mixed, ``Netid State ...``.
    ``proto`` is the protocol when lines carry no Netid column (``-t`` → tcp, ``-u`` → udp)."""
    rows: list[SockRow] = []
    guessed: str | None = None
    for lineno, line in enumerate(text.splitlines(), 1):
        parts = line.split()
        if not parts or parts[0] in ("State", "Netid"):
            continue
        p = proto
        if parts[0] in ("tcp", "udp"):
            p, parts = parts[0], parts[1:]
        if len(parts) < 5 or parts[0] not in _SS_STATES:
            raise ReadError(f"line {lineno}: not a line of `ss -tanpeH` or `ss -uanpeH`: {line.strip()[:80]!r}")
        if p is None:
            guessed = p = guessed or _guess_proto(text)
        try:
            local = _ss_endpoint(parts[3])
            remote = _ss_endpoint(parts[4])
        except ReadError as exc:
            raise ReadError(f"line {lineno}: {exc}") from None
        if local is None:
            continue
        rest = " ".join(parts[5:])
        uid_m = _UID_RE.search(rest)
        family = 6 if ":" in local[0] else 4
        rows.append(SockRow(p, family, parts[0], local, remote, int(uid_m.group(1)) if uid_m else 0,
                            _ss_timer(rest)))
    return rows


def read_ss_file(path: str, sysctls: dict[str, str] | None = None) -> HostSnapshot:
    """A HostSnapshot of a saved ``ss`` dump. The sysctls are the ones given (else this kernel's defaults,
    which the snapshot says it assumed); a TCP socket that is only bound is not in such a dump unless it
    was taken with ``ss -B`` / ``-a`` of iproute2 >= 6.8."""
    t0 = time.perf_counter()
    try:
        if os.path.exists(path) and not os.path.isfile(path):
            raise ReadError(f"cannot read {path}: not a regular file; give a saved `ss -tanpeH` dump")
        with open(path, "rb") as f:
            data = f.read(MAX_SS_BYTES + 1)
    except OSError as exc:
        raise ReadError(f"cannot read {path}: {exc.strerror or exc}") from exc
    except ValueError as exc:  # a NUL byte in the path
        raise ReadError(f"cannot read {path!r}: {exc}") from None
    if len(data) > MAX_SS_BYTES:
        raise ReadError(f"{path}: larger than {MAX_SS_BYTES // 2**20} MiB; give one `ss -tanpeH` dump")
    text = data.decode("utf-8", errors="replace")
    rows = parse_ss(text)
    return HostSnapshot(rows=rows, sysctls=dict(sysctls or {}), source="ss-file", kernel_release=None,
                        read_seconds=time.perf_counter() - t0)
