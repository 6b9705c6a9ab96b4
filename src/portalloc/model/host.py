# The public face of the model: a Host with BSD-socket-like Socket objects.
#
# Rules: this layer does what socketmodule.c and the syscall entry do — check argument types, parse
# sockaddrs, decode option values, map the socket's own state (closed handle → EBADF) — and then asks
# the Stack (model/stack.py) for every kernel decision. It raises exactly what the socket module would
# raise around a real socket: TypeError/OverflowError for bad arguments, OSError with the kernel's errno
# for refusals. Nothing here touches a real socket, file or clock.
"""Host and Socket: the socket API over the model kernel."""

from __future__ import annotations

import builtins
import errno
import importlib
import math
import operator
import socket as _socket
import struct
from collections.abc import Iterable
from ipaddress import IPv4Address
from types import TracebackType
from typing import Any

from portalloc.constants import (
    DEFAULT_ADDRESSES,
    IP_BIND_ADDRESS_NO_PORT,
    IP_FREEBIND,
    IP_LOCAL_PORT_RANGE,
    IPV6_V6ONLY,
    SO_BINDTODEVICE,
    SO_REUSEPORT,
)
from portalloc.errors import fail, kernel_error
from portalloc.kernels import get_profile
from portalloc.kernels.profile import KernelProfile
from portalloc.model.addr import (
    ANY4,
    ANY6,
    IPAddress,
    family_number,
    format_host,
    parse_host,
    parse_sockaddr,
    sockaddr_scope_id,
    wire_address,
)
from portalloc.model.core import CoreStack, mapped
from portalloc.model.info import SocketInfo
from portalloc.model.portset import PortSet
from portalloc.model.sock import CLOSE, CLOSE_WAIT, FIN_WAIT2, LISTEN, SS_NAMES, SYN_SENT, TIME_WAIT, Sock
from portalloc.sysctl import SysctlValue

SOL_IP = 0
SOL_SOCKET = _socket.SOL_SOCKET
IPPROTO_TCP = _socket.IPPROTO_TCP
IPPROTO_IPV6 = _socket.IPPROTO_IPV6
SO_REUSEADDR = _socket.SO_REUSEADDR
SO_ERROR = _socket.SO_ERROR
SO_TYPE = _socket.SO_TYPE
SOCK_NONBLOCK = getattr(_socket, "SOCK_NONBLOCK", 0o4000)
SOCK_CLOEXEC = getattr(_socket, "SOCK_CLOEXEC", 0o2000000)
_INT_OPTS_TCP = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 23}

_MISSING: Any = object()

#: Model kernels by KernelProfile.stack: "module:Class". Linux's is model/stack.py.
STACKS = {"linux": "portalloc.model.stack:Stack", "bsd": "portalloc.model.bsd:BsdStack",
          "windows": "portalloc.model.windows:WindowsStack"}


def stack_class(profile: KernelProfile) -> type[CoreStack]:
    """The Stack class that runs ``profile``."""
    module, _, cls = STACKS[profile.stack].partition(":")
    found: type[CoreStack] = getattr(importlib.import_module(module), cls)
    return found


#: _PyTime_t holds nanoseconds in a signed 64-bit integer: a timeout of more seconds is an OverflowError.
_MAX_TIMEOUT_SECONDS = (2**63 - 1) / 1e9


def parse_timeout(value: object) -> float | None:
    """socket_parse_timeout (Modules/socketmodule.c) over _PyTime_FromSecondsObject: None, or a float or an
    integer (``__index__``) of seconds >= 0. NaN: ValueError; negative: ValueError; beyond _PyTime_t:
    OverflowError; any other type: TypeError (checked against CPython 3 on a real socket,
    tests/test_socket_args.py)."""
    if value is None:
        return None
    if isinstance(value, float):
        if math.isnan(value):
            raise ValueError("Invalid value NaN (not a number)")
        if not abs(value) <= _MAX_TIMEOUT_SECONDS:
            raise OverflowError("timestamp too large to convert to C _PyTime_t")
        seconds = value + 0.0                     # -0.0 is stored as 0 nanoseconds: gettimeout() says 0.0
    else:
        try:
            whole = operator.index(value)         # type: ignore[arg-type]
        except TypeError:
            raise TypeError(f"'{type(value).__name__}' object cannot be interpreted as an integer") from None
        if abs(whole) > _MAX_TIMEOUT_SECONDS:
            raise OverflowError("timestamp too large to convert to C _PyTime_t")
        seconds = float(whole)
    if seconds < 0:
        raise ValueError("Timeout value out of range")
    return seconds


def c_int(value: object, what: str = "signed integer") -> int:
    """A C ``int`` argument as socketmodule.c parses one ("i" format): ``__index__`` or TypeError, and the
    int range or OverflowError."""
    try:
        n = operator.index(value)                 # type: ignore[arg-type]
    except TypeError:
        raise TypeError(f"'{type(value).__name__}' object cannot be interpreted as an integer") from None
    if n > 0x7FFFFFFF:
        raise OverflowError(f"{what} is greater than maximum")
    if n < -0x80000000:
        raise OverflowError(f"{what} is less than minimum")
    return n


def _option_value(value: object, optlen: int | None = None) -> tuple[int, bytes]:
    """Decode a setsockopt value as socketmodule.c does: an int is a C int, bytes are passed raw."""
    if value is None:
        if optlen is None:
            raise TypeError("setsockopt() takes an integer, a bytes-like object or None with an optlen")
        return 0, b""
    if isinstance(value, bool):
        value = int(value)
    if isinstance(value, int):
        if value > 0x7FFFFFFF:
            raise OverflowError("signed integer is greater than maximum")
        if value < -0x80000000:
            raise OverflowError("signed integer is less than minimum")
        raw = struct.pack("=i", value)
        return value & 0xFFFFFFFF, raw
    if isinstance(value, (bytes, bytearray, memoryview)):
        raw = bytes(value)
        num = struct.unpack("=I", raw[:4])[0] if len(raw) >= 4 else -1
        return num, raw
    raise TypeError(f"a bytes-like object is required, not '{type(value).__name__}'")


class Socket:
    """A socket on a model Host, with the methods of ``socket.socket`` that port allocation needs."""

    __slots__ = ("_host", "_sk", "_af", "_kind", "_timeout", "__weakref__")

    def __init__(self, host: Host, sk: Sock, af: int, kind: int) -> None:
        self._host = host
        self._sk: Sock | None = sk
        self._af = af
        self._kind = kind
        self._timeout: float | None = None

    @property
    def family(self) -> _socket.AddressFamily:
        """AF_INET or AF_INET6."""
        return _socket.AddressFamily(self._af)

    @property
    def type(self) -> _socket.SocketKind:
        """SOCK_STREAM or SOCK_DGRAM."""
        return _socket.SocketKind(self._kind)

    @property
    def proto(self) -> int:
        """IPPROTO_TCP or IPPROTO_UDP."""
        return _socket.IPPROTO_TCP if self._kind == _socket.SOCK_STREAM else _socket.IPPROTO_UDP

    # --- plumbing -------------------------------------------------------------------------------

    @property
    def _stack(self) -> CoreStack:
        return self._host._stack

    def _live(self) -> Sock:
        if self._sk is None:
            raise kernel_error(errno.EBADF)
        return self._sk

    def _addr(self, address: object, fn: str) -> tuple[IPAddress, int]:
        parsed = parse_sockaddr(address, 4 if self._af == _socket.AF_INET else 6, fn)
        if self._sk is not None:
            assert isinstance(address, tuple)
            self._sk.scope_id = sockaddr_scope_id(address) if self._af == _socket.AF_INET6 else 0
        return parsed

    def _sockaddr(self, addr: IPAddress | None, port: int) -> tuple[Any, ...]:
        if self._af == _socket.AF_INET:
            return (format_host(addr if addr is not None else ANY4), port)
        a = addr if addr is not None else ANY6
        return (format_host(mapped(a)), port, 0, 0)

    def __repr__(self) -> str:
        sk = self._sk
        return f"<portalloc.Socket {'closed' if sk is None else sk!r}>"

    def __enter__(self) -> Socket:
        return self

    def __exit__(self, exc_type: builtins.type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def fileno(self) -> int:
        """A stand-in descriptor number (the model's socket id); -1 once closed."""
        return -1 if self._sk is None else self._sk.id

    # --- the socket calls ---------------------------------------------------------------------------

    def bind(self, address: tuple[Any, ...]) -> None:
        """bind(2). Port 0 autobinds (unless IP_BIND_ADDRESS_NO_PORT is set); errnos as the kernel's."""
        sk = self._live()
        addr, port = self._addr(address, "bind")
        self._stack.bind(sk, addr, port)

    def listen(self, backlog: int = 128) -> None:
        """listen(2): EOPNOTSUPP on UDP, EINVAL when connected, EADDRINUSE on a port conflict."""
        backlog = c_int(backlog)                  # sock_listen: "|i", checked before the socket is
        sk = self._live()
        if sk.proto != "tcp":
            fail(errno.EOPNOTSUPP)
        if sk.sock_state != "unconnected":
            fail(errno.EINVAL)
        self._stack.listen(sk, max(0, backlog))

    def connect(self, address: tuple[Any, ...]) -> None:
        """connect(2). TCP picks the source port (EADDRNOTAVAIL when none is left); UDP autobinds (EAGAIN).

        By mode, as CPython's internal_connect over the kernel: blocking (timeout None) returns when the
        handshake is over; non-blocking (0.0) raises BlockingIOError(EINPROGRESS) and leaves the outcome to
        the next connect() or SO_ERROR; with a timeout t > 0 the kernel call is non-blocking, then CPython
        polls (sock_call_ex) and reads SO_ERROR (sock_connect_impl), so the kernel socket stays
        SS_CONNECTING (__inet_stream_connect): a second connect() after a success returns 0 once, then
        EISCONN; after a refusal the next connect() fails with ECONNABORTED and the one after starts
        afresh; listen() answers EINVAL until then (measured on 6.18, regression trace
        timeout-connect-stays-connecting). A handshake the model completes at once costs no simulated time;
        one nobody answers costs the whole timeout (the clock advances by t) and raises TimeoutError.
        """
        err = self.connect_ex(address, _raise=True)
        if err:
            raise kernel_error(err)

    def connect_ex(self, address: tuple[Any, ...], _raise: bool = False) -> int:
        """connect(2) returning the errno instead of raising it (0 on success; EWOULDBLOCK when a timeout
        ran out, as CPython's connect_ex)."""
        sk = self._live()
        addr, port = self._addr(address, "connect")
        try:
            if sk.proto == "udp":
                self._stack.udp_connect(sk, addr, port)
                return 0
            if self._timeout:
                return self._timed_connect(sk, addr, port, _raise)
            return self._stack.stream_connect(sk, addr, port)
        except OSError as exc:
            if _raise or exc.errno is None:
                raise
            return exc.errno

    def _timed_connect(self, sk: Sock, addr: IPAddress, port: int, raise_timeout: bool) -> int:
        """internal_connect with a timeout: the kernel's non-blocking connect(); on EINPROGRESS, poll() for
        POLLOUT up to the timeout, then getsockopt(SO_ERROR), which reports and clears the error."""
        try:
            return self._stack.stream_connect(sk, addr, port)
        except BlockingIOError as exc:
            if exc.errno != errno.EINPROGRESS:
                raise
        if sk.state == SYN_SENT:                  # nobody answers within the wait
            timed_out = self._timed_out()
            if sk.state == SYN_SENT:
                if raise_timeout:
                    raise timed_out
                return errno.EWOULDBLOCK
        err, sk.so_error = sk.so_error, 0
        return err

    def accept(self) -> tuple[Socket, tuple[Any, ...]]:
        """accept(2), never blocking: BlockingIOError (EAGAIN) when no connection is pending, in blocking
        mode too (the model cannot wait for a client; LiveHost's accept() does the same). With a timeout
        t > 0 CPython waits t and raises TimeoutError: the clock advances by t."""
        sk = self._live()
        if self._timeout and not self._readable(sk):
            raise self._timed_out()               # sock_call_ex polls for POLLIN before accept4()
        if sk.proto != "tcp":
            fail(errno.EOPNOTSUPP)
        child = self._stack.accept(sk)
        child.sock_state = "connected"
        conn = Socket(self._host, child, self._af, _socket.SOCK_STREAM)
        # inet_getname(peer=2): the address even of a child that was reset while it waited.
        return conn, conn._sockaddr(child.raddr, child.rport)

    def close(self) -> None:
        """close(2). The kernel may keep the port (TIME_WAIT, FIN_WAIT2) after the handle is gone."""
        if self._sk is not None:
            sk, self._sk = self._sk, None
            self._stack.close(sk)

    def detach(self) -> int:
        """Not supported: a model socket has no descriptor to hand over."""
        raise kernel_error(errno.EOPNOTSUPP)

    def getsockname(self) -> tuple[Any, ...]:
        """The bound address and port (port 0 when none was chosen yet)."""
        sk = self._live()
        return self._sockaddr(sk.laddr, self._stack.sockname_port(sk))

    def getpeername(self) -> tuple[Any, ...]:
        """The peer's address; ENOTCONN when there is none."""
        sk = self._live()
        if sk.raddr is None or (sk.proto == "tcp" and sk.state in (CLOSE, SYN_SENT)):
            fail(errno.ENOTCONN)           # inet_getname(peer=1)
        return self._sockaddr(sk.raddr, sk.rport)

    def setblocking(self, flag: bool) -> None:
        """setblocking(True) is settimeout(None), setblocking(False) settimeout(0.0) (CPython sock_setblocking:
        the flag is read as a C long, so None or a float is a TypeError)."""
        try:
            block = operator.index(flag)
        except TypeError:
            raise TypeError(f"'{type(flag).__name__}' object cannot be interpreted as an integer") from None
        if not -(2**63) <= block < 2**63:
            raise OverflowError("Python int too large to convert to C long")
        self._set_mode(None if block else 0.0)

    def getblocking(self) -> bool:
        """False only in non-blocking mode (timeout 0.0); a socket with a timeout > 0 "blocks" (CPython
        sock_getblocking), though its kernel socket is O_NONBLOCK."""
        self._live()
        return self._timeout != 0.0

    def settimeout(self, value: float | None) -> None:
        """As socket.settimeout: ``None`` blocks, ``0`` is non-blocking, ``t > 0`` is a kernel O_NONBLOCK socket
        plus CPython's bounded wait (see :meth:`connect`). Arguments are checked as CPython does
        (:func:`parse_timeout`). Model calls never wait in wall time."""
        self._set_mode(parse_timeout(value))

    def _set_mode(self, timeout: float | None) -> None:
        """internal_setblocking: the kernel's O_NONBLOCK is set for every timeout but None."""
        sk = self._live()
        self._timeout = timeout
        sk.blocking = timeout is None

    def gettimeout(self) -> float | None:
        """The timeout set with settimeout(): None (blocking), 0.0 (non-blocking) or seconds."""
        return self._timeout

    def _readable(self, sk: Sock) -> bool:
        """Would poll() report POLLIN, POLLHUP or POLLERR now (tcp_poll, udp_poll)? A listener with a child in
        its queue, a TCP socket that is CLOSE (never connected, or reset: POLLHUP) or whose peer has closed, a
        pending error, a queued datagram. The model carries no TCP data, so an established socket never is."""
        if sk.so_error:
            return True
        if sk.proto == "udp":
            return bool(sk.rx)
        if sk.state == LISTEN:
            return bool(sk.accept_queue)
        return sk.state in (CLOSE, CLOSE_WAIT)

    def _timed_out(self) -> TimeoutError:
        """CPython's wait ran out: the whole timeout passes on the simulated clock (timers fire as the real
        ones would during the real wait), then TimeoutError("timed out")."""
        assert self._timeout is not None
        self._host.sleep(self._timeout)
        return TimeoutError("timed out")

    def send(self, data: bytes, flags: int = 0) -> int:
        """send(2): needs a peer (ENOTCONN / EDESTADDRREQ). TCP data goes nowhere; a UDP datagram to a
        local address reaches the receiving socket."""
        sk = self._live()
        if sk.raddr is None:
            fail(errno.EDESTADDRREQ if sk.proto == "udp" else errno.ENOTCONN)
        if sk.proto == "udp":
            self._stack.udp_deliver(sk, sk.raddr, sk.rport, bytes(data))
        return len(memoryview(data))

    def recvfrom(self, bufsize: int, flags: int = 0) -> tuple[bytes, tuple[Any, ...]]:
        """recvfrom(2) of a UDP datagram, never waiting: BlockingIOError (EAGAIN) when none is queued (with a
        timeout t > 0: TimeoutError, the clock advanced by t). A negative ``bufsize`` is CPython's
        ValueError, checked before the socket is looked at."""
        return self._recvfrom(bufsize, flags, "recvfrom")

    def _recvfrom(self, bufsize: int, flags: int, fn: str) -> tuple[bytes, tuple[Any, ...]]:
        try:
            size = operator.index(bufsize)
        except TypeError:
            raise TypeError(f"'{type(bufsize).__name__}' object cannot be interpreted as an integer") from None
        if size > 2**63 - 1 or size < -(2**63):
            raise OverflowError("Python int too large to convert to C ssize_t")
        c_int(flags)
        if size < 0:
            raise ValueError(f"negative buffersize in {fn}")
        sk = self._live()
        if size == 0 and fn == "recv":
            return b"", ()                        # sock_recv: a 0-byte recv() returns b"" without a syscall
        if self._timeout and not self._readable(sk):
            raise self._timed_out()
        if sk.proto == "tcp" and sk.state in (CLOSE, LISTEN):
            fail(errno.ENOTCONN)                  # tcp_recvmsg_locked: never connected, or listening
        if sk.proto != "udp" or not sk.rx:
            fail(errno.EAGAIN)
        assert sk.rx is not None
        data, (addr, port) = sk.rx.popleft()
        return data[:size], self._sockaddr(addr, port)

    def recv(self, bufsize: int, flags: int = 0) -> bytes:
        """recv(2): the data of recvfrom()."""
        return self._recvfrom(bufsize, flags, "recv")[0]

    def sendall(self, data: bytes, flags: int = 0) -> None:
        """send() for all of ``data``."""
        self.send(data, flags)

    def sendto(self, data: bytes, flags_or_addr: Any, addr: Any = _MISSING) -> int:
        """sendto(2); on an unbound UDP socket the first datagram autobinds (EAGAIN when no port is left)."""
        sk = self._live()
        target = flags_or_addr if addr is _MISSING else addr
        n = len(memoryview(data))
        if sk.proto == "tcp":
            if sk.raddr is None:
                fail(errno.EPIPE)
            return n
        addr, port = self._addr(target, "sendto")
        self._stack.udp_autobind(sk)
        self._stack.udp_deliver(sk, addr, port, bytes(data))
        return n

    def setsockopt(self, level: int, optname: int, value: Any, optlen: int | None = None) -> None:
        """setsockopt(2) for the options that change port allocation; others at known levels are accepted."""
        sk = self._live()
        level, optname = self._parse_setsockopt(level, optname, value, optlen)
        num, raw = _option_value(value, optlen)
        length = len(raw)
        if optlen is not None:                    # setsockopt(level, optname, None, optlen): optval is NULL
            length = (optlen & 0xFFFFFFFF) - ((optlen & 0x80000000) << 1)
            if length < 0:
                fail(errno.EINVAL)                # __sys_setsockopt: optlen < 0
            reads_int = ((level == SOL_SOCKET and optname != SO_BINDTODEVICE)
                         or (level in (IPPROTO_TCP, _socket.IPPROTO_UDP) and level == self.proto))
            if reads_int:
                fail(errno.EINVAL if length < 4 else errno.EFAULT)   # optlen < sizeof(int), or a NULL read
            if level == SOL_IP and optname in (IP_FREEBIND, IP_BIND_ADDRESS_NO_PORT, IP_LOCAL_PORT_RANGE) \
                    and length >= 1:
                fail(errno.EFAULT)                # do_ip_setsockopt copies an int or a char from NULL
        p = self._stack.profile
        if self._stack.os_setsockopt(sk, level, optname, num, raw):
            return

        def as_bool() -> bool:
            if length < 4:
                fail(errno.EINVAL)
            return num != 0

        if level == SOL_SOCKET and optname != SO_BINDTODEVICE and length < 4:
            fail(errno.EINVAL)                    # sk_setsockopt: optlen < sizeof(int), any option
        if level in (IPPROTO_TCP, _socket.IPPROTO_UDP) and level == self.proto and length < 4:
            fail(errno.EINVAL)                    # do_tcp_setsockopt / udp_lib_setsockopt: optlen < sizeof(int)
        if level == SOL_IP and len(raw) < 4 and value is not None:
            num = raw[0] if raw else 0            # do_ip_setsockopt: optlen >= sizeof(char) reads one byte
        if level == SOL_SOCKET:
            if optname == SO_REUSEADDR:
                sk.reuseaddr = as_bool()
            elif optname == SO_REUSEPORT and p.so_reuseport:
                sk.reuseport = as_bool()
            elif optname == SO_BINDTODEVICE:
                self._bind_to_device(sk, raw)
            elif optname == _socket.SO_BROADCAST:
                sk.broadcast = as_bool()
            elif optname == _socket.SO_LINGER:
                # sock_setsockopt: a struct linger (two C ints) or EINVAL; {1, 0} makes close() abortive.
                if len(raw) < 8:
                    fail(errno.EINVAL)
                onoff, seconds = struct.unpack("=ii", raw[:8])
                sk.linger_abort = onoff != 0 and seconds == 0
            elif optname in (_socket.SO_KEEPALIVE, _socket.SO_SNDBUF, _socket.SO_RCVBUF):
                pass
            else:
                fail(errno.ENOPROTOOPT)
        elif level == SOL_IP:
            if optname == IP_BIND_ADDRESS_NO_PORT and p.ip_bind_address_no_port:
                sk.bind_no_port = num != 0        # any optlen: 0 bytes read as 0
            elif optname == IP_LOCAL_PORT_RANGE and p.ip_local_port_range_option:
                if length != 4:
                    fail(errno.EINVAL)
                lo, hi = num & 0xFFFF, num >> 16
                if lo and hi and lo > hi:
                    fail(errno.EINVAL)
                sk.local_range = num
            elif optname == IP_FREEBIND:
                if length < 1:
                    fail(errno.EINVAL)            # IP_FREEBIND: optlen < 1
                sk.freebind = num != 0
            else:
                fail(errno.ENOPROTOOPT)
        elif level == IPPROTO_IPV6 and self.family == _socket.AF_INET6:
            if optname == IPV6_V6ONLY:
                if sk.lport:
                    fail(errno.EINVAL)
                sk.v6only = as_bool()
            else:
                fail(errno.ENOPROTOOPT)
        elif level == IPPROTO_TCP and sk.proto == "tcp" and optname in _INT_OPTS_TCP:
            pass
        else:
            fail(errno.ENOPROTOOPT)

    @staticmethod
    def _parse_setsockopt(level: object, optname: object, value: object, optlen: object) -> tuple[int, int]:
        """sock_setsockopt's argument parsing: "iii", then "iiO!I" (None and an optlen), then "iiy*"; the
        error of the last form is the one raised (an int value beyond a C int is "not bytes-like")."""
        if optlen is not None:
            try:
                if value is not None:
                    raise TypeError
                parsed = c_int(level), c_int(optname)
                operator.index(optlen)            # type: ignore[arg-type]
            except (TypeError, OverflowError):
                raise TypeError("setsockopt() takes exactly 3 arguments (4 given)") from None
            return parsed
        parsed = c_int(level), c_int(optname)
        if isinstance(value, int):
            try:
                c_int(value)
            except OverflowError:
                raise TypeError("a bytes-like object is required, not 'int'") from None
        elif not isinstance(value, (bytes, bytearray, memoryview)):
            raise TypeError(f"a bytes-like object is required, not '{type(value).__name__}'")
        return parsed

    def _bind_to_device(self, sk: Sock, raw: bytes) -> None:
        """sock_setbindtodevice: a known interface name (ENODEV otherwise), empty to unbind; once bound, an
        unprivileged socket may change neither (EPERM)."""
        name = raw.split(b"\0", 1)[0].decode(errors="replace")
        index = self._stack.devices.get(name) if name else 0
        if index is None:
            fail(errno.ENODEV)                 # sock_setbindtodevice looks the name up first
        if sk.dev and sk.uid != 0:
            fail(errno.EPERM)                  # sock_bindtoindex_locked: any change, unbinding too, needs CAP_NET_RAW
        self._stack.set_bound_device(sk, index)

    def getsockopt(self, level: int, optname: int, buflen: Any = _MISSING) -> int | bytes:
        """getsockopt(2) for the same options; SO_ERROR reads and clears the pending error."""
        level, optname = c_int(level), c_int(optname)
        if buflen is _MISSING:
            buflen = None
        else:
            buflen = c_int(buflen)
            if buflen == 0:
                buflen = None                     # sock_getsockopt: buflen 0 is the int form
            elif not 0 < buflen <= 1024:
                raise OSError("getsockopt buflen out of range")
        sk = self._live()
        p = self._stack.profile
        value: int
        found = self._stack.os_getsockopt(sk, level, optname)
        if found is not None:
            return struct.pack("=i", found)[:buflen] if buflen is not None else found
        if level == SOL_SOCKET and optname == SO_REUSEADDR:
            value = int(sk.reuseaddr)
        elif level == SOL_SOCKET and optname == SO_REUSEPORT and p.so_reuseport:
            value = int(sk.reuseport)
        elif level == SOL_SOCKET and optname == SO_ERROR:
            value, sk.so_error = sk.so_error, 0
        elif level == SOL_SOCKET and optname == SO_TYPE:
            value = int(self.type)
        elif level == SOL_SOCKET and optname == _socket.SO_BROADCAST:
            value = int(sk.broadcast)
        elif level == SOL_SOCKET and optname == SO_BINDTODEVICE:
            name = next((n for n, i in self._stack.devices.items() if i == sk.dev), "") if sk.dev else ""
            return name.encode() + b"\0" if buflen else (1 if name else 0)
        elif level == SOL_IP and optname == IP_BIND_ADDRESS_NO_PORT and p.ip_bind_address_no_port:
            value = int(sk.bind_no_port)
        elif level == SOL_IP and optname == IP_LOCAL_PORT_RANGE and p.ip_local_port_range_option:
            value = sk.local_range - (1 << 32) if sk.local_range >= 1 << 31 else sk.local_range
        elif level == SOL_IP and optname == IP_FREEBIND:
            value = int(sk.freebind)
        elif level == IPPROTO_IPV6 and optname == IPV6_V6ONLY and self.family == _socket.AF_INET6:
            value = int(sk.v6only)
        elif self._af == _socket.AF_INET and level not in (SOL_SOCKET, SOL_IP, self.proto):
            fail(errno.EOPNOTSUPP)                # do_ip_getsockopt: level != SOL_IP
        else:
            fail(errno.ENOPROTOOPT)
        if buflen is not None:
            return struct.pack("=i", value)[:buflen]
        return value


def _sleep_length(seconds: object) -> float:
    """``seconds`` as a float, or the exception CPython 3.11's time.sleep (after LiveHost.sleep's own
    negative check) raises for it (Modules/timemodule.c time_sleep → _PyTime_FromSecondsObject)."""
    if not isinstance(seconds, int | float):
        raise TypeError(f"'{type(seconds).__name__}' object cannot be interpreted as an integer")
    if seconds < 0:
        raise ValueError("sleep length must be non-negative")
    if isinstance(seconds, float) and math.isnan(seconds):
        raise ValueError("Invalid value NaN (not a number)")
    if isinstance(seconds, int):
        if seconds * 10**9 >= 2**63:
            raise OverflowError("timestamp too large to convert to C _PyTime_t")
    elif not seconds * 1e9 < 2.0**63:
        raise OverflowError("timestamp out of range for platform time_t")
    return float(seconds)


class Host:
    """A simulated host: one network namespace running the chosen kernel profile.

    ``kernel`` is a profile name (``kernels()`` lists them; ``"linux"`` is the newest). ``seed`` fixes
    every random choice (SipHash key, table_perturb, increments, random starts): the same seed gives the
    same ports. ``addresses`` are the interface addresses the host owns; ``sysctls`` are written at
    start, validated like writes to /proc/sys; ``devices`` are interface names for SO_BINDTODEVICE.
    """

    def __init__(self, kernel: str = "linux", seed: int | None = 0,
                 addresses: Iterable[str] = DEFAULT_ADDRESSES,
                 sysctls: dict[str, Any] | None = None,
                 devices: Iterable[str] = ("lo",)) -> None:
        self.profile: KernelProfile = get_profile(kernel)
        if isinstance(addresses, str):
            addresses = (addresses,)
        self._stack = stack_class(self.profile)(self.profile, seed, tuple(addresses), sysctls, tuple(devices))

    @property
    def kernel(self) -> str:
        """The resolved profile name."""
        return self.profile.name

    @property
    def time(self) -> float:
        """Simulated seconds since the host started."""
        return self._stack.now

    @property
    def stats(self) -> dict[str, int]:
        """Counters: connects, connect_searches, connect_probes (ports the kernel's loop examined), ..."""
        return {name: n for name, n in self._stack.stats.items() if n}

    def __enter__(self) -> Host:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Nothing to release for the model (present so Host and LiveHost are interchangeable)."""

    def socket(self, family: int = _socket.AF_INET, type: int = _socket.SOCK_STREAM, proto: int = 0,
               uid: int = 0) -> Socket:
        """socket(2) as ``uid``: AF_INET/AF_INET6 with SOCK_STREAM/SOCK_DGRAM (SOCK_NONBLOCK allowed)."""
        if not isinstance(family, int) or not isinstance(type, int):
            raise TypeError("socket family and type must be integers")
        if not isinstance(uid, int) or isinstance(uid, bool) or uid < 0:
            raise ValueError(f"uid must be a non-negative integer, not {uid!r}")
        if family not in (_socket.AF_INET, _socket.AF_INET6):
            fail(errno.EAFNOSUPPORT)
        kind = type & ~(SOCK_NONBLOCK | SOCK_CLOEXEC)
        if kind not in (_socket.SOCK_STREAM, _socket.SOCK_DGRAM):
            fail(errno.ESOCKTNOSUPPORT)
        expected = _socket.IPPROTO_TCP if kind == _socket.SOCK_STREAM else _socket.IPPROTO_UDP
        if proto not in (0, expected):
            fail(errno.EPROTONOSUPPORT)
        sk = self._stack.new_sock(family_number(family), "tcp" if kind == _socket.SOCK_STREAM else "udp", uid)
        s = Socket(self, sk, family, kind)
        if type & SOCK_NONBLOCK:
            s.setblocking(False)
        return s

    def create_connection(self, address: tuple[Any, Any],
                          timeout: Any = _socket._GLOBAL_DEFAULT_TIMEOUT,  # type: ignore[attr-defined]
                          source_address: tuple[Any, ...] | None = None, *, all_errors: bool = False,
                          uid: int = 0) -> Socket:
        """``socket.create_connection`` on this host, step by step (portalloc.model.connection): socket(),
        settimeout() unless the default, a plain bind(source_address), connect(), next address on failure.
        The bind reserves the source port for every destination (EADDRINUSE for a second connection to
        another server from the same source_address, even where connect() could share the port)."""
        from portalloc.model.connection import create_connection

        sock = create_connection(self, address, timeout, source_address, all_errors=all_errors, uid=uid)
        assert isinstance(sock, Socket)
        return sock

    def sleep(self, seconds: float) -> None:
        """Advance simulated time; TIME_WAIT (60 s) and FIN_WAIT2 (tcp_fin_timeout) timers fire.

        Refuses what ``LiveHost.sleep`` (``time.sleep``) refuses, with the same exception, before the clock
        moves: a negative length ``ValueError``, NaN ``ValueError``, a length past C's ``_PyTime_t``
        (about 292 years, infinity included) ``OverflowError``, a non-number ``TypeError``.
        """
        if seconds.__class__ is float and 0.0 <= seconds < 9e9:    # the common case: no check can fail
            self._stack.advance(seconds)
        else:
            self._stack.advance(_sleep_length(seconds))

    def sysctl(self, name: str, value: Any = _MISSING) -> SysctlValue | None:
        """Read a sysctl, or write it when ``value`` is given (validated: EINVAL, unknown: ENOENT)."""
        if value is _MISSING:
            return self._stack.get_sysctl(name)
        self._stack.set_sysctl(name, value)
        return None

    def set_peer(self, address: str, behaviour: str, port: int | None = None) -> None:
        """What remote peers at ``address`` (an address or network, optionally one port) do with a
        connection: "accept" (default), "refuse", "close_first" or "hold"."""
        self._stack.set_peer(address, behaviour, port)

    def inbound(self, src: tuple[str, int], dst: tuple[str, int], ts_clock: float | None = 0.0) -> str:
        """A remote client at ``src`` (an address this host does not own) opens a TCP connection to ``dst``
        (an address and port of this host). Returns:

        - ``"accepted"``: the handshake completed; the connection waits in the listener's accept queue and
          ``accept()`` returns it with ``getpeername() == src``. The client closes right after the server
          does, so the server's ``close()`` leaves it in TIME_WAIT (the classic HTTP server);
        - ``"refused"``: no listener, the client gets an RST;
        - ``"dropped"``: the SYN was dropped (the client's connect() would time out): the accept queue is
          full, a TIME_WAIT of the same 4-tuple rejects it by PAWS, or, on Linux <= 4.11 with
          ``net.ipv4.tcp_tw_recycle=1``, the per-peer timestamp check (tcp_peer_is_proven) rejects it.

        ``ts_clock`` is the client's TCP timestamp clock offset in seconds: its TSval is (now + ts_clock)
        in ms, mod 2^32 (clients behind one NAT share ``src``'s address but not their clocks; a Linux
        4.10+ client picks an offset per connection, 95a22caee396); ``None``: it sends no timestamps.
        No data flows and nothing is retransmitted: a dropped SYN is not retried.
        """
        def family(addr: object) -> int:
            return 6 if isinstance(addr, tuple) and addr and isinstance(addr[0], str) and ":" in addr[0] else 4

        saddr, sport = parse_sockaddr(src, family(src), "inbound")
        daddr, dport = parse_sockaddr(dst, family(dst), "inbound")
        if ts_clock is not None and not isinstance(ts_clock, (int, float)):
            raise TypeError(f"ts_clock must be a number of seconds or None, not {type(ts_clock).__name__}")
        return self._stack.inbound(saddr, sport, daddr, dport, None if ts_clock is None else float(ts_clock))

    def restore(self, proto: str, local: tuple[str, int], remote: tuple[str, int] | None = None, *,
                state: str, chosen_by: str = "connect", family: int | None = None, uid: int = 0,
                tw_substate: str = "TIME_WAIT", lifetime: float = 60.0, timestamps: bool = True) -> Socket | None:
        """Put back one socket of a real host's table as it stands now (``portalloc.observe`` rebuilds a
        snapshot with it; see ``Stack.restore``). ``state``: ``"LISTEN"``, ``"CLOSE"`` (bound only / UDP
        unconnected), ``"ESTABLISHED"`` or ``"TIME_WAIT"`` (entered now, timer ``lifetime`` s; age it with
        ``sleep``). ``chosen_by``: ``"connect"`` (connect()'s autobind picked the port) or ``"bind"``.
        ``family``: the socket's own family (default: from the local address). Returns a handle for a live
        socket (so a what-if can close it), None for a TIME_WAIT."""
        if proto not in ("tcp", "udp"):
            raise ValueError(f"unknown protocol {proto!r}: give 'tcp' or 'udp'")
        fam = family if family is not None else (6 if ":" in local[0] else 4)
        laddr, lport = parse_sockaddr(local, fam, "restore")
        peer = None
        if remote is not None:
            raddr, rport = parse_sockaddr(remote, fam, "restore")
            peer = (raddr, rport)
        restore: Any = getattr(self._stack, "restore", None)     # Linux's Stack.restore
        if restore is None:
            raise ValueError(f"restore() is modelled for Linux profiles only, not {self.kernel}")
        sk: Sock = restore(proto, fam, state, laddr, lport, peer, chosen_by=chosen_by, uid=uid,
                           tw_substate=tw_substate, lifetime=float(lifetime), timestamps=timestamps)
        if state == "TIME_WAIT":
            return None
        kind = _socket.SOCK_STREAM if proto == "tcp" else _socket.SOCK_DGRAM
        return Socket(self, sk, _socket.AF_INET if fam == 4 else _socket.AF_INET6, kind)

    def restore_timewaits(self, entries: Iterable[tuple[float, int, tuple[str, int], tuple[str, int], str, int,
                                                          str, float]], *, timestamps: bool = True) -> None:
        """Put back many TCP TIME_WAITs at once: each entry is (at, family, local, remote, chosen_by, uid,
        tw_substate, lifetime), ``at`` the model time it entered TIME_WAIT (ascending; the clock ends at the
        last). The same as, per entry, ``sleep(at - time)`` when later, then ``restore("tcp", local, remote,
        state="TIME_WAIT", ...)`` - only faster (``Stack.restore_timewaits``); addresses are parsed once per
        distinct text."""
        restore: Any = getattr(self._stack, "restore_timewaits", None)     # Linux's Stack.restore_timewaits
        if restore is None:
            raise ValueError(f"restore() is modelled for Linux profiles only, not {self.kernel}")
        rows = entries if isinstance(entries, list) else list(entries)

        def address(text: str, fam: int) -> Any:
            return parse_sockaddr((text, 0), fam, "restore")[0]

        restore(rows, timestamps=timestamps, address=address)

    def usable_ports(self, dst: tuple[str, int], *, proto: str = "tcp", src: str | None = None) -> PortSet:
        """The ports that a new, unbound socket's connect() toward ``dst`` could take right now.

        ``dst`` is (address, port); ``src`` the source address the connection would leave from (as after
        ``bind((src, 0))`` with IP_BIND_ADDRESS_NO_PORT, where the kernel has it), or None for the one the
        kernel routes from. The answer follows the host's profile and sysctls: the ephemeral range, reserved
        ports, ports held by explicit binders, live 4-tuples toward ``dst``, and TIME_WAITs that
        tcp_tw_reuse can (counted) or cannot (not counted) take over now. Every OS answers in its own
        connect() variant (a BSD that binds before it looks at the destination answers host-wide unique
        ports). ``proto="udp"``: the ports connect()'s autobind could take; Linux's UDP autobind is not
        destination-aware, so ``dst`` only chooses the family there.

        Invariant: ``len(host.usable_ports(dst))`` is the number of further connect() calls toward ``dst``,
        each from a fresh socket that keeps its connection, that get a port now; the next one fails with
        the OS's exhaustion errno (EADDRNOTAVAIL on Linux). Orders that draw a fresh random port per try
        (RFC 6056 algorithms 1 and 5, NetBSD random_pick and randinc) may give up while ports remain: there
        the count is an upper bound. Ports come out in ascending order; asking changes nothing on the host
        (tests/test_usable_ports.py holds the invariant on every profile).
        """
        if proto not in ("tcp", "udp"):
            raise ValueError(f"unknown protocol {proto!r}: give 'tcp' or 'udp'")
        probe, daddr, dport = self._fresh_toward(dst, proto, "usable_ports")
        stack = self._stack
        if src is None:
            saddr = stack.route_source(probe, daddr)
        else:
            saddr = wire_address(parse_host(src, 6 if ":" in src else 4, "usable_ports"))
        return stack.usable_ports(proto, saddr, daddr, dport)

    def route_source(self, dst: tuple[str, int]) -> str:
        """The source address a fresh socket's connect() toward ``dst`` leaves from (ip_route_connect over the
        host's addresses and their prefixes), as inet_ntop prints it: the source ``usable_ports(dst)`` counts
        from. OSError (ENETUNREACH) when no address can reach ``dst``."""
        probe, daddr, _ = self._fresh_toward(dst, "tcp", "route_source")
        return format_host(self._stack.route_source(probe, daddr))

    def _fresh_toward(self, dst: tuple[str, int], proto: str, call: str) -> tuple[Sock, IPAddress, int]:
        """A fresh socket record (in no table) of ``dst``'s family, and ``dst`` as its connect() meets it: the
        wire address (a wildcard becomes the loopback address) and port."""
        family = 6 if isinstance(dst, tuple) and dst and isinstance(dst[0], str) and ":" in dst[0] else 4
        daddr, dport = parse_sockaddr(dst, family, call)
        stack = self._stack
        probe = stack.probe_sock(family, proto, 0)
        return probe, wire_address(stack.any_to_loopback(probe, daddr)), dport

    def sockets(self) -> list[SocketInfo]:
        """An ``ss``-like snapshot: every socket that holds a port, TIME_WAIT and orphans included."""
        rows = []
        now = self._stack.now
        for sk in self._stack.socks.values():
            if not sk.lport:
                continue
            rows.append(self._info(sk, now))
        return sorted(rows)

    def _info(self, sk: Sock, now: float) -> SocketInfo:
        def fmt(addr: IPAddress | None, port: int) -> tuple[str, int]:
            a = addr if addr is not None else (ANY4 if sk.family == 4 else ANY6)
            if sk.family == 6 and isinstance(a, IPv4Address):
                a = mapped(a)
            return format_host(a), port

        if sk.state == TIME_WAIT:
            state = "FIN-WAIT-2" if sk.tw_substate == FIN_WAIT2 else "TIME-WAIT"
            return SocketInfo(sk.proto, sk.family, state, fmt(sk.saddr_wire, sk.lport), fmt(sk.raddr, sk.rport),
                              0, frozenset(), None if sk.expires is None else round(sk.expires - now, 3))
        state = SS_NAMES.get(sk.state, sk.state)
        if sk.proto == "udp":
            state = "ESTAB" if sk.raddr is not None else "UNCONN"
        opts = set()
        if sk.reuseaddr:
            opts.add("SO_REUSEADDR")
        if sk.reuseport:
            opts.add("SO_REUSEPORT")
        if sk.v6only and sk.family == 6:
            opts.add("IPV6_V6ONLY")
        if sk.bind_no_port:
            opts.add("IP_BIND_ADDRESS_NO_PORT")
        if sk.local_range:
            opts.add("IP_LOCAL_PORT_RANGE")
        if sk.dev:
            opts.add("SO_BINDTODEVICE")
        if sk.freebind:
            opts.add("IP_FREEBIND")
        local = fmt(sk.laddr, sk.lport)
        remote = fmt(sk.raddr, sk.rport) if sk.raddr is not None else None
        return SocketInfo(sk.proto, sk.family, state, local, remote, sk.uid, frozenset(opts), None)

    def __repr__(self) -> str:
        return f"<portalloc.Host {self.kernel} t={self._stack.now:.3f}s sockets={len(self._stack.socks)}>"


__all__ = ["Host", "Socket"]
