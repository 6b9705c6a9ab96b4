# Kernel profiles, version switches, sysctl validation and the SipHash primitive.
"""Tests of the profile registry (kernels/) and of the pieces the search relies on."""

from __future__ import annotations

import errno

import pytest

from portalloc import Host, get_profile, kernels
from portalloc.kernels import linux
from portalloc.model.siphash import siphash24


def test_siphash_reference_vectors() -> None:
    """SipHash-2-4 (lib/siphash.c): the reference vectors of Aumasson and Bernstein's paper."""
    key = bytes(range(16))
    assert siphash24(key, b"") == 0x726FDB47DD0E0E31
    assert siphash24(key, bytes(range(15))) == 0xA129CA6149BE45E5


def test_every_listed_kernel_resolves() -> None:
    for name in kernels():
        assert get_profile(name).name == name


@pytest.mark.parametrize("asked, base", [("linux-5.15", (5, 12)), ("linux-4.1", (3, 9)), ("linux-6.19", (6, 18)),
                                         ("linux-4.9", (4, 6))])
def test_version_resolves_to_newest_switch_at_or_below(asked: str, base: tuple[int, int]) -> None:
    """A name like linux-5.15 takes every switch up to it: 5.12's table_perturb[256], not 5.18's 2^16."""
    p = get_profile(asked)
    expected = linux.build(base)
    assert p.name == asked
    for field in ("connect_search", "perturb_table_size", "bind_search", "default_port_range", "time_seed"):
        assert getattr(p, field) == getattr(expected, field)


def test_switch_table_is_ordered_and_sourced() -> None:
    versions = [sw.version for sw in linux.SWITCHES]
    assert versions == sorted(versions)
    assert all(sw.commits and all(len(c) == 12 for c in sw.commits) for sw in linux.SWITCHES)


def test_history_fields() -> None:
    """Spot checks against linux.md section 10."""
    assert get_profile("linux-4.1").default_port_range == (32768, 61000)       # before 07f4c90062f8
    assert get_profile("linux-4.2").default_port_range == (32768, 60999)
    assert get_profile("linux-4.11").tw_recycle and not get_profile("linux-4.12").tw_recycle   # 4396e46187ca
    assert not get_profile("linux-6.17").release_resets_bucket                 # d57f4b874946 is 6.18
    assert get_profile("linux-6.18").release_resets_bucket


def test_unknown_kernel_lists_choices() -> None:
    with pytest.raises(ValueError, match="linux-6.18"):
        get_profile("plan9")


@pytest.mark.parametrize("value", ["40010 40000", "0 40000", "1000 40000", "40000 65536", "0 100", "x y", "1"])
def test_port_range_validation_einval(value: str) -> None:
    """ipv4_local_port_range(): linux.md section 9, each rejected on the live 6.18 kernel."""
    h = Host()
    with pytest.raises(OSError) as exc:
        h.sysctl("net.ipv4.ip_local_port_range", value)
    assert exc.value.errno == errno.EINVAL


def test_sysctl_names_and_missing_files() -> None:
    h = Host("linux-4.11")
    assert h.sysctl("net/ipv4/tcp_tw_recycle") == 0
    with pytest.raises(FileNotFoundError):
        Host("linux-6.18").sysctl("net.ipv4.tcp_tw_recycle")
    with pytest.raises(FileNotFoundError):
        Host("linux-6.13").sysctl("net.ipv4.tcp_tw_reuse_delay", 5)
    old = Host("linux-4.17")
    old.sysctl("net.ipv4.tcp_tw_reuse", 5)          # plain proc_dointvec before 79e9fed46038: any integer
    assert old.sysctl("net.ipv4.tcp_tw_reuse") == 5
    with pytest.raises(OSError) as exc:
        Host("linux-4.18").sysctl("net.ipv4.tcp_tw_reuse", 3)    # 0..2 since 79e9fed46038
    assert exc.value.errno == errno.EINVAL


def test_reserved_ports_canonical_text() -> None:
    h = Host()
    h.sysctl("net.ipv4.ip_local_reserved_ports", "40008, 40000-40003,40001")
    assert h.sysctl("net.ipv4.ip_local_reserved_ports") == "40000-40003,40008"
