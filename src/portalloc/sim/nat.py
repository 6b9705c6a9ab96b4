# NAT gateways and load-balancer SNAT in front of a fleet: a registry of kinds, each a set of documented
# limits. These are the providers' DOCUMENTED limits, not source-verified algorithms: how a gateway picks
# a public IP or port inside its limits is not published, so the simulator only counts concurrent
# translations against each documented limit and refuses the connection that would exceed it.
#
# Rules: a NAT kind is data (NatKind): its documentation URL, what a translation is counted against
# (`scope`: "fleet" = per destination across the fleet and all public IPs; "host" = per VM and
# destination), its capacity function, its knobs with defaults and bounds, and the name the provider
# gives the failure. No `if kind == ...` anywhere else: parse_nat and NatTable read the registry.
#
# Theory of operation: NatTable.admit(host, destination, now) first releases translations whose hold-down
# (`release_after` seconds after the host's connection ended) has passed, then admits the connection if
# the count for its key is below the capacity. A refused connection is aborted on the host (SO_LINGER 0):
# the real client would retry its SYN while holding a local port, which the model does not replay,
# because behind a NAT the host's own range is rarely the bottleneck (docs/simulate.md says so).
"""NAT kinds (AWS NAT gateway, Azure NAT gateway, Azure LB outbound, GCP Cloud NAT) as data."""

from __future__ import annotations

import heapq
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any


class NatError(ValueError):
    """A [nat] table is invalid (one line naming the key)."""


#: Azure Load Balancer default outbound allocation by backend pool size: (largest pool, ports per VM).
#: https://learn.microsoft.com/azure/load-balancer/load-balancer-outbound-connections#preallocatedports
AZURE_LB_DEFAULT_PORTS = ((50, 1024), (100, 512), (200, 256), (400, 128), (800, 64), (1000, 32))


def azure_lb_default_ports(pool_size: int) -> int | None:
    """Ports per VM that Azure LB allocates by default to a backend pool of ``pool_size`` (None: > 1000)."""
    for largest, ports in AZURE_LB_DEFAULT_PORTS:
        if pool_size <= largest:
            return ports
    return None


@dataclass(frozen=True)
class Knob:
    """A [nat] setting: default, bounds, and what it means."""

    default: Any
    low: float
    high: float
    meaning: str


@dataclass(frozen=True)
class NatKind:
    """One kind of NAT, described by its documented limits."""

    name: str
    docs: tuple[str, ...]
    scope: str                     # "fleet": per destination for the whole fleet; "host": per VM and destination
    capacity: Callable[[Mapping[str, Any], int], int]   # (knobs, fleet size) -> translations per key
    knobs: Mapping[str, Knob]
    failure: str                   # what the provider calls the failure (metric or log reason)
    summary: str
    check: Callable[[Mapping[str, Any], int], str | None] = lambda knobs, hosts: None


def _gcp_check(k: Mapping[str, Any], hosts: int) -> str | None:
    need = hosts * int(k["min_ports_per_vm"])
    have = int(k["public_ips"]) * 64_512
    if need > have:
        return (f"{hosts} VMs x min_ports_per_vm {k['min_ports_per_vm']} = {need:,} ports exceed "
                f"{k['public_ips']} NAT IPs x 64,512 = {have:,}; Cloud NAT would leave VMs without ports")
    return None


def _azure_lb_capacity(k: Mapping[str, Any], hosts: int) -> int:
    manual = int(k["ports_per_vm"])
    if manual:
        return manual
    ports = azure_lb_default_ports(hosts)
    assert ports is not None
    return ports


def _azure_lb_check(k: Mapping[str, Any], hosts: int) -> str | None:
    manual = int(k["ports_per_vm"])
    if not manual and azure_lb_default_ports(hosts) is None:
        return f"default allocation covers pools of at most 1000 VMs, not {hosts}; set ports_per_vm"
    if manual and manual * hosts > 64_000 * int(k["public_ips"]):
        return (f"ports_per_vm {manual} x {hosts} VMs exceeds {k['public_ips']} frontend IPs x 64,000 ports; "
                "add public_ips or lower ports_per_vm")
    return None


_RELEASE = Knob(0.0, 0, 3600, "seconds a translation is held after the host's connection ends (not documented "
                              "as a number for this kind: 0 unless you set it)")

#: The registry. Each URL is where the limit is documented.
NAT_KINDS: dict[str, NatKind] = {
    "aws-nat-gateway": NatKind(
        name="aws-nat-gateway",
        docs=("https://docs.aws.amazon.com/vpc/latest/userguide/nat-gateway-basics.html",
              "https://repost.aws/knowledge-center/vpc-resolve-port-allocation-errors"),
        scope="fleet",
        capacity=lambda k, hosts: 55_000 * int(k["public_ips"]),
        knobs={"public_ips": Knob(1, 1, 8, "public IPv4 addresses (1 primary + up to 7 secondary)"),
               "release_after": _RELEASE},
        failure="ErrorPortAllocation (CloudWatch)",
        summary="55,000 simultaneous connections to each unique destination, per public IP",
    ),
    "azure-nat-gateway": NatKind(
        name="azure-nat-gateway",
        docs=("https://learn.microsoft.com/azure/nat-gateway/nat-gateway-snat",
              "https://learn.microsoft.com/azure/nat-gateway/nat-gateway-resource"),
        scope="fleet",
        capacity=lambda k, hosts: int(k["public_ips"]) * min(64_512, int(k["same_destination_limit"])),
        knobs={"public_ips": Knob(1, 1, 16, "public IPs (up to 16)"),
               "same_destination_limit": Knob(50_000, 1, 64_512, "concurrent connections per public IP to the "
                                              "same destination endpoint (documented: up to 50,000)"),
               "release_after": _RELEASE},
        failure="SNAT port exhaustion (SNATConnectionCount: failed)",
        summary="64,512 SNAT ports per public IP, reusable across destinations; up to 50,000 concurrent "
                "connections per IP to the same destination",
    ),
    "azure-lb-outbound": NatKind(
        name="azure-lb-outbound",
        docs=("https://learn.microsoft.com/azure/load-balancer/load-balancer-outbound-connections",),
        scope="host",
        capacity=_azure_lb_capacity,
        knobs={"public_ips": Knob(1, 1, 600, "frontend IPs (the default allocation stays capped at 1024 per VM)"),
               "ports_per_vm": Knob(0, 0, 64_000, "manual outbound-rule allocation per VM; 0 = the default "
                                    "table by pool size (1-50 VMs: 1024 ... 801-1000: 32)"),
               "release_after": _RELEASE},
        failure="SNAT port exhaustion (SnatConnectionCount: failed)",
        summary="ports preallocated per VM by backend pool size (1-50: 1024, 51-100: 512, 101-200: 256, "
                "201-400: 128, 401-800: 64, 801-1000: 32); each reusable toward different destinations",
        check=_azure_lb_check,
    ),
    "gcp-cloud-nat": NatKind(
        name="gcp-cloud-nat",
        docs=("https://cloud.google.com/nat/docs/ports-and-addresses",
              "https://cloud.google.com/compute/docs/reference/rest/v1/routers"),
        scope="host",
        capacity=lambda k, hosts: int(k["max_ports_per_vm"] if k["dynamic_port_allocation"] else k["min_ports_per_vm"]),
        knobs={"public_ips": Knob(1, 1, 300, "NAT IP addresses (64,512 ports each)"),
               "min_ports_per_vm": Knob(64, 2, 65_536, "ports reserved per VM (default 64)"),
               "max_ports_per_vm": Knob(65_536, 32, 65_536, "with dynamic port allocation, the most a VM gets"),
               "dynamic_port_allocation": Knob(False, 0, 1, "grow a VM's ports up to max_ports_per_vm "
                                               "(simplified here: the VM may use max_ports_per_vm)"),
               "release_after": Knob(120.0, 0, 3600, "tcp_time_wait_timeout_sec: a closed connection's "
                                     "mapping is kept this long (API default 120 s)")},
        failure="OUT_OF_RESOURCES (Cloud NAT log: dropped)",
        summary="ports per VM (min_ports_per_vm, default 64); one port per concurrent connection to the same "
                "destination",
        check=_gcp_check,
    ),
}


def parse_nat(value: Any, hosts: int) -> Any:
    """Validate a [nat] table into a NatConfig (ScenarioError naming the key on any defect)."""
    from portalloc.sim.scenario import NatConfig, ScenarioError

    if not isinstance(value, Mapping):
        raise ScenarioError("nat: must be a table ([nat]) with kind = ...")
    kind_name = value.get("kind")
    if not isinstance(kind_name, str) or kind_name not in NAT_KINDS:
        raise ScenarioError(f"nat.kind: must be one of {', '.join(NAT_KINDS)}, not {kind_name!r}")
    kind = NAT_KINDS[kind_name]
    knobs: dict[str, Any] = {}
    for key, v in value.items():
        if key == "kind":
            continue
        if key not in kind.knobs:
            raise ScenarioError(f"nat.{key}: unknown key for {kind_name}; allowed: kind, {', '.join(kind.knobs)}")
        knob = kind.knobs[key]
        if isinstance(knob.default, bool):
            if not isinstance(v, bool):
                raise ScenarioError(f"nat.{key}: must be true or false, not {v!r}")
        elif isinstance(v, bool) or not isinstance(v, int | float) or not knob.low <= v <= knob.high:
            raise ScenarioError(f"nat.{key}: must be a number from {knob.low:g} to {knob.high:g} ({knob.meaning}), "
                                f"not {v!r}")
        knobs[key] = v
    for key, knob in kind.knobs.items():
        knobs.setdefault(key, knob.default)
    problem = kind.check(knobs, hosts)
    if problem:
        raise ScenarioError(f"nat: {problem}")
    ips = tuple(f"203.0.113.{i + 1}" for i in range(int(knobs["public_ips"])))
    return NatConfig(kind=kind_name, public_ips=ips, knobs=knobs)


class NatTable:
    """Concurrent translations of one NAT, counted per key against the kind's documented capacity."""

    def __init__(self, kind: str, knobs: Mapping[str, Any], hosts: int) -> None:
        self.kind = NAT_KINDS[kind]
        self.capacity = self.kind.capacity(knobs, hosts)
        self.release_after = float(knobs.get("release_after", 0.0))
        self.per_host = self.kind.scope == "host"
        self.used: dict[tuple[Any, ...], int] = {}
        self.peak: dict[tuple[Any, ...], int] = {}
        self._pending: list[tuple[float, int, tuple[Any, ...]]] = []
        self._seq = 0
        self.refused = 0

    def key(self, host: int, dest: int) -> tuple[int, int]:
        """The counter a translation of ``host`` toward destination index ``dest`` is charged to."""
        return (host, dest) if self.per_host else (-1, dest)

    def _expire(self, now: float) -> None:
        p = self._pending
        while p and p[0][0] <= now:
            _, _, k = heapq.heappop(p)
            self.used[k] -= 1

    def admit(self, host: int, dest: int, now: float) -> bool:
        """Charge one translation; False (and nothing charged) when the key is at capacity."""
        self._expire(now)
        k = self.key(host, dest)
        n = self.used.get(k, 0)
        if n >= self.capacity:
            self.refused += 1
            return False
        self.used[k] = n + 1
        if n + 1 > self.peak.get(k, 0):
            self.peak[k] = n + 1
        return True

    def release(self, host: int, dest: int, now: float) -> None:
        """The host's connection ended: the translation goes after ``release_after`` seconds."""
        k = self.key(host, dest)
        if self.release_after <= 0:
            self._expire(now)
            self.used[k] -= 1
            return
        self._seq += 1
        heapq.heappush(self._pending, (now + self.release_after, self._seq, k))

    def in_use(self, now: float) -> int:
        """Translations held now (all keys)."""
        self._expire(now)
        return sum(self.used.values())

    def describe(self) -> dict[str, Any]:
        """The kind's documented limit, capacity per key, and sources (for the result document)."""
        return {"kind": self.kind.name, "documented_limit": self.kind.summary, "capacity_per_key": self.capacity,
                "counted_per": "VM and destination" if self.per_host else "destination (whole fleet)",
                "release_after_s": self.release_after, "failure_name": self.kind.failure,
                "docs": list(self.kind.docs), "refused": self.refused,
                "peak_per_key": max(self.peak.values(), default=0),
                "note": "documented limits, not source-verified algorithms"}
