# The trace file format: JSON Lines, one socket operation per line (docs/traces.md is the reference).
#
# Rules: (1) parsing is total: every defect of a trace file (malformed JSON, unknown op, missing or
# unknown field, wrong type, unknown socket name, bad option, a header that is not first) raises one
# TraceError whose message starts with "<source>:<line>:" and says what is wrong; nothing else escapes.
# (2) A parsed Trace is immutable and self-consistent: every socket name an op uses was introduced by an
# earlier `socket` or `accept` op, and no name is introduced twice. (3) Blank lines and lines whose first
# non-blank character is '#' are comments; they keep their line numbers so errors point at the file.
# (4) `dumps_trace(load_trace(x))` is again a valid trace with the same ops (comments are dropped).
# (5) This module is THE validation layer for trace input: every command (replay, compare, diff, verify)
# loads through it, so a hostile line (a list where a name goes, a 5,000-digit number, a line nested
# 100,000 deep, NaN or Infinity, a header sysctl of 10**400) is one TraceError naming the line, the field
# and what is allowed, never another exception. A file with no op at all is a TraceError too.
#
# Theory of operation: each line is decoded with json.loads, then checked against _SCHEMA, a table of
# op name -> {field: (required, validator)}: a new op is one row there. Validators return the normalised
# value or raise _Bad with a message; the line loop wraps that message with the line number. JSON integer
# literals longer than _WIDE_DIGITS become a _Wide marker instead of an int (Python refuses to convert
# more than 4,300 digits and no field takes more than 20), which every integer validator refuses; a line
# nested past Python's recursion limit is caught as the RecursionError json raises. Messages show values
# through _show, which is bounded and never recurses deeper than a few levels. The checked op becomes an
# Op: its `kind`, its fields in `args` (a plain dict, JSON-ready) and its `line`.
"""Trace format: parsing and validation of JSON Lines traces, and writing them back."""

from __future__ import annotations

import ipaddress
import json
import math
import stat
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: setsockopt options a trace may use, with the kind of value each takes.
BOOL_OPTIONS = ("SO_REUSEADDR", "SO_REUSEPORT", "IP_BIND_ADDRESS_NO_PORT", "IPV6_V6ONLY", "IP_FREEBIND")
OPTIONS = (*BOOL_OPTIONS, "IP_LOCAL_PORT_RANGE", "SO_BINDTODEVICE", "SO_LINGER")
#: What a simulated remote peer does (the model's Host.set_peer; the `peer` op).
PEER_BEHAVIOURS = ("accept", "refuse", "close_first", "hold")
FAMILIES = ("inet", "inet6")
TYPES = ("stream", "dgram")
#: Op names, in the order docs/traces.md lists them.
OPS = ("host", "sysctl", "socket", "setsockopt", "bind", "connect", "listen", "accept", "close", "sleep",
       "settimeout", "setblocking", "getsockopt", "peer")
#: getsockopt options a trace may read (SO_ERROR: reports and clears the pending error).
GET_OPTIONS = ("SO_ERROR",)
#: Longest timeout a settimeout op may set (seconds); a live wait that runs out is real.
MAX_TIMEOUT = 10.0
#: Longest sleep one op may ask for (seconds); live sleeps are real.
MAX_SLEEP = 120.0


class TraceError(ValueError):
    """A trace file is malformed; the message names the source, the line and the defect."""

    def __init__(self, source: str, line: int, message: str) -> None:
        super().__init__(f"{source}:{line}: {message}")
        self.source = source
        self.line = line
        self.reason = message


class _Bad(Exception):
    """Internal: a field failed validation (message without the line prefix)."""


#: Longest integer literal decoded as an int; longer ones become _Wide (no field takes more than 20 digits).
_WIDE_DIGITS = 40
#: Widest integer a /proc/sys write can hold (proc_doulongvec_minmax: an unsigned long; proc_dointvec a
#: C int); anything wider is EINVAL on every sysctl, so a trace may not ask for it.
SYSCTL_INT_MIN, SYSCTL_INT_MAX = -(2**63), 2**64 - 1


@dataclass(frozen=True)
class _Wide:
    """A JSON integer literal of ``digits`` digits, too wide for any field (kept as a marker, not an int)."""

    digits: int


def _parse_int(text: str) -> int | _Wide:
    digits = len(text.lstrip("-"))
    return _Wide(digits) if digits > _WIDE_DIGITS else int(text)


def _show(v: Any, depth: int = 2) -> str:
    """A short, printable rendering of a decoded value for an error message (bounded size and depth)."""
    if isinstance(v, _Wide):
        return f"a {v.digits}-digit number"
    if isinstance(v, str):
        text = json.dumps(v[:60])
        return text[:-1] + '..."' if len(v) > 60 else text
    if isinstance(v, bool) or v is None:
        return json.dumps(v)
    if isinstance(v, int):
        if abs(v) < 10**30:
            return str(v)
        return f"a {int(v.bit_length() * 0.30103) + 1}-digit number"
    if isinstance(v, float):
        return "NaN" if math.isnan(v) else ("Infinity" if v > 0 else "-Infinity") if math.isinf(v) else repr(v)
    if isinstance(v, list | tuple):
        if depth <= 0:
            return "[...]"
        items = [_show(x, depth - 1) for x in v[:4]] + (["..."] if len(v) > 4 else [])
        return "[" + ", ".join(items) + "]"
    if isinstance(v, Mapping):
        if depth <= 0:
            return "{...}"
        pairs = [f"{_show(k, 0)}: {_show(x, depth - 1)}" for k, x in list(v.items())[:4]]
        return "{" + ", ".join(pairs + (["..."] if len(v) > 4 else [])) + "}"
    return f"a {type(v).__name__}"


@dataclass(frozen=True)
class Op:
    """One operation of a trace: its kind (``"bind"``), its fields and the line it came from."""

    kind: str
    args: Mapping[str, Any]
    line: int = 0

    def __getitem__(self, key: str) -> Any:
        return self.args[key]

    def get(self, key: str, default: Any = None) -> Any:
        """A field of the op, or ``default``."""
        return self.args.get(key, default)

    @property
    def sock(self) -> str | None:
        """The socket the op acts on (``None`` for host, sysctl, socket and sleep)."""
        return self.args.get("sock")

    @property
    def new_name(self) -> str | None:
        """The socket name this op introduces (``socket`` and ``accept`` ops), else ``None``."""
        return self.args.get("name") if self.kind in ("socket", "accept") else None

    @property
    def expect(self) -> tuple[str, ...] | None:
        """The outcomes the trace author allows for this op (``"expect"``), or ``None``."""
        e = self.args.get("expect")
        if e is None:
            return None
        return (e,) if isinstance(e, str) else tuple(e)

    def to_json(self) -> dict[str, Any]:
        """The op as the dict its trace line holds."""
        return {"op": self.kind, **{k: _jsonable(v) for k, v in self.args.items()}}

    def describe(self) -> str:
        """A short human-readable form, e.g. ``c1.bind(127.0.0.1, same_as c0)``."""
        a = self.args
        k = self.kind
        if k == "host":
            return "host(" + ", ".join(f"{n}={_jsonable(v)}" for n, v in a.items() if n != "expect") + ")"
        if k == "sysctl":
            return f"sysctl {a['name']} = {_fmt_value(a['value'])}"
        if k == "socket":
            uid = f", uid={a['uid']}" if a.get("uid") else ""
            return f"{a['name']} = socket({a['family']}, {a['type']}{uid})"
        if k == "setsockopt":
            return f"{a['sock']}.setsockopt({a['option']}, {_fmt_value(a['value'])})"
        if k in ("bind", "connect"):
            return f"{a['sock']}.{k}({a['addr']}, {_fmt_port(a['port'])})"
        if k == "listen":
            return f"{a['sock']}.listen({a.get('backlog', 128)})"
        if k == "accept":
            return f"{a['name']} = {a['sock']}.accept()"
        if k == "close":
            return f"{a['sock']}.close()"
        if k == "sleep":
            return f"sleep({a['seconds']:g})"
        if k == "settimeout":
            return f"{a['sock']}.settimeout({'None' if a['value'] is None else format(a['value'], 'g')})"
        if k == "setblocking":
            return f"{a['sock']}.setblocking({a['flag']})"
        if k == "getsockopt":
            return f"{a['sock']}.getsockopt({a['option']})"
        if k == "peer":
            port = f":{a['port']}" if a.get("port") else ""
            return f"peer {a['addr']}{port} {a['behaviour']}"
        return k


def _fmt_value(v: Any) -> str:
    if isinstance(v, list | tuple):
        return "[" + ", ".join(str(x) for x in v) + "]"
    return json.dumps(v) if isinstance(v, str) else str(v)


def _fmt_port(p: Any) -> str:
    if isinstance(p, Mapping):
        return f"same_as {p['same_as']}"
    return str(p)


def _jsonable(v: Any) -> Any:
    if isinstance(v, tuple):
        return [_jsonable(x) for x in v]
    if isinstance(v, list):
        return [_jsonable(x) for x in v]
    if isinstance(v, Mapping):
        return {k: _jsonable(x) for k, x in v.items()}
    return v


@dataclass(frozen=True, repr=False)
class Trace:
    """A parsed trace: the optional ``host`` header and the ops after it, in order.

    ``header`` holds the header's fields (kernel, addresses, sysctls, devices, seed) or is empty;
    ``ops`` never contains the header. ``source`` names where the trace came from (for messages).
    """

    ops: tuple[Op, ...]
    header: Mapping[str, Any] = field(default_factory=dict)
    source: str = "<trace>"
    header_line: int = 0

    def __len__(self) -> int:
        return len(self.ops)

    def __repr__(self) -> str:
        return f"<Trace {self.source}: {len(self.ops)} ops>"

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:    # IPython / hypothesis pretty-printers
        p.text(repr(self))

    @property
    def sleep_total(self) -> float:
        """Seconds of ``sleep`` in the trace (real seconds on the live backend)."""
        return sum(float(op["seconds"]) for op in self.ops if op.kind == "sleep")

    def lines(self) -> list[dict[str, Any]]:
        """The trace as JSON-ready dicts, header first."""
        out: list[dict[str, Any]] = []
        if self.header:
            out.append({"op": "host", **{k: _jsonable(v) for k, v in self.header.items()}})
        out.extend(op.to_json() for op in self.ops)
        return out

    def with_ops(self, ops: Iterable[Op]) -> Trace:
        """A trace with the same header and other ops (validated again; TraceError if inconsistent)."""
        return trace_from_dicts([*([{"op": "host", **self.header}] if self.header else []),
                                 *(op.to_json() for op in ops)], source=self.source)


# --- validators ------------------------------------------------------------------------------------------


def _int(v: Any, what: str, lo: int | None = None, hi: int | None = None) -> int:
    rng = f" in {lo}..{hi}" if lo is not None and hi is not None else f" >= {lo}" if lo is not None else ""
    if isinstance(v, bool) or not isinstance(v, int):
        raise _Bad(f"{what} must be an integer{rng}, not {_show(v)}")
    if (lo is not None and v < lo) or (hi is not None and v > hi):
        raise _Bad(f"{what} must be an integer{rng}, not {_show(v)}")
    return v


def _str(v: Any, what: str) -> str:
    if not isinstance(v, str) or not v:
        raise _Bad(f"{what} must be a non-empty string, not {_show(v)}")
    return v


def _name(v: Any, what: str) -> str:
    s = _str(v, what)
    if len(s) > 64 or any(c.isspace() for c in s):
        raise _Bad(f"{what} must be at most 64 characters without blanks, not {_show(v)}")
    return s


def _enum(choices: tuple[str, ...]) -> Callable[[Any, str], str]:
    def check(v: Any, what: str) -> str:
        if v not in choices:
            raise _Bad(f"{what} must be one of {', '.join(choices)}; got {_show(v)}")
        return str(v)
    return check


def _addr(v: Any, what: str) -> str:
    s = _str(v, what)
    try:
        ipaddress.ip_address(s)
    except ValueError:
        raise _Bad(f"{what} must be an IPv4 or IPv6 address literal, not {_show(v)}") from None
    return s


def _port(v: Any, what: str) -> int | dict[str, str]:
    if isinstance(v, Mapping):
        if set(v) != {"same_as"}:
            raise _Bad(f"{what} object must be {{\"same_as\": \"<socket name>\"}}, not {_show(v)}")
        return {"same_as": _name(v["same_as"], f"{what}.same_as")}
    return _int(v, what, 0, 65535)


def _seconds(v: Any, what: str) -> float:
    if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
        raise _Bad(f"{what} must be a finite number of seconds in 0..{MAX_SLEEP:g}, not {_show(v)}")
    if not 0 <= v <= MAX_SLEEP:
        raise _Bad(f"{what} must be in 0..{MAX_SLEEP:g}, not {v}")
    return v


def _timeout(v: Any, what: str) -> float | None:
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
        raise _Bad(f"{what} must be null (blocking) or a number of seconds, not {json.dumps(v)}")
    if not 0 <= v <= MAX_TIMEOUT:
        raise _Bad(f"{what} must be in 0..{MAX_TIMEOUT:g} (0: non-blocking), not {v}")
    return v


def _flag(v: Any, what: str) -> bool:
    if not isinstance(v, bool):
        raise _Bad(f"{what} must be true or false, not {json.dumps(v)}")
    return v


def _sysctl_value(v: Any, what: str) -> int | str | list[int]:
    if isinstance(v, str):
        return v
    if isinstance(v, list):
        if len(v) != 2:
            raise _Bad(f"{what} as a list must be a pair [lo, hi], not {_show(v)}")
        return [_int(x, what, SYSCTL_INT_MIN, SYSCTL_INT_MAX) for x in v]
    return _int(v, what, SYSCTL_INT_MIN, SYSCTL_INT_MAX)


def _sysctl_name(v: Any, what: str) -> str:
    s = _str(v, what)
    if not s.replace("/", ".").lstrip(".").startswith("net."):
        raise _Bad(f"{what} must be a net.* sysctl (per network namespace), not {_show(v)}")
    return s


def _sysctls(v: Any, what: str) -> dict[str, Any]:
    if not isinstance(v, Mapping):
        raise _Bad(f"{what} must be an object {{name: value}}, not {_show(v)}")
    return {_sysctl_name(k, f"{what} name"): _sysctl_value(x, f"{what}[{k!r}]") for k, x in v.items()}


def _str_list(v: Any, what: str) -> list[str]:
    if not isinstance(v, list):
        raise _Bad(f"{what} must be a list of strings, not {_show(v)}")
    return [_str(x, f"{what} item") for x in v]


def _addresses(v: Any, what: str) -> list[str]:
    out = _str_list(v, what)
    for a in out:
        try:
            ipaddress.ip_interface(a)
        except ValueError:
            raise _Bad(f"{what} item must be an address like 127.0.0.1/8, not {_show(a)}") from None
    return out


def _expect(v: Any, what: str) -> str | list[str]:
    if isinstance(v, str) and v:
        return v
    if isinstance(v, list) and v and all(isinstance(x, str) and x for x in v):
        return list(v)
    raise _Bad(f"{what} must be an outcome (\"ok\", \"EADDRINUSE\", ...) or a list of them, "
               f"not {_show(v)}")


def _note(v: Any, what: str) -> str:
    if not isinstance(v, str):
        raise _Bad(f"{what} must be a string, not {_show(v)}")
    return v


def _network(v: Any, what: str) -> str:
    """An address or a network (``10.1.0.0/28``), as Host.set_peer takes."""
    if not isinstance(v, str):
        raise _Bad(f"{what} must be an address or network string, not {json.dumps(v)}")
    try:
        ipaddress.ip_network(v, strict=False)
    except ValueError:
        raise _Bad(f"{what} must be an address or a network like 10.1.0.0/28, not {json.dumps(v)}") from None
    return v


_Validator = Callable[[Any, str], Any]
_COMMON: dict[str, tuple[bool, _Validator]] = {"expect": (False, _expect), "note": (False, _note)}
_SCHEMA: dict[str, dict[str, tuple[bool, _Validator]]] = {
    "host": {"kernel": (False, _str), "addresses": (False, _addresses), "sysctls": (False, _sysctls),
             "devices": (False, _str_list), "seed": (False, lambda v, w: _int(v, w, 0))},
    "sysctl": {"name": (True, _sysctl_name), "value": (True, _sysctl_value)},
    "socket": {"name": (True, _name), "family": (True, _enum(FAMILIES)), "type": (True, _enum(TYPES)),
               "uid": (False, lambda v, w: _int(v, w, 0, 2**32 - 2))},
    "setsockopt": {"sock": (True, _name), "option": (True, _enum(OPTIONS)), "value": (True, lambda v, w: v)},
    "bind": {"sock": (True, _name), "addr": (True, _addr), "port": (True, _port)},
    "connect": {"sock": (True, _name), "addr": (True, _addr), "port": (True, _port)},
    "listen": {"sock": (True, _name), "backlog": (False, lambda v, w: _int(v, w, 0, 65535))},
    "accept": {"sock": (True, _name), "name": (True, _name)},
    "close": {"sock": (True, _name)},
    "sleep": {"seconds": (True, _seconds)},
    "settimeout": {"sock": (True, _name), "value": (True, _timeout)},
    "setblocking": {"sock": (True, _name), "flag": (True, _flag)},
    "getsockopt": {"sock": (True, _name), "option": (True, _enum(GET_OPTIONS))},
    "peer": {"addr": (True, _network), "behaviour": (True, _enum(PEER_BEHAVIOURS)),
             "port": (False, lambda v, w: _int(v, w, 1, 65535))},
}


def _option_value(option: str, v: Any) -> Any:
    """Check a setsockopt value against its option (the option itself is already valid)."""
    what = f"value of {option}"
    if option == "IP_LOCAL_PORT_RANGE":
        if not isinstance(v, list) or len(v) != 2:
            raise _Bad(f"{what} must be a pair [lo, hi], not {_show(v)}")
        return [_int(x, what, 0, 65535) for x in v]
    if option == "SO_LINGER":
        if not isinstance(v, list) or len(v) != 2:
            raise _Bad(f"{what} must be a pair [l_onoff, l_linger], not {json.dumps(v)}")
        return [_int(x, what, -(2**31), 2**31 - 1) for x in v]
    if option == "SO_BINDTODEVICE":
        if not isinstance(v, str) or len(v) > 15:
            raise _Bad(f"{what} must be a device name (a string of at most 15 characters, \"\" to unbind), "
                       f"not {_show(v)}")
        return v
    return _int(v, what, -(2**31), 2**31 - 1)


def _check_op(raw: Any) -> tuple[str, dict[str, Any]]:
    if not isinstance(raw, dict):
        raise _Bad(f"each line must be a JSON object, not {type(raw).__name__} {_show(raw)}")
    if "op" not in raw:
        raise _Bad(f"missing field \"op\" (one of: {', '.join(OPS)})")
    kind = raw["op"]
    if not isinstance(kind, str) or kind not in _SCHEMA:
        raise _Bad(f"unknown op {_show(kind)} (known: {', '.join(OPS)})")
    schema = {**_SCHEMA[kind], **_COMMON}
    unknown = [k for k in raw if k != "op" and k not in schema]
    if unknown:
        raise _Bad(f"unknown field {_show(unknown[0])} for op {_show(kind)} "
                   f"(allowed: {', '.join(schema)})")
    args: dict[str, Any] = {}
    for name, (required, check) in schema.items():
        if name not in raw:
            if required:
                raise _Bad(f"op {_show(kind)} is missing field {_show(name)}")
            continue
        args[name] = check(raw[name], f"field {_show(name)}")
    if kind == "setsockopt":
        args["value"] = _option_value(args["option"], args["value"])
    return kind, args


# --- whole traces -----------------------------------------------------------------------------------------


def _build(items: Iterable[tuple[int, Any]], source: str) -> Trace:
    """Validate (line, decoded JSON) pairs into a Trace; TraceError on the first defect."""
    ops: list[Op] = []
    header: dict[str, Any] = {}
    header_line = 0
    defined: dict[str, int] = {}          # socket name -> line that introduced it
    for line, raw in items:
        try:
            kind, args = _check_op(raw)
            if kind == "host":
                if ops or header_line:
                    raise _Bad("the \"host\" header must be the first op of the trace")
                header, header_line = args, line
                continue
            sock = args.get("sock")
            if sock is not None and sock not in defined:
                raise _Bad(f"unknown socket name {_show(sock)} (no earlier \"socket\" or \"accept\" "
                           "op introduces it)")
            port = args.get("port")
            if isinstance(port, Mapping) and port["same_as"] not in defined:
                raise _Bad(f"unknown socket name {_show(port['same_as'])} in \"same_as\"")
            if kind in ("socket", "accept"):
                new = args["name"]
                if new in defined:
                    raise _Bad(f"socket name {_show(new)} is already introduced on line {defined[new]}")
                defined[new] = line
        except _Bad as exc:
            raise TraceError(source, line, str(exc)) from None
        ops.append(Op(kind, args, line))
    return Trace(tuple(ops), header, source, header_line)


def _decode_lines(lines: Iterable[str], source: str) -> Iterable[tuple[int, Any]]:
    for n, text in enumerate(lines, start=1):
        s = text.strip()
        if not s or s.startswith("#"):
            continue
        try:
            raw = json.loads(s, parse_int=_parse_int)
        except json.JSONDecodeError as exc:
            raise TraceError(source, n, f"malformed JSON: {exc.msg} (column {exc.colno})") from None
        except RecursionError:
            raise TraceError(source, n, "JSON nested too deeply: a trace line is one flat JSON object "
                             "(docs/traces.md)") from None
        except ValueError as exc:           # json's own limits (e.g. a float literal it cannot hold)
            raise TraceError(source, n, f"malformed JSON: {exc}") from None
        yield n, raw


def load_trace(path_or_lines: str | Path | Iterable[str], *, source: str | None = None) -> Trace:
    """Parse a trace: a file path, the text of a trace (a string with a newline or starting with
    ``{``), or an iterable of lines (e.g. ``text.splitlines()``).

    Raises :class:`TraceError` ("<source>:<line>: <what is wrong>") for any defect, and (line 0) for a
    file that cannot be read or that holds no op (only blank lines, comments or a header).
    """
    trace = _load(path_or_lines, source)
    if not trace.ops:
        raise TraceError(trace.source, 0, "the trace has no ops (only blank lines, comments or a header); "
                         "add at least one op line (docs/traces.md)")
    return trace


def _load(path_or_lines: str | Path | Iterable[str], source: str | None) -> Trace:
    if isinstance(path_or_lines, str) and ("\n" in path_or_lines or path_or_lines.lstrip().startswith("{")):
        return _build(_decode_lines(path_or_lines.splitlines(), source or "<trace>"), source or "<trace>")
    if isinstance(path_or_lines, str | Path):
        path = Path(path_or_lines)
        src = source or (str(path) if len(str(path)) <= 200 else f"{str(path)[:80]}...({len(str(path))} characters)")
        try:
            if stat.S_ISCHR(path.stat().st_mode) or stat.S_ISBLK(path.stat().st_mode):
                raise TraceError(src, 0, "cannot read the trace file: it is a device, not a file "
                                 "(/dev/zero would never end)")
            text = path.read_text(encoding="utf-8")
        except TraceError:
            raise
        except (OSError, ValueError) as exc:      # ValueError: undecodable UTF-8, a NUL byte in the path
            why = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            raise TraceError(src, 0, f"cannot read the trace file: {why}") from None
        return _build(_decode_lines(text.splitlines(), src), src)
    return _build(_decode_lines(path_or_lines, source or "<trace>"), source or "<trace>")


def trace_from_dicts(ops: Iterable[Mapping[str, Any]], *, source: str = "<generated>") -> Trace:
    """Validate already-decoded ops (dicts with an ``"op"`` key; line numbers count from 1)."""
    return _build(((n, dict(raw)) for n, raw in enumerate(ops, start=1)), source)


def dumps_trace(trace: Trace, comments: Iterable[str] = ()) -> str:
    """The trace as JSON Lines text (comment lines first, each prefixed with ``# ``)."""
    head = "".join(f"# {c}\n" for c in comments)
    return head + "".join(json.dumps(d, separators=(", ", ": ")) + "\n" for d in trace.lines())
