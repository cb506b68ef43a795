"""Normalizing what people type: e-mails, phones (E.164), domains, names and how they sound."""

from __future__ import annotations

import re
import unicodedata

import phonenumbers
from email_validator import EmailNotValidError, validate_email

_WORD = re.compile(r"[^\W_]+", re.UNICODE)
_SOUNDEX = {
    **dict.fromkeys("bfpv", "1"),
    **dict.fromkeys("cgjkqsxz", "2"),
    **dict.fromkeys("dt", "3"),
    "l": "4",
    **dict.fromkeys("mn", "5"),
    "r": "6",
}


class InvalidValue(ValueError):
    """A value that cannot be normalized; the message says why."""


def email(value: str) -> str:
    try:
        result = validate_email(value.strip(), check_deliverability=False)
    except EmailNotValidError as exc:
        raise InvalidValue(str(exc)) from None
    return result.normalized.lower()


def phone(value: str, region: str | None) -> str:
    try:
        number = phonenumbers.parse(value.strip(), region)
    except phonenumbers.NumberParseException:
        raise InvalidValue(f"{value!r} is not a phone number") from None
    if not phonenumbers.is_possible_number(number):
        raise InvalidValue(f"{value!r} is not a possible phone number")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def domain(value: str) -> str:
    text = value.strip().lower()
    text = re.sub(r"^[a-z][a-z0-9+.-]*://", "", text).split("/", 1)[0].split(":", 1)[0]
    text = text.removeprefix("www.").rstrip(".")
    try:
        text = text.encode("idna").decode("ascii")
    except UnicodeError:
        raise InvalidValue(f"{value!r} is not a domain") from None
    if not re.fullmatch(r"([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}", text):
        raise InvalidValue(f"{value!r} is not a domain")
    return text


def fold(text: str) -> str:
    """Lower case without accents: 'Zoë' -> 'zoe'."""
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).lower()


def words(text: str) -> list[str]:
    return _WORD.findall(fold(text))


def soundex(word: str) -> str:
    """American Soundex: 'Smith' and 'Smyth' are both s530, 'John' and 'Jon' j500."""
    letters = [c for c in fold(word) if "a" <= c <= "z"]
    if not letters:
        return ""
    first, out, last = letters[0], [], _SOUNDEX.get(letters[0], "")
    for c in letters[1:]:
        code = _SOUNDEX.get(c, "")
        if code and code != last:
            out.append(code)
        if c not in "hw":
            last = code
    return (first + "".join(out) + "000")[:4]


def sounds(text: str) -> str:
    """The soundex codes of the alphabetic words of `text`, space-separated."""
    codes = [soundex(w) for w in words(text) if w.isalpha() and len(w) > 1]
    return " ".join(dict.fromkeys(c for c in codes if c))
