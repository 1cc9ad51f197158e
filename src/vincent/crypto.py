"""Secrets at rest: wallet keys and SDK credentials are Fernet-encrypted, API keys hashed."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken

from vincent.private_files import make_private_file

API_KEY_PREFIX = "ssk_"


class KeyBox:
    """Encrypts and decrypts small secrets with one Fernet key. Never logs what it holds."""

    def __init__(self, key: str | bytes) -> None:
        try:
            self._fernet = Fernet(key)
        except (ValueError, TypeError) as error:
            raise ValueError(
                "VINCENT_ENCRYPTION_KEY must be a urlsafe-base64 32-byte Fernet key"
            ) from error

    def encrypt(self, plaintext: str) -> str:
        return self._fernet.encrypt(plaintext.encode()).decode()

    def decrypt(self, token: str) -> str:
        try:
            return self._fernet.decrypt(token.encode()).decode()
        except InvalidToken as error:
            raise ValueError(
                "cannot decrypt: wrong VINCENT_ENCRYPTION_KEY or corrupted value"
            ) from error

    def __repr__(self) -> str:
        return "KeyBox(<hidden>)"


def generate_encryption_key() -> str:
    return Fernet.generate_key().decode()


def load_or_create_key_file(path: Path) -> tuple[str, bool]:
    """Return the key stored at ``path``, creating it (mode 0600) if absent; bool = created."""
    if path.exists():
        return path.read_text().strip(), False
    key = generate_encryption_key()
    make_private_file(path)
    path.write_text(key + "\n")
    return key, True


def new_api_key() -> str:
    """Return a fresh agent API key: ``ssk_`` + 64 hex characters."""
    return API_KEY_PREFIX + secrets.token_hex(32)


def hash_api_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def api_key_display_prefix(key: str) -> str:
    return key[: len(API_KEY_PREFIX) + 6]


def constant_time_equal(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())
