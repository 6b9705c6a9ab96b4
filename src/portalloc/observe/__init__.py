# portalloc.observe: the true headroom of a real host, per destination (`portalloc doctor`, `portalloc exporter`).
#
# Rules: reading a host (read.py) is the only I/O, and it is read-only; the snapshot (snapshot.py) is rebuilt
# in the model and the model answers the headroom; findings (findings.py) explain it in plain words; the
# exporter (exporter.py) publishes the same rows as Prometheus metrics, computed per scrape.
"""Read a real host's socket table, rebuild it in the model, and ask the model for the headroom."""

from __future__ import annotations

from portalloc.observe.read import ReadError, parse_ss, read_host, read_ss_file
from portalloc.observe.snapshot import Headroom, HostSnapshot, SockRow

__all__ = ["Headroom", "HostSnapshot", "ReadError", "SockRow", "parse_ss", "read_host", "read_ss_file"]
