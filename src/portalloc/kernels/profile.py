# A kernel profile is data: every behaviour switch the model consults, with the source of each.
#
# Rules: the model never asks "which version is this?"; it reads a field of the profile. A profile
# is built by folding a table of version switches (see kernels/linux.py), so a version's behaviour is
# written in exactly one place. Strategy fields name small functions in kernels/strategies.py.
"""The KernelProfile record."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class RangeSysctls:
    """Where an OS keeps its default ephemeral range (TCP over IPv4) and in what form, so that "the range,
    whatever the OS calls it" is a question to the profile.

    ``form``: "low-high" (one sysctl holding the pair, Linux's ip_local_port_range), "first-last" (two
    sysctls, the BSDs), "start-count" (each sysctl a (start, number) pair, Windows' netsh dynamicport).
    ``names``: the sysctls; for "low-high" and "start-count" every name is written and the first is read
    (Windows keeps TCP and UDP apart: both are set).
    """

    names: tuple[str, ...] = ("net.ipv4.ip_local_port_range",)
    form: str = "low-high"

    def writes(self, low: int, high: int) -> dict[str, str]:
        """The sysctl writes (name -> text) that make the range low..high."""
        if self.form == "first-last":
            return {self.names[0]: str(low), self.names[1]: str(high)}
        text = f"{low} {high - low + 1}" if self.form == "start-count" else f"{low} {high}"
        return {name: text for name in self.names}

    def read(self, values: tuple[object, ...]) -> tuple[int, int] | None:
        """The range (low, high) from the values of ``names`` in order; None when they do not read as one."""
        if self.form == "first-last":
            if len(values) >= 2 and isinstance(values[0], int) and isinstance(values[1], int):
                return values[0], values[1]
            return None
        v = values[0] if values else None
        if not (isinstance(v, tuple) and len(v) == 2 and all(isinstance(x, int) for x in v)):
            return None
        low, second = int(v[0]), int(v[1])
        return (low, low + second - 1) if self.form == "start-count" else (low, second)


@dataclass(frozen=True)
class KernelProfile:
    """Every switch of one kernel version that port allocation depends on.

    The defaults describe Linux 6.18; older versions are derived by kernels/linux.py, which records the
    commit behind each change.
    """

    name: str = "linux-6.18"
    os: str = "linux"
    version: tuple[int, ...] = (6, 18)
    description: str = ""
    sources: tuple[str, ...] = ()
    #: which model kernel runs the profile: "linux" (model/stack.py Stack) or another module's Stack
    #: subclass named in model/host.py STACKS.
    stack: str = "linux"

    # --- connect() search (__inet_hash_connect) ---
    #: strategy for the unbound-socket search: "hint-scan" (<=4.1), "hint-even" (4.2-4.5),
    #: "hint-two-pass" (4.6-5.11), "perturb-table" (5.12+), or "rfc6056-1".."rfc6056-5".
    connect_search: str = "perturb-table"
    #: table_perturb length (256 in 5.12, 2^16 since 5.18, commit 4c2c8f03a5ab).
    perturb_table_size: int = 1 << 16
    #: how the table index is taken from port_offset: "hash32" (5.12 hash_32) or "low-bits" (5.18+).
    perturb_index: str = "low-bits"
    #: success increment: "noise-1-in-16" (5.12, c579bd1b4021) or "random-0-to-7-steps" (5.18, ca7af0402550).
    perturb_increment: str = "random-0-to-7-steps"
    #: port_offset hash input carries jiffies / (10 * HZ) (5.18, 4dfa9b438ee3).
    time_seed: bool = True
    #: port_offset is 64 bits, offset taken from the high half (5.18, e8161345ddbb); 32 bits before.
    port_offset_64: bool = True
    #: with IP_LOCAL_PORT_RANGE set: step 1, no parity passes (6.8, 207184853dbd).
    local_range_step_one: bool = True

    # --- bind(0) / listen() autobind (inet_csk_find_open_port) ---
    #: "random-rover" (<=4.5: random start, step 1) or "odd-first" (4.6+, ea8add2b1903).
    bind_search: str = "odd-first"
    #: SO_REUSEADDR bind(0) may share the least-used bucket when the range is full (<=4.10; b9470c27607b).
    smallest_size_fallback: bool = False

    # --- options and sysctls that exist ---
    ip_bind_address_no_port: bool = True       # 4.2, 90c337da1524
    ip_local_port_range_option: bool = True    # 6.3, 91d0b78c5177
    so_reuseport: bool = True                  # 3.9, c617f398edd4
    ip_autobind_reuse: bool = True             # 5.7, 4b01a9674231
    ip_unprivileged_port_start: bool = True    # 4.11, 4548b683b781
    tw_reuse_loopback_mode: bool = True        # tcp_tw_reuse=2 and default 2 (4.18, 79e9fed46038)
    tw_reuse_delay_sysctl: bool = True         # tcp_tw_reuse_delay in ms (6.14, ca6a6f93867a); else 1 s ticks
    #: whole seconds that must pass beyond the stamp with 1 s ticks: get_seconds() - stamp > 1 before the
    #: monotonic-clock change (cca9bab1b72c, 4.19), ktime_get_seconds() > stamp after it
    tw_reuse_tick_margin: int = 0
    tw_recycle: bool = False                   # tcp_tw_recycle (removed in 4.12, 4396e46187ca)
    #: tcp_tw_recycle also drops SYNs *without* timestamps from a peer with a fresh stamp
    #: (tcp_peer_is_proven's ``|| !timestamps``, a26552afe894)
    tw_recycle_drops_untimestamped: bool = False
    default_port_range: tuple[int, int] = (32768, 60999)   # 32768-61000 before 4.2 (07f4c90062f8)
    #: the sysctl(s) holding the default ephemeral range, and their form
    range_sysctls: RangeSysctls = RangeSysctls()

    # --- TIME_WAIT and port release ---
    #: tcp_tw_reuse never takes over a FIN_WAIT2-substate timewait (6.12, 0d9e5df4a257).
    fin_wait2_not_reused: bool = True
    #: the bucket returns to "connect()-shareable" when its last explicit binder leaves (6.18, d57f4b874946).
    release_resets_bucket: bool = True

    # --- UDP ---
    #: size of the UDP hash table walked by udp_lib_get_port (the step is an odd multiple of it). It is
    #: sized from memory at boot; 16384 is what this project's 24 GiB test machines print in dmesg
    #: ("UDP hash table entries: 16384"), and a new namespace shares it (udp_child_hash_entries = 0).
    udp_table_size: int = 16384

    extra: dict[str, object] = field(default_factory=dict, compare=False)
