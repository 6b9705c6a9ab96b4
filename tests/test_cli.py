# The command line: each command works for a user and refuses bad input without a traceback.
"""CLI tests (typer's CliRunner)."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from portalloc.cli.main import app

runner = CliRunner()


def test_kernels_json_lists_every_profile() -> None:
    res = runner.invoke(app, ["kernels", "--json"])
    assert res.exit_code == 0
    names = [k["name"] for k in json.loads(res.output)]
    assert "linux-6.18" in names and "linux-2.6" in names


def test_demo_every_claim_holds() -> None:
    res = runner.invoke(app, ["demo", "--json"])
    assert res.exit_code == 0, res.output
    chapters = json.loads(res.output)
    assert len(chapters) >= 7 and all(ch["ok"] for ch in chapters)


def test_bench_prints_figures() -> None:
    """A benchmark prints figures; this only checks that they are there and consistent."""
    res = runner.invoke(app, ["bench", "--json", "--connections", "2000", "--no-live", "--no-sim"])
    assert res.exit_code == 0, res.output
    fig = json.loads(res.output)
    fill = fig["fill_one_destination"]
    assert fill["connected"] == fill["failed_eaddrnotavail"] == 64512
    assert fill["kernel_probes_fill"] >= 64512
    assert fig["memory"]["connections"] == 2000


def test_bad_input_is_a_clear_error() -> None:
    res = runner.invoke(app, ["bench", "--connections", "5"])
    assert res.exit_code == 2 and "Traceback" not in res.output
    res = runner.invoke(app, ["no-such-command"])
    assert res.exit_code == 2 and "Traceback" not in res.output
