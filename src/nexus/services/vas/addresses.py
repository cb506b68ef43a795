"""Recipient addresses per channel, normalized (E.164 for phones) or refused with a reason."""

from __future__ import annotations

import re

import phonenumbers
from email_validator import EmailNotValidError, validate_email

CHANNELS = ("sms", "whatsapp", "telegram", "messenger", "email")
PHONE_CHANNELS = frozenset({"sms", "whatsapp"})
_TELEGRAM = re.compile(r"^(-?\d{1,20}|@[A-Za-z][A-Za-z0-9_]{4,31})$")
_PSID = re.compile(r"^\d{5,25}$")


class InvalidAddress(ValueError):
    """The address cannot receive messages on that channel; the text says why."""


def normalize_phone(raw: str, default_region: str | None = None) -> str:
    text = raw.strip()
    if text.lower().startswith("whatsapp:"):
        text = text[len("whatsapp:") :]
    try:
        number = phonenumbers.parse(
            text, None if text.startswith("+") else (default_region or None)
        )
    except phonenumbers.NumberParseException as exc:
        hint = (
            "" if text.startswith("+") or default_region else " (give it in +<country code> form)"
        )
        raise InvalidAddress(f"{raw!r} is not a phone number{hint}: {exc}") from None
    if not phonenumbers.is_valid_number(number):
        raise InvalidAddress(f"{raw!r} is not a valid phone number.")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def country_of(e164: str) -> str | None:
    try:
        return phonenumbers.region_code_for_number(phonenumbers.parse(e164, None))
    except phonenumbers.NumberParseException:
        return None


def normalize(channel: str, raw: str, default_region: str | None = None) -> str:
    if channel in PHONE_CHANNELS:
        return normalize_phone(raw, default_region)
    value = raw.strip()
    if channel == "telegram":
        if not _TELEGRAM.match(value):
            raise InvalidAddress(f"{raw!r} is not a Telegram chat id or @channel name.")
        return value
    if channel == "messenger":
        if not _PSID.match(value):
            raise InvalidAddress(f"{raw!r} is not a Messenger page-scoped id (digits).")
        return value
    if channel == "email":
        try:
            return validate_email(value, check_deliverability=False).normalized
        except EmailNotValidError as exc:
            raise InvalidAddress(f"{raw!r} is not an e-mail address: {exc}") from None
    raise InvalidAddress(f"Unknown channel {channel!r}; use one of {', '.join(CHANNELS)}.")
