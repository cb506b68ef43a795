"""Identifiers: UUIDv7 (time-ordered, so ids sort by creation and paginate well)."""

from __future__ import annotations

import os
import time
import uuid

_last = 0


def uuid7() -> uuid.UUID:
    """A version 7 UUID (RFC 9562): 48-bit Unix milliseconds, then random bits.

    Monotonic within the process (RFC 9562 §6.2, method 3): an id made in the same
    millisecond as the previous one, or after the clock stepped back, is the previous
    one plus one, so ids made one after another sort in that order."""
    global _last
    millis = time.time_ns() // 1_000_000
    rand = int.from_bytes(os.urandom(10), "big")
    value = (millis & ((1 << 48) - 1)) << 80
    value |= 0x7 << 76
    value |= (rand >> 68 & 0xFFF) << 64
    value |= 0b10 << 62
    value |= rand & ((1 << 62) - 1)
    if value <= _last:
        value = _last + 1
    _last = value
    return uuid.UUID(int=value)


def new_id() -> str:
    """A new time-ordered id as its canonical string."""
    return str(uuid7())
