"""SMS encoding and segment counting (GSM 03.38 / UCS-2), exactly as vas.md says.

GSM-7 when every character is in the basic table or the extension table (extension
characters cost 2 septets: ESC + char); 160 septets in one message, 153 per part when
concatenated. Otherwise UCS-2: 70 UTF-16 code units in one, 67 per part; characters
outside the BMP (most emoji) are 2 units. A part never ends inside an escape sequence
or a surrogate pair.
"""

from __future__ import annotations

from dataclasses import dataclass

GSM7_BASIC = (
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM7_EXTENSION = "\f^{}\\[~]|€"
_BASIC = frozenset(GSM7_BASIC) - {"\x1b"}
_EXTENSION = frozenset(GSM7_EXTENSION)

GSM7, UCS2 = "GSM-7", "UCS-2"
SINGLE = {GSM7: 160, UCS2: 70}
MULTI = {GSM7: 153, UCS2: 67}


@dataclass(frozen=True)
class SmsInfo:
    encoding: str
    units: int  # septets (GSM-7) or UTF-16 code units (UCS-2)
    segments: int
    per_segment: int
    remaining: int  # units left in the last segment


def is_gsm7(text: str) -> bool:
    return all(ch in _BASIC or ch in _EXTENSION for ch in text)


def _units(text: str, encoding: str) -> list[int]:
    """The cost of each character, in the encoding's units."""
    if encoding == GSM7:
        return [2 if ch in _EXTENSION else 1 for ch in text]
    return [2 if ord(ch) > 0xFFFF else 1 for ch in text]


def _split_count(costs: list[int], capacity: int) -> tuple[int, int]:
    """Parts needed when no character is split; and units used in the last part."""
    parts, used = 1, 0
    for cost in costs:
        if used + cost > capacity:
            parts, used = parts + 1, 0
        used += cost
    return parts, used


def analyze(text: str) -> SmsInfo:
    encoding = GSM7 if is_gsm7(text) else UCS2
    costs = _units(text, encoding)
    total = sum(costs)
    if total <= SINGLE[encoding]:
        return SmsInfo(encoding, total, 1, SINGLE[encoding], SINGLE[encoding] - total)
    parts, used = _split_count(costs, MULTI[encoding])
    return SmsInfo(encoding, total, parts, MULTI[encoding], MULTI[encoding] - used)


def split(text: str) -> list[str]:
    """The parts as they would be sent (for previews and tests)."""
    info = analyze(text)
    if info.segments == 1:
        return [text]
    capacity = MULTI[info.encoding]
    parts: list[str] = []
    current: list[str] = []
    used = 0
    for ch, cost in zip(text, _units(text, info.encoding), strict=True):
        if used + cost > capacity:
            parts.append("".join(current))
            current, used = [], 0
        current.append(ch)
        used += cost
    parts.append("".join(current))
    return parts
