"""Secrets at rest: authenticated encryption with keys derived from the process secret.

`seal(settings, "purpose", plaintext)` → token; `unseal(...)` reverses it. Each purpose
gets its own key (HKDF), so a value sealed for one use cannot be opened as another.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF


def _fernet(secret: str, purpose: str) -> Fernet:
    key = HKDF(
        algorithm=hashes.SHA256(), length=32, salt=b"nexus-seal-v1", info=purpose.encode()
    ).derive(secret.encode())
    return Fernet(base64.urlsafe_b64encode(key))


def seal(secret: str, purpose: str, plaintext: str) -> str:
    return _fernet(secret, purpose).encrypt(plaintext.encode()).decode()


def unseal(secret: str, purpose: str, token: str) -> str:
    try:
        return _fernet(secret, purpose).decrypt(token.encode()).decode()
    except InvalidToken:
        raise ValueError(f"cannot open a value sealed for {purpose!r}: wrong secret key?") from None


def token_hash(token: str) -> str:
    """SHA-256 of a high-entropy token (API keys, refresh tokens): safe to store and index."""
    return hashlib.sha256(token.encode()).hexdigest()


def random_token(prefix: str, nbytes: int = 32) -> str:
    return f"{prefix}{secrets.token_urlsafe(nbytes)}"


def constant_time_equals(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())
