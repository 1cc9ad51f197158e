"""Wallet addresses derived from a signer: proxy, Safe and deposit wallet (CREATE2).

Pure. The exchange uses it to check that an order's maker really belongs to its signer.
The factory constants are Polymarket's production ones (the same the SDK derives with).
Derivations are memoized per signer (bounded): a signer's wallets never change.
"""

from __future__ import annotations

from functools import lru_cache

from eth_abi.abi import encode as abi_encode
from eth_utils.crypto import keccak

from vincent.sim import addresses

PROXY_FACTORY = "0xaB45c5A4B0c941a2F231C04C3f49182e1A254052"
PROXY_IMPLEMENTATION = "0x44e999d5c2F66Ef0861317f9A4805AC2e90aEB4f"
SAFE_FACTORY = "0xaacFeEa03eb1561C4e67d661e40682Bd20E3541b"
SAFE_INIT_CODE_HASH = "2bce2127ff07fb632d16c8347c4ebf501f4841168bed00d9e6ef715ddb6fcecf"
DEPOSIT_WALLET_FACTORY = "0x00000000000Fb5C9ADea0298D729A0CB3823Cc07"
DEPOSIT_WALLET_IMPLEMENTATION = "0x58CA52ebe0DadfdF531Cde7062e76746de4Db1eB"
DEPOSIT_WALLET_BEACON = "0x7A18EDfe055488A3128f01F563e5B479D92ffc3a"

_PROXY_BYTECODE = (
    "3d3d606380380380913d393d73{factory}"
    "5af4602a57600080fd5b602d8060366000396000f3363d3d373d3d3d363d73{impl}"
    "5af43d82803e903d91602b57fd5bf352e831dd"
    "0000000000000000000000000000000000000000000000000000000000000020"
    "0000000000000000000000000000000000000000000000000000000000000000"
)
_UUPS_CONST1 = bytes.fromhex("cc3735a920a3ca505d382bbc545af43d6000803e6038573d6000fd5b3d6000f3")
_UUPS_CONST2 = bytes.fromhex("5155f3363d3d373d3d363d7f360894a13ba1a3210667c828492db98dca3e2076")
_UUPS_PREFIX = 0x61003D3D8160233D3973
_BEACON_CONST1 = bytes.fromhex("b3582b35133d50545afa5036515af43d6000803e604d573d6000fd5b3d6000f3")
_BEACON_CONST2 = bytes.fromhex("1b60e01b36527fa3f0ad74e5423aebfd80d3ef4346578335a9a72aeaee59ff6c")
_BEACON_CONST3 = bytes.fromhex("60195155f3363d3d373d3d363d602036600436635c60da")
_BEACON_PREFIX = 0x6100523D8160233D3973
_CACHE_SIZE = 1 << 12
"""Most signers whose derived wallets each cache keeps."""


def _hex(address: str) -> bytes:
    return bytes.fromhex(address[2:] if address.startswith("0x") else address)


_PROXY_INIT_CODE_HASH = keccak(
    bytes.fromhex(
        _PROXY_BYTECODE.format(
            factory=PROXY_FACTORY[2:].lower(), impl=PROXY_IMPLEMENTATION[2:].lower()
        )
    )
)


def _create2(factory: str, salt: bytes, init_code_hash: bytes) -> str:
    return addresses.checksum_raw(keccak(b"\xff" + _hex(factory) + salt + init_code_hash)[12:])


def proxy_wallet(signer: str) -> str:
    return _proxy_wallet(signer)


@lru_cache(maxsize=_CACHE_SIZE)
def _proxy_wallet(signer: str) -> str:
    salt = keccak(_hex(addresses.checksum(signer)))
    return _create2(PROXY_FACTORY, salt, _PROXY_INIT_CODE_HASH)


def safe_wallet(signer: str) -> str:
    return _safe_wallet(signer)


@lru_cache(maxsize=_CACHE_SIZE)
def _safe_wallet(signer: str) -> str:
    salt = keccak(abi_encode(["address"], [addresses.checksum(signer)]))
    return _create2(SAFE_FACTORY, salt, bytes.fromhex(SAFE_INIT_CODE_HASH))


def _deposit_args(signer: str) -> bytes:
    wallet_id = _hex(signer).rjust(32, b"\x00")
    return abi_encode(["address", "bytes32"], [DEPOSIT_WALLET_FACTORY, wallet_id])


def deposit_wallets(signer: str) -> tuple[str, str]:
    """Both deposit-wallet addresses of a signer: (beacon factory, legacy UUPS factory)."""
    return _deposit_wallets(signer)


@lru_cache(maxsize=_CACHE_SIZE)
def _deposit_wallets(signer: str) -> tuple[str, str]:
    args = _deposit_args(signer)
    length = len(args) << 56
    beacon_code = (
        (_BEACON_PREFIX + length).to_bytes(10, "big")
        + _hex(DEPOSIT_WALLET_BEACON)
        + _BEACON_CONST3
        + _BEACON_CONST2
        + _BEACON_CONST1
        + args
    )
    uups_code = (
        (_UUPS_PREFIX + length).to_bytes(10, "big")
        + _hex(DEPOSIT_WALLET_IMPLEMENTATION)
        + bytes.fromhex("6009")
        + _UUPS_CONST2
        + _UUPS_CONST1
        + args
    )
    salt = keccak(args)
    return (
        _create2(DEPOSIT_WALLET_FACTORY, salt, keccak(beacon_code)),
        _create2(DEPOSIT_WALLET_FACTORY, salt, keccak(uups_code)),
    )


def wallet_matches(signature_type: int, signer: str, maker: str) -> bool:
    """Whether ``maker`` is the wallet of ``signer`` for this signature type (0-3)."""
    maker = addresses.checksum(maker)
    if signature_type == 0:
        return maker == addresses.checksum(signer)
    if signature_type == 1:
        return maker == proxy_wallet(signer)
    if signature_type == 2:
        return maker == safe_wallet(signer)
    if signature_type == 3:
        return maker in deposit_wallets(signer)
    return False
