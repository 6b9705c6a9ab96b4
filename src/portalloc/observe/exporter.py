# The Prometheus exporter: the doctor's rows as metrics, computed on every scrape.
#
# Rules: a custom Collector (prometheus_client), so each scrape reads the host, rebuilds it in the model and
# asks the model - no background thread, no stale numbers. Cardinality is bounded: the `top` destinations by
# use (in_use + time_wait) keep their own series; the rest are summed per (proto, src) under dst="other",
# dport="other" (their headroom series is the smallest headroom among them: the one that fails first).
# Metric names follow Prometheus conventions (snake case, `portalloc_` prefix, a unit or a count). A scrape's
# snapshot and model (100k records at scale, about a tenth of a scrape to free) are freed just after the
# response, by a one-shot timer, not inside the scrape: they are never read again.
"""HeadroomCollector and serve(): `portalloc exporter`."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from portalloc.observe.findings import findings
from portalloc.observe.snapshot import Headroom, HostSnapshot, no_gc

LABELS = ("proto", "src", "dst", "dport")
#: Seconds after a scrape at which its snapshot and model are freed (past the response, long before the next).
RELEASE_DELAY = 0.5


def top_rows(rows: list[Headroom], top: int) -> list[Headroom]:
    """The ``top`` rows by use (in_use + time_wait), then one "other" row per (proto, src) summing the rest
    (headroom: the smallest among them)."""
    ranked = sorted(rows, key=lambda r: (-(r.in_use + r.time_wait), r.proto, r.src, r.dst, r.dport))
    keep, rest = ranked[:top], ranked[top:]
    groups: dict[tuple[str, str], Headroom] = {}
    for r in rest:
        g = groups.get((r.proto, r.src))
        if g is None:
            groups[(r.proto, r.src)] = Headroom(r.proto, r.src, "other", 0, r.in_use, r.time_wait,
                                                r.reusable_time_wait, r.bind_locked, r.reserved, r.limit,
                                                r.headroom)
        else:
            g.in_use += r.in_use
            g.time_wait += r.time_wait
            g.reusable_time_wait += r.reusable_time_wait
            g.headroom = min(g.headroom, r.headroom)
    return keep + list(groups.values())


class HeadroomCollector:
    """prometheus_client Collector: ``read()`` gives a fresh HostSnapshot on each scrape."""

    def __init__(self, read: Callable[[], HostSnapshot], top: int = 20) -> None:
        self.read = read
        self.top = top
        #: the timer that frees the last scrape's snapshot and model (None before the first scrape)
        self.release: threading.Timer | None = None

    def describe(self) -> list[Any]:
        """No metrics are described up front (they are computed per scrape)."""
        return []

    def collect(self) -> Iterator[Any]:
        """Read, rebuild, ask the model; yield the metric families."""
        t0 = time.perf_counter()
        with no_gc():
            families = list(self._families(t0))
        yield from families

    def _families(self, t0: float) -> Iterator[Any]:
        from prometheus_client.core import GaugeMetricFamily

        snap = self.read()
        model = snap.to_model()
        rows = snap.headroom(host=model)
        self.release = release_later(snap, model)
        shown = top_rows(rows, self.top)
        fams = {
            "headroom": GaugeMetricFamily("portalloc_port_headroom", "Further connect() calls toward the "
                                          "destination that would get a source port now (the model's answer)",
                                          labels=LABELS),
            "in_use": GaugeMetricFamily("portalloc_ports_in_use", "Live connections toward the destination",
                                        labels=LABELS),
            "tw": GaugeMetricFamily("portalloc_time_wait_sockets", "TIME_WAIT sockets toward the destination",
                                    labels=LABELS),
            "tw_reusable": GaugeMetricFamily("portalloc_time_wait_reusable_sockets", "TIME_WAITs toward the "
                                             "destination that tcp_tw_reuse could take over now", labels=LABELS),
        }
        for r in shown:
            labels = [r.proto, r.src, r.dst, "other" if r.dst == "other" else str(r.dport)]
            fams["headroom"].add_metric(labels, r.headroom)
            fams["in_use"].add_metric(labels, r.in_use)
            fams["tw"].add_metric(labels, r.time_wait)
            fams["tw_reusable"].add_metric(labels, r.reusable_time_wait)
        yield from fams.values()
        lo, hi = snap.port_range
        locked = GaugeMetricFamily("portalloc_bind_locked_ports", "Ports of the ephemeral range held by "
                                   "bind()/listen(): taken from every destination", labels=["proto"])
        for proto in ("tcp", "udp"):
            locked.add_metric([proto], (snap.explicit_bits(proto) & (((1 << (hi - lo + 1)) - 1) << lo)
                                        & ~snap.reserved_bits).bit_count())
        yield locked
        limit = GaugeMetricFamily("portalloc_port_range_ports", "Ports in net.ipv4.ip_local_port_range")
        limit.add_metric([], hi - lo + 1)
        yield limit
        reserved = GaugeMetricFamily("portalloc_reserved_ports", "ip_local_reserved_ports inside the range")
        reserved.add_metric([], ((snap.reserved_bits >> lo) & ((1 << (hi - lo + 1)) - 1)).bit_count())
        yield reserved
        found = GaugeMetricFamily("portalloc_findings", "Doctor findings by kind and severity",
                                  labels=["kind", "severity"])
        counts: dict[tuple[str, str], int] = {}
        for f in findings(snap, rows):
            counts[(f.kind, f.severity)] = counts.get((f.kind, f.severity), 0) + 1
        for (kind, sev), n in sorted(counts.items()):
            found.add_metric([kind, sev], n)
        yield found
        info = GaugeMetricFamily("portalloc_info", "Where the table was read from", labels=["source", "kernel"])
        info.add_metric([snap.source, snap.kernel_release or ""], 1)
        yield info
        took = GaugeMetricFamily("portalloc_scrape_duration_seconds", "Seconds to read, rebuild and answer")
        took.add_metric([], time.perf_counter() - t0)
        yield took


def release_later(*objects: Any) -> threading.Timer:
    """Hold ``objects`` until RELEASE_DELAY seconds from now, then drop them (freeing what nothing else holds)
    on a daemon timer thread: off the scrape's response path."""
    held = list(objects)
    timer = threading.Timer(RELEASE_DELAY, held.clear)
    timer.daemon = True
    timer.start()
    return timer


def serve(listen: tuple[str, int], read: Callable[[], HostSnapshot], top: int,
          stop_after: float | None = None) -> None:
    """Serve /metrics on ``listen`` until interrupted (or ``stop_after`` seconds)."""
    from prometheus_client import CollectorRegistry, start_http_server

    registry = CollectorRegistry()
    registry.register(HeadroomCollector(read, top))   # type: ignore[arg-type]
    start_http_server(listen[1], addr=listen[0], registry=registry)
    deadline = None if stop_after is None else time.monotonic() + stop_after
    while deadline is None or time.monotonic() < deadline:
        time.sleep(0.5)
