"""EIP-712 hashing and signature checks: orders (V2/V3, EOA/proxy/Safe/deposit wallet), ClobAuth.

Pure. Digests are computed from the typed-data definitions; recovery uses coincurve
(ClobAuth goes through eth_account). Never signs anything.

Per order the work is one struct hash, one digest and one recovery: the domain separators
are memoized (three domains), the ABI words of static values are laid out directly (any
value that path does not cover goes through ``eth_abi`` itself: the same bytes, the same
errors), and addresses are normalized through ``addresses``' caches.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import coincurve
from eth_abi.abi import encode as abi_encode
from eth_abi.exceptions import EncodingError
from eth_account import Account
from eth_account.messages import SignableMessage, encode_typed_data
from eth_utils.crypto import keccak

from vincent.sim import addresses, wallets
from vincent.sim.errors import INVALID_SIGNATURE, SimError

CHAIN_ID = 137
EXCHANGE_V2 = "0xE111180000d2663C0091e4f400237545B87B996B"
EXCHANGE_V2_NEG_RISK = "0xe2222d279d744050d28e00520010520000310F59"
EXCHANGE_V3 = "0xe3333700cA9d93003F00f0F71f8515005F6c00Aa"
ORDER_TYPE = (
    "Order(uint256 salt,address maker,address signer,uint256 tokenId,uint256 makerAmount,"
    "uint256 takerAmount,uint8 side,uint8 signatureType,uint256 timestamp,bytes32 metadata,"
    "bytes32 builder)"
)
_ORDER_TYPEHASH = keccak(ORDER_TYPE.encode())
_DOMAIN_TYPEHASH = keccak(
    b"EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)"
)
_TYPED_DATA_SIGN_TYPEHASH = keccak(
    (
        "TypedDataSign(Order contents,string name,string version,uint256 chainId,"
        "address verifyingContract,bytes32 salt)" + ORDER_TYPE
    ).encode()
)
_ERC7739_TRAILER = 32 + 32 + len(ORDER_TYPE) + 2
_ORDER_TYPE_BYTES = ORDER_TYPE.encode()
_ORDER_TYPE_LENGTH = len(ORDER_TYPE).to_bytes(2, "big")
_EXCHANGE_NAME_HASH = keccak(b"Polymarket CTF Exchange")
_DEPOSIT_WALLET_NAME_HASH = keccak(b"DepositWallet")
_DEPOSIT_WALLET_VERSION_HASH = keccak(b"1")
_ORDER_ABI_TYPES = (
    "bytes32",
    "uint256",
    "address",
    "address",
    "uint256",
    "uint256",
    "uint256",
    "uint8",
    "uint8",
    "uint256",
    "bytes32",
    "bytes32",
)
_TYPED_DATA_SIGN_ABI_TYPES = (
    "bytes32",
    "bytes32",
    "bytes32",
    "bytes32",
    "uint256",
    "address",
    "bytes32",
)
_UINT_BOUNDS = {"uint256": 1 << 256, "uint8": 1 << 8}
_V2_RESERVED_BITS = ((1 << 64) - 1) << 40
CLOB_AUTH_MESSAGE = "This message attests that I control the given wallet"


@dataclass(frozen=True, slots=True)
class VerifiedOrder:
    """What a good order signature proves: the EOA that signed, and the order's digest."""

    eoa: str
    digest: bytes
    """The EIP-712 digest over the domain the order was checked against: its order id."""


@dataclass(frozen=True, slots=True)
class WireOrder:
    """The signed V2/V3 order as posted (amounts in 6-decimal base units)."""

    salt: int
    maker: str
    signer: str
    token_id: str
    maker_amount: int
    taker_amount: int
    side: str
    signature_type: int
    timestamp: int
    metadata: str
    builder: str
    expiration: int
    signature: str


def is_v3_token(token_id: str) -> bool:
    """Whether a token id lives in the protocol-v2 position namespace (signed for Exchange V3)."""
    return (int(token_id) & _V2_RESERVED_BITS) == 0


def domain_for(version: int, neg_risk: bool) -> tuple[str, str]:
    """(EIP-712 domain version, verifying contract) that the exchange expects."""
    if version == 3:
        return "3", EXCHANGE_V3
    return "2", EXCHANGE_V2_NEG_RISK if neg_risk else EXCHANGE_V2


def domain_separator(version: str, contract: str) -> bytes:
    """The EIP-712 domain separator of Polymarket's exchange ``contract`` (memoized)."""
    return _domain_separator(version, contract)


@lru_cache(maxsize=64)
def _domain_separator(version: str, contract: str) -> bytes:
    return keccak(
        _abi_encode_static(
            ("bytes32", "bytes32", "bytes32", "uint256", "address"),
            (_DOMAIN_TYPEHASH, _EXCHANGE_NAME_HASH, keccak(version.encode()), CHAIN_ID, contract),
        )
    )


def order_struct_hash(order: WireOrder) -> bytes:
    return keccak(
        _abi_encode_static(
            _ORDER_ABI_TYPES,
            (
                _ORDER_TYPEHASH,
                order.salt,
                order.maker,
                order.signer,
                int(order.token_id),
                order.maker_amount,
                order.taker_amount,
                0 if order.side == "BUY" else 1,
                order.signature_type,
                order.timestamp,
                _bytes32(order.metadata),
                _bytes32(order.builder),
            ),
        )
    )


def order_digest(order: WireOrder, version: str, contract: str) -> bytes:
    """The EIP-712 digest of the order: Polymarket's order id."""
    return _digest(domain_separator(version, contract), order_struct_hash(order))


def _digest(separator: bytes, struct_hash: bytes) -> bytes:
    return keccak(b"\x19\x01" + separator + struct_hash)


def recover(digest: bytes, signature: bytes) -> str:
    """The address whose key made a 65-byte (r, s, v) signature over ``digest``."""
    if len(signature) != 65:
        raise SimError(400, INVALID_SIGNATURE)
    v = signature[64]
    v = v - 27 if v >= 27 else v
    try:
        public = coincurve.PublicKey.from_signature_and_message(
            signature[:64] + bytes([v]), digest, hasher=None
        )
    except Exception as error:  # coincurve raises plain Exception on bad input
        raise SimError(400, INVALID_SIGNATURE) from error
    return _address_of(public.format(compressed=False))


@lru_cache(maxsize=addresses.CACHE_SIZE)
def _address_of(public_key: bytes) -> str:
    """The checksummed address of an uncompressed public key (65 bytes, 0x04 first)."""
    return addresses.checksum_raw(keccak(public_key[1:])[12:])


def verify_order(order: WireOrder, version: str, contract: str) -> VerifiedOrder:
    """Check the order signature; return the EOA that signed it and the order's digest.

    Raises on any mismatch. The digest is computed once here (callers need not hash again).
    """
    signature = _hex_bytes(order.signature)
    separator = domain_separator(version, contract)
    contents = order_struct_hash(order)
    digest = _digest(separator, contents)
    if order.signature_type != 3:
        eoa = recover(digest, signature)
        if eoa != addresses.checksum(order.signer):
            raise SimError(400, INVALID_SIGNATURE)
        return VerifiedOrder(eoa, digest)
    # Deposit wallet: ERC-7739 TypedDataSign signature with the nested-typed-data trailer.
    if len(signature) != 65 + _ERC7739_TRAILER:
        raise SimError(400, INVALID_SIGNATURE)
    trailer = signature[65:]
    if trailer[:32] != separator or trailer[32:64] != contents:
        raise SimError(400, INVALID_SIGNATURE)
    if trailer[64:-2] != _ORDER_TYPE_BYTES or trailer[-2:] != _ORDER_TYPE_LENGTH:
        raise SimError(400, INVALID_SIGNATURE)
    wrapped = keccak(
        _abi_encode_static(
            _TYPED_DATA_SIGN_ABI_TYPES,
            (
                _TYPED_DATA_SIGN_TYPEHASH,
                contents,
                _DEPOSIT_WALLET_NAME_HASH,
                _DEPOSIT_WALLET_VERSION_HASH,
                CHAIN_ID,
                order.signer,
                b"\x00" * 32,
            ),
        )
    )
    eoa = recover(_digest(separator, wrapped), signature[:65])
    if addresses.checksum(order.signer) not in wallets.deposit_wallets(eoa):
        raise SimError(400, INVALID_SIGNATURE)
    return VerifiedOrder(eoa, digest)


def clob_auth_message(address: str, timestamp: str, nonce: int) -> SignableMessage:
    """The ClobAuth (L1) message with these fields, as a wallet signs it."""
    typed = {
        "domain": {"name": "ClobAuthDomain", "version": "1", "chainId": CHAIN_ID},
        "types": {
            "EIP712Domain": [
                {"name": "name", "type": "string"},
                {"name": "version", "type": "string"},
                {"name": "chainId", "type": "uint256"},
            ],
            "ClobAuth": [
                {"name": "address", "type": "address"},
                {"name": "timestamp", "type": "string"},
                {"name": "nonce", "type": "uint256"},
                {"name": "message", "type": "string"},
            ],
        },
        "primaryType": "ClobAuth",
        "message": {
            "address": address,
            "timestamp": timestamp,
            "nonce": nonce,
            "message": CLOB_AUTH_MESSAGE,
        },
    }
    return encode_typed_data(full_message=typed)


def clob_auth_signer(address: str, timestamp: str, nonce: int, signature: str) -> str:
    """The address that signed a ClobAuth (L1) message with these fields."""
    signable = clob_auth_message(address, timestamp, nonce)
    return str(Account.recover_message(signable, signature=_hex_bytes(signature)))


def _abi_encode_static(types: Sequence[str], values: Sequence[Any]) -> bytes:
    """``eth_abi``'s ``encode(types, values)`` for static ``bytes32``/``uint``/``address`` values.

    Each word is laid out directly when the value is one ``eth_abi`` encodes as is (32 bytes,
    an ``int`` in range, an address it accepts); anything else goes to ``eth_abi`` whole, so the
    bytes and the errors are always its own.
    """
    words: list[bytes] = []
    for kind, value in zip(types, values, strict=True):
        if kind == "bytes32" and type(value) is bytes and len(value) == 32:
            words.append(value)
        elif kind in _UINT_BOUNDS and type(value) is int and 0 <= value < _UINT_BOUNDS[kind]:
            words.append(value.to_bytes(32, "big"))
        elif kind == "address" and type(value) is str:
            try:
                words.append(addresses.abi_word(value))
            except EncodingError:
                return abi_encode(types, values)
        else:
            return abi_encode(types, values)
    return b"".join(words)


def _bytes32(value: str) -> bytes:
    raw = _hex_bytes(value)
    if len(raw) != 32:
        raise SimError(400, f"invalid bytes32 value, was {value!r}")
    return raw


def _hex_bytes(value: str) -> bytes:
    try:
        return bytes.fromhex(value[2:] if value.startswith(("0x", "0X")) else value)
    except ValueError as error:
        raise SimError(400, INVALID_SIGNATURE) from error
