# A kernel profile is data: every behaviour switch the model consults, with the source of each.
#
# Rules: the model never asks "which version is this?"; it reads a field of the profile. A profile
# is built by folding a table of version switches (see kernels/linux.py), so a version's behaviour is
# written in exactly one place. Strategy fields name small functions in kernels/strategies.py.
"""The KernelProfile record."""

from __future__ import annotations

import errno
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from portalloc.kernels.sysctls import SysctlSpec


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
class PortRange:
    """One ephemeral range of a BSD-family or Windows kernel (IP_PORTRANGE default, high or low): where its
    bounds live, their defaults, and the name of the cursor its searches share.

    Names are templates: ``{proto}`` is "tcp" or "udp", ``{af}`` 4 or 6, ``{inet}`` "net.inet.ip" or
    "net.inet6.ip6". An empty name is a fixed bound. ``form`` "first-last": two sysctls, the first may exceed
    the last (XNU's and FreeBSD's low range count down); "start-count": one sysctl holding (start, number),
    whose defaults are ``first`` = start and ``last`` = number (Windows netsh dynamicport).
    """

    first_name: str
    first: int
    last_name: str
    last: int
    cursor: str
    form: str = "first-last"


@dataclass(frozen=True)
class BsdRules:
    """The switches of one BSD-family (or Windows) kernel that port allocation depends on, as typed data: the
    model (model/bsd.py, model/windows.py) reads these fields and never tests the OS's name."""

    family: str                      # "freebsd", "openbsd", "netbsd", "macos", "windows" (for messages)
    #: How connect() on a socket without a port gets one:
    #: "prebind-wildcard": in_pcbbind(inp, NULL) with laddr = ANY first, the 4-tuple checked afterwards
    #:     (FreeBSD <= 12 tcp_connect; XNU tcp_connect); "lport-dest": in_pcbconnect_setup picks the port
    #:     after the source address with in_pcb_lport_dest (FreeBSD >= 13); "after-source": in_pcbconnect
    #:     binds with the selected source address (OpenBSD); "check-then-bind": 4.4BSD in_pcbconnect, the
    #:     4-tuple checked before in_pcbbind(NULL) with laddr = ANY (NetBSD); "auto-reuse": Windows.
    connect_port: str
    #: SO_REUSEADDR/SO_REUSEPORT on the socket narrow the implicit bind's lookup to unconnected sockets on
    #: exactly ANY:port (FreeBSD <= 12, OpenBSD); False where the kernel forces a wildcard lookup (XNU:
    #: "wild = 1" for implicit binds; NetBSD IPv4 check_suitable_port always passes wild = 1).
    implicit_bind_honours_reuse: bool
    #: UDP connect()'s variant, when it differs from TCP's: FreeBSD 12 in_pcbconnect_setup binds with the
    #: chosen source address ("bind-source", S1); XNU UDP is 4.4BSD in_pcbconnect ("check-then-bind", ⚠
    #: not re-read). Empty: as ``connect_port``.
    udp_connect_port: str = ""
    #: net.inet.tcp.require_unique_port exists (FreeBSD >= 13, D24781 / r361228).
    require_unique_port: bool = False
    #: randomcps/randomtime: sequential allocation under load (FreeBSD <= 13.x, ipport_tick).
    throttle: bool = False
    #: port order, a name in model/bsd.py's order registry: "freebsd", "openbsd", "xnu", "netbsd", "windows".
    order: str = "freebsd"
    #: NetBSD: the default of net.inet.ip.anonportalgo.selected.
    netbsd_algorithm: str = "bsd"
    #: the sysctl (a PortRange-style template) that selects the port algorithm at run time (NetBSD's
    #: {inet}.anonportalgo.selected); empty when the OS has one order.
    algorithm_sysctl: str = ""
    #: A SYN that meets a TIME_WAIT of its own 4-tuple (its sequence number past the TIME_WAIT's rcv_nxt, as
    #: the model takes a new connection's to be) is first put to the PAWS test, an older timestamp dropping it:
    #: True as in Linux's tcp_timewait_state_process (the model's rule, until the 4.4BSD family's own is
    #: written down), False on FreeBSD, whose tcp_twcheck has the test under "#if 0 /* PAWS not needed at the
    #: moment */" (sys/netinet/tcp_timewait.c, every version since the tcptw split): the TIME_WAIT is closed
    #: (tcp_twclose) and the SYN goes to the listener.
    tw_syn_paws: bool = True
    #: Among several listeners on the wildcard address and one port (plain SO_REUSEPORT, no load balancing) a
    #: SYN reaches the newest (True) or the oldest (False). FreeBSD <= 13's in_pcblookup_hash_locked walks the
    #: head-inserted hash chain and keeps the last wildcard match (`local_wild = inp`): the oldest; FreeBSD 14's
    #: in_pcblookup_hash_wild_smr returns the first match of the wild chain, where _in_pcbinshash_wild puts a
    #: new wildcard PCB ahead of the older ones: the newest. An exact-address listener is the newest on both.
    wild_listener_newest: bool = True
    #: TIME_WAIT length when no sysctl gives it (seconds).
    timewait: float = 60.0
    #: the sysctl that sets TIME_WAIT's length, and the seconds of TIME_WAIT per unit of its value:
    #: net.inet.tcp.msl in ms on FreeBSD and XNU (2 * MSL: 0.002), in seconds on NetBSD (2.0);
    #: TcpTimedWaitDelay in seconds on Windows (1.0). Empty: ``timewait``.
    timewait_sysctl: str = ""
    timewait_per_unit: float = 0.0
    #: a new AF_INET6 socket starts IPV6_V6ONLY (net.inet6.ip6.v6only = 1 on FreeBSD and NetBSD).
    v6only_default: bool = True
    #: privileged-port rule for explicit binds: "reserved-sysctls" (FreeBSD portrange.reservedlow/high),
    #: "below-1024" (OpenBSD, NetBSD), "below-1024-specific-address" (XNU), "none" (Windows).
    privileged_ports: str = "below-1024"
    #: the privilege check of an explicit port comes before the conflict check (all but OpenBSD, whose
    #: in_rootonly() follows in_pcbaddrisavail).
    privilege_first: bool = True
    #: which in_pcbbind conflict check an explicit port gets: "freebsd", "openbsd", "netbsd", "xnu"
    #: (a name in model/bsd.py's BIND_CONFLICTS).
    bind_conflict: str = "freebsd"
    #: in_pcblookup_local's extra cost of an AF_INET6 PCB answering an IPv4 lookup (FreeBSD: 3; else 0).
    v6_answers_v4_cost: int = 0
    #: bind() of a TCP socket to a multicast address fails with this errno (FreeBSD, XNU tcp_usr_bind:
    #: EAFNOSUPPORT); 0: allowed.
    tcp_multicast_bind_errno: int = 0
    #: a UDP socket may bind 255.255.255.255 (OpenBSD in_pcbbind_setup's INADDR_BROADCAST case).
    udp_broadcast_bind: bool = False
    #: for a multicast address SO_REUSEADDR also counts as SO_REUSEPORT_LB (FreeBSD in_pcbbind_setup).
    multicast_reuse_lb: bool = False
    #: an implicit bind of an AF_INET socket always looks up wildcard (NetBSD check_suitable_port passes 1).
    v4_implicit_bind_wildcard: bool = False
    #: net.inet.{tcp,udp}.baddynamic ports are skipped by the port choice (OpenBSD).
    baddynamic: bool = False
    #: the ephemeral ranges: IP_PORTRANGE default, high and low.
    range_default: PortRange = PortRange("net.inet.ip.portrange.first", 10000, "net.inet.ip.portrange.last",
                                         65535, "{proto}:default")
    range_high: PortRange = PortRange("net.inet.ip.portrange.hifirst", 49152, "net.inet.ip.portrange.hilast",
                                      65535, "{proto}:hi")
    range_low: PortRange = PortRange("net.inet.ip.portrange.lowfirst", 1023, "net.inet.ip.portrange.lowlast",
                                     600, "{proto}:low")
    #: what asking for the low range without privilege returns (FreeBSD in_pcb_lport: priv_check_cred ->
    #: EPERM; the others EACCES); 0: no check.
    low_range_errno: int = errno.EACCES
    #: How long an orphaned FIN_WAIT_2 (we closed, the peer never does) keeps its port. 4.4BSD and its heirs
    #: arm TCPT_2MSL with tcp_maxidle = keepcnt * keepintvl when the FIN is acked (tcp_input FIN_WAIT_1 ->
    #: FIN_WAIT_2; tcp_usrclosed) and, when it fires, re-arm it for keepintvl while the connection has been
    #: idle no longer than tcp_maxidle (tcp_timer_2msl: ``ticks - t_rcvtime <= TP_MAXIDLE``): the orphan dies
    #: at keepcnt * keepintvl + keepintvl = 8 * 75 + 75 = 675 s with the defaults (TCPTV_KEEPCNT,
    #: TCPTV_KEEPINTVL). ``keep_sysctls``: net.inet.tcp.keepcnt / keepintvl (ms) tune them (FreeBSD).
    keepcnt: int = 8
    keepintvl_ms: int = 75000
    keep_sysctls: bool = False
    #: FreeBSD: net.inet.tcp.fast_finwait2_recycle=1 closes the orphan at net.inet.tcp.finwait2_timeout (ms,
    #: TCPTV_FINWAIT2_TIMEOUT = 60 s) instead (tcp_usrclosed, tcp_timer_2msl).
    fast_finwait2_recycle: bool = False
    #: a fixed FIN_WAIT_2 orphan lifetime in seconds where the OS documents none of the above (0: not used).
    finwait2_seconds: float = 0.0
    #: RFC 1323/7323 timestamps on new connections (FreeBSD net.inet.tcp.rfc1323 = 1 by default; not a
    #: modelled sysctl here).
    timestamps: bool = True
    #: the listen queue limit the model applies with the backlog (min(backlog, somaxconn)): the model's
    #: Linux value, kept for every BSD (⚠ FreeBSD's kern.ipc.soacceptqueue defaults to 128; not modelled).
    somaxconn: int = 4096
    #: the socket-level options of the OS beyond SO_REUSEADDR/SO_REUSEPORT.
    options: tuple[str, ...] = ()
    sysctls: tuple[SysctlSpec, ...] = field(default=(), compare=False)


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

    #: the rules of a BSD-family or Windows kernel (kernels/bsd.py); None for Linux.
    bsd: BsdRules | None = None

    extra: dict[str, object] = field(default_factory=dict, compare=False)
