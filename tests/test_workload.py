# The workload helpers (portalloc/workload.py) against what the kernel guarantees about a full range.
"""fill_until_failure and count_failures on the model: counts the range size and Linux's errnos give."""

from __future__ import annotations

import errno

from portalloc import Host
from portalloc.workload import count_failures, fill_until_failure


def _host() -> Host:
    h = Host("linux-6.18", seed=3, sysctls={"net.ipv4.ip_local_port_range": "40000 40009"})
    lst = h.socket()
    lst.bind(("127.0.0.1", 5000))
    lst.listen(128)
    return h


def test_fill_takes_the_whole_range_then_fails_with_eaddrnotavail() -> None:
    """Ten ports toward one destination: ten connects, then EADDRNOTAVAIL (linux.md section 12, TV1)."""
    h = _host()
    fill = fill_until_failure(h, ("127.0.0.1", 5000), 50, extra=2, timed=True)
    assert fill.connected == 10 and sorted(fill.ports) == list(range(40000, 40010))
    assert fill.errors == [errno.EADDRNOTAVAIL] * 3 and fill.first_error == errno.EADDRNOTAVAIL
    assert fill.outcomes() == {"ok": 10, "EADDRNOTAVAIL": 3}
    assert len(fill.seconds) == 10
    assert len(h.usable_ports(("127.0.0.1", 5000))) == 0
    failures = count_failures(h, ("127.0.0.1", 5000), 5)
    assert failures.failed == 5 and failures.other is None
    fill.close()
    assert fill.connected == 0


def test_limit_comes_first() -> None:
    """A limit below the range: no error recorded; count_failures reports the first success as 'other'."""
    h = _host()
    fill = fill_until_failure(h, ("127.0.0.1", 5000), 4, ports=False)
    assert fill.connected == 4 and fill.ports == [] and fill.first_error == 0
    assert count_failures(h, ("127.0.0.1", 5000), 3, stop=True).other == 0
