# Findings: what in a snapshot eats ports, in plain words, each with its fix.
#
# Rules: a finding is (kind, severity, detail, fix); severity is "critical" (a destination is at or near
# exhaustion), "warning" (something takes ports it need not) or "info". Thresholds are stated with each
# kind. No I/O: a finding is read from the snapshot and the model's headroom rows only.
# Kernel facts behind them: bind()-chosen ports are skipped by every connect() (__inet_hash_connect skips
# buckets with fastreuse >= 0); connect() rounds an odd-sized range down to even and scans low's parity
# first (1580ab63fc9a, 4.6); reserved ports are skipped by automatic selection; UDP sockets sharing a port
# under SO_REUSEADDR are looked up by score, so a connected socket takes its peer's datagrams from an
# unconnected one (and two connected to the same peer: the newest wins) (__udp4_lib_lookup).
"""findings(): plain-word diagnoses of a HostSnapshot, each with its fix."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import asdict, dataclass
from typing import Any

from portalloc.observe.snapshot import Headroom, HostSnapshot, wire

#: A destination is critical below this share of the range left.
LOW_HEADROOM = 0.10
#: TIME_WAITs toward one destination above this share of the range: a pile-up.
TW_PILEUP = 0.25
#: A range narrower than this many ports is called narrow (the 4.2+ default has 28,232).
NARROW_RANGE = 16384
#: Reserved ports above this share of the range are called out.
RESERVED_SHARE = 0.10


@dataclass(frozen=True)
class Finding:
    """One diagnosis: ``kind`` (machine name), ``severity``, ``detail`` (what was seen), ``fix``."""

    kind: str
    severity: str
    detail: str
    fix: str

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready data."""
        return asdict(self)


def findings(snap: HostSnapshot, rows: list[Headroom]) -> list[Finding]:
    """Every finding for ``snap`` and its headroom ``rows``, most severe first."""
    out: list[Finding] = []
    lo, hi = snap.port_range
    size = hi - lo + 1
    for r in rows:
        if r.headroom <= LOW_HEADROOM * r.limit:
            out.append(Finding(
                "low_headroom", "critical",
                f"{r.proto} {r.src} -> {r.dst}:{r.dport}: {r.headroom} more connect() calls will get a port "
                f"({r.in_use} in use, {r.time_wait} TIME_WAIT, {r.bind_locked} bind-locked, {r.reserved} reserved "
                f"of {r.limit})",
                "reuse connections (keep-alive, pooling), add source addresses or destination ports, or widen "
                "net.ipv4.ip_local_port_range"))
        if r.proto == "tcp" and r.time_wait >= TW_PILEUP * r.limit and r.reusable_time_wait < r.time_wait:
            out.append(Finding(
                "time_wait_pileup", "warning",
                f"{r.time_wait} TIME_WAITs toward {r.dst}:{r.dport} from {r.src} ({r.reusable_time_wait} reusable "
                f"now, tcp_tw_reuse={snap.sysctls.get('net.ipv4.tcp_tw_reuse', '?')})",
                "reuse connections instead of closing them (the side that closes first keeps the TIME_WAIT); "
                "set net.ipv4.tcp_tw_reuse=1 (2 covers loopback only) with timestamps on; spread over more "
                "source addresses"))
    binders = snap.client_binders()
    if binders:
        inferred = sum(1 for c in binders if "inferred" in c.inferred)
        out.append(Finding(
            "bind_before_connect", "warning",
            f"{len(binders)} outgoing connections hold ports chosen by bind() ({inferred} inferred from the port "
            "parity): each such port is taken from every destination, not just its own",
            "set IP_BIND_ADDRESS_NO_PORT before bind(addr, 0) (or do not bind the source at all), so connect() "
            "picks the port per destination"))
    if size < NARROW_RANGE:
        out.append(Finding(
            "narrow_range", "warning" if size < 4096 else "info",
            f"net.ipv4.ip_local_port_range is {lo}-{hi}: {size} ports per destination at most",
            "widen it (the default is 32768-60999), e.g. sysctl -w net.ipv4.ip_local_port_range='10000 65000'"))
    if (hi - lo) % 2 == 0 and size > 1:
        out.append(Finding(
            "range_parity", "info",
            f"{lo}-{hi} holds an odd number of ports: connect() rounds the count down to even and scans "
            f"{'even' if lo % 2 == 0 else 'odd'} ports first, so one end port is reachable only sometimes",
            "give low and high different parities (e.g. 32768 60999) so both halves are equal"))
    reserved = (snap.reserved_bits >> lo) & ((1 << size) - 1)
    if reserved.bit_count() >= RESERVED_SHARE * size:
        out.append(Finding(
            "reserved_ports", "warning",
            f"net.ipv4.ip_local_reserved_ports takes {reserved.bit_count()} of the {size} ports of the range",
            "reserve only the ports your listeners use, or move those listeners below the ephemeral range"))
    listeners = sorted({(wire(c.row.local[0]), c.row.local[1]) for c in snap.of_role("listener")
                        if lo <= c.row.local[1] <= hi
                        and not (snap.reserved_bits >> c.row.local[1]) & 1})
    if listeners:
        shown = ", ".join(f"{a}:{p}" for a, p in listeners[:5]) + (" ..." if len(listeners) > 5 else "")
        out.append(Finding(
            "listener_in_range", "warning",
            f"{len(listeners)} listener(s) inside the ephemeral range ({shown}): connect() can never use those "
            "ports, and a restarted listener may find its port taken by a client",
            "move listeners below net.ipv4.ip_local_port_range, or add their ports to "
            "net.ipv4.ip_local_reserved_ports"))
    out.extend(_udp_overshadow(snap))
    for note in snap.notes:
        if "invisible" in note or "does not dump" in note:
            out.append(Finding("blind_spot", "info", note,
                               "run the doctor on the host itself (sock_diag, Linux 6.8+) to count bound-only sockets"))
    order = {"critical": 0, "warning": 1, "info": 2}
    return sorted(out, key=lambda f: order[f.severity])


def _udp_overshadow(snap: HostSnapshot) -> list[Finding]:
    """UDP sockets sharing one local port (only SO_REUSEADDR/SO_REUSEPORT allows it) where a connected and an
    unconnected one, or two connected to the same peer, compete for the same datagrams."""
    by_port: dict[int, list[Any]] = defaultdict(list)
    for c in snap.of_role("udp"):
        by_port[c.row.local[1]].append(c.row)
    out = []
    for port, rows in sorted(by_port.items()):
        if len(rows) < 2:
            continue
        connected = [r for r in rows if r.remote is not None]
        peers: dict[tuple[str, int], int] = defaultdict(int)
        for r in connected:
            assert r.remote is not None
            peers[(wire(r.remote[0]), r.remote[1])] += 1
        dup = [p for p, n in peers.items() if n > 1]
        if connected and len(connected) < len(rows) or dup:
            what = (f"{len(dup)} peer(s) with two or more connected sockets" if dup
                    else f"{len(connected)} connected and {len(rows) - len(connected)} unconnected sockets")
            out.append(Finding(
                "udp_overshadow", "warning",
                f"UDP port {port} is shared ({what}): the kernel delivers each datagram to the best-scoring "
                "socket, so a connected socket silently takes its peer's datagrams from the unconnected one "
                "(and of two connected to the same peer, only one gets them)",
                "give each connected UDP flow its own port (no SO_REUSEADDR on client sockets), or use "
                "Cloudflare's connectx() locking: bind with SO_REUSEADDR, check the 4-tuple, then connect"))
    return out
