# The seed article's story ("Bind before connect", 2014), replayed on the model.
#
# Rules: each chapter states a claim of the article (or of the kernel history it points to), runs it on
# model hosts, and reports what happened; `ok` says whether the run bears the claim out. Where the article
# and the kernel disagree (the 32768-61000 range holds 28,233 ports, not 28,232), the kernel's arithmetic is
# what runs and the chapter says so. Small ranges keep it quick; the full default range is used where the
# count itself is the claim.
"""The seed article's claims as runnable chapters."""

from __future__ import annotations

import errno
import socket
from collections.abc import Iterator
from dataclasses import dataclass

from portalloc.constants import IP_BIND_ADDRESS_NO_PORT
from portalloc.model.host import Host
from portalloc.workload import fill_until_failure

SMALL = {"net.ipv4.ip_local_port_range": "40000 40009"}


@dataclass
class Chapter:
    """One claim, the kernel profile it ran on, what was measured, and whether it matches."""

    title: str
    claim: str
    kernel: str
    result: str
    ok: bool


def _connect_until_full(host: Host, dst: tuple[str, int], limit: int) -> tuple[list[int], int]:
    """(ports of the connects toward ``dst`` until the first failure, that failure's errno)."""
    fill = fill_until_failure(host, dst, limit)
    return fill.ports, fill.first_error


def _listener(host: Host, addr: tuple[str, int]) -> socket.socket:
    lst = host.socket()
    lst.bind(addr)
    lst.listen(65535)
    return lst  # type: ignore[return-value]


def chapters() -> Iterator[Chapter]:
    """Run the story, one chapter at a time."""
    # 1. The default range and the per-destination limit.
    for kernel, rng in (("linux-4.1", (32768, 61000)), ("linux-6.18", (32768, 60999))):
        h = Host(kernel, seed=1, addresses=("127.0.0.1/8", "10.0.0.2/8"))
        ports, err = _connect_until_full(h, ("10.1.1.1", 80), 40_000)
        n = rng[1] - rng[0] + 1
        yield Chapter(
            "The ephemeral range is the per-destination limit",
            f"default ip_local_port_range {rng[0]}-{rng[1]}: {n:,} ports, so {n:,} connections to one "
            "destination" + (" (the article says 28,232; the range holds 28,233)" if kernel == "linux-4.1" else ""),
            kernel, f"{len(ports):,} connected, then {errno.errorcode.get(err, err)}",
            len(ports) == n and err == errno.EADDRNOTAVAIL)
    # 2. Ports are shared across destinations (check_established).
    h = Host("linux-6.18", seed=2, sysctls=SMALL)
    for port in (5000, 5001):
        _listener(h, ("127.0.0.1", port))
    a, _ = _connect_until_full(h, ("127.0.0.1", 5000), 12)
    b, _ = _connect_until_full(h, ("127.0.0.1", 5001), 12)
    yield Chapter("A port is reused toward another destination",
                  "check_established only forbids a duplicate 4-tuple: 10 ports give 10 connections per destination",
                  "linux-6.18", f"{len(a)} to :5000 and {len(b)} to :5001 on the same {len(set(a) | set(b))} ports",
                  len(a) == len(b) == 10 and set(a) == set(b))
    # 3. Bind before connect: the 64k catch.
    h = Host("linux-6.18", seed=3, sysctls=SMALL)
    for port in (5000, 5001):
        _listener(h, ("127.0.0.1", port))
    made, first_err = 0, 0
    for i in range(12):
        s = h.socket()
        try:
            s.bind(("127.0.0.1", 0))
            s.connect(("127.0.0.1", 5000 + i % 2))
            made += 1
        except OSError as exc:
            first_err = first_err or exc.errno or 0
    yield Chapter("Bind before connect runs out after the range, whatever the destination",
                  "bind(ip, 0) reserves the port for every destination: 10 ports, 10 sockets in total",
                  "linux-6.18", f"{made} connected over two destinations, then bind() {errno.errorcode.get(first_err)}",
                  made == 10 and first_err == errno.EADDRINUSE)
    h = Host("linux-6.18", seed=4, sysctls=SMALL)
    for port in (5000, 5001):
        _listener(h, ("127.0.0.1", port))
    made = 0
    for i in range(24):
        s = h.socket()
        s.setsockopt(socket.SOL_IP, IP_BIND_ADDRESS_NO_PORT, 1)
        s.bind(("127.0.0.1", 0))
        made += s.connect_ex(("127.0.0.1", 5000 + i % 2)) == 0
    yield Chapter("IP_BIND_ADDRESS_NO_PORT lifts it (Linux 4.2)",
                  "the port is chosen at connect() time, per destination: 10 ports, 20 sockets over 2 destinations",
                  "linux-6.18", f"{made} connected", made == 20)
    # 4. SO_REUSEADDR with explicit ports.
    h = Host("linux-6.18", seed=5, sysctls=SMALL)
    for port in (5000, 5001):
        _listener(h, ("127.0.0.1", port))
    outcomes = []
    for dport in (5000, 5000, 5001):
        s = h.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", 45000))
        outcomes.append(errno.errorcode.get(s.connect_ex(("127.0.0.1", dport)), "ok"))
    yield Chapter("SO_REUSEADDR shares an explicit port between connecting sockets",
                  "three sockets on 127.0.0.1:45000: the 4-tuple decides (ok, duplicate → EADDRNOTAVAIL, ok)",
                  "linux-6.18", ", ".join(outcomes), outcomes == ["ok", "EADDRNOTAVAIL", "ok"])
    # 5. Linux 4.2's even ports.
    h = Host("linux-6.18", seed=6)
    _listener(h, ("127.0.0.1", 5000))
    ports, _ = _connect_until_full(h, ("127.0.0.1", 5000), 300)
    yield Chapter("connect() prefers even ports (Linux 4.2, 07f4c90062f8)",
                  "with an even-sized range, connect() hands out ports of low's parity first",
                  "linux-6.18", f"{sum(p % 2 == 0 for p in ports)} of {len(ports)} ports even",
                  all(p % 2 == 0 for p in ports))
    # 6. tcp_tw_reuse.
    results = []
    for reuse in (0, 1):
        h = Host("linux-6.18", seed=7, sysctls={**SMALL, "net.ipv4.tcp_tw_reuse": reuse})
        lst = _listener(h, ("127.0.0.1", 5000))
        for _ in range(10):
            c = h.socket()
            c.connect(("127.0.0.1", 5000))
            conn, _ = lst.accept()
            c.close()
            conn.close()
        h.sleep(1.2)
        ports, _ = _connect_until_full(h, ("127.0.0.1", 5000), 12)
        results.append(len(ports))
    yield Chapter("tcp_tw_reuse lets connect() take over TIME_WAIT",
                  "10 client TIME_WAITs fill the range; after 1 s: none reusable with tcp_tw_reuse=0, all with 1",
                  "linux-6.18", f"tcp_tw_reuse=0: {results[0]} connected; tcp_tw_reuse=1: {results[1]} connected",
                  results == [0, 10])
