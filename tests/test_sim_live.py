# `portalloc simulate --live` on the real kernel (issue 11, point 5): three small scenarios, each at most
# 20 s of real time, run by the same engine on the model and on a LiveHost (a private network namespace,
# 127.0.0.0/8 only), and their counts compared with exact equality.
#
# Rules: the tests are marked `live` and skip with the LiveUnavailable reason where no namespace can be made
# (not root). Why exact equality holds: arrivals are at fixed instants (constant arrivals), holds are
# constant and keep closes away from whole seconds (where TIME_WAIT is sampled), every run is shorter than
# TIME_WAIT's 60 s (no timer expires), and what is counted (connects, errnos, open sockets, TIME_WAITs)
# does not depend on which port the kernel picked. No tolerance is needed, so none is given.
"""The simulator against the live kernel."""

from __future__ import annotations

from typing import Any

import pytest

from portalloc.live import LiveUnavailable
from portalloc.sim import Scenario
from portalloc.sim.live import LiveCheckError, compare_live


def _live(d: dict[str, Any]) -> dict[str, Any]:
    try:
        from portalloc.live import LiveHost

        LiveHost().close()
    except LiveUnavailable as exc:
        pytest.skip(str(exc))
    try:
        return compare_live(Scenario.from_dict(d), max_duration=20)
    except LiveCheckError as exc:
        if "namespace" in str(exc):
            pytest.skip(str(exc))
        raise


def _tcp(technique: str, **w: Any) -> dict[str, Any]:
    return {"name": f"live-{technique}", "duration": 5, "seed": 3,
            "host": {"kernel": "linux-6.18", "addresses": ["127.0.0.1/8"],
                     "sysctls": {"net.ipv4.ip_local_port_range": "40000 40049"}},
            "workload": [{"name": "w", "to": ["127.0.0.1:8080", "127.0.0.2:8080"], "rate": 20, "hold": 30,
                          "technique": technique, "source": "127.0.0.1", **w}]}


@pytest.mark.live
def test_live_time_wait_bound() -> None:
    """100 ports, the client closes, 10 connections per second (> 100 / 60 s): 100 connect, then every
    connect() fails with EADDRNOTAVAIL until the first TIME_WAIT would expire, on both."""
    rep = _live({"name": "live-time-wait", "duration": 15, "seed": 1,
                 "host": {"kernel": "linux-6.18", "addresses": ["127.0.0.1/8"],
                          "sysctls": {"net.ipv4.ip_local_port_range": "40000 40099", "net.ipv4.tcp_tw_reuse": 0}},
                 "workload": [{"name": "w", "to": ["127.0.0.1:8080"], "rate": 10, "hold": 0.25,
                               "closes": "client"}]})
    assert rep["match"], rep["rows"]
    live = rep["live"]
    assert live["connected"] == 100 and live["failed"] == {"EADDRNOTAVAIL": 50}
    assert live["peak"]["time_wait"] == 100


@pytest.mark.live
def test_live_bind_before_connect_against_no_port() -> None:
    """50 ports, two destinations, connections held open: bind() before connect() gets 50 in all (then
    EADDRINUSE from bind); IP_BIND_ADDRESS_NO_PORT gets 50 per destination, 100."""
    bbc = _live(_tcp("bind-before-connect"))
    assert bbc["match"], bbc["rows"]
    assert bbc["live"]["connected"] == 50 and bbc["live"]["failed"] == {"EADDRINUSE": 50}
    no_port = _live(_tcp("no-port"))
    assert no_port["match"], no_port["rows"]
    assert no_port["live"]["connected"] == 100 and no_port["live"]["failed"] == {}


@pytest.mark.live
def test_live_connected_udp() -> None:
    """30 ports, connected UDP sockets toward two destinations held 10 s: 30 connect, then EAGAIN."""
    rep = _live({"name": "live-udp", "duration": 5, "seed": 2,
                 "host": {"kernel": "linux-6.18", "addresses": ["127.0.0.1/8"],
                          "sysctls": {"net.ipv4.ip_local_port_range": "40000 40029"}},
                 "workload": [{"name": "w", "proto": "udp", "to": ["127.0.0.1:5353", "127.0.0.2:5353"],
                               "rate": 10, "hold": 10}]})
    assert rep["match"], rep["rows"]
    assert rep["live"]["connected"] == 30 and rep["live"]["failed"] == {"EAGAIN": 20}


def test_live_refuses_non_loopback() -> None:
    d = _tcp("connect")
    d["workload"][0]["to"] = ["10.1.0.5:443"]
    d["workload"][0]["source"] = []
    with pytest.raises(LiveCheckError, match="not in 127.0.0.0/8"):
        compare_live(Scenario.from_dict(d), max_duration=20)


@pytest.mark.live
def test_cli_live_prints_equal_counts(tmp_path: Any) -> None:
    """`portalloc simulate SCENARIO --live --json`: the report's rows are all equal (exit 0)."""
    from typer.testing import CliRunner

    from portalloc.cli.main import app

    try:
        from portalloc.live import LiveHost

        LiveHost().close()
    except LiveUnavailable as exc:
        pytest.skip(str(exc))
    sc = tmp_path / "s.toml"
    sc.write_text('duration = 3\n[host]\naddresses = ["127.0.0.1/8"]\nsysctls = { "net.ipv4.ip_local_port_range" = '
                  '"40000 40019", "net.ipv4.tcp_tw_reuse" = 0 }\n[[workload]]\nname = "w"\nto = ["127.0.0.1:8080"]\n'
                  'rate = 10\nhold = 0.25\n')
    r = CliRunner().invoke(app, ["simulate", str(sc), "--live", "--json"])
    assert r.exit_code == 0, r.output
    import json

    rep = json.loads(r.stdout)
    assert rep["match"] and rep["live"]["connected"] == 20 and rep["live"]["failed"] == {"EADDRNOTAVAIL": 10}


def test_cli_live_refuses_other_addresses() -> None:
    from typer.testing import CliRunner

    from portalloc.cli.main import app

    r = CliRunner().invoke(app, ["simulate", "--example", "proxy-one-backend", "--live"])
    assert r.exit_code == 2 and "not in 127.0.0.0/8" in r.stderr


@pytest.mark.live
@pytest.mark.parametrize("closes", ["reset", "server"])
def test_live_reset_and_server_close_leave_no_client_time_wait(closes: str) -> None:
    """20 ports, 10 connections per second for 4 s: when the client resets (SO_LINGER {1, 0}) or the server
    closes first, the client keeps no TIME_WAIT, so all 40 connect on both (with closes = client, 20 would)."""
    rep = _live({"name": f"live-{closes}", "duration": 4, "seed": 1,
                 "host": {"kernel": "linux-6.18", "addresses": ["127.0.0.1/8"],
                          "sysctls": {"net.ipv4.ip_local_port_range": "40000 40019", "net.ipv4.tcp_tw_reuse": 0}},
                 "workload": [{"name": "w", "to": ["127.0.0.1:8080"], "rate": 10, "hold": 0.25, "closes": closes}]})
    assert rep["match"], rep["rows"]
    assert rep["live"]["connected"] == 40 and rep["live"]["peak"]["time_wait"] == 0
