# Progress on stderr for every command that can run longer than 2 s (issue 9).
#
# Rules: (1) progress goes to stderr only, so stdout stays exactly the table or the one JSON document
# (`--json` runs show progress too). (2) On a terminal: rich's progress bar, transient (it disappears when
# the work is done). (3) Anywhere else (a pipe, a CI log, a file): one plain line every
# PLAIN_INTERVAL seconds, the first one only once the work has run that long, so a run shorter than that
# prints nothing and a long one shows a sign of life ("verify: 12/100 (4.1 s) 1 divergent"). (4) Safe to
# call from worker threads (verify's callbacks come from a pool).
#
# Theory of operation: `progress(total, label)` is a context manager yielding a Progress-like object with
# `advance(n=1)` and `note(text)` (a short status shown after the count: the scenario being run, a
# divergence count). `total=None` means unknown (a count without "/total"). Work measured in a float
# (simulated seconds) uses `update(completed)`; work in phases of their own size (a run, then each fix's
# run) starts each with `phase(label, total)`, which resets the count. Every command uses this one
# helper; a new command reuses it as
#     with progress(len(items), "simulate") as bar:
#         for item in items:
#             ...
#             bar.advance()
"""Progress reporting on stderr: a rich bar on a terminal, a plain line every few seconds elsewhere."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TextIO

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

#: Seconds between two plain progress lines (and before the first one).
PLAIN_INTERVAL = 3.0


class ProgressReporter:
    """What ``progress()`` yields: call ``advance()`` per unit of work, ``note()`` to change the status."""

    def __init__(self, total: float | None, label: str, stream: TextIO | None = None,
                 interval: float = PLAIN_INTERVAL) -> None:
        self.total = total
        self.label = label
        self.done: float = 0
        self.status = ""
        self._stream = stream if stream is not None else sys.stderr
        self._interval = interval
        self._lock = threading.Lock()
        self._start = time.monotonic()
        self._last = self._start
        self._rich: Progress | None = None
        self._task: TaskID | None = None
        self._stop = threading.Event()
        self._ticker: threading.Thread | None = None
        console = Console(file=self._stream, highlight=False)
        if console.is_terminal:
            self._rich = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                  TextColumn("{task.fields[status]}"), TimeElapsedColumn(),
                                  console=console, transient=True)
            self._task = self._rich.add_task(label, total=total, status="")

    def advance(self, n: int = 1) -> None:
        """Count ``n`` more units of work as done."""
        with self._lock:
            self.done += n
            self._show()

    def update(self, completed: float) -> None:
        """Set the work done so far to ``completed`` (for work measured in a float, e.g. simulated seconds)."""
        with self._lock:
            self.done = completed
            self._show()

    def phase(self, label: str, total: float | None) -> None:
        """Start a new phase of ``total`` units named ``label``: the count restarts at 0."""
        with self._lock:
            self.label, self.total, self.done = label, total, 0
            if self._rich is not None and self._task is not None:
                self._rich.update(self._task, description=label, total=total, completed=0)
            self._show()

    def note(self, text: str) -> None:
        """Set the short status shown after the count (e.g. ``"linux-6.18"`` or ``"2 divergent"``)."""
        with self._lock:
            self.status = text
            self._show()

    def _show(self) -> None:
        if self._rich is not None and self._task is not None:
            self._rich.update(self._task, completed=self.done, status=self.status)
            return
        now = time.monotonic()
        if now - self._last >= self._interval:
            self._last = now
            count = f"{self.done:,.0f}/{self.total:,.0f}" if self.total is not None else f"{self.done:,.0f} done"
            status = f" {self.status}" if self.status else ""
            print(f"{self.label}: {count} ({now - self._start:.1f} s){status}", file=self._stream, flush=True)

    def _tick(self) -> None:
        """Plain mode: a line every interval even while one long unit of work runs (a bench phase)."""
        while not self._stop.wait(max(self._interval / 4, 0.05)):
            with self._lock:
                self._show()

    def __enter__(self) -> ProgressReporter:
        if self._rich is not None:
            self._rich.start()
        else:
            self._ticker = threading.Thread(target=self._tick, name=f"progress-{self.label}", daemon=True)
            self._ticker.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._rich is not None:
            self._rich.stop()
        if self._ticker is not None:
            self._stop.set()
            self._ticker.join(timeout=5)


@contextmanager
def progress(total: float | None, label: str, *, stream: TextIO | None = None,
             interval: float = PLAIN_INTERVAL) -> Iterator[ProgressReporter]:
    """Report progress of ``total`` units of work (``None``: unknown) on stderr, as ``label``.

    Yields a :class:`ProgressReporter`; call its ``advance(n=1)`` after each unit and ``note(text)`` to
    show a status. ``stream`` (default ``sys.stderr``) and ``interval`` exist for tests.
    """
    with ProgressReporter(total, label, stream, interval) as reporter:
        yield reporter
