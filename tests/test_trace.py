# Tests of portalloc.trace that need no live kernel: the trace format and its error messages, the runner
# on the model (outcomes, same_as, EBADF, crash outcomes), the comparison logic (nondeterminism cutoff),
# the random generator's promises, and the replay/diff/verify commands through typer's CliRunner.
#
# The trace files under tests/traces/ (section-12 vectors and regressions) carry "expect" outcomes taken
# from the live kernel; here they are replayed on the model, so a model regression shows up even on a
# machine without root. A regression trace whose first line says "# open:" is a known, not yet fixed
# model divergence: it is an xfail (strict, so a fix makes it fail until the marker is removed).
"""portalloc.trace without a live kernel: format, runner, comparison, generator, CLI."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest
import typer
from hypothesis import HealthCheck, given, settings
from typer.testing import CliRunner

from helpers import examples, trace_file_params
from portalloc.cli import trace_cmds
from portalloc.trace import (
    Outcome,
    TraceError,
    build_host,
    compare,
    compare_runs,
    dumps_trace,
    load_trace,
    random_trace,
    run_trace,
    trace_from_dicts,
)
from portalloc.trace.format import Op
from portalloc.trace.generate import GenConfig
from portalloc.trace.strategies import traces

TRACES = Path(__file__).parent / "traces"
HEADER = '{"op": "host", "kernel": "linux-6.18", "sysctls": {"net.ipv4.ip_local_port_range": "40000 40001"}}'


def lines(*ops: dict[str, Any] | str) -> list[str]:
    return [o if isinstance(o, str) else json.dumps(o) for o in ops]


def run_model(text: list[str], seed: int = 0) -> list[Outcome]:
    t = load_trace(text)
    with build_host(t, "model", seed=seed) as host:
        return run_trace(t, host)


def results(outs: list[Outcome]) -> list[str]:
    return [o.result for o in outs]


# --- format --------------------------------------------------------------------------------------------


def test_load_from_lines_and_file_round_trip(tmp_path: Path) -> None:
    text = [
        "# comment", "", HEADER,
        '{"op": "socket", "name": "c1", "family": "inet6", "type": "dgram", "uid": 65534, "note": "x"}',
        '{"op": "setsockopt", "sock": "c1", "option": "IP_LOCAL_PORT_RANGE", "value": [40000, 40001]}',
        '{"op": "bind", "sock": "c1", "addr": "::", "port": {"same_as": "c1"}, "expect": ["ok", "EINVAL"]}',
        '{"op": "sleep", "seconds": 0.5}',
    ]
    t = load_trace(text)
    assert t.header["kernel"] == "linux-6.18" and t.header_line == 3
    assert [op.kind for op in t.ops] == ["socket", "setsockopt", "bind", "sleep"]
    assert [op.line for op in t.ops] == [4, 5, 6, 7]
    assert t.ops[2].expect == ("ok", "EINVAL")
    assert t.sleep_total == 0.5
    path = tmp_path / "t.jsonl"
    path.write_text(dumps_trace(t, ["saved"]))
    again = load_trace(path)
    assert again.lines() == t.lines() and again.source == str(path)
    assert path.read_text().startswith("# saved\n")
    assert load_trace(path.read_text()).lines() == t.lines()          # the text itself, not a path


def test_describe_is_readable() -> None:
    t = load_trace(lines({"op": "socket", "name": "c", "family": "inet", "type": "stream"},
                         {"op": "bind", "sock": "c", "addr": "127.0.0.1", "port": {"same_as": "c"}},
                         {"op": "accept", "sock": "c", "name": "a"}))
    assert [op.describe() for op in t.ops] == ["c = socket(inet, stream)", "c.bind(127.0.0.1, same_as c)",
                                              "a = c.accept()"]


SOCK = '{"op": "socket", "name": "c1", "family": "inet", "type": "stream"}'


@pytest.mark.parametrize(("text", "line", "message"), [
    ([SOCK, '{"op": "bind", "sock": "c1", "addr": "127.0.0.1", "port": 0'], 2, "malformed JSON"),
    ([SOCK, '{"op": "frobnicate"}'], 2, 'unknown op "frobnicate"'),
    (["", "# c", '{"sock": "c1"}'], 3, 'missing field "op"'),
    ([SOCK, '{"op": "bind", "sock": "c1", "addr": "127.0.0.1"}'], 2, 'missing field "port"'),
    ([SOCK, '{"op": "bind", "sock": "c9", "addr": "127.0.0.1", "port": 0}'], 2, 'unknown socket name "c9"'),
    ([SOCK, '{"op": "bind", "sock": "c1", "addr": "127.0.0.1", "port": {"same_as": "zz"}}'], 2,
     'unknown socket name "zz" in "same_as"'),
    ([SOCK, '{"op": "setsockopt", "sock": "c1", "option": "SO_KEEPALIVE", "value": 1}'], 2,
     'field "option" must be one of'),
    ([SOCK, '{"op": "setsockopt", "sock": "c1", "option": "IP_LOCAL_PORT_RANGE", "value": 5}'], 2,
     "value of IP_LOCAL_PORT_RANGE must be a pair"),
    ([SOCK, '{"op": "setsockopt", "sock": "c1", "option": "SO_BINDTODEVICE", "value": 1}'], 2,
     "value of SO_BINDTODEVICE must be a device name"),
    ([SOCK, '{"op": "bind", "sock": "c1", "adress": "127.0.0.1", "port": 0}'], 2, 'unknown field "adress"'),
    ([SOCK, '{"op": "bind", "sock": "c1", "addr": "localhost", "port": 0}'], 2, "address literal"),
    ([SOCK, '{"op": "bind", "sock": "c1", "addr": "127.0.0.1", "port": 70000}'], 2, "0..65535"),
    ([SOCK, '{"op": "bind", "sock": "c1", "addr": "127.0.0.1", "port": true}'], 2, "must be an integer"),
    (['{"op": "socket", "name": "c1", "family": "unix", "type": "stream"}'], 1, "inet, inet6"),
    ([SOCK, SOCK], 2, 'socket name "c1" is already introduced on line 1'),
    ([SOCK, HEADER], 2, 'header must be the first op'),
    (['[1, 2]'], 1, "must be a JSON object"),
    (['{"op": "sleep", "seconds": 1e9}'], 1, "seconds"),
    (['{"op": "sysctl", "name": "kernel.hostname", "value": "x"}'], 1, "net.* sysctl"),
    ([SOCK, '{"op": "connect", "sock": "c1", "addr": "127.0.0.1", "port": 1, "expect": 3}'], 2, "expect"),
])
def test_errors_name_the_line(text: list[str], line: int, message: str) -> None:
    with pytest.raises(TraceError) as exc:
        load_trace(text, source="t.jsonl")
    assert exc.value.line == line
    assert str(exc.value).startswith(f"t.jsonl:{line}: ")
    assert message in str(exc.value)


def test_unreadable_file_is_a_trace_error(tmp_path: Path) -> None:
    with pytest.raises(TraceError, match="cannot read the trace file") as exc:
        load_trace(tmp_path / "missing.jsonl")
    assert exc.value.line == 0


def test_trace_from_dicts_validates() -> None:
    with pytest.raises(TraceError, match="<generated>:2: unknown socket name"):
        trace_from_dicts([{"op": "sleep", "seconds": 0}, {"op": "close", "sock": "x"}])


# --- runner on the model --------------------------------------------------------------------------------


def test_runner_outcomes_and_ports() -> None:
    outs = run_model(lines(
        HEADER,
        {"op": "socket", "name": "L", "family": "inet", "type": "stream"},
        {"op": "bind", "sock": "L", "addr": "127.0.0.1", "port": 5000},
        {"op": "listen", "sock": "L"},
        *[o for i in (1, 2, 3) for o in (
            {"op": "socket", "name": f"c{i}", "family": "inet", "type": "stream"},
            {"op": "connect", "sock": f"c{i}", "addr": "127.0.0.1", "port": 5000})],
        {"op": "accept", "sock": "L", "name": "a1"},
        {"op": "socket", "name": "u", "family": "inet", "type": "dgram"},
        {"op": "listen", "sock": "u"},
        {"op": "accept", "sock": "u", "name": "a2"},
        {"op": "close", "sock": "a2"},
        {"op": "bind", "sock": "u", "addr": "::1", "port": 0},
    ))
    assert results(outs) == ["ok", "ok", "ok", "ok", "ok", "ok", "ok", "ok", "EADDRNOTAVAIL", "ok", "ok",
                             "EOPNOTSUPP", "EOPNOTSUPP", "ok", "EAI_ADDRFAMILY"]
    assert outs[1].port == 5000
    assert {outs[4].port, outs[6].port} == {40000, 40001}
    assert outs[8].port is None and outs[8].detail
    assert outs[9].port == 5000                       # the accepted socket's local port
    assert outs[0].port is None
    assert [o.index for o in outs] == list(range(len(outs)))
    assert outs[4].to_json()["port"] == outs[4].port


def test_same_as_follows_the_socket_and_survives_close() -> None:
    outs = run_model(lines(
        HEADER,
        {"op": "socket", "name": "L", "family": "inet", "type": "stream"},
        {"op": "bind", "sock": "L", "addr": "127.0.0.1", "port": 5000},
        {"op": "listen", "sock": "L"},
        {"op": "socket", "name": "c", "family": "inet", "type": "stream"},
        {"op": "setsockopt", "sock": "c", "option": "SO_REUSEADDR", "value": 1},
        {"op": "connect", "sock": "c", "addr": "127.0.0.1", "port": 5000},
        {"op": "accept", "sock": "L", "name": "a"},
        {"op": "close", "sock": "c"},                 # client closes first ...
        {"op": "close", "sock": "a"},                 # ... TIME_WAIT on c's port
        {"op": "socket", "name": "p", "family": "inet", "type": "stream"},
        {"op": "bind", "sock": "p", "addr": "127.0.0.1", "port": {"same_as": "c"}},
        {"op": "socket", "name": "r", "family": "inet", "type": "stream"},
        {"op": "setsockopt", "sock": "r", "option": "SO_REUSEADDR", "value": 1},
        {"op": "bind", "sock": "r", "addr": "127.0.0.1", "port": {"same_as": "c"}},
        {"op": "socket", "name": "n", "family": "inet", "type": "stream"},
        {"op": "bind", "sock": "n", "addr": "127.0.0.2", "port": {"same_as": "n"}},   # never bound: port 0
    ))
    assert results(outs)[10] == "EADDRINUSE"
    assert results(outs)[13] == "ok" and outs[13].port == outs[5].port
    assert results(outs)[15] == "ok" and outs[15].port in (40000, 40001)


def test_ops_on_missing_sockets_are_ebadf() -> None:
    outs = run_model(lines(
        {"op": "socket", "name": "L", "family": "inet", "type": "stream"},
        {"op": "listen", "sock": "L"},
        {"op": "accept", "sock": "L", "name": "a"},           # nothing pending: EAGAIN, no socket "a"
        {"op": "bind", "sock": "a", "addr": "127.0.0.1", "port": 0},
        {"op": "close", "sock": "a"},
        {"op": "close", "sock": "L"},
        {"op": "close", "sock": "L"},
        {"op": "listen", "sock": "L"},
        {"op": "sysctl", "name": "net.ipv4.tcp_tw_reuse", "value": 7},
        {"op": "sysctl", "name": "net.ipv4.ip_local_port_range", "value": [40000, 40003]},
        {"op": "sleep", "seconds": 0.25},
    ))
    assert results(outs) == ["ok", "ok", "EAGAIN", "EBADF", "ok", "ok", "ok", "EBADF", "EINVAL", "ok", "ok"]


class _Boom:
    """A host whose sockets crash on bind (stands in for a model bug)."""

    def socket(self, family: int, type: int, uid: int = 0) -> Any:
        return self

    def bind(self, address: Any) -> None:
        raise KeyError("bucket")

    def getsockname(self) -> tuple[str, int]:
        return ("0.0.0.0", 0)

    def sleep(self, seconds: float) -> None:
        pass


def test_backend_crash_is_an_outcome() -> None:
    t = load_trace(lines({"op": "socket", "name": "c", "family": "inet", "type": "stream"},
                         {"op": "bind", "sock": "c", "addr": "127.0.0.1", "port": 0},
                         {"op": "sleep", "seconds": 0}))
    seen: list[Outcome] = []
    outs = run_trace(t, _Boom(), on_outcome=seen.append)
    assert results(outs) == ["ok", "crash:KeyError", "ok"]
    assert "bucket" in outs[1].detail and seen == outs


_SLEEP0 = '{"op": "sleep", "seconds": 0}'    # a trace needs one op besides its header


def test_build_host_rejects_bad_headers() -> None:
    t = load_trace(['{"op": "host", "kernel": "linux-0.1"}', _SLEEP0], source="h.jsonl")
    with pytest.raises(TraceError, match="h.jsonl:1: the host header cannot be applied.*linux-0.1"):
        build_host(t, "model")
    t = load_trace(['{"op": "host", "sysctls": {"net.ipv4.tcp_tw_reuse": 9}}', _SLEEP0], source="h.jsonl")
    with pytest.raises(TraceError, match="h.jsonl:1: .*EINVAL"):
        build_host(t, "model")
    with pytest.raises(ValueError, match="backend"):
        build_host(t, "other")


# --- comparison -----------------------------------------------------------------------------------------

_OP = Op("connect", {"sock": "c", "addr": "127.0.0.1", "port": 5000}, 1)


def outs(*rs: str) -> list[Outcome]:
    return [Outcome(i, _OP, r, 40000 + i) for i, r in enumerate(rs)]


def test_compare_ignores_ports_and_finds_first_difference() -> None:
    a = outs("ok", "ok", "EADDRINUSE", "ok")
    b = [Outcome(o.index, o.op, o.result, 50000) for o in a]
    assert compare(a, b) is None
    d = compare(a, outs("ok", "ok", "ok", "EAGAIN"))
    assert d is not None and d.index == 2 and (d.model.result, d.live.result) == ("EADDRINUSE", "ok")
    assert d.to_json()["line"] == 1
    with pytest.raises(ValueError, match="length"):
        compare(a, a[:2])


def test_compare_runs_excludes_nondeterministic_suffix() -> None:
    same = outs("ok", "ok", "ok", "EADDRINUSE")
    c = compare_runs([same, same], [same, same, same])
    assert (c.compared, c.excluded, c.divergence, c.nondeterministic) == (4, 0, None, None)
    assert c.runs == (2, 3) and c.ok

    # live varies at op 2: ops 2 and 3 are excluded even though op 3 differs between the sides
    c = compare_runs([outs("ok", "ok", "ok", "ok")] * 2,
                     [outs("ok", "ok", "ok", "EAGAIN"), outs("ok", "ok", "EADDRINUSE", "EAGAIN")])
    assert (c.compared, c.agreed, c.excluded) == (2, 2, 2) and c.ok
    assert c.nondeterministic is not None and c.nondeterministic.index == 2
    assert c.nondeterministic.live == ("ok", "EADDRINUSE") and not c.nondeterministic.disjoint

    # a deterministic difference before any variation is a divergence; later ops are skipped
    c = compare_runs([outs("ok", "EAGAIN", "ok")], [outs("ok", "ok", "ok")])
    assert not c.ok and c.divergence is not None and c.divergence.index == 1
    assert (c.compared, c.agreed, c.skipped, c.excluded) == (2, 1, 1, 0)
    assert json.loads(json.dumps(c.to_json()))["divergence"]["model"] == "EAGAIN"

    # model varies, sets disjoint from live: still only excluded, flagged as disjoint
    c = compare_runs([outs("ok"), outs("EAGAIN")], [outs("EINVAL")])
    assert c.ok and c.excluded == 1 and c.nondeterministic is not None and c.nondeterministic.disjoint


# --- generator ------------------------------------------------------------------------------------------

_LOOPBACK = {"127.0.0.1", "127.0.0.2", "127.0.0.3", "0.0.0.0", "::1", "::", "::ffff:127.0.0.1",
             "::ffff:127.0.0.2", "::ffff:0.0.0.0"}
#: Address classes the generator uses although they are not loopback: each is only bound (which sends nothing)
#: or connected to where the kernel refuses before any packet is built (generate.SPECIAL_DESTS, issue 8).
_NO_PACKET = {"127.255.255.255", "224.0.0.1", "255.255.255.255", "fe80::1", "ff02::1", "ff0e::1",
              "::ffff:224.0.0.1"}


def _check_generated(t: Any, cfg: GenConfig) -> None:
    assert len(t.ops) <= cfg.max_ops
    assert t.sleep_total <= cfg.max_sleep + 1e-9
    lo, hi = (int(x) for x in t.header["sysctls"]["net.ipv4.ip_local_port_range"].split())
    assert 2 <= hi - lo + 1 <= 8
    assert [op.describe() for op in t.ops[:3]] == ["L0 = socket(inet, stream)", "L0.bind(127.0.0.1, 5000)",
                                                  "L0.listen(128)"]
    for op in t.ops:
        if "addr" in op.args:
            assert op["addr"] in _LOOPBACK | _NO_PACKET, op
        if op.kind == "listen":
            assert op.get("backlog", 128) >= 16


def test_random_traces_are_reproducible_and_within_limits() -> None:
    cfg = GenConfig()
    assert random_trace(5).lines() == random_trace(5).lines()
    assert random_trace(5).lines() != random_trace(6).lines()
    kinds: set[str] = set()
    options: set[str] = set()
    for seed in range(300):
        t = random_trace(random.Random(seed), cfg)
        _check_generated(t, cfg)
        kinds |= {op.kind for op in t.ops}
        options |= {op["option"] for op in t.ops if op.kind == "setsockopt"}
    assert kinds == {"socket", "setsockopt", "bind", "connect", "listen", "accept", "close", "sleep", "sysctl",
                     "settimeout", "setblocking", "getsockopt"}
    assert len(options) == 7


def test_random_traces_run_on_the_model_without_crashing() -> None:
    for seed in range(150):
        t = random_trace(f"model:{seed}")
        with build_host(t, "model") as host:
            crashed = [o for o in run_trace(t, host) if o.result.startswith("crash:")]
        assert not crashed, (seed, [(o.op.describe(), o.detail) for o in crashed])


@settings(max_examples=examples(60), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(traces())
def test_hypothesis_traces_are_valid_and_run_on_the_model(t: Any) -> None:
    _check_generated(t, GenConfig())
    again = load_trace(dumps_trace(t).splitlines())
    assert again.lines() == t.lines()
    with build_host(t, "model") as host:
        res = run_trace(t, host)
    assert len(res) == len(t.ops)
    assert not [o for o in res if o.result.startswith("crash:")]


# --- the checked-in traces, on the model ----------------------------------------------------------------




def test_at_least_15_section_12_vectors_are_traces() -> None:
    assert len({p.name[:4] for p in TRACES.glob("tv*.jsonl")}) >= 15


@pytest.mark.parametrize("path", trace_file_params())
def test_trace_expectations_hold_on_the_model(path: Path) -> None:
    """Every "expect" of the checked-in traces (the live kernel's outcomes) holds on the model, seeds 0-2."""
    t = load_trace(path)
    assert any(op.expect for op in t.ops), "a checked-in trace must state its expected outcomes"
    for seed in range(3):
        with build_host(t, "model", seed=seed) as host:
            unmet = [(o.line, o.op.describe(), o.result, o.op.expect) for o in run_trace(t, host)
                     if o.expected is False]
        assert not unmet, f"seed {seed}: {unmet}"


# --- command line ---------------------------------------------------------------------------------------


@pytest.fixture
def cli() -> typer.Typer:
    """The real app when the lead has registered the trace commands, else a local one with them."""
    try:
        from portalloc.cli.main import app

        names = {c.name or (c.callback.__name__ if c.callback else "") for c in app.registered_commands}
        if {"replay", "diff", "verify"} <= names:
            return app
    except ImportError:
        pass
    app = typer.Typer(add_completion=False)
    app.command("replay")(trace_cmds.replay)
    app.command("diff")(trace_cmds.diff)
    app.command("verify")(trace_cmds.verify)
    return app


@pytest.fixture
def trace_file(tmp_path: Path) -> Path:
    p = tmp_path / "t.jsonl"
    p.write_text("\n".join(lines(
        HEADER,
        {"op": "socket", "name": "L", "family": "inet", "type": "stream"},
        {"op": "bind", "sock": "L", "addr": "127.0.0.1", "port": 5000},
        {"op": "listen", "sock": "L"},
        {"op": "socket", "name": "c", "family": "inet", "type": "stream"},
        {"op": "connect", "sock": "c", "addr": "127.0.0.1", "port": 5000, "expect": "ok"},
    )) + "\n")
    return p


def test_cli_replay_table_and_json(cli: typer.Typer, trace_file: Path) -> None:
    r = CliRunner().invoke(cli, ["replay", str(trace_file)])
    assert r.exit_code == 0, r.output
    assert "c.connect(127.0.0.1, 5000)" in r.output and "✓" in r.output
    r = CliRunner().invoke(cli, ["replay", str(trace_file), "--json", "--kernel", "linux-6.8"])
    assert r.exit_code == 0, r.output
    doc = json.loads(r.output)
    assert doc["kernel"] == "linux-6.8" and doc["unmet_expectations"] == 0
    assert [o["result"] for o in doc["outcomes"]] == ["ok"] * 5
    assert doc["outcomes"][4]["port"] in (40000, 40001)


def test_cli_replay_unmet_expectation_exits_1(cli: typer.Typer, trace_file: Path) -> None:
    trace_file.write_text(trace_file.read_text().replace('"expect": "ok"', '"expect": "EAGAIN"'))
    r = CliRunner().invoke(cli, ["replay", str(trace_file)])
    assert r.exit_code == 1
    assert "did not give the expected outcome" in r.output


def test_cli_bad_trace_exits_2_without_traceback(cli: typer.Typer, tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text(SOCK + '\n{"op": "connect", "sock": "c2", "addr": "127.0.0.1", "port": 1}\n')
    for args in (["replay", str(bad)], ["diff", str(bad)]):
        r = CliRunner().invoke(cli, args)
        assert r.exit_code == 2, r.output
        assert f"{bad}:2: unknown socket name" in r.output.replace("\n", "")
        assert "Traceback" not in r.output
    r = CliRunner().invoke(cli, ["replay", str(tmp_path / "nope.jsonl")])
    assert r.exit_code == 2 and "cannot read the trace file" in r.output


def test_cli_replay_rejects_kernel_with_live_and_unknown_kernel(cli: typer.Typer, trace_file: Path) -> None:
    r = CliRunner().invoke(cli, ["replay", str(trace_file), "--live", "--kernel", "linux-6.8"])
    assert r.exit_code == 2 and "exclude each other" in r.output
    r = CliRunner().invoke(cli, ["replay", str(trace_file), "--kernel", "linux-0.1"])
    assert r.exit_code == 2 and "unknown kernel" in r.output and "Traceback" not in r.output


def test_cli_live_unavailable_exits_2(cli: typer.Typer, trace_file: Path, monkeypatch: pytest.MonkeyPatch
                                      ) -> None:
    import portalloc.live as live

    class NoLive:
        def __init__(self, *a: Any, **k: Any) -> None:
            raise live.LiveUnavailable("cannot create a network namespace: EPERM (test)")

    monkeypatch.setattr(live, "LiveHost", NoLive)
    for args in (["replay", str(trace_file), "--live"], ["diff", str(trace_file)], ["verify", "--traces", "2"]):
        r = CliRunner().invoke(cli, args)
        assert r.exit_code == 2, (args, r.output)
        assert "live backend is unavailable" in r.output and "EPERM (test)" in r.output.replace("\n", " ")
        assert "Traceback" not in r.output
