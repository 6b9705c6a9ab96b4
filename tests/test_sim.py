# Tests of `portalloc simulate` (issue 11): the engine gives each connection exactly the port and errno
# the same calls give on a fresh Host; the analytic threshold and Little's law hold; the findings, fixes,
# NAT limits, examples and CLI contract behave as documented.
#
# Rules: every scenario is seeded; random scenarios come from random.Random(seed) over a fixed seed range,
# so the suite is deterministic. Numbers asserted are the kernel's (range sizes, TIME_WAIT = 60 s) or the
# providers' documented limits, never a port number.
"""Tests of portalloc.sim and `portalloc simulate`."""

from __future__ import annotations

import json
import random
import socket
import struct
from typing import Any

import pytest
from typer.testing import CliRunner

from portalloc import Host
from portalloc.cli.main import app
from portalloc.sim import Scenario, ScenarioError, TraceRecorder, example, list_examples, simulate
from portalloc.sim.nat import AZURE_LB_DEFAULT_PORTS, azure_lb_default_ports
from portalloc.trace import build_host, load_trace, run_trace

runner = CliRunner()


def _scenario(**over: Any) -> dict[str, Any]:
    w = {"name": "w", "to": ["10.1.0.5:443"], "rate": 100, "hold": 0.5}
    w.update(over.pop("workload", {}))
    d: dict[str, Any] = {"duration": 5, "seed": 1, "host": {"kernel": "linux-6.18", "addresses": ["10.0.0.1/24"]},
                         "workload": [w]}
    d.update(over)
    return d


# ------------------------------------------------------------------------------------------- equivalence

def _random_scenario(seed: int) -> dict[str, Any]:
    """A small random scenario that exhausts a narrow range in some runs: every technique, closes mode,
    protocol, hold distribution; remote peers and local listeners."""
    r = random.Random(seed)
    proto = r.choice(["tcp", "tcp", "udp"])
    local = r.random() < 0.4
    if local:
        dests = r.sample(["127.0.0.1:8080", "127.0.0.2:8080", "127.0.0.3:9090"], r.randint(1, 3))
        addresses = ["127.0.0.1/8"]
        sources = r.choice([[], ["127.0.0.1"], ["127.0.0.1", "127.0.0.5"]])
    else:
        dests = r.sample(["10.1.0.5:443", "10.1.0.6:443", "10.1.0.0/30:80"], r.randint(1, 2))
        addresses = ["10.0.0.1/24", "10.0.0.2/24"]
        sources = r.choice([[], ["10.0.0.1"], ["10.0.0.1", "10.0.0.2"]])
    lo = 40000 + r.randint(0, 1)
    hold = r.choice([0.0, 0.3, {"exponential": 0.8}, {"lognormal": 0.5, "sigma": 0.7}])
    w = {"name": "w", "proto": proto, "to": dests, "rate": r.choice([20, 40, 80]),
         "arrivals": r.choice(["constant", "poisson"]), "hold": hold,
         "closes": r.choice(["client", "server", "reset"]),
         "technique": r.choice(["connect", "bind-before-connect", "no-port"]) if sources else
         r.choice(["connect", "bind-before-connect"]), "source": sources}
    sysctls = {"net.ipv4.ip_local_port_range": f"{lo} {lo + r.choice([7, 15, 30])}",
               "net.ipv4.tcp_tw_reuse": r.choice([0, 1, 2])}
    return {"duration": r.choice([2, 3.5]), "seed": seed, "host": {"kernel": r.choice(["linux-6.18", "linux-5.15"]),
                                                                  "addresses": addresses, "sysctls": sysctls},
            "workload": [w]}


@pytest.mark.parametrize("seed", range(24))
def test_engine_matches_plain_socket_calls(seed: int) -> None:
    """Each simulated connection gets exactly the port and errno that the same calls on a fresh Host with the
    same seed give: the engine's calls, recorded as a trace, replayed op by op through the socket API."""
    sc = Scenario.from_dict(_random_scenario(seed))
    rec = TraceRecorder()
    res = simulate(sc, fixes=False, recorder=rec)
    trace = load_trace([json.dumps(op) for op in rec.ops], source=f"sim-{seed}")
    with build_host(trace, "model") as host:
        outcomes = run_trace(trace, host)
    checked = ports = 0
    for o in outcomes:
        if o.op.kind in ("bind", "connect") and "expect" in o.op.args:
            assert o.result == o.op["expect"], (seed, o.index, o.op.describe(), o.result)
            if o.result == "ok":
                assert o.port == rec.ports[o.index + 1], (seed, o.index)   # ops[0] is the host header
                ports += o.op.kind == "connect"
            checked += 1
        else:
            assert o.result == "ok", (seed, o.index, o.op.describe(), o.result, o.detail)
    # Every attempt the engine made on host 0 is in the trace.
    connects = sum(1 for o in outcomes if o.op.kind == "connect")
    failed_binds = sum(1 for o in outcomes if o.op.kind == "bind" and o.result != "ok")
    assert connects + failed_binds == res.attempts
    assert checked >= res.attempts
    assert ports == res.connected + (res.nat or {}).get("refused", 0)


def test_random_scenarios_do_run_out() -> None:
    """The equivalence test is not vacuous: some of its scenarios fail connections, with several errnos."""
    errnos: set[str] = set()
    for seed in range(24):
        errnos |= set(simulate(Scenario.from_dict(_random_scenario(seed)), fixes=False).failed)
    assert {"EADDRNOTAVAIL", "EADDRINUSE", "EAGAIN"} <= errnos


def test_trace_replays_with_the_cli(tmp_path: Any) -> None:
    """`portalloc simulate --trace` writes a trace that `portalloc replay` runs with every expect met."""
    sc = tmp_path / "s.toml"
    sc.write_text('duration = 3\nseed = 2\n[host]\naddresses = ["10.0.0.1/24"]\nsysctls = { '
                  '"net.ipv4.ip_local_port_range" = "40000 40009" }\n[[workload]]\nname = "w"\n'
                  'to = ["10.1.0.5:443"]\nrate = 5\nhold = 0.2\n')
    tr = tmp_path / "t.jsonl"
    r = runner.invoke(app, ["simulate", str(sc), "--trace", str(tr), "--no-fixes", "--json"])
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert doc["failed"] == {"EADDRNOTAVAIL": 5}      # 10 ports, 60 s TIME_WAIT: 10 of 15 connect
    r2 = runner.invoke(app, ["replay", str(tr), "--json"])
    assert r2.exit_code == 0, r2.output


# ------------------------------------------------------------------------------------------- model entry

def test_so_linger_zero_leaves_no_time_wait() -> None:
    """SO_LINGER {1, 0}: close() resets the connection (tcp_disconnect), no TIME_WAIT, the port is free."""
    h = Host("linux-6.18", seed=1, addresses=["10.0.0.1/24"],
             sysctls={"net.ipv4.ip_local_port_range": "40000 40000"})
    s = h.socket()
    assert s.connect_ex(("10.1.0.5", 443)) == 0
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.close()
    assert h.sockets() == []
    t = h.socket()
    assert t.connect_ex(("10.1.0.5", 443)) == 0
    with pytest.raises(OSError) as e:
        t.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, 1)      # sock_setsockopt: optlen < sizeof(linger)
    assert e.value.errno == 22


# ------------------------------------------------------------------------------------------- arithmetic

@pytest.mark.parametrize(("rate", "runs_out"), [(470, False), (471, True)])
def test_analytic_threshold_range_over_60s(rate: int, runs_out: bool) -> None:
    """Client closes, one destination, default range: 28,232 ports / 60 s = 470.53 connections per second.
    470/s never fails; 471/s fails before the first TIME_WAIT expires."""
    d = _scenario(duration=125 if not runs_out else 61, workload={"rate": rate, "hold": 0})
    d["host"].pop("sysctls", None)
    res = simulate(Scenario.from_dict(d), fixes=False)
    assert res.range_size == 28_232
    assert res.runs_out is runs_out
    if runs_out:
        assert res.failed.keys() == {"EADDRNOTAVAIL"}
        assert 28_232 / rate - 1 < res.first_failure_s < 60
    else:
        assert res.peak["time_wait"] == 60 * rate
    check = next(c for c in res.checks if c["check"] == "threshold")
    assert check["threshold_per_s"] == pytest.approx(28_232 / 60, abs=0.01)
    assert check["agrees"] is True


def test_littles_law() -> None:
    """Mean open connections = rate x mean hold; mean TIME_WAIT = close rate x 60 s (Poisson arrivals,
    exponential holds, 8 destinations)."""
    d = _scenario(duration=100, workload={"rate": 150, "hold": {"exponential": 2.0}, "arrivals": "poisson",
                                           "to": ["10.1.0.0/29:443", "10.1.0.9:443", "10.1.0.10:443"]})
    res = simulate(Scenario.from_dict(d), fixes=False)
    assert not res.runs_out
    checks = {c["check"]: c for c in res.checks}
    assert checks["little_in_use"]["ratio"] == pytest.approx(1.0, abs=0.08)
    assert checks["little_time_wait"]["ratio"] == pytest.approx(1.0, abs=0.03)


# ------------------------------------------------------------------------------------------- findings

def test_bind_before_connect_finding_and_no_port_fix() -> None:
    """bind() before connect() shares one range among all destinations (EADDRINUSE from bind); the
    no-port fix, checked by simulation, removes the failure."""
    d = _scenario(duration=4, workload={"to": ["10.1.0.5:443", "10.1.0.6:443", "10.1.0.7:443"], "rate": 30,
                                         "hold": 10, "technique": "bind-before-connect", "source": "10.0.0.1"})
    d["host"]["sysctls"] = {"net.ipv4.ip_local_port_range": "40000 40063"}
    res = simulate(Scenario.from_dict(d))
    assert res.failed.keys() == {"EADDRINUSE"}
    assert res.connected == 64                       # one range for all three destinations
    assert res.failure["call"] == "bind"
    assert "bind() before connect() locked a port" in res.findings[1]
    fixes = {f["fix"]: f for f in res.fixes}
    assert fixes["IP_BIND_ADDRESS_NO_PORT"]["fixes_it"] is True
    assert fixes["IP_BIND_ADDRESS_NO_PORT"]["connected"] == res.attempts
    assert fixes["wider range"]["fixes_it"] is True


def test_time_wait_finding_and_tw_reuse_fix() -> None:
    d = _scenario(duration=10, workload={"rate": 20, "hold": 0.1})
    d["host"]["sysctls"] = {"net.ipv4.ip_local_port_range": "40000 40099"}
    res = simulate(Scenario.from_dict(d))
    assert res.failure["errno"] == "EADDRNOTAVAIL"
    assert res.failure["time_wait_toward_destination"] + res.failure["open_toward_destination"] == 100
    assert "TIME_WAIT count" in res.findings[1]
    assert res.per_destination[0]["free_ports"] == 0          # Host.usable_ports: all 100 in TIME_WAIT at the end
    fixes = {f["fix"]: f for f in res.fixes}
    assert fixes["tcp_tw_reuse=1"]["fixes_it"] is True        # TIME_WAITs older than 1 s are taken over
    assert fixes["more source addresses"]["fixes_it"] is True
    assert fixes["connection reuse"]["fixes_it"] is True


def test_fix_checks_in_processes_give_the_same_rows() -> None:
    """Each fix is a whole simulation of its own: checked in two worker processes (simulate(workers=2), the
    CLI's default on a multi-core machine) its rows are those of the one-by-one check, in the same order."""
    d = _scenario(duration=10, workload={"rate": 20, "hold": 0.1})
    d["host"]["sysctls"] = {"net.ipv4.ip_local_port_range": "40000 40099"}
    one = simulate(Scenario.from_dict(d))
    two = simulate(Scenario.from_dict(d), workers=2)
    assert len(one.fixes) == 4 and one.fixes == two.fixes     # range, sources, tcp_tw_reuse, reuse
    r = runner.invoke(app, ["simulate", "--example", "proxy-one-backend", "--seed", "3", "--workers", "2",
                             "--json"])
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert {f["fix"] for f in doc["fixes"]} >= {"wider range", "tcp_tw_reuse=1"}
    assert all(f["fixes_it"] for f in doc["fixes"] if f["fix"] == "wider range")


def test_jobs_fall_back_to_this_process_when_workers_cannot_start(monkeypatch: pytest.MonkeyPatch) -> None:
    """sim/pool.map_jobs gives the same answers in order from worker processes, and where processes cannot
    start (no /dev/shm for multiprocessing's semaphores: OSError 38) it runs the jobs here and says why."""
    import concurrent.futures

    from portalloc.sim.pool import map_jobs

    jobs = [(2, 3), (3, 2), (5, 1)]
    ticks: list[int] = []
    assert map_jobs(pow, jobs, 2, lambda: ticks.append(1)) == ([8, 9, 5], None)
    assert len(ticks) == 3

    class NoPool:
        def __init__(self, *a: Any, **k: Any) -> None:
            raise OSError(38, "Function not implemented")

    monkeypatch.setattr(concurrent.futures, "ProcessPoolExecutor", NoPool)
    results, note = map_jobs(pow, jobs, 2)
    assert results == [8, 9, 5]
    assert note is not None and "Function not implemented" in note and "remaining 3 ran in this process" in note


def test_udp_connected_sockets_share_nothing() -> None:
    d = _scenario(duration=2, workload={"proto": "udp", "to": ["10.1.0.53:53", "10.1.0.54:53"], "rate": 50,
                                         "hold": 5})
    d["host"]["sysctls"] = {"net.ipv4.ip_local_port_range": "40000 40039"}
    res = simulate(Scenario.from_dict(d), fixes=False)
    assert res.connected == 40 and res.failed == {"EAGAIN": 60}
    assert "UDP autobind" in res.findings[1]


# ------------------------------------------------------------------------------------------- NAT

def test_azure_lb_default_table() -> None:
    assert [azure_lb_default_ports(n) for n in (1, 50, 51, 100, 101, 200, 201, 400, 401, 800, 801, 1000, 1001)] \
        == [1024, 1024, 512, 512, 256, 256, 128, 128, 64, 64, 32, 32, None]
    assert AZURE_LB_DEFAULT_PORTS[0] == (50, 1024)


def test_aws_nat_gateway_55000_per_destination() -> None:
    """20 hosts x 100 long-lived connections per second: the 55,000th translation toward one destination is
    the last one (27.5 s); with two public IPs, 110,000."""
    sc = example("aws-nat-gateway-one-api")
    res = simulate(sc, fixes=False)
    assert res.connected == 55_000
    assert res.first_failure_s == pytest.approx(27.5, abs=0.01)
    assert res.nat["capacity_per_key"] == 55_000
    two = simulate(sc.with_param("nat.public_ips", 2).with_param("duration", 30), fixes=False)
    assert not two.runs_out


def test_azure_pool_scaled_out_gets_worse() -> None:
    """dotnet/runtime#35508: 50 VMs have 1024 ports each and fit; 60 VMs have 512 each and fail."""
    sc = example("azure-pool-scaled-out").with_param("duration", 32)
    assert not simulate(sc.with_param("hosts", 50), fixes=False).runs_out
    sixty = simulate(sc, fixes=False)
    assert sixty.runs_out and sixty.nat["capacity_per_key"] == 512


def test_gcp_cloud_nat_min_ports() -> None:
    d = _scenario(duration=3, workload={"rate": 30, "hold": 30}, fleet={"hosts": 2},
                  nat={"kind": "gcp-cloud-nat"})
    res = simulate(Scenario.from_dict(d), fixes=False)
    assert res.connected == 2 * 64                  # min_ports_per_vm default 64, per VM and destination


# ------------------------------------------------------------------------------------------- scenarios

def test_bundled_examples() -> None:
    names = set(list_examples())
    assert names == {"proxy-one-backend", "envoy-upstream-bind-config", "load-generator-one-server",
                     "dns-forwarder-udp", "aws-nat-gateway-one-api", "azure-pool-scaled-out"}
    for n in names:
        sc = example(n)
        assert sc.description and sc.incident


@pytest.mark.parametrize(("patch", "message"), [
    ({"rate": -1}, "workload.w.rate: must be a positive number"),
    ({"hold": "3 parsecs"}, "workload.w.hold: bad duration"),
    ({"closes": "never"}, "workload.w.closes: must be one of client, server, reset"),
    ({"colour": "red"}, "workload.w.colour: unknown key"),
    ({"to": ["10.1.0.5"]}, "workload.w.to: bad destination"),
    ({"hold": {"lognormal": 1.0}}, "workload.w.hold.sigma"),
])
def test_scenario_errors_name_the_key(patch: dict[str, Any], message: str) -> None:
    with pytest.raises(ScenarioError) as e:
        Scenario.from_dict(_scenario(workload=patch))
    assert str(e.value).startswith(message)
    assert "\n" not in str(e.value)


def test_durations_and_cidr() -> None:
    sc = Scenario.from_dict(_scenario(duration="2m", workload={"hold": "500ms", "to": ["10.1.0.0/28:443"]}))
    assert sc.duration == 120 and sc.workloads[0].hold.mean == 0.5
    assert len(sc.workloads[0].to) == 14


@pytest.mark.parametrize(("args", "message"), [
    (["--example", "nope"], "no bundled example 'nope'"),
    (["--vary", "colour=1,2"], "--vary colour=1"),
    (["--vary", "rate"], "give KEY=V1,V2"),
    (["/nonexistent.toml"], "cannot read it"),
    (["--kernel", "linux-1.0"], "host.kernel"),
])
def test_cli_bad_input_one_line_exit_2(args: list[str], message: str) -> None:
    r = runner.invoke(app, ["simulate", *args])
    assert r.exit_code == 2
    assert message in r.stderr
    assert "Traceback" not in r.output


def test_cli_plot_without_matplotlib(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    import builtins

    real = builtins.__import__

    def no_mpl(name: str, *a: Any, **k: Any) -> Any:
        if name.startswith("matplotlib"):
            raise ImportError(name)
        return real(name, *a, **k)

    monkeypatch.setattr(builtins, "__import__", no_mpl)
    r = runner.invoke(app, ["simulate", "--example", "load-generator-one-server", "--plot", str(tmp_path / "p.png")])
    assert r.exit_code == 2 and "pip install 'portalloc[sim]'" in r.stderr


def test_cli_vary_grid_json_and_workers() -> None:
    args = ["simulate", "--example", "load-generator-one-server", "--vary", "duration=5,16", "--json"]
    r = runner.invoke(app, args)
    assert r.exit_code == 0, r.output
    docs = json.loads(r.stdout)
    assert [d["params"] for d in docs] == [{"duration": 5}, {"duration": 16}]
    assert docs[0]["first_failure_s"] is None and docs[1]["failed"] == {"EADDRNOTAVAIL": 3768}
    r2 = runner.invoke(app, [*args, "--workers", "2"])
    assert r2.exit_code == 0, r2.output
    strip = [{k: v for k, v in d.items() if k != "wall_s"} for d in docs]
    assert [{k: v for k, v in d.items() if k != "wall_s"} for d in json.loads(r2.stdout)] == strip


def test_cli_dask_in_process_cluster() -> None:
    """--dask sends the variants to an existing cluster: a LocalCluster with in-process transport (no TCP
    sockets in the machine's namespace)."""
    distributed = pytest.importorskip("distributed", reason="dask[distributed] is not installed")
    with distributed.LocalCluster(processes=False, n_workers=1, threads_per_worker=1, dashboard_address=None,
                                  protocol="inproc") as cluster:
        r = runner.invoke(app, ["simulate", "--example", "load-generator-one-server", "--vary", "rate=1000,2000",
                                "--vary", "duration=5", "--dask", cluster.scheduler_address, "--json"])
    assert r.exit_code == 0, r.output
    docs = json.loads(r.stdout)
    assert [d["params"]["rate"] for d in docs] == [1000, 2000]
    assert [d["attempts"] for d in docs] == [5000, 10000]


def test_cli_default_runs_the_bundled_proxy_example_json() -> None:
    r = runner.invoke(app, ["simulate", "--json", "--no-fixes"])
    assert r.exit_code == 0, r.output
    d = json.loads(r.stdout)
    for key in ("attempts", "connected", "failed", "first_failure_s", "peak", "workloads", "timeline",
                "per_destination"):
        assert key in d
    assert set(d["timeline"][0]) == {"t", "attempts", "connected", "failed", "in_use", "time_wait"}
    assert d["scenario"] == "proxy-one-backend" and d["failed"]["EADDRNOTAVAIL"] > 0


def test_cli_plot_writes_a_png(tmp_path: Any) -> None:
    pytest.importorskip("matplotlib", reason="matplotlib (the sim extra) is not installed")
    png = tmp_path / "p.png"
    r = runner.invoke(app, ["simulate", "--example", "load-generator-one-server", "--no-fixes", "--plot", str(png)])
    assert r.exit_code == 0, r.output
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_list() -> None:
    r = runner.invoke(app, ["simulate", "--list", "--json"])
    assert r.exit_code == 0, r.output
    assert {d["name"] for d in json.loads(r.stdout)} == set(list_examples())
    r2 = runner.invoke(app, ["simulate", "--list"])
    assert r2.exit_code == 0 and "proxy-one-backend (default)" in r2.stdout


@pytest.mark.parametrize(("technique", "connected", "failed"), [
    ("bind-before-connect", 100, {"EADDRINUSE": 140}),     # 50 ports per source, host-wide
    ("no-port", 200, {"EADDRNOTAVAIL": 40}),               # 50 per (source, destination) pair
    ("connectx", 200, {"EADDRNOTAVAIL": 40}),              # portalloc.connectx over the model
])
def test_techniques_over_two_sources_and_two_destinations(technique: str, connected: int,
                                                          failed: dict[str, int]) -> None:
    d = _scenario(duration=4, workload={"to": ["10.1.0.5:443", "10.1.0.6:443"], "rate": 60, "hold": 30,
                                         "technique": technique, "source": ["10.0.0.1", "10.0.0.2"]})
    d["host"]["addresses"] = ["10.0.0.1/24", "10.0.0.2/24"]
    d["host"]["sysctls"] = {"net.ipv4.ip_local_port_range": "40000 40049"}
    res = simulate(Scenario.from_dict(d), fixes=False)
    assert (res.connected, res.failed) == (connected, failed)


ISSUE_EXAMPLE = '''
duration = 120                       # simulated seconds (or "2m", "500ms")
seed = 1
[host]
kernel = "linux-6.18"
addresses = ["10.0.0.1/24"]          # the host's own addresses (default: as Host's)
sysctls = { "net.ipv4.ip_local_port_range" = "32768 60999" }
[[workload]]
name = "api"
proto = "tcp"                        # tcp | udp
to = ["10.1.0.5:443"]                # destinations; "10.1.0.0/28:443" expands a CIDR; spread evenly
rate = 600                           # new connections per second
arrivals = "constant"                # constant | poisson
hold = 0.2                           # seconds open: a number, or { exponential = 2.0 }, or { lognormal = 1.0, sigma = 0.5 }
closes = "client"                    # who closes first: client (TIME_WAIT here) | server | reset
technique = "connect"                # connect | bind-before-connect | no-port | connectx
source = "10.0.0.1"                  # a source address, or a list (round-robin); absent: the kernel chooses
'''  # noqa: E501 - the issue's text, verbatim


def test_the_issue_example_loads_and_runs(tmp_path: Any) -> None:
    """The scenario file of issue 11, verbatim: 600/s toward one destination over 28,232 ports runs out at
    28,232 / 600 = 47.05 s."""
    p = tmp_path / "issue.toml"
    p.write_text(ISSUE_EXAMPLE)
    sc = Scenario.load(p)
    assert sc.name == "issue" and sc.duration == 120
    res = simulate(sc.with_param("duration", 50), fixes=False)
    assert res.first_failure_s == pytest.approx(28_232 / 600, abs=0.01)
    assert any("source is ignored" in n for n in res.notes)


def test_any_bad_scenario_is_one_scenario_error() -> None:
    """Seeded mutations of a valid scenario (wrong types, NaN, infinities, unhashable values, unknown keys) give
    a valid Scenario or one ScenarioError of one line, nothing else."""
    import copy

    base = {**_scenario(fleet={"hosts": 2}, nat={"kind": "gcp-cloud-nat", "min_ports_per_vm": 64}),
            "workload": [{"name": "w", "to": ["10.1.0.5:443"], "rate": 10, "hold": 0.5, "source": "10.0.0.1",
                          "technique": "no-port"}]}
    values: list[Any] = [None, True, 0, -1, 1.5, float("inf"), float("nan"), "", "x", "2m", "10.0.0.0/8:1", [], [1],
                         {}, {"exponential": 1}, {"lognormal": 1, "sigma": "a"}, {"a": 1}, 2**70, "-5s"]
    paths = [("duration",), ("seed",), ("host",), ("host", "kernel"), ("host", "addresses"), ("host", "sysctls"),
             ("workload",), ("workload", 0, "to"), ("workload", 0, "rate"), ("workload", 0, "hold"),
             ("workload", 0, "name"), ("workload", 0, "closes"), ("workload", 0, "source"), ("fleet", "hosts"),
             ("nat",), ("nat", "kind"), ("nat", "public_ips"), ("nat", "dynamic_port_allocation"), ("extra",)]
    rnd = random.Random(11)
    for _ in range(1500):
        d = copy.deepcopy(base)
        for _ in range(rnd.randint(1, 2)):
            path, value = rnd.choice(paths), copy.deepcopy(rnd.choice(values))
            cur: Any = d
            for k in path[:-1]:
                try:
                    cur = cur[k]
                except (KeyError, IndexError, TypeError):     # an earlier mutation replaced the section
                    cur = {}
            if isinstance(cur, dict):
                cur[path[-1]] = value
        try:
            Scenario.from_dict(d)
        except ScenarioError as exc:
            assert "\n" not in str(exc)
