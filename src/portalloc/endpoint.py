# The text form of an endpoint, "ADDRESS:PORT", as users write it on the command line and in scenario files.
#
# Rules: an IPv6 address is in brackets ("[::1]:53"), as in URLs (RFC 3986 section 3.2.2) and in `ss`
# output; anything else has no colon before the port ("127.0.0.1:5000", "10.1.0.0/28:443"). The port is
# 1-5 ASCII digits. The address part is returned as text: each caller decides what it may be (an address,
# a network) and says so in its own error message. One parser, so that `doctor --dst`, `exporter --listen`
# and a scenario's `to` accept and refuse the same strings.
"""Parsing "ADDRESS:PORT" and "[IPV6]:PORT"."""

from __future__ import annotations

import re

_BRACKETED = re.compile(r"\[([^\[\]]+)\]:([0-9]{1,5})")
_PLAIN = re.compile(r"([^:\[\]]+):([0-9]{1,5})")


def split_endpoint(text: str) -> tuple[str, int]:
    """``"10.1.0.5:443"`` or ``"[::1]:53"`` → (address text, port). ValueError, saying what is allowed, for
    anything else (an unbracketed IPv6 address, an unbalanced bracket, a missing or non-decimal port)."""
    t = text.strip()
    m = _BRACKETED.fullmatch(t) or _PLAIN.fullmatch(t)
    if m is None:
        raise ValueError("give ADDRESS:PORT, with an IPv6 address in brackets (127.0.0.1:5000, [::1]:5000)")
    return m.group(1), int(m.group(2))
