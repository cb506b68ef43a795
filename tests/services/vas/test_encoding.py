"""SMS encoding and segment counts, exactly as vas.md says (property-based)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from nexus.services.vas.encoding import GSM7_BASIC, GSM7_EXTENSION, analyze, split

BASIC = st.sampled_from(sorted(set(GSM7_BASIC) - {"\x1b"}))
EXTENSION = st.sampled_from(sorted(GSM7_EXTENSION))
BMP_NON_GSM = st.characters(min_codepoint=0x0400, max_codepoint=0x04FF)  # Cyrillic
ASTRAL = st.characters(min_codepoint=0x1F300, max_codepoint=0x1FAFF)  # emoji


def expected(units: int, single: int, multi: int) -> int:
    return 1 if units <= single else -(-units // multi)


@given(st.text(BASIC, max_size=600))
def test_gsm7_basic_text(text: str) -> None:
    info = analyze(text)
    assert info.encoding == "GSM-7"
    assert info.units == len(text)
    assert info.segments == expected(len(text), 160, 153)


@given(st.lists(st.one_of(BASIC, EXTENSION), max_size=500).map("".join))
def test_extension_characters_cost_two_and_never_split(text: str) -> None:
    info = analyze(text)
    units = sum(2 if ch in GSM7_EXTENSION else 1 for ch in text)
    assert info.encoding == "GSM-7"
    assert info.units == units
    parts = split(text)
    assert "".join(parts) == text
    assert len(parts) == info.segments
    capacity = 160 if info.segments == 1 else 153
    assert all(sum(2 if ch in GSM7_EXTENSION else 1 for ch in part) <= capacity for part in parts)
    if units <= 160:
        assert info.segments == 1
    else:  # an escape pair that would straddle a boundary moves whole to the next part
        assert info.segments >= expected(units, 160, 153)


@given(
    st.lists(st.one_of(BASIC, BMP_NON_GSM, ASTRAL), min_size=1, max_size=300)
    .map("".join)
    .filter(lambda t: any(ord(c) > 0x3FF for c in t))
)
def test_ucs2_counts_utf16_units_and_never_splits_a_surrogate_pair(text: str) -> None:
    info = analyze(text)
    assert info.encoding == "UCS-2"
    units = len(text.encode("utf-16-le")) // 2
    assert info.units == units
    parts = split(text)
    assert "".join(parts) == text
    capacity = 70 if info.segments == 1 else 67
    assert all(len(p.encode("utf-16-le")) // 2 <= capacity for p in parts)
    if units <= 70:
        assert info.segments == 1


def test_known_examples() -> None:
    assert (analyze("").segments, analyze("").encoding) == (1, "GSM-7")
    assert analyze("a" * 160).segments == 1
    assert analyze("a" * 161).segments == 2
    assert analyze("€" * 80).units == 160
    assert analyze("€" * 80).segments == 1
    assert analyze("€" * 81).segments == 2
    assert analyze("Ç").encoding == "GSM-7"
    assert analyze("ç").encoding == "UCS-2"
    assert analyze("😀" * 35).units == 70
    assert analyze("😀" * 35).segments == 1
    assert analyze("😀" * 36).segments == 2
    assert analyze("a" * 159 + "€").segments == 2  # 161 septets
    # the escape pair would straddle septet 153: it moves whole to part 2
    assert [len(p) for p in split("a" * 152 + "€" + "a" * 10)] == [152, 11]
