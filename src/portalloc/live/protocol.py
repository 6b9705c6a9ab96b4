# Wire format between LiveHost (parent) and its agent (child in a private network namespace).
#
# Rules: one JSON object per line, UTF-8, in both directions. A request is {"op": name, "a": [args]};
# an answer is {"ok": value} or {"error": exception}. Values keep their Python type across the pipe:
# tuples, bytes and bytearrays are tagged objects, so an address stays a tuple and an option value stays
# bytes; any other object is sent as an opaque stand-in of the same type name, so the real `socket`
# module in the agent raises the same TypeError it would raise for the original. Exceptions travel as
# type name + args (+ errno/strerror/filename for OSError) and are rebuilt only from a fixed set of
# types; anything else is an agent bug and becomes LiveAgentError in the parent.
"""JSON-lines codec for the live agent protocol (values and exceptions)."""

from __future__ import annotations

import base64
import builtins
import json
import math
import socket
from typing import Any

#: Exception types the parent may rebuild from an agent answer (plus every builtin OSError subclass).
_REBUILDABLE: dict[str, type[BaseException]] = {
    "TypeError": TypeError,
    "ValueError": ValueError,
    "OverflowError": OverflowError,
    "UnicodeEncodeError": UnicodeError,
    "UnicodeError": UnicodeError,
    "gaierror": socket.gaierror,
    "herror": socket.herror,
}


def _opaque_class(type_name: str, text: str) -> Any:
    """An instance of a throw-away class named ``type_name`` (stands in for an unsendable argument)."""
    name = type_name if type_name.isidentifier() else "object"
    cls = type(name, (), {"__repr__": lambda self: text})
    return cls()


def encode(value: Any) -> Any:
    """Turn ``value`` into JSON-compatible data that :func:`decode` turns back into the same types."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        if math.isfinite(value):
            return value
        return {"__f": repr(value)}
    if isinstance(value, (bytes, bytearray, memoryview)):
        kind = "bytearray" if isinstance(value, bytearray) else "bytes"
        return {"__b": base64.b64encode(bytes(value)).decode("ascii"), "k": kind}
    if isinstance(value, tuple):
        return {"__t": [encode(v) for v in value]}
    if isinstance(value, list):
        return [encode(v) for v in value]
    if isinstance(value, dict):
        return {"__d": [[encode(k), encode(v)] for k, v in value.items()]}
    return {"__o": type(value).__name__, "r": repr(value)[:200]}


def decode(data: Any) -> Any:
    """Inverse of :func:`encode`."""
    if isinstance(data, list):
        return [decode(v) for v in data]
    if isinstance(data, dict):
        if "__t" in data:
            return tuple(decode(v) for v in data["__t"])
        if "__b" in data:
            raw = base64.b64decode(data["__b"])
            return bytearray(raw) if data.get("k") == "bytearray" else raw
        if "__f" in data:
            return float(data["__f"])
        if "__d" in data:
            return {decode(k): decode(v) for k, v in data["__d"]}
        if "__o" in data:
            return _opaque_class(str(data["__o"]), str(data.get("r", "")))
    return data


def encode_exception(exc: BaseException, tb_text: str = "") -> dict[str, Any]:
    """The wire form of an exception raised by an operation in the agent."""
    out: dict[str, Any] = {"type": type(exc).__name__, "args": encode(list(exc.args)), "tb": tb_text}
    if isinstance(exc, OSError):
        out["errno"] = exc.errno
        out["strerror"] = exc.strerror
        out["filename"] = encode(exc.filename)
        out["filename2"] = encode(exc.filename2)
    return out


def rebuild_exception(data: dict[str, Any]) -> BaseException | None:
    """The exception described by ``data`` (as the socket module would have raised it), or None if its
    type is not one the agent may legitimately raise."""
    name = str(data.get("type", ""))
    args = decode(data.get("args", []))
    cls = _REBUILDABLE.get(name)
    if cls is None:
        candidate = getattr(builtins, name, None)
        if isinstance(candidate, type) and issubclass(candidate, OSError):
            cls = candidate
    if cls is None:
        return None
    plain_oserror = issubclass(cls, OSError) and cls not in (socket.gaierror, socket.herror)
    if plain_oserror and data.get("errno") is not None:
        filename = decode(data.get("filename"))
        filename2 = decode(data.get("filename2"))
        if filename2 is not None:
            return cls(data["errno"], data.get("strerror"), filename, None, filename2)
        if filename is not None:
            return cls(data["errno"], data.get("strerror"), filename)
        return cls(data["errno"], data.get("strerror"))
    return cls(*args)


def dumps(obj: dict[str, Any]) -> bytes:
    """One protocol line."""
    return json.dumps(obj, separators=(",", ":")).encode("utf-8") + b"\n"


def loads(line: bytes) -> dict[str, Any]:
    """Parse one protocol line."""
    obj = json.loads(line.decode("utf-8"))
    if not isinstance(obj, dict):
        raise ValueError(f"protocol line is not an object: {line[:200]!r}")
    return obj
