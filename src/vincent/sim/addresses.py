"""Address normalization, memoized: checksummed text and the ABI word of an address.

Pure. Each function is a bounded cache in front of the library call it names, so it answers
exactly what that call answers, and an input the call refuses raises the same error every
time (exceptions are never cached). The exchange normalizes the same few hundred addresses
on every order; ``to_checksum_address`` alone hashes the address each time (~40 µs).
"""

from __future__ import annotations

from functools import lru_cache

from eth_abi.abi import encode as abi_encode
from eth_utils.address import to_checksum_address

CACHE_SIZE = 1 << 14
"""Most distinct addresses each cache keeps (least recently used dropped first)."""


@lru_cache(maxsize=CACHE_SIZE)
def _checksum(address: str) -> str:
    return str(to_checksum_address(address))


@lru_cache(maxsize=CACHE_SIZE)
def _checksum_raw(raw: bytes) -> str:
    return str(to_checksum_address(raw))


@lru_cache(maxsize=CACHE_SIZE)
def _abi_word(address: str) -> bytes:
    return abi_encode(["address"], [address])


def checksum(address: str) -> str:
    """``to_checksum_address(address)`` (ValueError for what is not an address)."""
    return _checksum(address)


def checksum_raw(raw: bytes) -> str:
    """``to_checksum_address`` of a 20-byte address."""
    return _checksum_raw(raw)


def abi_word(address: str) -> bytes:
    """The 32-byte ABI encoding of an ``address`` value, as ``eth_abi`` encodes (and refuses) it."""
    return _abi_word(address)
