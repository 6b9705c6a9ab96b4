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
    names = [k["name"] for k in json.loads(res.stdout)]
    assert "linux-6.18" in names and "linux-2.6" in names


def test_demo_every_claim_holds() -> None:
    res = runner.invoke(app, ["demo", "--json"])
    assert res.exit_code == 0, res.output
    chapters = json.loads(res.stdout)
    assert len(chapters) >= 7 and all(ch["ok"] for ch in chapters)


def test_bench_prints_figures() -> None:
    """A benchmark prints figures; this only checks that they are there and consistent."""
    res = runner.invoke(app, ["bench", "--json", "--connections", "2000", "--no-live", "--no-sim"])
    assert res.exit_code == 0, res.output
    fig = json.loads(res.stdout)
    fill = fig["fill_one_destination"]
    assert fill["connected"] == fill["failed_eaddrnotavail"] == 64512
    assert fill["kernel_probes_fill"] >= 64512
    assert fig["memory"]["connections"] == 2000


def test_bad_input_is_a_clear_error() -> None:
    res = runner.invoke(app, ["bench", "--connections", "5"])
    assert res.exit_code == 2 and "Traceback" not in res.output
    res = runner.invoke(app, ["no-such-command"])
    assert res.exit_code == 2 and "Traceback" not in res.output


def test_progress_plain_lines_go_to_the_stream_only_after_the_interval() -> None:
    """Off a terminal: nothing for a run shorter than the interval; then "label: done/total (s) status"."""
    import io

    from portalloc.cli.progress import progress

    quiet = io.StringIO()
    with progress(3, "quick", stream=quiet, interval=100.0) as bar:
        bar.advance(3)
    assert quiet.getvalue() == ""
    loud = io.StringIO()
    with progress(3, "slow", stream=loud, interval=0.0) as bar:
        bar.note("linux-6.18")
        bar.advance(3)
    assert "slow: 3/3 (" in loud.getvalue() and loud.getvalue().rstrip().endswith("linux-6.18")


def test_json_output_stays_clean_while_progress_goes_to_stderr() -> None:
    """`compare --json` over several kernels: stdout is exactly one JSON document."""
    res = runner.invoke(app, ["compare", "bind-before-connect", "--kernels", "linux-4.1,linux-6.18", "--json"])
    assert res.exit_code == 0, res.stderr
    assert json.loads(res.stdout)["kernels"] == ["linux-4.1", "linux-6.18"]


def test_a_broken_in_tree_command_module_fails_loudly() -> None:
    """Registering commands never hides a broken in-tree import; only a named optional extra is skipped."""
    import pytest

    from portalloc.cli.main import _register_optional

    with pytest.raises(ModuleNotFoundError):
        _register_optional("portalloc.cli.no_such_module", {"x": "x"})
    _register_optional("no_such_optional_extra.cli", {"x": "x"}, extras=("no_such_optional_extra",))
