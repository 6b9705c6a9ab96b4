# SipHash-2-4, the keyed hash Linux uses for port_offset since 4.11 (lib/siphash.c, commit 7cd23e5300c1).
#
# Pure Python; the model memoizes its results per (inputs, time seed), so the cost is paid once per
# destination and 10-second window, as in the kernel.
"""SipHash-2-4 over bytes, returning a u64."""

from __future__ import annotations

import struct

_M = 0xFFFFFFFFFFFFFFFF


def _rotl(x: int, b: int) -> int:
    return ((x << b) | (x >> (64 - b))) & _M


def siphash24(key: bytes, data: bytes) -> int:
    """SipHash-2-4 of ``data`` under the 16-byte ``key`` (the reference algorithm of Aumasson and Bernstein)."""
    if len(key) != 16:
        raise ValueError("SipHash key must be 16 bytes")
    k0, k1 = struct.unpack("<QQ", key)
    v0 = k0 ^ 0x736F6D6570736575
    v1 = k1 ^ 0x646F72616E646F6D
    v2 = k0 ^ 0x6C7967656E657261
    v3 = k1 ^ 0x7465646279746573
    n = len(data)
    tail_len = n & 7
    words = struct.unpack(f"<{n // 8}Q", data[: n - tail_len])
    last = (n & 0xFF) << 56
    for i, byte in enumerate(data[n - tail_len:]):
        last |= byte << (8 * i)

    def rounds(count: int) -> None:
        nonlocal v0, v1, v2, v3
        for _ in range(count):
            v0 = (v0 + v1) & _M
            v1 = _rotl(v1, 13) ^ v0
            v0 = _rotl(v0, 32)
            v2 = (v2 + v3) & _M
            v3 = _rotl(v3, 16) ^ v2
            v0 = (v0 + v3) & _M
            v3 = _rotl(v3, 21) ^ v0
            v2 = (v2 + v1) & _M
            v1 = _rotl(v1, 17) ^ v2
            v2 = _rotl(v2, 32)

    for m in (*words, last):
        v3 ^= m
        rounds(2)
        v0 ^= m
    v2 ^= 0xFF
    rounds(4)
    return int(v0 ^ v1 ^ v2 ^ v3)
