# connectx on the portalloc model (host=Host): the counts issue 12 asks for, on the kernels whose
# behaviour differs: linux-6.1 (no IP_LOCAL_PORT_RANGE: ports=None, the system range is the window),
# linux-6.3 (IP_LOCAL_PORT_RANGE walked with step 2: shifting windows) and linux-6.18 (step 1 since 6.8,
# 207184853dbd: one full window). The live twins of these runs are in test_connectx.py and must give the
# same dicts. Expected figures: IP_BIND_ADDRESS_NO_PORT makes the range per (source, destination) — 4
# sources x 10 ports = 40 per destination (Cloudflare 2022, technique table); plain bind(ip, 0) makes it
# per source — 10 per address in total, whatever the destination.
"""connectx on the model: exact counts, errors, overshadowing, capability errors."""

from __future__ import annotations

import errno
import socket
from typing import Any

import pytest

from portalloc import Host
from portalloc.connectx import ConnectxUnsupported, SourcePool, connectx, connectx_async
from portalloc.constants import IP_BIND_ADDRESS_NO_PORT
from test_connectx_scenarios import (
    DST1,
    RANGE,
    SOURCES,
    connectx_counts,
    overshadowing,
    plain_counts,
)

SEED = 7


def model_host(kernel: str, system_range: tuple[int, int] = RANGE) -> Host:
    """A model host with the scenarios' set-up (127.0.0.0/8 on lo, the given system range)."""
    return Host(kernel, seed=SEED, addresses=["127.0.0.1/8"],
                sysctls={"net.ipv4.ip_local_port_range": f"{system_range[0]} {system_range[1]}"})


def expected_counts(proto: str) -> dict[str, Any]:
    """What issue 12 states: 40 per destination, then EADDRNOTAVAIL naming 4 sources x 10 ports."""
    error = ("EADDRNOTAVAIL: connectx: every {} source and port toward {} is taken (tried 4 source addresses "
             "x 10 ports, {} attempts)")
    attempts = 4 if proto == "tcp" else 0
    return {"first": 40, "first_error": error.format(proto.upper(), "127.0.0.10:80", attempts),
            "second": 40, "second_error": error.format(proto.upper(), "127.0.0.11:80", attempts),
            "distinct_4tuples": 80, "ports": [40000, 40009, 10], "per_source": dict.fromkeys(SOURCES, 20)}


CASES = [("linux-6.1", None), ("linux-6.18", None), ("linux-6.18", RANGE), ("linux-6.3", RANGE)]


@pytest.mark.parametrize("proto", ["tcp", "udp"])
@pytest.mark.parametrize(("kernel", "ports"), CASES)
def test_connectx_counts_on_the_model(kernel: str, ports: tuple[int, int] | None, proto: str) -> None:
    system = RANGE if ports is None else (32768, 60999)
    got = connectx_counts(proto, list(ports) if ports else None, host=model_host(kernel, system))
    assert got == expected_counts(proto)


@pytest.mark.parametrize("proto", ["tcp", "udp"])
@pytest.mark.parametrize("kernel", ["linux-6.1", "linux-6.18"])
def test_plain_bind_stops_at_the_range_per_address(kernel: str, proto: str) -> None:
    got = plain_counts(proto, host=model_host(kernel))
    assert got == {src: [10, "EADDRINUSE"] for src in SOURCES}


def test_shifting_windows_before_6_8_try_every_window() -> None:
    """linux-6.3 with 4-port windows over 40000-40009: windows 4+4+2, all reached: still 10 per source."""
    host = model_host("linux-6.3", (32768, 60999))
    for dst in (DST1,):
        lst = host.socket()
        lst.bind(dst)
        lst.listen(4096)
    pool = SourcePool(SOURCES[:1], ports=RANGE, window=4)
    socks = [connectx(DST1, pool, host=host) for _ in range(10)]
    assert sorted(s.getsockname()[1] for s in socks) == list(range(40000, 40010))
    with pytest.raises(OSError) as info:
        connectx(DST1, pool, host=host)
    assert info.value.errno == errno.EADDRNOTAVAIL
    assert "tried 1 source address x 10 ports, 3 attempts" in str(info.value)


def test_odd_window_is_split_before_6_8() -> None:
    """Before 6.8 an odd range is rounded down to even (__inet_hash_connect), so a 5-port window would miss
    a port: connectx splits it; 5 ports with window=5 still give 5 connections."""
    host = model_host("linux-6.3", (32768, 60999))
    lst = host.socket()
    lst.bind(DST1)
    lst.listen(4096)
    pool = SourcePool(SOURCES[:1], ports=(40000, 40004), window=5)
    socks = [connectx(DST1, pool, host=host) for _ in range(5)]
    assert sorted(s.getsockname()[1] for s in socks) == list(range(40000, 40005))


def test_ports_need_ip_local_port_range() -> None:
    host = model_host("linux-6.1")
    with pytest.raises(ConnectxUnsupported) as info:
        connectx(DST1, SourcePool(SOURCES, ports=RANGE), host=host)
    assert info.value.errno == errno.ENOPROTOOPT
    assert "IP_LOCAL_PORT_RANGE" in str(info.value) and "91d0b78c5177" in str(info.value)


def test_no_bind_address_no_port_is_a_clear_error() -> None:
    host = model_host("linux-4.1")
    probe = host.socket()
    with pytest.raises(OSError):
        probe.setsockopt(socket.SOL_IP, IP_BIND_ADDRESS_NO_PORT, 1)
    with pytest.raises(ConnectxUnsupported) as info:
        connectx(DST1, SourcePool(SOURCES), host=host)
    assert "IP_BIND_ADDRESS_NO_PORT" in str(info.value) and "90c337da1524" in str(info.value)


def test_udp_needs_no_option_and_works_before_4_2() -> None:
    """The UDP technique uses only SO_REUSEADDR and the lookup: linux-4.1 still gives 40 + 40."""
    got = connectx_counts("udp", None, host=model_host("linux-4.1"))
    assert got == expected_counts("udp")


def test_overshadowing_on_the_model() -> None:
    assert overshadowing(model_host("linux-6.18", (40000, 40001))) == {
        "connectx_port": 40001, "second_connectx": "EADDRNOTAVAIL", "owner_receives": True, "naive_steals": True}


def test_least_used_first_and_release_on_close() -> None:
    host = model_host("linux-6.18")
    lst = host.socket()
    lst.bind(DST1)
    lst.listen(4096)
    pool = SourcePool("127.0.0.0/29")        # 127.0.0.1 .. 127.0.0.6
    assert pool.sources == tuple(f"127.0.0.{i}" for i in range(1, 7))
    socks = [connectx(DST1, pool, host=host) for _ in range(12)]
    assert pool.in_use() == dict.fromkeys(pool.sources, 2)
    assert [s.getsockname()[0] for s in socks[:2]] == ["127.0.0.1", "127.0.0.2"]   # rotation breaks ties
    socks[0].close()
    socks[1].close()
    del socks[:2]               # a model socket is released when it is collected (no close hook on it)
    assert [src for src, n in pool.in_use().items() if n == 1] == ["127.0.0.1", "127.0.0.2"]
    assert connectx(DST1, pool, host=host).getsockname()[0] in ("127.0.0.1", "127.0.0.2")


def test_async_on_the_model_runs_the_same_plan() -> None:
    import asyncio
    host = model_host("linux-6.18")
    lst = host.socket()
    lst.bind(DST1)
    lst.listen(4096)
    pool = SourcePool(SOURCES)

    async def fill() -> int:
        n = 0
        while n < 100:
            try:
                await connectx_async(DST1, pool, host=host)
            except OSError as exc:
                assert exc.errno == errno.EADDRNOTAVAIL
                return n
            n += 1
        return n
    assert asyncio.run(fill()) == 40


def test_bad_arguments() -> None:
    with pytest.raises(ValueError):
        SourcePool([])
    with pytest.raises(ValueError):
        SourcePool(["127.0.0.1", "::1"])
    with pytest.raises(ValueError):
        SourcePool(["127.0.0.1"], ports=(10, 5))
    with pytest.raises(ValueError):
        connectx(DST1, SourcePool(SOURCES), proto="sctp", host=model_host("linux-6.18"))
    with pytest.raises(ValueError):
        connectx(("::1", 80), SourcePool(SOURCES), host=model_host("linux-6.18"))
    with pytest.raises(TypeError):
        connectx(DST1, SourcePool(SOURCES), host=object())
