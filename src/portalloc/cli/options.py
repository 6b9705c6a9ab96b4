# Checks of command-line options shared by every command, made BEFORE any work starts.
#
# Rules: (1) a bad option is one line on stderr, "error: <what is wrong and how to fix it>", and exit
# status 2 (`fail`); never a traceback, never after a long run whose results would then be lost. (2) An
# option is checked once, not once per trace or per kernel. (3) These functions only read (a kernel
# name is resolved, a directory is probed with a temporary file that is removed at once); they never
# start a backend.
"""Shared CLI option checks: one-line errors, kernel names, output directories."""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path
from typing import NoReturn

import typer

from portalloc.kernels import get_profile


def one_line(message: object) -> str:
    """``message`` on one line (newlines and runs of blanks folded), as every CLI error is printed."""
    return " ".join(str(message).split())


def print_error(message: object) -> None:
    """Print ``error: <message>`` as one line on stderr (the form of every CLI refusal)."""
    print(f"error: {one_line(message)}", file=sys.stderr, flush=True)


def fail(message: object, code: int = 2) -> NoReturn:
    """Inside a command: print ``message`` as one error line and exit with ``code`` (2: bad input)."""
    print_error(message)
    raise typer.Exit(code)


def check_kernel(name: str | None, option: str = "--kernel") -> str | None:
    """``name`` if it is a kernel profile (``None`` passes: the default); else exit 2 with the choices."""
    if name is None:
        return None
    if not name.strip():
        fail(f"{option} is empty; give a kernel profile such as linux-6.18 (see `portalloc kernels`)")
    if len(name) > 64:
        fail(f"{option}: unknown kernel {name[:40]!r}... ({len(name)} characters); see `portalloc kernels`")
    try:
        get_profile(name)
    except (ValueError, TypeError) as exc:
        fail(f"{option}: {exc}")
    return name


def check_output_dir(path: Path, option: str) -> None:
    """Exit 2 unless ``path`` is a directory that can be written, or can be created (checked before a run).

    An existing file, a path under a file, or a place the user cannot write is refused. Nothing is left
    behind: a missing directory is not created here, and the probe file in an existing one is removed.
    """
    if "\0" in str(path):
        fail(f"{option}: the path contains a NUL byte; give a directory path")
    if path.exists() and not path.is_dir():
        fail(f"{option} {path}: exists and is not a directory; give a directory (it is created if missing)")
    probe = path
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    if not probe.is_dir():
        fail(f"{option} {path}: {probe} is not a directory; give a directory that can be created")
    _check_writable(probe, path, option)


def check_output_file(path: Path, option: str, suffixes: tuple[str, ...] = ()) -> None:
    """Exit 2 unless ``path`` names a file that can be written (its directory exists and is writable, it is
    not a directory, its suffix is one of ``suffixes`` when given). Checked before a run; nothing is left."""
    text = str(path)
    if not text or text == "." or "\0" in text:
        fail(f"{option}: give a file path")
    if suffixes and path.suffix.lower() not in suffixes:
        fail(f"{option} {path}: give a file ending in {', '.join(suffixes)}")
    if path.is_dir():
        fail(f"{option} {path}: is a directory; give a file path")
    parent = path.parent
    if parent.exists() and not parent.is_dir():
        fail(f"{option} {path}: {parent} is not a directory; give another path")
    if not parent.is_dir():
        fail(f"{option} {path}: the directory {parent} does not exist; create it or give another path")
    _check_writable(parent, path, option)


def _check_writable(directory: Path, path: Path, option: str) -> None:
    """Exit 2 unless a file can be created in ``directory`` (probed with a temporary file, removed at once)."""
    try:
        with tempfile.TemporaryFile(dir=directory):
            pass
    except OSError as exc:
        fail(f"{option} {path}: cannot write in {directory} ({os.strerror(exc.errno) if exc.errno else exc})")
