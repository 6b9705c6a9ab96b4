# The result of a simulation: counts, the timeline, per-destination use, WHY it ran out, cross-checks
# against queueing arithmetic, and fixes — each fix checked by simulating the variant.
#
# Rules: (1) the JSON document (Result.to_dict) holds the fields issue 11 names, with these names:
# attempts, connected, failed {errno name: count}, first_failure_s, peak {in_use, time_wait}, workloads,
# timeline rows {t, attempts, connected, failed, in_use, time_wait}, per_destination. (2) A finding states
# what the host's tables held when the first connection failed (read from the model, not inferred). (3) A
# fix is reported only with the outcome of running its variant; a variant that cannot be built (e.g. the
# kernel has no such sysctl) is listed as not checked, with the reason.
#
# Theory of operation: `build_result(run)` turns the engine's RunData into a Result; `explain` reads the
# Failure record (errno, call, TIME_WAIT and open counts toward the destination, bound ports, range size)
# and names the limit that was reached; `cross_checks` compares steady-state means of the timeline with
# Little's law and the analytic threshold range / (60 s + hold); `check_fixes` builds variants from the
# scenario's dict and runs each through the same engine.
"""Result of a simulation, its explanation, cross-checks and checked fixes."""

from __future__ import annotations

import ipaddress
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from portalloc.sim.engine import Failure, RunData
from portalloc.sim.scenario import Scenario, ScenarioError

#: TCP_TIMEWAIT_LEN: how long the closing side keeps TIME_WAIT (include/net/tcp.h; not tunable).
TIME_WAIT_S = 60.0
#: The widest range Linux allows for ip_local_port_range (1024 is where unprivileged ports start).
WIDE_RANGE = "1024 65535"


@dataclass
class Result:
    """What a simulation found. ``to_dict()`` gives the JSON document of ``portalloc simulate --json``."""

    scenario: Scenario
    attempts: int
    connected: int
    failed: dict[str, int]
    first_failure_s: float | None
    peak: dict[str, int]
    workloads: dict[str, dict[str, Any]]
    timeline: list[dict[str, Any]]
    per_destination: list[dict[str, Any]]
    failure: dict[str, Any] | None
    findings: list[str]
    checks: list[dict[str, Any]]
    fixes: list[dict[str, Any]] = field(default_factory=list)
    nat: dict[str, Any] | None = None
    notes: list[str] = field(default_factory=list)
    params: dict[str, Any] = field(default_factory=dict)
    wall_s: float = 0.0
    range_size: int | None = None
    run: RunData | None = field(default=None, repr=False)

    @property
    def runs_out(self) -> bool:
        """Whether any connection failed."""
        return self.first_failure_s is not None

    def to_dict(self) -> dict[str, Any]:
        """The JSON document (issue 11's fields, plus findings, checks, fixes, nat and notes)."""
        d: dict[str, Any] = {
            "scenario": self.scenario.name or None,
            "kernel": self.scenario.kernel,
            "seed": self.scenario.seed,
            "duration_s": self.scenario.duration,
            "hosts": self.scenario.hosts,
            "range_size": self.range_size,
            "attempts": self.attempts,
            "connected": self.connected,
            "failed": dict(self.failed),
            "first_failure_s": self.first_failure_s,
            "peak": dict(self.peak),
            "workloads": self.workloads,
            "timeline": self.timeline,
            "per_destination": self.per_destination,
            "failure": self.failure,
            "findings": self.findings,
            "checks": self.checks,
            "fixes": self.fixes,
            "nat": self.nat,
            "notes": self.notes,
            "wall_s": round(self.wall_s, 3),
        }
        if self.params:
            d["params"] = self.params
        return d


def build_result(run: RunData, wall_s: float = 0.0, params: dict[str, Any] | None = None) -> Result:
    """Turn the engine's measurements into a Result (findings and cross-checks included, no fixes yet)."""
    sc = run.scenario
    failed: Counter[str] = Counter()
    workloads: dict[str, dict[str, Any]] = {}
    for w, wc in zip(sc.workloads, run.workload_counts, strict=True):
        failed.update(wc["failed"])
        workloads[w.name] = {"attempts": wc["attempts"], "connected": wc["connected"],
                             "failed": dict(wc["failed"]), "first_failure_s": _round(wc["first_failure_s"]),
                             "peak": {"in_use": wc["peak_in_use"], "time_wait": wc["peak_time_wait"]}}
    attempts = sum(wc["attempts"] for wc in run.workload_counts)
    connected = sum(wc["connected"] for wc in run.workload_counts)
    peak_in_use = max((r["in_use"] for r in run.timeline), default=0)
    # The exact peak of open connections (the timeline samples once a second).
    peak_in_use = max(peak_in_use, _exact_peak(run))
    peak = {"in_use": peak_in_use, "time_wait": max((r["time_wait"] for r in run.timeline), default=0)}
    ff = run.first_failure
    res = Result(scenario=sc, attempts=attempts, connected=connected, failed=dict(failed),
                 first_failure_s=_round(ff.t) if ff else None, peak=peak, workloads=workloads,
                 timeline=run.timeline, per_destination=_per_destination(run),
                 failure=_failure_dict(ff), findings=explain(run), checks=cross_checks(run),
                 nat=run.nat, notes=list(run.notes), params=dict(params or {}), wall_s=wall_s,
                 range_size=run.range_size, run=run)
    return res


def _round(v: float | None) -> float | None:
    return None if v is None else round(v, 6)


def _exact_peak(run: RunData) -> int:
    # Per-workload peaks are exact; their sum bounds the total from above, the sampled maximum from below.
    return max((wc["peak_in_use"] for wc in run.workload_counts), default=0)


def _failure_dict(f: Failure | None) -> dict[str, Any] | None:
    if f is None:
        return None
    return {"t": round(f.t, 6), "host": f.host, "workload": f.workload, "destination": f"{f.dest[0]}:{f.dest[1]}",
            "source": f.source, "call": f.call, "errno": f.errno, "open_toward_destination": f.in_use_toward,
            "time_wait_toward_destination": f.time_wait_toward, "open_total": f.in_use_total,
            "range_size": f.range_size, "bound_ports": f.bound_ports}


def _per_destination(run: RunData) -> list[dict[str, Any]]:
    """One row per (source, destination, port), summed over the fleet (peaks: the largest on one host)."""
    rows: dict[tuple[str, str, int, str], dict[str, Any]] = {}
    for i, p in enumerate(run.pairs):
        wname = run.scenario.workloads[p.workload].name
        key = (p.source, p.dest[0], p.dest[1], wname)
        r = rows.get(key)
        if r is None:
            r = rows[key] = {"source": p.source, "destination": p.dest[0], "port": p.dest[1], "workload": wname,
                             "attempts": 0, "connected": 0, "failed": Counter(), "peak_in_use": 0,
                             "peak_time_wait": 0, "free_ports": run.free_ports.get(i), "hosts": 0}
        r["attempts"] += p.attempts
        r["connected"] += p.connected
        r["failed"].update(p.failed)
        r["peak_in_use"] = max(r["peak_in_use"], p.peak_in_use)
        r["peak_time_wait"] = max(r["peak_time_wait"], p.peak_time_wait)
        r["hosts"] += 1
        free = run.free_ports.get(i)
        if free is not None and (r["free_ports"] is None or free < r["free_ports"]):
            r["free_ports"] = free
    out = []
    for r in rows.values():
        r["failed"] = dict(r["failed"])
        out.append(r)
    out.sort(key=lambda r: (-sum(r["failed"].values()), -r["peak_in_use"] - r["peak_time_wait"]))
    return out


# ----------------------------------------------------------------------------------------------- why

def explain(run: RunData) -> list[str]:
    """Sentences saying whether the workload runs out, when, where, with which errno, and why."""
    sc = run.scenario
    f = run.first_failure
    total_failed = sum(sum(wc["failed"].values()) for wc in run.workload_counts)
    if f is None:
        return [f"No connection failed in {sc.duration:g} simulated seconds "
                f"({sum(wc['attempts'] for wc in run.workload_counts):,} attempts)."]
    dest = f"{f.dest[0]}:{f.dest[1]}"
    w = next(x for x in sc.workloads if x.name == f.workload)
    host = f" on fleet host {f.host}" if sc.hosts > 1 else ""
    lines = [f"Runs out at t = {f.t:.3f} s{host}: workload {f.workload}'s {f.call}() toward {dest} from "
             f"{f.source} failed with {f.errno}; {total_failed:,} connections failed in all."]
    rng = f"the {f.range_size:,}-port range" if f.range_size else "the port range"
    if f.call == "nat" and run.nat is not None:
        n = run.nat
        lines.append(f"Why: the NAT ({n['kind']}) was full: {n['capacity_per_key']:,} concurrent translations "
                     f"per {n['counted_per']} (documented: {n['documented_limit']}); the provider reports "
                     f"{n['failure_name']}. The host's own ports were not the limit.")
    elif f.call == "bind" and f.errno == "EADDRINUSE":
        lines.append(f"Why: bind() before connect() locked a port for every connection, whatever its "
                     f"destination: {f.bound_ports:,} TCP ports were held (bound sockets and TIME_WAIT) out of "
                     f"{rng}, so the {len(w.to)} destinations shared one range instead of having one each.")
    elif w.proto == "udp" and f.errno == "EAGAIN":
        lines.append(f"Why: each connected UDP socket holds its port for the whole host (UDP autobind does not "
                     f"share a port between destinations): {f.in_use_total:,} sockets were open against {rng}.")
    elif f.errno == "EADDRNOTAVAIL":
        held = f.in_use_toward + f.time_wait_toward
        if f.time_wait_toward >= f.in_use_toward:
            lines.append(f"Why: the TIME_WAIT count toward {dest} from {f.source} ({f.time_wait_toward:,}) plus "
                         f"its open connections ({f.in_use_toward:,}) reached {rng} ({held:,} 4-tuples): each "
                         f"connection the client closes keeps its port for {TIME_WAIT_S:g} s.")
        else:
            lines.append(f"Why: open connections toward {dest} from {f.source} ({f.in_use_toward:,}, plus "
                         f"{f.time_wait_toward:,} in TIME_WAIT) filled {rng}: the 4-tuple toward one "
                         "destination allows one connection per local port.")
        if f.range_size and held < f.range_size:
            lines.append(f"The other {f.range_size - held:,} ports were held by sockets bound with bind() "
                         f"({f.bound_ports:,} TCP ports bound in all), which connect() never shares.")
    else:
        lines.append(f"Why: the host answered {f.errno} ({f.in_use_total:,} connections open).")
    return lines


# ----------------------------------------------------------------------------------------------- checks

def cross_checks(run: RunData) -> list[dict[str, Any]]:
    """Little's law (in use = rate x hold; TIME_WAIT = close rate x 60 s) on the steady part of the
    timeline, and the analytic threshold range / (60 s + hold) for client-closing TCP toward one destination."""
    sc = run.scenario
    out: list[dict[str, Any]] = []
    tl = run.timeline
    failed = run.first_failure is not None
    rate_all = sum(w.rate for w in sc.workloads) * sc.hosts
    hold_max = max(w.hold.mean for w in sc.workloads)
    warm = min(sc.duration / 2, 5 * hold_max + 1)
    steady = [r for r in tl if r["t"] >= warm and (run.first_failure is None or r["t"] < run.first_failure.t)]
    expected = sum(w.rate * w.hold.mean for w in sc.workloads) * sc.hosts
    if steady and not failed and expected > 0:
        mean = sum(r["in_use"] for r in steady) / len(steady)
        out.append({"check": "little_in_use", "what": "mean connections open = rate x mean hold (Little's law)",
                    "expected": round(expected, 3), "measured": round(mean, 3),
                    "ratio": round(mean / expected, 4) if expected else None,
                    "window_s": [steady[0]["t"], steady[-1]["t"]]})
    tw_workloads = [w for w in sc.workloads if w.proto == "tcp" and w.closes == "client"]
    if tw_workloads:
        close_rate = sum(w.rate for w in tw_workloads) * sc.hosts
        tw_expected = close_rate * TIME_WAIT_S
        start = TIME_WAIT_S + hold_max * 5 + 1
        tw_steady = [r for r in tl if r["t"] >= start]
        if tw_steady and not failed:
            mean = sum(r["time_wait"] for r in tw_steady) / len(tw_steady)
            out.append({"check": "little_time_wait", "what": "mean TIME_WAIT = close rate x 60 s (Little's law)",
                        "expected": round(tw_expected, 3), "measured": round(mean, 3),
                        "ratio": round(mean / tw_expected, 4) if tw_expected else None,
                        "window_s": [tw_steady[0]["t"], tw_steady[-1]["t"]]})
        elif not failed:
            out.append({"check": "little_time_wait", "what": "mean TIME_WAIT = close rate x 60 s",
                        "expected": round(tw_expected, 3), "measured": None,
                        "note": f"not checked: needs a run longer than {start:g} s to reach the steady state"})
    if run.range_size:
        for w in sc.workloads:
            if w.proto != "tcp" or w.closes != "client" or len(w.to) != 1 or len(w.sources) > 1 \
                    or w.technique == "bind-before-connect" or sc.nat is not None:
                continue
            threshold = run.range_size / (TIME_WAIT_S + w.hold.mean)
            predicted = w.rate * sc.hosts > threshold if sc.hosts == 1 else None
            fill_time = run.range_size / w.rate
            observable = sc.duration > min(fill_time, TIME_WAIT_S + w.hold.mean) + 1
            observed = run.workload_counts[sc.workloads.index(w)]["first_failure_s"] is not None
            row = {"check": "threshold", "workload": w.name,
                   "what": "runs out iff rate > range / (60 s + hold) (client closes, one destination)",
                   "range": run.range_size, "threshold_per_s": round(threshold, 3), "rate_per_s": w.rate,
                   "predicted_runs_out": predicted, "observed_runs_out": observed}
            if predicted is not None and observable and len(sc.workloads) == 1:
                row["agrees"] = predicted == observed
            out.append(row)
    if rate_all == 0:
        return out
    return out


# ----------------------------------------------------------------------------------------------- fixes

@dataclass(frozen=True)
class FixCandidate:
    """A change that might fix the run: its name, what it does, and the variant it builds."""

    name: str
    description: str
    build: Callable[[dict[str, Any]], dict[str, Any] | None]


def _workloads(d: dict[str, Any]) -> list[dict[str, Any]]:
    w = d.get("workload", [])
    return [w] if isinstance(w, dict) else w


def _fix_no_port(d: dict[str, Any]) -> dict[str, Any] | None:
    changed = False
    for w in _workloads(d):
        if w.get("technique") == "bind-before-connect":
            w["technique"] = "no-port"
            changed = True
    return d if changed else None


def _fix_range(d: dict[str, Any]) -> dict[str, Any] | None:
    sysctls = d.setdefault("host", {}).setdefault("sysctls", {})
    if str(sysctls.get("net.ipv4.ip_local_port_range", "")).split() == WIDE_RANGE.split():
        return None
    sysctls["net.ipv4.ip_local_port_range"] = WIDE_RANGE
    return d


def _fix_tw_reuse(d: dict[str, Any]) -> dict[str, Any] | None:
    if not any(w.get("proto", "tcp") == "tcp" for w in _workloads(d)):
        return None
    sysctls = d.setdefault("host", {}).setdefault("sysctls", {})
    if sysctls.get("net.ipv4.tcp_tw_reuse") == 1:
        return None
    sysctls["net.ipv4.tcp_tw_reuse"] = 1
    return d


def _more_sources(failing: str) -> Callable[[dict[str, Any]], dict[str, Any] | None]:
    def build(d: dict[str, Any]) -> dict[str, Any] | None:
        host = d.setdefault("host", {})
        addrs = list(host.get("addresses") or [])
        w = next((x for x in _workloads(d) if x.get("name") == failing), None)
        if w is None or not addrs:
            return None
        srcs = w.get("source") or []
        srcs = [srcs] if isinstance(srcs, str) else list(srcs)
        base = ipaddress.ip_interface(next((a for a in addrs if not ipaddress.ip_interface(a).ip.is_loopback),
                                           addrs[0]))
        taken = {str(ipaddress.ip_interface(a).ip) for a in addrs}
        if not srcs:
            srcs = [str(base.ip)]
        want = max(4, 2 * len(srcs))
        new: list[str] = []
        for ip in base.network.hosts() if base.network.num_addresses > 2 else []:
            if len(srcs) + len(new) >= want:
                break
            if str(ip) not in taken and str(ip) not in srcs:
                new.append(str(ip))
        if not new:
            return None
        host["addresses"] = addrs + [f"{ip}/{base.network.prefixlen}" for ip in new]
        w["source"] = srcs + new
        if w.get("technique", "connect") == "connect":
            w["technique"] = "no-port"
        return d
    return build


def _reuse(failing: str) -> Callable[[dict[str, Any]], dict[str, Any] | None]:
    def build(d: dict[str, Any]) -> dict[str, Any] | None:
        w = next((x for x in _workloads(d) if x.get("name") == failing), None)
        if w is None:
            return None
        w["rate"] = w["rate"] / 4
        return d
    return build


def _nat_ips(d: dict[str, Any]) -> dict[str, Any] | None:
    from portalloc.sim.nat import NAT_KINDS

    nat = d.get("nat")
    if not nat:
        return None
    kind = NAT_KINDS[nat["kind"]]
    have = int(nat.get("public_ips", kind.knobs["public_ips"].default))
    high = int(kind.knobs["public_ips"].high)
    if have >= high or kind.scope == "host":
        return None
    nat["public_ips"] = min(high, have * 2)
    return d


def _nat_ports_per_vm(d: dict[str, Any]) -> dict[str, Any] | None:
    nat = d.get("nat")
    if not nat:
        return None
    hosts = int(d.get("fleet", {}).get("hosts", 1))
    if nat["kind"] == "azure-lb-outbound":
        ips = int(nat.get("public_ips", 1))
        per_vm = min(64_000 * ips // hosts, 64_000)
        from portalloc.sim.nat import azure_lb_default_ports

        now = int(nat.get("ports_per_vm", 0)) or (azure_lb_default_ports(hosts) or 0)
        if per_vm <= now:
            nat["public_ips"] = ips * 2
            per_vm = min(64_000 * ips * 2 // hosts, 64_000)
        nat["ports_per_vm"] = per_vm // 8 * 8
        return d
    if nat["kind"] == "gcp-cloud-nat":
        now = int(nat.get("min_ports_per_vm", 64))
        nat["min_ports_per_vm"] = min(65_536, now * 4)
        ips = int(nat.get("public_ips", 1))
        while hosts * nat["min_ports_per_vm"] > ips * 64_512:
            ips += 1
        nat["public_ips"] = ips
        return d
    return None


def fix_candidates(result: Result) -> list[FixCandidate]:
    """The fixes worth trying for this result's failure, in the order the summary lists them."""
    f = result.run.first_failure if result.run else None
    if f is None:
        return []
    failing = f.workload
    if f.call == "nat":
        return [FixCandidate("more NAT public IPs", "double the NAT's public IPs", _nat_ips),
                FixCandidate("more SNAT ports per VM", "a manual allocation of ports per VM (more IPs if needed)",
                             _nat_ports_per_vm),
                FixCandidate("connection reuse", f"workload {failing}: keep-alive, 4 requests per connection "
                             "(rate / 4)", _reuse(failing))]
    return [
        FixCandidate("IP_BIND_ADDRESS_NO_PORT", "bind the source address with IP_BIND_ADDRESS_NO_PORT set "
                     "(technique no-port): the port is chosen at connect() per destination", _fix_no_port),
        FixCandidate("wider range", f"net.ipv4.ip_local_port_range = \"{WIDE_RANGE}\"", _fix_range),
        FixCandidate("more source addresses", f"workload {failing}: more source addresses in the host's "
                     "subnet, round-robin, bound with IP_BIND_ADDRESS_NO_PORT", _more_sources(failing)),
        FixCandidate("tcp_tw_reuse=1", "net.ipv4.tcp_tw_reuse = 1: connect() may take over a TIME_WAIT older "
                     "than 1 s (needs TCP timestamps)", _fix_tw_reuse),
        FixCandidate("connection reuse", f"workload {failing}: keep-alive, 4 requests per connection (rate / 4)",
                     _reuse(failing)),
    ]


def check_fixes(result: Result,
                run_variants: Callable[[list[Scenario]], list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """Run each applicable fix's variant; one row per fix with what the variant did. ``run_variants`` simulates
    a list of variants and gives, in the same order, each one's ``fix_outcome`` (one by one, or in processes:
    each variant is a whole simulation of its own, so the rows do not depend on how they were run)."""
    rows: list[dict[str, Any]] = []
    pending: list[tuple[dict[str, Any], Scenario]] = []
    for cand in fix_candidates(result):
        d = cand.build(result.scenario.to_dict())
        if d is None:
            continue
        try:
            variant = Scenario.from_dict(d)
        except ScenarioError as exc:
            rows.append({"fix": cand.name, "change": cand.description, "checked": False, "why_not": str(exc)})
            continue
        row = {"fix": cand.name, "change": cand.description, "checked": True}
        rows.append(row)
        pending.append((row, variant))
    if pending:
        outcomes = run_variants([v for _, v in pending])
        for (row, _), outcome in zip(pending, outcomes, strict=True):
            row.update(outcome)
    return rows


def fix_outcome(r: Result) -> dict[str, Any]:
    """What a fix's variant did, as its row of Result.fixes shows it."""
    return {"fixes_it": not r.runs_out, "first_failure_s": r.first_failure_s, "failed": sum(r.failed.values()),
            "connected": r.connected, "peak_in_use": r.peak["in_use"], "peak_time_wait": r.peak["time_wait"]}
