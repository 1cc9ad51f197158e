"""API credentials: L1 (ClobAuth signature) to create/derive keys, L2 (HMAC) per request.

Owns the key store. Failures raise ``SimError`` with Polymarket's 401/400 texts.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import uuid
from collections.abc import Mapping
from dataclasses import dataclass

from vincent.sim import addresses
from vincent.sim.errors import INVALID_API_KEY, INVALID_L1, SimError
from vincent.sim.signatures import clob_auth_signer

DEFAULT_MAX_SKEW_S = 30


@dataclass(frozen=True, slots=True)
class ApiCredentials:
    """An API key bound to one EOA (and the nonce it was created with)."""

    address: str
    nonce: int
    key: str
    secret: str
    passphrase: str

    def wire(self) -> dict[str, str]:
        return {"apiKey": self.key, "secret": self.secret, "passphrase": self.passphrase}


def hmac_signature(secret: str, timestamp: str, method: str, path: str, body: str) -> str:
    """URL-safe base64 HMAC-SHA256 of ``timestamp + METHOD + path + body``."""
    key = base64.urlsafe_b64decode(secret + "=" * (-len(secret) % 4))
    digest = hmac.new(key, f"{timestamp}{method}{path}{body}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode()


class ApiKeyStore:
    """Keys by id and by (owner, nonce)."""

    def __init__(self, max_skew_s: int = DEFAULT_MAX_SKEW_S) -> None:
        self.max_skew_s = max_skew_s
        self._by_key: dict[str, ApiCredentials] = {}
        self._by_owner: dict[tuple[str, int], ApiCredentials] = {}

    def l1_address(self, headers: Mapping[str, str]) -> tuple[str, int]:
        """Verify L1 headers; return (checksummed address, nonce)."""
        try:
            address = addresses.checksum(headers["poly_address"])
            nonce = int(headers.get("poly_nonce", "0"))
            signer = clob_auth_signer(
                address, headers["poly_timestamp"], nonce, headers["poly_signature"]
            )
        except (KeyError, ValueError, SimError) as error:
            raise SimError(401, INVALID_L1) from error
        if addresses.checksum(signer) != address:
            raise SimError(401, INVALID_L1)
        return address, nonce

    def create(self, address: str, nonce: int) -> ApiCredentials:
        if (address, nonce) in self._by_owner:
            raise SimError(400, "Could not create api key")
        creds = ApiCredentials(
            address=address,
            nonce=nonce,
            key=str(uuid.uuid4()),
            secret=base64.urlsafe_b64encode(secrets.token_bytes(32)).decode(),
            passphrase=secrets.token_hex(32),
        )
        self._by_key[creds.key] = creds
        self._by_owner[(address, nonce)] = creds
        return creds

    def derive(self, address: str, nonce: int) -> ApiCredentials:
        creds = self._by_owner.get((address, nonce))
        if creds is None:
            raise SimError(400, "Could not derive api key!")
        return creds

    def keys_of(self, address: str) -> list[str]:
        return [c.key for c in self._by_key.values() if c.address == address]

    def l2(
        self, headers: Mapping[str, str], method: str, path: str, body: str, now_s: float
    ) -> ApiCredentials:
        """Verify L2 headers for one request; stale timestamps and bad HMACs are 401."""
        try:
            creds = self._by_key[headers["poly_api_key"]]
            timestamp = headers["poly_timestamp"]
            signature = headers["poly_signature"]
            claimed = addresses.checksum(headers["poly_address"])
            passphrase = headers["poly_passphrase"]
            skew = abs(now_s - int(timestamp))
        except (KeyError, ValueError) as error:
            raise SimError(401, INVALID_API_KEY) from error
        if claimed != creds.address or not hmac.compare_digest(passphrase, creds.passphrase):
            raise SimError(401, INVALID_API_KEY)
        if skew > self.max_skew_s:
            raise SimError(401, INVALID_API_KEY)
        expected = hmac_signature(creds.secret, timestamp, method, path, body)
        if not hmac.compare_digest(expected, signature):
            raise SimError(401, INVALID_API_KEY)
        return creds
