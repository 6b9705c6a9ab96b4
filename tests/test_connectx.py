# connectx on the real kernel, each scenario in its own private network namespace (run_in_private_netns:
# a child interpreter that unshares a netns, brings lo up and writes the range sysctl there; this test
# process itself stays in the machine's namespace and opens no socket). Sources 127.0.0.1-127.0.0.4 and
# destinations 127.0.0.10:80 / 127.0.0.11:80, all on lo. Every count is compared with the same scenario
# run on the model (host=portalloc.Host), and with the figure issue 12 states. Skips, with the reason,
# where no namespace can be made (not root).
"""connectx live: exact counts, plain-bind baseline, 200 concurrent callers, overshadowing, requests."""

from __future__ import annotations

import os
from typing import Any

import pytest

from portalloc.live import LiveUnavailable
from portalloc.live.netns import run_in_private_netns
from test_connectx_model import expected_counts, model_host
from test_connectx_scenarios import (
    RANGE,
    SOURCES,
    connectx_counts,
    overshadowing,
    plain_counts,
    udp_lock_semantics,
)

pytestmark = pytest.mark.live

SCENARIOS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "test_connectx_scenarios.py")
RANGE_SYSCTL = "net.ipv4.ip_local_port_range"


def live(function: str, *args: Any, system_range: tuple[int, int] = RANGE, timeout: float = 120.0) -> Any:
    """Run a scenario of test_connectx_scenarios.py in a fresh namespace with the given system range."""
    if os.geteuid() != 0:
        pytest.skip("needs root: the scenarios run in a private network namespace (unshare(CLONE_NEWNET))")
    try:
        return run_in_private_netns(f"{SCENARIOS}:{function}", *args, timeout=timeout,
                                    sysctls={RANGE_SYSCTL: f"{system_range[0]} {system_range[1]}"})
    except LiveUnavailable as exc:
        pytest.skip(str(exc))


@pytest.mark.parametrize("proto", ["tcp", "udp"])
@pytest.mark.parametrize("ports", [None, RANGE], ids=["system-range", "IP_LOCAL_PORT_RANGE"])
def test_connectx_counts_live_equal_the_model(proto: str, ports: tuple[int, int] | None) -> None:
    """4 sources x 10 ports: exactly 40 to one destination, then EADDRNOTAVAIL; 40 more to a second one."""
    system = RANGE if ports is None else (32768, 60999)
    got = live("connectx_counts", proto, list(ports) if ports else None, system_range=system)
    assert got == expected_counts(proto)
    assert got == connectx_counts(proto, list(ports) if ports else None, host=model_host("linux-6.18", system))


@pytest.mark.parametrize("proto", ["tcp", "udp"])
def test_plain_bind_stops_at_ten_per_address_live(proto: str) -> None:
    """create_connection(source_address=(ip, 0)): 10 per address in total, then bind() says EADDRINUSE."""
    got = live("plain_counts", proto)
    assert got == {src: [10, "EADDRINUSE"] for src in SOURCES}
    assert got == plain_counts(proto, host=model_host("linux-6.18"))


@pytest.mark.parametrize("mode", ["threads", "asyncio"])
@pytest.mark.parametrize("proto", ["tcp", "udp"])
def test_200_concurrent_callers_at_capacity_40(proto: str, mode: str) -> None:
    """200 callers at once, capacity 40: exactly 40 win, 160 get EADDRNOTAVAIL, no 4-tuple twice."""
    got = live("concurrent_callers", proto, mode)
    assert got == {"ok": 40, "errors": {"EADDRNOTAVAIL": 160}, "distinct_4tuples": 40,
                   "per_source": dict.fromkeys(SOURCES, 10)}


@pytest.mark.parametrize("mode", ["threads", "asyncio"])
@pytest.mark.parametrize("proto", ["tcp", "udp"])
def test_200_concurrent_callers_with_room(proto: str, mode: str) -> None:
    """200 callers, capacity 400 (4 x 100 ports): all succeed on 200 distinct 4-tuples."""
    got = live("concurrent_callers", proto, mode, system_range=(40000, 40099))
    assert (got["ok"], got["errors"], got["distinct_4tuples"]) == (200, {}, 200)
    assert sum(got["per_source"].values()) == 200


def test_no_overshadowing_live() -> None:
    """An unconnected SO_REUSEADDR socket on 127.0.0.1:40000 keeps its datagrams: connectx takes 40001,
    then refuses; the naive REUSEADDR bind + connect steals the datagram (the 2022 post's overshadowing)."""
    got = live("overshadowing", system_range=(40000, 40001))
    assert got == {"connectx_port": 40001, "second_connectx": "EADDRNOTAVAIL", "owner_receives": True,
                   "naive_steals": True}
    assert got == overshadowing(model_host("linux-6.18", (40000, 40001)))


def test_udp_lock_is_a_kernel_fact() -> None:
    """Cloudflare's lock: SO_REUSEADDR cleared after bind keeps every other REUSEADDR binder out."""
    got = live("udp_lock_semantics")
    assert got == {"locked": "EADDRINUSE", "locked_connected": "EADDRINUSE", "unlocked": "ok"}
    assert got == udp_lock_semantics(model_host("linux-6.18"))


def test_requests_adapter_live() -> None:
    """requests sessions through SourcePoolAdapter: 40 held connections per server (4 sources x 10 ports),
    the 41st fails with connectx's EADDRNOTAVAIL, a held connection is reused from its own port."""
    pytest.importorskip("requests", reason="the 'http' extra (requests) is not installed")
    got = live("http_adapter")
    assert got == {"ok": {"127.0.0.10": 40, "127.0.0.11": 40}, "distinct": {"127.0.0.10": 40, "127.0.0.11": 40},
                   "reuse_same_port": True, "per_source": dict.fromkeys(SOURCES, 10),
                   "errors": {"127.0.0.10": "EADDRNOTAVAIL", "127.0.0.11": "EADDRNOTAVAIL"}}


def test_capabilities_of_this_kernel_are_probed() -> None:
    """The setsockopt probe finds both options on a 6.3+ kernel (4.2: 90c337da1524, 6.3: 91d0b78c5177)."""
    major, minor = (int(x) for x in os.uname().release.split(".")[:2])
    if (major, minor) < (6, 3):
        pytest.skip(f"kernel {os.uname().release} predates IP_LOCAL_PORT_RANGE; the expectation is for 6.3+")
    assert live("probe_here") == {"bind_address_no_port": True, "local_port_range": True}


def test_ipv6_live() -> None:
    """IPv6 works the same way (SOL_IP options apply to AF_INET6; the lookup uses __udp6_lib_lookup):
    one source ::1 x 10 ports = 10 TCP and 10 UDP connections to [::1]:80, then EADDRNOTAVAIL."""
    assert live("ipv6_counts") == {"tcp": [10, "EADDRNOTAVAIL", 10], "udp": [10, "EADDRNOTAVAIL", 10]}
