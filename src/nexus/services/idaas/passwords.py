"""Password hashing (argon2id via pwdlib) and the password policy."""

from __future__ import annotations

from functools import lru_cache
from importlib import resources

from pwdlib import PasswordHash
from pwdlib.hashers.argon2 import Argon2Hasher

from nexus.kernel.errors import Problem

MIN_LENGTH = 10
MAX_LENGTH = 256
# OWASP's minimum for argon2id: m=19 MiB, t=2, p=1 (about 25 ms a hash on this class of CPU).
ARGON2_PARAMS = {"time_cost": 2, "memory_cost": 19_456, "parallelism": 1}

hasher = PasswordHash((Argon2Hasher(**ARGON2_PARAMS),))  # type: ignore[arg-type]
_DUMMY_HASH = hasher.hash("timing-equaliser-not-a-password")


class WeakPassword(Problem):
    status = 422
    slug = "weak-password"


@lru_cache(maxsize=1)
def common_passwords() -> frozenset[str]:
    text = resources.files("nexus.services.idaas").joinpath("common_passwords.txt").read_text()
    return frozenset(line.strip().lower() for line in text.splitlines() if line.strip())


def check_policy(password: str, *, email: str = "", name: str = "") -> None:
    """Raise WeakPassword with the reason when the password is not acceptable."""
    if len(password) < MIN_LENGTH:
        raise WeakPassword(f"The password must have at least {MIN_LENGTH} characters.")
    if len(password) > MAX_LENGTH:
        raise WeakPassword(f"The password must have at most {MAX_LENGTH} characters.")
    lowered = password.lower()
    if lowered in common_passwords() or len(set(password)) < 4:
        raise WeakPassword("This password is too common; choose another.")
    local = email.split("@", 1)[0].lower()
    if len(local) >= 4 and local in lowered:
        raise WeakPassword("The password must not contain your e-mail address.")
    if name and len(name) >= 4 and name.lower() in lowered:
        raise WeakPassword("The password must not contain your name.")


def hash_password(password: str) -> str:
    return hasher.hash(password)


def verify_password(password: str, password_hash: str | None) -> bool:
    """Constant-time verify; with no hash it still spends the same time (no enumeration)."""
    if not password_hash:
        hasher.verify(password, _DUMMY_HASH)
        return False
    try:
        return bool(hasher.verify(password, password_hash))
    except Exception:
        return False
