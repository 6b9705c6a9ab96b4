# FreeBSD PR 174087, "Problems with ephemeral port selection" (Keith Arner, 2012; shared/seeds/003), run as
# written on the model's FreeBSD profiles.
#
# The "How-To-Repeat" program, translated line by line to the portalloc API: for each of num_ports = 2
# remote ports starting at 12345 it opens a SO_REUSEADDR listener on INADDR_ANY, then up to
# num_iterations = 20,000 times: socket(); SO_REUSEADDR if `reuse`; connect() to 127.0.0.1:port; bail out
# on the first error (the failed client is not closed); accept(); close(client); close(child) - so every
# client ends in TIME_WAIT, holding its port, as the program's comment says. `reuse` starts at 1 and
# toggles per remote port. The program's comment sizes num_iterations for the range it was written for
# (FreeBSD 7.2: portrange.first 49152, last 65535), so "as written" runs with that range; the claims whose
# count is the point also run on freebsd-12's real default (10000-65535).
#
# The model's clock stands still while the program runs (it never sleeps), so ipport_tick never fires and
# allocation stays random: the program's own situation on a machine that is not under the randomcps load.
# test_throttle_turns_the_search_sequential shows what the tick does when time passes.
"""FreeBSD PR 174087's How-To-Repeat program on freebsd-12, freebsd-13 and freebsd-14."""

from __future__ import annotations

import errno
import math
import os
import socket
import statistics
from dataclasses import dataclass, field
from typing import Any

import pytest

from portalloc import Host

PR_RANGE = (49152, 65535)          # the range the program's comment computes num_iterations from
DEFAULT_RANGE = (10000, 65535)     # net.inet.ip.portrange.first/last on FreeBSD 12-14 (others.md §2.2)
SERVER_PORT = 12345
SEED = int(os.environ.get("PORTALLOC_TEST_SEED", "7"))


@dataclass
class Run:
    """One remote port's loop: how many connections opened, the errno that ended it, what was kept."""

    port: int
    reuse: int
    opened: int
    error: str | None
    failed: Any = None
    ports: list[int] = field(default_factory=list)
    times: list[float] = field(default_factory=list)


def open_server(h: Host, port: int) -> Any:
    """open_server(): SO_REUSEADDR, bind INADDR_ANY:port, listen(server, 5)."""
    server = h.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("", port))
    server.listen(5)
    return server


def how_to_repeat(h: Host, num_iterations: int = 20 * 1000, num_ports: int = 2, port: int = SERVER_PORT,
                  reuse: int = 1, pace: float = 0.0) -> list[Run]:
    """main() of the PR's program; ``pace`` seconds of simulated time pass per iteration (0: as written)."""
    runs = []
    for _ in range(num_ports):
        server = open_server(h, port)
        run = Run(port, reuse, 0, None)
        runs.append(run)
        for i in range(num_iterations):
            client = h.socket(socket.AF_INET, socket.SOCK_STREAM)
            if reuse:
                client.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            err = client.connect_ex(("127.0.0.1", port))
            if err:                          # "Could not connect() client socket": bail out, client left open
                run.error, run.failed, run.opened = errno.errorcode[err], client, i
                break
            run.ports.append(client.getsockname()[1])
            run.times.append(h.time)
            child, _ = server.accept()
            client.close()                   # the client closes first: it ends in TIME_WAIT
            child.close()
            if pace:
                h.sleep(pace)
        else:
            run.opened = num_iterations
        port += 1
        reuse = 1 - reuse
    return runs


def freebsd(kernel: str, seed: int, rng: tuple[int, int]) -> Host:
    return Host(kernel, seed=seed,
                sysctls={"net.inet.ip.portrange.first": rng[0], "net.inet.ip.portrange.last": rng[1]})


def birthday(n: int) -> float:
    """Expected draws before a uniform draw from n values repeats one: sqrt(pi/2 * n)."""
    return math.sqrt(math.pi / 2 * n)


def ports_in_use(h: Host) -> set[int]:
    return {row.local[1] for row in h.sockets()}


# ------------------------------------------------------------------ freebsd-12: the bug

def test_as_written_on_freebsd12() -> None:
    """"connect() fails with EADDRINUSE long before we run into any resource exhaustion", then, without
    SO_REUSEADDR, "connect() then fails with EADDRNOTAVAIL ... as soon as the total number of outgoing
    connections equals the ephemeral port range" (16,384 here; the two servers are outside it)."""
    h = freebsd("freebsd-12", SEED, PR_RANGE)
    first, second = how_to_repeat(h)
    n = PR_RANGE[1] - PR_RANGE[0] + 1
    assert (first.reuse, first.error) == (1, "EADDRINUSE")
    assert 0 < first.opened < n // 10
    # The failed client kept its implicit binding to 0.0.0.0:p, p being a port one of its predecessors
    # still holds toward the same peer (in TIME_WAIT): the duplicate 4-tuple in_pcbconnect_setup found.
    failed_addr, failed_port = first.failed.getsockname()
    assert failed_addr == "0.0.0.0" and failed_port in first.ports
    assert (second.reuse, second.error) == (0, "EADDRNOTAVAIL")
    assert first.opened + second.opened == n
    assert ports_in_use(h) >= set(range(PR_RANGE[0], PR_RANGE[1] + 1))


def test_default_range_total_is_the_range_on_freebsd12() -> None:
    """The same program on freebsd-12's real default range (55,536 ports), num_iterations raised above it:
    the totals add up to the range less the two server ports that lie inside it, every port in use."""
    h = freebsd("freebsd-12", SEED, DEFAULT_RANGE)
    first, second = how_to_repeat(h, num_iterations=60000)
    n = DEFAULT_RANGE[1] - DEFAULT_RANGE[0] + 1
    servers_in_range = {SERVER_PORT, SERVER_PORT + 1} - set(first.ports)
    assert first.error == "EADDRINUSE" and first.opened < n // 10
    assert second.error == "EADDRNOTAVAIL"
    assert first.opened + second.opened + len(servers_in_range) == n
    assert ports_in_use(h) >= set(range(DEFAULT_RANGE[0], DEFAULT_RANGE[1] + 1))


#: Seeds per band check; the band is +-25 % of the birthday estimate for the mean over them. With
#: sd(single run) = sqrt((4 - pi) / 2 * N) (0.655 sqrt(N)), the mean of 40 runs has a standard error of
#: about 8 % of the estimate, so the band is about 3 standard errors wide on each side.
SEEDS = range(40)
BAND = 0.25


@pytest.mark.parametrize("rng", [PR_RANGE, DEFAULT_RANGE], ids=["pr-range-16384", "default-range-55536"])
def test_eaddrinuse_count_matches_the_birthday_estimate(rng: tuple[int, int]) -> None:
    """With SO_REUSEADDR each implicit bind is (nearly) a uniform draw over the range that ignores the
    connected sockets, so the first failure comes at the first repeated draw: about sqrt(pi/2 * N)
    connections. Measured: N = 16,384 -> mean 142.6 (estimate 160.4); N = 55,536 -> 274.3 (295.4)."""
    n = rng[1] - rng[0] + 1
    counts = []
    for seed in SEEDS:
        (run,) = how_to_repeat(freebsd("freebsd-12", seed, rng), num_ports=1)
        assert run.error == "EADDRINUSE"
        counts.append(run.opened)
    est = birthday(n)
    assert abs(statistics.mean(counts) - est) <= BAND * est, (statistics.mean(counts), est)
    assert max(counts) < n / 10 and min(counts) >= 1


def test_throttle_turns_the_search_sequential() -> None:
    """Paced at 100 connections per simulated second, ipport_tick sees more than randomcps (10) at t = 1:
    from then on the ports are consecutive (continuing from the cursor), and the run ends when the
    cursor reaches a port drawn at random in the first second (EADDRINUSE, the duplicate 4-tuple)."""
    survived = 0
    for seed in range(10):
        (run,) = how_to_repeat(freebsd("freebsd-12", seed, PR_RANGE), num_ports=1, pace=0.01)
        assert run.error == "EADDRINUSE"
        before = {p for p, t in zip(run.ports, run.times, strict=True) if t < 1.0}
        after = [p for p, t in zip(run.ports, run.times, strict=True) if t >= 1.0]
        if not after:
            continue                         # the first second's random draws already collided
        survived += 1
        assert all(b == a + 1 for a, b in zip(after, after[1:], strict=False))
        assert run.failed.getsockname()[1] in before
    assert survived >= 3


# ------------------------------------------------------------------ freebsd-13 and 14: the fix

@pytest.mark.parametrize("kernel", ["freebsd-13", "freebsd-14"])
def test_as_written_on_the_fix(kernel: str) -> None:
    """D24781 / r361228: "we ought to be able to establish as many connections as there are ephemeral
    ports, and we ought to be able to do so for each remote port number" - with and without SO_REUSEADDR,
    no EADDRINUSE."""
    h = freebsd(kernel, SEED, PR_RANGE)
    first, second = how_to_repeat(h)
    n = PR_RANGE[1] - PR_RANGE[0] + 1
    assert (first.reuse, first.opened, first.error) == (1, n, "EADDRNOTAVAIL")
    assert (second.reuse, second.opened, second.error) == (0, n, "EADDRNOTAVAIL")
    assert set(first.ports) == set(second.ports) == set(range(PR_RANGE[0], PR_RANGE[1] + 1))


@pytest.mark.parametrize("reuse", [0, 1])
def test_fix_starting_either_way(reuse: int) -> None:
    """The program with `reuse` toggled the other way round: the fix is uniform in SO_REUSEADDR."""
    h = freebsd("freebsd-13", SEED, PR_RANGE)
    runs = how_to_repeat(h, reuse=reuse)
    assert [r.opened for r in runs] == [PR_RANGE[1] - PR_RANGE[0] + 1] * 2
    assert {r.error for r in runs} == {"EADDRNOTAVAIL"}


def test_fix_on_the_default_range() -> None:
    """One remote port on freebsd-13's real default range: every port but the listener's own (12345 is
    inside 10000-65535 and in_pcb_lport_dest never takes a port a listener holds)."""
    h = freebsd("freebsd-13", SEED, DEFAULT_RANGE)
    (run,) = how_to_repeat(h, num_iterations=60000, num_ports=1)
    assert run.error == "EADDRNOTAVAIL"
    assert set(run.ports) == set(range(DEFAULT_RANGE[0], DEFAULT_RANGE[1] + 1)) - {SERVER_PORT}
    assert h.stats["connect_searches"] == run.opened + 1


def test_require_unique_port_brings_the_bug_back() -> None:
    """net.inet.tcp.require_unique_port = 1 on freebsd-13 pre-binds again: the PR's results return."""
    h = freebsd("freebsd-13", SEED, PR_RANGE)
    h.sysctl("net.inet.tcp.require_unique_port", 1)
    first, second = how_to_repeat(h)
    assert first.error == "EADDRINUSE" and first.opened < 1000
    assert second.error == "EADDRNOTAVAIL"
    assert first.opened + second.opened == PR_RANGE[1] - PR_RANGE[0] + 1
