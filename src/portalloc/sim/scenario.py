# Scenario files for `portalloc simulate`: TOML in, a validated, immutable Scenario out.
#
# Rules: (1) validation is total: every defect (an unknown key, a bad unit, an impossible value) raises one
# ScenarioError whose message is one line naming the key and saying what is allowed; nothing else escapes
# from Scenario.load / Scenario.from_dict. (2) A Scenario keeps the normalised dict it was built from
# (`to_dict()`), so a variant (`with_param("rate", 500)`, `--vary`) is the dict with one key changed,
# validated again from scratch. (3) No kernel rule lives here: a scenario says what the workload does, the
# model decides what the kernel makes of it.
#
# Theory of operation: `from_dict` walks the schema top-down (top level, [host], [[workload]], [fleet],
# [nat]); each section checks its keys against the allowed set first, then each value with a small typed
# parser (durations "2m"/"500ms", destinations "10.1.0.0/28:443" expanded into addresses, hold
# distributions). NAT kinds and their knobs come from the registry in sim/nat.py (data, not if-chains).
"""Scenario: what a simulated host (or fleet) does, loaded from TOML or a dict."""

from __future__ import annotations

import copy
import ipaddress
import math
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from portalloc.endpoint import split_endpoint

#: Keys allowed in each section (anything else is an error naming the key).
TOP_KEYS = ("name", "description", "incident", "duration", "seed", "host", "workload", "fleet", "nat")
HOST_KEYS = ("kernel", "addresses", "sysctls")
WORKLOAD_KEYS = ("name", "proto", "to", "rate", "arrivals", "hold", "closes", "technique", "source")
FLEET_KEYS = ("hosts",)
PROTOS = ("tcp", "udp")
ARRIVALS = ("constant", "poisson")
CLOSES = ("client", "server", "reset")
TECHNIQUES = ("connect", "bind-before-connect", "no-port", "connectx")
HOLD_KINDS = ("exponential", "lognormal")
#: At most this many destinations after CIDR expansion (a /16 of IPv4 addresses).
MAX_DESTINATIONS = 65_536
#: At most this many fleet hosts (each is a model Host).
MAX_HOSTS = 10_000
#: At most this many (fleet host, destination) pairs, each with its own counters.
MAX_HOST_DESTINATIONS = 1_000_000
#: The longest simulated run.
MAX_DURATION = 7 * 24 * 3600.0

#: The largest scenario file read (a TOML scenario is a few KiB; this stops /dev/zero and mistakes early).
MAX_FILE_BYTES = 4 * 1024 * 1024
#: Seeds are 64-bit, as in traces and the model's Host.
MAX_SEED = 2**64 - 1

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0}
_DURATION_RE = re.compile(r"^\s*([0-9]+(?:\.[0-9]*)?|\.[0-9]+)\s*(ms|s|min|m|h)?\s*$")


class ScenarioError(ValueError):
    """A scenario is invalid; the message is one line naming the key and what is allowed."""


def _fail(key: str, message: str) -> ScenarioError:
    return ScenarioError(f"{key}: {message}")


def show(value: Any, limit: int = 60) -> str:
    """``repr(value)`` cut to ``limit`` characters, safe on huge integers and deep nesting (error messages)."""
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 64:
        return f"a {len(str(abs(value))) if value.bit_length() < 14_000 else 'many'}-digit number"
    try:
        text = repr(value)
    except (RecursionError, ValueError):
        return f"a deeply nested {type(value).__name__}"
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _finite(value: Any) -> float | None:
    """``value`` as a finite float, or None if it is not a number (a bool is not) or is too large / not finite."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) else None


def parse_duration(value: Any, key: str) -> float:
    """Seconds from a number or a string with a unit ("500ms", "2m", "1.5s", "1h")."""
    if isinstance(value, bool):
        raise _fail(key, f"must be a number of seconds or a string like \"2m\" or \"500ms\", not {value!r}")
    if isinstance(value, int | float):
        number = _finite(value)
        if number is None:
            raise _fail(key, f"must be a finite, non-negative duration, not {show(value)}")
        seconds = number
    elif isinstance(value, str):
        m = _DURATION_RE.match(value) if len(value) <= 40 else None
        if m is None:
            raise _fail(key, f"bad duration {show(value)}: give seconds (120) or a number with a unit "
                             f"({', '.join(_UNITS)}), e.g. \"2m\" or \"500ms\"")
        seconds = float(m.group(1)) * _UNITS[m.group(2) or "s"]
    else:
        raise _fail(key, f"must be a number of seconds or a string like \"2m\", not {type(value).__name__}")
    if not math.isfinite(seconds) or seconds < 0:
        raise _fail(key, f"must be a finite, non-negative duration, not {show(value)}")
    return seconds


@dataclass(frozen=True)
class Hold:
    """How long a connection stays open: a constant, or an exponential / lognormal distribution.

    ``mean`` is the mean in seconds for every kind (for the lognormal, mu = ln(mean) - sigma^2 / 2), so
    Little's law reads ``rate * mean`` whatever the kind.
    """

    kind: str = "constant"
    mean: float = 0.0
    sigma: float = 0.0

    def to_value(self) -> Any:
        """The TOML/dict form."""
        if self.kind == "constant":
            return self.mean
        if self.kind == "exponential":
            return {"exponential": self.mean}
        return {"lognormal": self.mean, "sigma": self.sigma}


def parse_hold(value: Any, key: str) -> Hold:
    """A hold: a duration, ``{exponential = MEAN}`` or ``{lognormal = MEAN, sigma = S}``."""
    if isinstance(value, Mapping):
        kinds = [k for k in value if k in HOLD_KINDS]
        extra = [k for k in value if k not in (*HOLD_KINDS, "sigma")]
        if extra or len(kinds) != 1:
            raise _fail(key, "must be seconds, { exponential = MEAN } or { lognormal = MEAN, sigma = S }, "
                             f"not {show(dict(value))}")
        kind = kinds[0]
        mean = parse_duration(value[kind], f"{key}.{kind}")
        if kind == "exponential":
            if "sigma" in value:
                raise _fail(key, "sigma belongs to lognormal only")
            if mean <= 0:
                raise _fail(f"{key}.exponential", "the mean must be positive")
            return Hold("exponential", mean)
        sigma = value.get("sigma")
        sigma_value = _finite(sigma)
        if sigma_value is None or not 0 < sigma_value <= 10:
            raise _fail(f"{key}.sigma", f"lognormal needs sigma, a number in (0, 10], not {show(sigma)}")
        if mean <= 0:
            raise _fail(f"{key}.lognormal", "the mean must be positive")
        return Hold("lognormal", mean, sigma_value)
    return Hold("constant", parse_duration(value, key))


def parse_destinations(value: Any, key: str) -> tuple[tuple[str, int], ...]:
    """``["10.1.0.5:443", "10.1.0.0/28:443", "[2001:db8::1]:53"]`` → (address, port) pairs, networks expanded
    into their host addresses (a /31, /32, /127 or /128 into all of its addresses)."""
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not items:
        raise _fail(key, "must be a non-empty list of \"ADDRESS:PORT\" or \"NETWORK/LEN:PORT\" strings")
    out: list[tuple[str, int]] = []
    for item in items:
        if not isinstance(item, str):
            raise _fail(key, f"each destination must be a string like \"10.1.0.5:443\", not {show(item)}")
        try:
            host, port = split_endpoint(item)
        except ValueError:
            raise _fail(key, f"bad destination {show(item)}: give ADDRESS:PORT (\"10.1.0.5:443\", \"[::1]:53\") "
                             "or NETWORK/LEN:PORT (\"10.1.0.0/28:443\")") from None
        if not 1 <= port <= 65535:
            raise _fail(key, f"port {port} in {show(item)} must be 1-65535")
        try:
            net = ipaddress.ip_network(host, strict=False)
        except ValueError:
            raise _fail(key, f"bad address {show(host)} in {show(item)}: give an IPv4 or IPv6 literal or "
                             "network") from None
        if net.num_addresses > MAX_DESTINATIONS:
            raise _fail(key, f"{show(item)} expands to {net.num_addresses:,} destinations; "
                             f"at most {MAX_DESTINATIONS:,}")
        addrs = list(net) if net.num_addresses <= 2 else list(net.hosts())
        out.extend((str(a), port) for a in addrs)
        if len(out) > MAX_DESTINATIONS:
            raise _fail(key, f"more than {MAX_DESTINATIONS:,} destinations after expansion")
    return tuple(out)


def _str_choice(value: Any, key: str, choices: tuple[str, ...]) -> str:
    if not isinstance(value, str) or value not in choices:
        raise _fail(key, f"must be one of {', '.join(choices)}, not {show(value)}")
    return str(value)


def _positive(value: Any, key: str, what: str, allow_zero: bool = False) -> float:
    number = _finite(value)
    if number is None or number < 0 or (number == 0 and not allow_zero):
        raise _fail(key, f"must be a {'non-negative' if allow_zero else 'positive'} number ({what}, finite), "
                         f"not {show(value)}")
    return number


def _check_keys(section: Mapping[str, Any], allowed: tuple[str, ...], where: str) -> None:
    for k in section:
        if k not in allowed:
            shown = k if len(str(k)) <= 40 else str(k)[:37] + "..."
            raise _fail(f"{where}{shown}", f"unknown key; allowed here: {', '.join(allowed)}")


@dataclass(frozen=True)
class Workload:
    """One stream of connections: where to, how often, for how long, and how each is opened and closed."""

    name: str
    proto: str
    to: tuple[tuple[str, int], ...]
    rate: float
    arrivals: str
    hold: Hold
    closes: str
    technique: str
    sources: tuple[str, ...]


@dataclass(frozen=True)
class NatConfig:
    """A NAT in front of the fleet: its registry kind, public IPs, and knob values (defaults applied)."""

    kind: str
    public_ips: tuple[str, ...]
    knobs: Mapping[str, Any]


@dataclass(frozen=True)
class Scenario:
    """A validated scenario. Build it with :meth:`load` (a TOML file) or :meth:`from_dict`."""

    duration: float
    seed: int
    kernel: str
    addresses: tuple[str, ...] | None
    sysctls: Mapping[str, Any]
    workloads: tuple[Workload, ...]
    hosts: int = 1
    nat: NatConfig | None = None
    name: str = ""
    description: str = ""
    incident: str = ""
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)

    # ---------------------------------------------------------------------------------------- loading

    @classmethod
    def load(cls, path: str | Path) -> Scenario:
        """Read and validate a TOML scenario file (ScenarioError for any defect, OSError if unreadable)."""
        p = Path(path)
        if p.exists() and not p.is_file():
            raise ScenarioError(f"{p}: not a regular file; give a scenario TOML file (--list shows the examples)")
        with p.open("rb") as f:
            data_bytes = f.read(MAX_FILE_BYTES + 1)
        if len(data_bytes) > MAX_FILE_BYTES:
            raise ScenarioError(f"{p.name}: larger than {MAX_FILE_BYTES // 2**20} MiB; a scenario is a small TOML file")
        try:
            data = tomllib.loads(data_bytes.decode("utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise ScenarioError(f"{p.name}: not valid TOML: {exc}") from None
        except UnicodeDecodeError:
            raise ScenarioError(f"{p.name}: not UTF-8 text; a scenario is a TOML file") from None
        except RecursionError:
            raise ScenarioError(f"{p.name}: TOML nested too deeply; a scenario is at most a few tables deep") from None
        sc = cls.from_dict(data)
        if not sc.name:
            sc = cls.from_dict({**sc.to_dict(), "name": p.stem})
        return sc

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Scenario:
        """Validate a scenario given as a dict (the TOML document's shape)."""
        if not isinstance(d, Mapping):
            raise ScenarioError(f"a scenario is a table of keys, not {type(d).__name__}")
        _check_keys(d, TOP_KEYS, "")
        duration = parse_duration(d.get("duration", 60), "duration")
        if not 0 < duration <= MAX_DURATION:
            raise _fail("duration", f"must be more than 0 and at most {MAX_DURATION:,.0f} s (a week), not {duration:g}")
        seed = d.get("seed", 1)
        if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED:
            raise _fail("seed", f"must be an integer from 0 to 2**64-1, not {show(seed)}")
        host = d.get("host", {})
        if not isinstance(host, Mapping):
            raise _fail("host", "must be a table ([host])")
        _check_keys(host, HOST_KEYS, "host.")
        kernel = host.get("kernel", "linux")
        from portalloc.kernels import get_profile

        try:
            get_profile(kernel) if isinstance(kernel, str) else None
        except (KeyError, ValueError) as exc:
            raise _fail("host.kernel", f"{exc.args[0] if exc.args else exc}; `portalloc kernels` lists them") from None
        if not isinstance(kernel, str):
            raise _fail("host.kernel", f"must be a profile name such as \"linux-6.18\", not {show(kernel)}")
        addresses = host.get("addresses")
        if addresses is not None:
            if isinstance(addresses, str):
                addresses = [addresses]
            if not isinstance(addresses, list) or not addresses:
                raise _fail("host.addresses", "must be a non-empty list of interface addresses like \"10.0.0.1/24\"")
            for a in addresses:
                try:
                    if not isinstance(a, str):
                        raise ValueError(a)
                    ipaddress.ip_interface(a)
                except ValueError:
                    raise _fail("host.addresses", f"bad interface address {show(a)}: give \"10.0.0.1/24\" or "
                                                  "\"2001:db8::1/64\"") from None
            addresses = tuple(str(a) for a in addresses)
        sysctls = host.get("sysctls", {})
        if not isinstance(sysctls, Mapping):
            raise _fail("host.sysctls", "must be a table of sysctl names and values")
        sysctls = dict(sysctls)
        _check_sysctls(kernel, sysctls)
        raw_workloads = d.get("workload")
        if raw_workloads is None:
            raise _fail("workload", "a scenario needs at least one [[workload]]")
        if isinstance(raw_workloads, Mapping):
            raw_workloads = [raw_workloads]
        if not isinstance(raw_workloads, list) or not raw_workloads:
            raise _fail("workload", "must be an array of tables ([[workload]])")
        workloads = tuple(_workload(w, i) for i, w in enumerate(raw_workloads))
        names = [w.name for w in workloads]
        dup = {n for n in names if names.count(n) > 1}
        if dup:
            raise _fail("workload.name", f"names must be unique; repeated: {', '.join(sorted(dup))}")
        fleet = d.get("fleet", {})
        if not isinstance(fleet, Mapping):
            raise _fail("fleet", "must be a table ([fleet])")
        _check_keys(fleet, FLEET_KEYS, "fleet.")
        hosts = fleet.get("hosts", 1)
        if isinstance(hosts, bool) or not isinstance(hosts, int) or not 1 <= hosts <= MAX_HOSTS:
            raise _fail("fleet.hosts", f"must be an integer from 1 to {MAX_HOSTS:,}, not {show(hosts)}")
        pairs = hosts * sum(len(w.to) for w in workloads)
        if pairs > MAX_HOST_DESTINATIONS:
            raise _fail("fleet.hosts", f"{hosts:,} hosts x {pairs // hosts:,} destinations = {pairs:,} "
                                       f"host-destination pairs; at most {MAX_HOST_DESTINATIONS:,}")
        nat = None
        if "nat" in d:
            from portalloc.sim.nat import parse_nat

            nat = parse_nat(d["nat"], hosts)
        for k in ("name", "description", "incident"):
            if not isinstance(d.get(k, ""), str):
                raise _fail(k, f"must be a string, not {show(d.get(k))}")
        raw = copy.deepcopy(dict(d))
        return cls(duration=duration, seed=seed, kernel=kernel, addresses=addresses, sysctls=sysctls,
                   workloads=workloads, hosts=hosts, nat=nat, name=d.get("name", ""),
                   description=d.get("description", ""), incident=d.get("incident", ""), raw=raw)

    def to_dict(self) -> dict[str, Any]:
        """The scenario as the dict (TOML shape) it was built from."""
        return copy.deepcopy(dict(self.raw))

    # ---------------------------------------------------------------------------------------- variants

    def with_param(self, key: str, value: Any) -> Scenario:
        """A variant with one parameter changed. ``key``: ``kernel``, ``seed``, ``duration``,
        ``sysctls.<name>``, ``hosts`` (fleet size), ``nat.<knob>``, a workload field (all workloads) or
        ``<workload name>.<field>``. ScenarioError when the key names nothing."""
        d = self.to_dict()
        if key in ("seed", "duration"):
            d[key] = value
        elif key == "kernel":
            d.setdefault("host", {})["kernel"] = value
        elif key == "addresses":
            d.setdefault("host", {})["addresses"] = value
        elif key.startswith("sysctls."):
            d.setdefault("host", {}).setdefault("sysctls", {})[key[len("sysctls."):]] = value
        elif key in ("hosts", "fleet.hosts"):
            d.setdefault("fleet", {})["hosts"] = value
        elif key.startswith("nat."):
            if "nat" not in d:
                raise _fail(key, "this scenario has no [nat]")
            d["nat"][key[4:]] = value
        elif key in WORKLOAD_KEYS and key != "name":
            for w in _workload_list(d):
                w[key] = value
        elif "." in key and key.split(".", 1)[1] in WORKLOAD_KEYS:
            wname, fld = key.split(".", 1)
            found = [w for w in _workload_list(d) if w.get("name") == wname]
            if not found:
                known = ", ".join(w.name for w in self.workloads)
                raise _fail(show(key, 60).strip("'"), f"no workload named {show(wname)} (workloads: {known})")
            found[0][fld] = value
        else:
            raise _fail(key, "cannot vary this; use kernel, seed, duration, hosts, sysctls.<name>, nat.<knob>, "
                             f"a workload field ({', '.join(k for k in WORKLOAD_KEYS if k != 'name')}) or "
                             "<workload name>.<field>")
        return Scenario.from_dict(d)

    @property
    def sysctl_range(self) -> tuple[int, int] | None:
        """The ip_local_port_range the scenario sets, or None (the kernel's default)."""
        v = self.sysctls.get("net.ipv4.ip_local_port_range")
        if v is None:
            return None
        lo, hi = (int(x) for x in (v.split() if isinstance(v, str) else v))
        return lo, hi


def _workload_list(d: dict[str, Any]) -> list[dict[str, Any]]:
    w = d.get("workload", [])
    return [w] if isinstance(w, dict) else list(w)


def parse_value(text: str) -> Any:
    """A --vary value: a TOML value if it parses as one (500, 0.5, true, "x"), else the text itself."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except (tomllib.TOMLDecodeError, ValueError, RecursionError):  # ValueError: an integer of > 4300 digits
        return text


def _check_sysctls(kernel: str, sysctls: dict[str, Any]) -> None:
    """Every sysctl must exist on the kernel and take the value (validated by a throwaway model Host)."""
    from portalloc import Host

    for name, value in sysctls.items():
        key = f"host.sysctls.{name if len(name) <= 60 else name[:57] + '...'}"
        try:
            Host(kernel, seed=0, sysctls={name: value})
        except FileNotFoundError:
            raise _fail(key, f"this kernel ({kernel}) has no such sysctl") from None
        except OSError as exc:
            raise _fail(key, f"invalid value {show(value)} ({exc.strerror or exc})") from None
        except (TypeError, ValueError, OverflowError, RecursionError) as exc:
            raise _fail(key, f"invalid value {show(value)}: {show(str(exc), 200)}") from None


def _workload(w: Any, i: int) -> Workload:
    if not isinstance(w, Mapping):
        raise _fail(f"workload[{i}]", "must be a table")
    name = w.get("name", f"workload{i + 1}")
    if not isinstance(name, str) or not re.match(r"^[A-Za-z0-9_-]{1,64}$", name):
        raise _fail(f"workload[{i}].name", f"must be 1-64 letters, digits, - or _, not {show(name)}")
    where = f"workload.{name}."
    _check_keys(w, WORKLOAD_KEYS, where)
    proto = _str_choice(w.get("proto", "tcp"), where + "proto", PROTOS)
    if "to" not in w:
        raise _fail(where + "to", "missing: give the destinations, e.g. to = [\"10.1.0.5:443\"]")
    to = parse_destinations(w["to"], where + "to")
    if "rate" not in w:
        raise _fail(where + "rate", "missing: new connections per second, e.g. rate = 600")
    rate = _positive(w["rate"], where + "rate", "new connections per second")
    if rate > 10_000_000:
        raise _fail(where + "rate", f"at most 10,000,000 connections per second, not {rate:g}")
    arrivals = _str_choice(w.get("arrivals", "constant"), where + "arrivals", ARRIVALS)
    hold = parse_hold(w.get("hold", 0.0), where + "hold")
    closes = _str_choice(w.get("closes", "client"), where + "closes", CLOSES)
    technique = _str_choice(w.get("technique", "connect"), where + "technique", TECHNIQUES)
    src = w.get("source", [])
    sources = (src,) if isinstance(src, str) else src
    if not isinstance(sources, list | tuple) or not all(isinstance(s, str) for s in sources):
        raise _fail(where + "source", "must be an address or a list of addresses")
    for s in sources:
        try:
            ipaddress.ip_address(s)
        except ValueError:
            raise _fail(where + "source", f"bad address {show(s)}: give a literal such as \"10.0.0.1\"") from None
    if technique == "connectx":
        from portalloc.sim.engine import connectx_function

        if connectx_function() is None:
            raise _fail(where + "technique", "\"connectx\" needs portalloc.connectx, which this build does not "
                                             "have yet; use connect, bind-before-connect or no-port")
        if not sources:
            raise _fail(where + "source", "technique \"connectx\" needs the source addresses to pick from")
    families = {ipaddress.ip_address(a).version for a, _ in to}
    for s in sources:
        if ipaddress.ip_address(s).version not in families or len(families) > 1:
            raise _fail(where + "source", f"source {s} and the destinations must be of one address family")
    return Workload(name=name, proto=proto, to=to, rate=rate, arrivals=arrivals, hold=hold, closes=closes,
                    technique=technique, sources=tuple(sources))
