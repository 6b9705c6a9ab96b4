# portalloc.observe without a live kernel: ss-dump parsing, the rebuild in the model (Host.restore), the
# inference rules, findings, the exporter's bounded cardinality, and the CLI's bad-input contract.
#
# Each assertion is a kernel rule the model already holds (its tests cite the sources): a port chosen by bind()
# is taken from every destination; a TIME_WAIT blocks its own 4-tuple unless tcp_tw_reuse may take it over
# (after the 1 s delay); reserved ports are never chosen.
"""observe: snapshot → model → headroom, findings, exporter rows, CLI errors."""

from __future__ import annotations

from typer.testing import CliRunner

from portalloc.cli.main import app
from portalloc.observe import HostSnapshot, SockRow, parse_ss
from portalloc.observe.exporter import top_rows
from portalloc.observe.findings import findings

SYS = {"net.ipv4.ip_local_port_range": "40000 40063", "net.ipv4.ip_local_reserved_ports": "40010-40013",
       "net.ipv4.tcp_tw_reuse": "0", "net.ipv4.tcp_timestamps": "1"}
LIMIT = 64
RESERVED = 4


def _snap(rows: list[SockRow], **sysctls: str) -> HostSnapshot:
    return HostSnapshot(rows=rows, sysctls={**SYS, **sysctls}, source="sock_diag", kernel_release="6.18.44")


def _est(port: int, dst: tuple[str, int] = ("127.0.0.1", 5000)) -> SockRow:
    return SockRow("tcp", 4, "ESTAB", ("127.0.0.1", port), dst)


def _tw(port: int, left: float, dst: tuple[str, int] = ("127.0.0.1", 5000)) -> SockRow:
    return SockRow("tcp", 4, "TIME-WAIT", ("127.0.0.1", port), dst, timer=left)


def test_connect_chosen_ports_count_toward_their_destination_only() -> None:
    snap = _snap([_est(p) for p in range(40000, 40020, 2)])
    rows = {(r.dst, r.dport): r for r in snap.headroom([("127.0.0.1", 5000), ("127.0.0.1", 5001)])}
    assert rows[("127.0.0.1", 5000)].headroom == LIMIT - RESERVED - 10 + 2   # 40010/40012 are reserved anyway
    assert rows[("127.0.0.1", 5001)].headroom == LIMIT - RESERVED


def test_bind_before_connect_is_inferred_from_parity_and_blocks_every_destination() -> None:
    snap = _snap([_est(40001), _est(40003)])
    rows = {(r.dst, r.dport): r for r in snap.headroom([("127.0.0.1", 5000), ("127.0.0.2", 80)])}
    assert all(c.chosen_by == "bind" for c in snap.classify())
    assert rows[("127.0.0.1", 5000)].inferred
    assert rows[("127.0.0.2", 80)].headroom == LIMIT - RESERVED - 2
    assert rows[("127.0.0.1", 5000)].bind_locked == 2
    kinds = {f.kind for f in findings(snap, list(rows.values()))}
    assert "bind_before_connect" in kinds


def test_odd_port_after_the_even_ports_are_full_is_connect_chosen() -> None:
    even = [p for p in range(40000, 40064, 2) if not 40010 <= p <= 40013]
    snap = _snap([_est(p) for p in even] + [_est(40001)])
    assert all(c.chosen_by == "connect" for c in snap.classify())


def test_time_waits_block_without_reuse_and_are_reusable_after_the_delay() -> None:
    rows = [_tw(p, 50.0) for p in range(40020, 40040, 2)]     # even: connect()'s first parity
    off = _snap(rows).headroom([("127.0.0.1", 5000)])[0]
    on = _snap(rows, **{"net.ipv4.tcp_tw_reuse": "1"}).headroom([("127.0.0.1", 5000)])[0]
    young = _snap([_tw(p, 59.9) for p in range(40020, 40040, 2)],
                  **{"net.ipv4.tcp_tw_reuse": "1"}).headroom([("127.0.0.1", 5000)])[0]
    assert (off.time_wait, off.reusable_time_wait, off.headroom) == (10, 0, LIMIT - RESERVED - 10)
    assert (on.reusable_time_wait, on.headroom) == (10, LIMIT - RESERVED)
    assert (young.reusable_time_wait, young.headroom) == (0, LIMIT - RESERVED - 10)


def test_to_model_keeps_time_wait_ages() -> None:
    host = _snap([_tw(40020, 10.0)]).to_model()
    (row,) = [r for r in host.sockets() if r.state == "TIME-WAIT"]
    assert row.timer == 10.0
    host.sleep(10.5)
    assert not [r for r in host.sockets() if r.state == "TIME-WAIT"]


def test_listener_in_range_reserved_share_and_udp_overshadow_findings() -> None:
    rows = [SockRow("tcp", 4, "LISTEN", ("0.0.0.0", 40030), None),
            SockRow("udp", 4, "UNCONN", ("0.0.0.0", 7000), None),
            SockRow("udp", 4, "ESTAB", ("127.0.0.1", 7000), ("127.0.0.1", 9000))]
    snap = _snap(rows, **{"net.ipv4.ip_local_reserved_ports": "40000-40020"})
    kinds = {f.kind for f in findings(snap, snap.headroom())}
    assert {"listener_in_range", "reserved_ports", "udp_overshadow", "narrow_range"} <= kinds


def test_parse_ss_dump() -> None:
    text = ("ESTAB 0 0 127.0.0.1:40001 127.0.0.1:5000 uid:1000 ino:1 sk:1\n"
            "TIME-WAIT 0 0 [::ffff:127.0.0.1]:40002 [::ffff:127.0.0.1]:5000 timer:(timewait,50sec,0)\n"
            "LISTEN 0 128 *:5000 *:*\n")
    rows = parse_ss(text)
    assert [r.state for r in rows] == ["ESTAB", "TIME-WAIT", "LISTEN"]
    assert rows[0].uid == 1000 and rows[1].timer == 50.0 and rows[1].family == 6 and rows[2].remote is None


def test_exporter_keeps_top_n_and_sums_the_rest_under_other() -> None:
    snap = _snap([_est(40000 + 2 * i, ("127.0.0.1", 6000 + i)) for i in range(5)]
                 + [_est(40020, ("127.0.0.1", 6000))])
    rows = snap.headroom()
    shown = top_rows(rows, 2)
    assert len(shown) == 3 and shown[-1].dst == "other"
    assert sum(r.in_use for r in shown) == sum(r.in_use for r in rows)
    assert shown[-1].headroom == min(r.headroom for r in rows if (r.dst, r.dport) not in
                                     {(s.dst, s.dport) for s in shown[:2]})


def test_scrape_gives_the_doctor_rows_and_frees_its_model_after_the_response() -> None:
    """One scrape (generate_latest of HeadroomCollector) publishes the doctor's headroom per destination; its
    snapshot is still held when the scrape returns and freed RELEASE_DELAY later, off the response path."""
    import time
    import weakref

    from prometheus_client import CollectorRegistry, generate_latest

    from portalloc.observe.exporter import RELEASE_DELAY, HeadroomCollector

    refs: list[weakref.ref[HostSnapshot]] = []

    def read() -> HostSnapshot:
        snap = _snap([_est(40000, ("127.0.0.1", 6000)), _tw(40002, 30.0, ("127.0.0.1", 6000))])
        refs.append(weakref.ref(snap))
        return snap

    registry = CollectorRegistry()
    registry.register(HeadroomCollector(read, 5))  # type: ignore[arg-type]
    text = generate_latest(registry).decode()
    expected = [r.headroom for r in read().headroom() if r.dport == 6000]
    assert f'portalloc_port_headroom{{dport="6000",dst="127.0.0.1",proto="tcp",src="127.0.0.1"}} {expected[0]}.0' \
        in text
    assert expected == [LIMIT - RESERVED - 2]           # one live connection and one TIME_WAIT (no tw_reuse)
    assert refs[0]() is not None                        # still held right after the scrape
    deadline = time.monotonic() + RELEASE_DELAY + 5
    while refs[0]() is not None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert refs[0]() is None


def test_cli_bad_input_is_one_line_and_exit_2(tmp_path) -> None:  # type: ignore[no-untyped-def]
    runner = CliRunner()
    for args in (["doctor", "--dst", "nothing"], ["doctor", "--netns", "no-such-ns-xyz"],
                 ["doctor", "--from", str(tmp_path / "missing.txt")], ["exporter", "--listen", "x"]):
        res = runner.invoke(app, args)
        assert res.exit_code == 2, (args, res.output)
        assert "Traceback" not in res.output


def test_cli_doctor_json_from_a_dump(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import json

    dump = tmp_path / "ss.txt"
    dump.write_text("ESTAB 0 0 127.0.0.1:40000 127.0.0.1:5000\n")
    res = CliRunner().invoke(app, ["doctor", "--from", str(dump), "--json"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.output)
    assert set(doc) >= {"sysctls", "headroom", "findings"}
    assert doc["headroom"][0]["in_use"] == 1 and doc["headroom"][0]["headroom"] == 28232 - 1


def test_interface_prefixes_route_the_rebuilt_model() -> None:
    """to_model() takes the namespace's interface addresses with their prefixes (rtnetlink, HostSnapshot.interfaces):
    a what-if connect() toward 192.168.7.20 then leaves from 192.168.7.5/24, the connected route's source, and meets
    the TIME_WAITs that fill the range from there (EADDRNOTAVAIL). From a saved `ss` dump (no interfaces) the model
    knows each address only as a /32 and routes from the first, 10.0.0.5, instead, which the notes say."""
    import errno as _errno

    from portalloc.observe.snapshot import HostSnapshot, SockRow

    rows = [SockRow("tcp", 4, "TIME-WAIT", ("192.168.7.5", port), ("192.168.7.20", 80), timer=50.0)
            for port in range(40000, 40010)]
    rows.append(SockRow("tcp", 4, "ESTAB", ("10.0.0.5", 40000), ("10.0.0.9", 443)))
    sysctls = {"net.ipv4.ip_local_port_range": "40000 40009", "net.ipv4.tcp_tw_reuse": "0"}
    read = HostSnapshot(rows=rows, sysctls=sysctls, source="sock_diag", kernel_release="6.18.0",
                        interfaces=["127.0.0.1/8", "::1/128", "10.0.0.5/24", "192.168.7.5/24"])
    s = read.to_model().socket()
    assert s.connect_ex(("192.168.7.20", 80)) == _errno.EADDRNOTAVAIL
    assert not any("interface addresses unknown" in n for n in read.notes)
    dump = HostSnapshot(rows=rows, sysctls=sysctls, source="ss-file")
    s = dump.to_model().socket()
    assert s.connect_ex(("192.168.7.20", 80)) == 0 and s.getsockname()[0] == "10.0.0.5"
    assert any("interface addresses unknown" in n for n in dump.notes)
    # doctor --dst toward a destination nothing uses yet: the row names the source the route picks
    for snap, src in ((read, "192.168.7.5"), (dump, "10.0.0.5")):
        (row,) = snap.headroom(dst=("192.168.7.99", 80))
        assert (row.src, row.headroom) == (src, 10) and any("routes from" in n for n in row.inferred)
        assert snap.to_model().route_source(("192.168.7.99", 80)) == src
