# The console the commands print their tables on.
#
# Rules: on a terminal, rich sizes tables to it. Piped to a file, a log or CI, rich would assume 80 columns and
# cut cells short ("EADDRNOTAVA…"); a pipe has no width, so tables get PIPE_WIDTH columns there, and every
# column folds text it still cannot fit rather than cutting it.
"""output_console(): stdout for tables, at a terminal's width or PIPE_WIDTH when piped."""

from __future__ import annotations

from rich.console import Console

#: Columns of a table printed to something that is not a terminal.
PIPE_WIDTH = 160


def output_console() -> Console:
    """A Console on stdout: the terminal's width, or PIPE_WIDTH columns when stdout is not a terminal."""
    con = Console(highlight=False)
    if not con.is_terminal:
        con = Console(highlight=False, width=PIPE_WIDTH)
    return con
