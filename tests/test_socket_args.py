# Argument checking as the socket module does it: the same call on a model socket and on a real socket in a
# private network namespace (LiveHost) must raise the same exception class with the same errno (issue 8).
#
# Why: issue #2's contract says wrong argument types raise the same TypeError/OverflowError/ValueError or
# OSError as the socket module. A seeded random.Random draws single calls (bind, connect, listen,
# setsockopt, getsockopt, settimeout, setblocking, recv, recvfrom) from pools of good and bad arguments: ints
# at the C int and C long edges, bools, floats, NaN, strings, None, bytes of every short length, v4-mapped
# and scoped addresses, 4-argument setsockopt. Each call runs on a fresh socket of a drawn family and type,
# on both backends; only the outcome is compared ("ok", or the exception class and errno), never a port.
# Calls that leave the namespace's loopback are not drawn (connect goes to 127/8 and ::1 only).
# Size: PORTALLOC_ARGS_CALLS calls (default 300; the acceptance run uses 2500), seed
# PORTALLOC_ARGS_SEED (default 8). Live only: skipped, with the reason, where no namespace can be made.
"""Exception classes and errnos of random socket calls: model == socket module over the kernel."""

from __future__ import annotations

import os
import random
import socket
from collections import Counter
from typing import Any

import pytest

from portalloc.constants import IP_BIND_ADDRESS_NO_PORT, IP_FREEBIND, IP_LOCAL_PORT_RANGE, IPV6_V6ONLY

pytestmark = pytest.mark.live

CALLS = int(os.environ.get("PORTALLOC_ARGS_CALLS", "300"))
SEED = int(os.environ.get("PORTALLOC_ARGS_SEED", "8"))

INTS: list[Any] = [0, 1, -1, 2, 4, 16, 2**31 - 1, 2**31, -(2**31), -(2**31) - 1, 2**63, 2**64, True, False]
#: Integers that are no level and no option name anywhere (an int drawn at random would hit real options).
NOT_OPTIONS: list[Any] = [12345, -1, 2**31, -(2**31) - 1, 2**63, 2**64]
BAD: list[Any] = ["1", 1.5, None, float("nan"), b"\x01\x00\x00\x00", 1j]
#: (level, optname) pairs: the options the model implements, and an unknown option at each level. (The kernel
#: has hundreds of options the model does not keep; a real-world option the model ignores is not drawn.)
OPTIONS: list[tuple[int, int]] = [
    (socket.SOL_SOCKET, socket.SO_REUSEADDR), (socket.SOL_SOCKET, socket.SO_REUSEPORT),
    (socket.SOL_SOCKET, socket.SO_ERROR), (socket.SOL_SOCKET, socket.SO_TYPE), (socket.SOL_SOCKET, socket.SO_BROADCAST),
    (socket.SOL_SOCKET, 999), (0, IP_FREEBIND), (0, IP_BIND_ADDRESS_NO_PORT), (0, IP_LOCAL_PORT_RANGE), (0, 999),
    (socket.IPPROTO_IPV6, IPV6_V6ONLY), (socket.IPPROTO_IPV6, 999), (socket.IPPROTO_TCP, 999),
    (socket.IPPROTO_UDP, 999), (255, 1)]
VALUES: list[Any] = [0, 1, 2, -1, 2**31, True, b"", b"\x01", b"\x01\x00", b"\x01\x00\x00\x00",
                     b"\x01\x00\x00\x00\x00\x00\x00\x00", "1", 1.0, None, bytearray(b"\x00\x00\x00\x00")]
# Names are left out: "localhost" goes through the namespace's resolver (NSS), which the model does not model;
# so are destinations that need a route (multicast, other hosts): the namespace routes only lo, the model
# simulates a default route on purpose.
HOSTS4: list[Any] = ["127.0.0.1", "0.0.0.0", "", "::ffff:127.0.0.1", "::1", "127.1", 1, b"127.0.0.1",
                     None, "256.1.1.1", "127.255.255.255", "0x7f.1"]
HOSTS6: list[Any] = ["::1", "::", "", "::ffff:127.0.0.1", "::ffff:0.0.0.0", "127.0.0.1", "fe80::1",
                     "ff02::1", 1, None]
PORTS: list[Any] = [0, 5000, 6000, 40000, -1, 65535, 65536, True, 1.0, "80", None]


def _draw_call(rng: random.Random, family: int) -> tuple[str, tuple[Any, ...]]:
    """One method name and its arguments."""
    def pick(pool: list[Any]) -> Any:
        return pool[rng.randrange(len(pool))]

    def int_or_bad(p_bad: float = 0.25) -> Any:
        return pick(BAD) if rng.random() < p_bad else pick(INTS)

    def address() -> Any:
        host = pick(HOSTS4 if family == socket.AF_INET else HOSTS6)
        port = pick(PORTS)
        shape = rng.random()
        if shape < 0.75:
            return (host, port)
        if shape < 0.85 and family == socket.AF_INET6:
            return (host, port, int_or_bad(0.2) if rng.random() < 0.5 else 0, rng.choice([0, 1, 2, 99]))
        if shape < 0.9:
            return (host, port, 0)
        return [host, port] if rng.random() < 0.5 else (host,)

    kind = rng.choice(["setsockopt", "setsockopt", "getsockopt", "bind", "connect", "listen", "settimeout",
                       "setblocking", "recv", "recvfrom"])
    def option() -> tuple[Any, Any]:
        level, optname = pick(OPTIONS)
        if rng.random() < 0.15:
            level = pick(BAD) if rng.random() < 0.6 else pick(NOT_OPTIONS)
        if rng.random() < 0.15:
            optname = pick(BAD) if rng.random() < 0.6 else pick(NOT_OPTIONS)
        return level, optname

    if kind == "setsockopt":
        level, optname = option()
        if rng.random() < 0.15:
            if rng.random() < 0.5:                  # None with an optlen: the kernel reads a NULL pointer
                level = socket.SOL_SOCKET
                optname = rng.choice([socket.SO_REUSEADDR, socket.SO_REUSEPORT, socket.SO_BROADCAST, 999])
            return kind, (level, optname, rng.choice([None, None, 1, b"\x01\x00\x00\x00"]),
                          rng.choice([0, 4, 8, -1, "4"]))
        return kind, (level, optname, pick(VALUES))
    if kind == "getsockopt":
        level, optname = option()
        if rng.random() < 0.3:
            return kind, (level, optname, rng.choice([0, 1, 4, 8, 16, -1, 1025, "4", None]))
        return kind, (level, optname)
    if kind in ("bind", "connect"):
        return kind, (address(),)
    if kind == "listen":
        return kind, ((int_or_bad(),) if rng.random() < 0.9 else ())
    if kind == "settimeout":
        return kind, (rng.choice([None, 0, 0.0, -0.0, 2, 2.5, -1, -0.5, float("nan"), float("inf"), 1e10, 9e9,
                                  2**70, True, "1", b"1"]),)
    if kind == "setblocking":
        return kind, (rng.choice([True, False, 0, 1, 2, None, 1.0, "x", 2**70]),)
    return kind, (rng.choice([-1, 0, 1, 16, 2**63, 2**64, "1", 1.0, None]),)


def _outcome(sock: Any, method: str, args: tuple[Any, ...]) -> str:
    try:
        getattr(sock, method)(*args)
    except OSError as exc:
        return f"{type(exc).__name__}({exc.errno})"
    except (TypeError, ValueError, OverflowError) as exc:
        return type(exc).__name__
    return "ok"


@pytest.fixture(scope="module")
def live_host() -> Any:
    """One LiveHost for every call (each call gets fresh sockets)."""
    try:
        from portalloc.live import LiveHost, LiveUnavailable
    except ImportError as exc:  # pragma: no cover
        pytest.skip(f"live backend not importable: {exc}")
    try:
        host = LiveHost("linux-live", sysctls={"net.ipv4.ip_local_port_range": "40000 40999"})
    except LiveUnavailable as exc:
        pytest.skip(f"live kernel unavailable: {exc}")
    with host:
        yield host


def test_random_calls_raise_what_the_socket_module_raises(live_host: Any) -> None:
    """CALLS random single calls: same exception class and errno on the model and on the kernel."""
    from portalloc import Host

    model = Host("linux-6.18", seed=SEED, sysctls={"net.ipv4.ip_local_port_range": "40000 40999"})
    rng = random.Random(SEED)
    # Two listeners so that a connect() may succeed on both backends.
    for h in (model, live_host):
        lst = h.socket(socket.AF_INET, socket.SOCK_STREAM)
        lst.bind(("127.0.0.1", 5000))
        lst.listen(4096)
    compared: Counter[str] = Counter()
    diverged: list[str] = []
    for i in range(CALLS):
        family = rng.choice([socket.AF_INET, socket.AF_INET6])
        kind = rng.choice([socket.SOCK_STREAM, socket.SOCK_DGRAM])
        method, args = _draw_call(rng, family)
        pair = [h.socket(family, kind) for h in (model, live_host)]
        try:
            results = [_outcome(s, method, args) for s in pair]
        finally:
            for s in pair:
                s.close()
        compared[method] += 1
        if results[0] != results[1]:
            diverged.append(f"#{i} {socket.AddressFamily(family).name} {socket.SocketKind(kind).name} "
                            f"{method}{args!r}: model {results[0]}, live {results[1]}")
    print(f"compared {sum(compared.values())} calls: {dict(compared)}")
    assert not diverged, f"{len(diverged)} of {CALLS} calls differ:\n" + "\n".join(diverged[:40])
