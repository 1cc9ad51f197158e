"""The exchange's order digests and signature checks agree with eth_account's EIP-712 encoder.

Every order is hashed and signed here independently (``encode_typed_data`` from the
typed-data definition, ``Account.sign_message``, ``Account._recover_hash``), over the three
exchange domains and all four signature types, with addresses in either case. The
exchange must return the signer and exactly that digest, and refuse every tampered order.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from eth_account import Account
from eth_account.messages import SignableMessage, encode_typed_data
from eth_utils.crypto import keccak
from hypothesis import given, settings
from hypothesis import strategies as st
from polymarket._internal.environment import PRODUCTION_CONFIG
from polymarket._internal.wallet import (
    derive_beacon_deposit_wallet_address,
    derive_proxy_wallet_address,
    derive_safe_wallet_address,
    derive_uups_deposit_wallet_address,
)

from tests.sim.conftest import V3_NO, V3_YES
from vincent.sim import placing, signatures
from vincent.sim.errors import (
    INVALID_SIGNATURE,
    ORDER_VERSION_MISMATCH,
    SIGNER_NOT_API_KEY,
    SimError,
)
from vincent.sim.exchange import Exchange
from vincent.sim.markets import Market
from vincent.sim.orders import PostedOrder
from vincent.sim.signatures import WireOrder
from vincent.sim.timing import TimingRecorder

DOMAINS = (
    ("2", "0xE111180000d2663C0091e4f400237545B87B996B"),
    ("2", "0xe2222d279d744050d28e00520010520000310F59"),
    ("3", "0xe3333700cA9d93003F00f0F71f8515005F6c00Aa"),
)
ORDER_FIELDS = [
    {"name": "salt", "type": "uint256"},
    {"name": "maker", "type": "address"},
    {"name": "signer", "type": "address"},
    {"name": "tokenId", "type": "uint256"},
    {"name": "makerAmount", "type": "uint256"},
    {"name": "takerAmount", "type": "uint256"},
    {"name": "side", "type": "uint8"},
    {"name": "signatureType", "type": "uint8"},
    {"name": "timestamp", "type": "uint256"},
    {"name": "metadata", "type": "bytes32"},
    {"name": "builder", "type": "bytes32"},
]
ORDER_TYPE_TEXT = (
    "Order(uint256 salt,address maker,address signer,uint256 tokenId,uint256 makerAmount,"
    "uint256 takerAmount,uint8 side,uint8 signatureType,uint256 timestamp,bytes32 metadata,"
    "bytes32 builder)"
)
DOMAIN_FIELDS = [
    {"name": "name", "type": "string"},
    {"name": "version", "type": "string"},
    {"name": "chainId", "type": "uint256"},
    {"name": "verifyingContract", "type": "address"},
]
KEYS = [bytes([index + 1]) * 32 for index in range(4)]
ACCOUNTS = [Account.from_key(key) for key in KEYS]
UINT256 = st.integers(min_value=0, max_value=2**256 - 1)


def _domain(version: str, contract: str) -> dict[str, Any]:
    return {
        "name": "Polymarket CTF Exchange",
        "version": version,
        "chainId": 137,
        "verifyingContract": contract,
    }


def _message(order: WireOrder) -> dict[str, Any]:
    return {
        "salt": order.salt,
        "maker": order.maker,
        "signer": order.signer,
        "tokenId": int(order.token_id),
        "makerAmount": order.maker_amount,
        "takerAmount": order.taker_amount,
        "side": 0 if order.side == "BUY" else 1,
        "signatureType": order.signature_type,
        "timestamp": order.timestamp,
        "metadata": bytes.fromhex(order.metadata[2:]),
        "builder": bytes.fromhex(order.builder[2:]),
    }


def _order_signable(order: WireOrder, version: str, contract: str) -> SignableMessage:
    return encode_typed_data(
        full_message={
            "types": {"EIP712Domain": DOMAIN_FIELDS, "Order": ORDER_FIELDS},
            "primaryType": "Order",
            "domain": _domain(version, contract),
            "message": _message(order),
        }
    )


def _digest(signable: SignableMessage) -> bytes:
    return keccak(b"\x19" + signable.version + signable.header + signable.body)


def _sign(order: WireOrder, key: bytes, version: str, contract: str) -> WireOrder:
    """The order with its signature; deposit wallets sign the ERC-7739 TypedDataSign."""
    plain = _order_signable(order, version, contract)
    if order.signature_type != 3:
        signed = Account.sign_message(plain, private_key=key)
        return dataclasses.replace(order, signature="0x" + bytes(signed.signature).hex())
    nested = encode_typed_data(
        full_message={
            "types": {
                "EIP712Domain": DOMAIN_FIELDS,
                "Order": ORDER_FIELDS,
                "TypedDataSign": [
                    {"name": "contents", "type": "Order"},
                    {"name": "name", "type": "string"},
                    {"name": "version", "type": "string"},
                    {"name": "chainId", "type": "uint256"},
                    {"name": "verifyingContract", "type": "address"},
                    {"name": "salt", "type": "bytes32"},
                ],
            },
            "primaryType": "TypedDataSign",
            "domain": _domain(version, contract),
            "message": {
                "contents": _message(order),
                "name": "DepositWallet",
                "version": "1",
                "chainId": 137,
                "verifyingContract": order.signer,
                "salt": b"\x00" * 32,
            },
        }
    )
    signed = Account.sign_message(nested, private_key=key)
    trailer = (
        plain.header
        + plain.body
        + ORDER_TYPE_TEXT.encode()
        + len(ORDER_TYPE_TEXT).to_bytes(2, "big")
    )
    return dataclasses.replace(order, signature="0x" + (bytes(signed.signature) + trailer).hex())


@st.composite
def signed_orders(draw: st.DrawFn) -> tuple[WireOrder, int, int, bytes]:
    """(signed order, account index, domain index, the independently computed digest)."""
    account_index = draw(st.integers(min_value=0, max_value=len(KEYS) - 1))
    domain_index = draw(st.integers(min_value=0, max_value=len(DOMAINS) - 1))
    eoa = ACCOUNTS[account_index].address
    signature_type = draw(st.sampled_from([0, 1, 2, 3]))
    if signature_type == 0:
        signer = maker = eoa
    elif signature_type == 3:
        signer = maker = derive_beacon_deposit_wallet_address(
            eoa, PRODUCTION_CONFIG.wallet_derivation
        )
    else:
        signer = eoa
        maker = "0x" + draw(st.binary(min_size=20, max_size=20)).hex()
    lower = draw(st.booleans())
    order = WireOrder(
        salt=draw(UINT256),
        maker=maker.lower() if lower else maker,
        signer=signer.lower() if lower else signer,
        token_id=str(draw(UINT256)),
        maker_amount=draw(UINT256),
        taker_amount=draw(UINT256),
        side=draw(st.sampled_from(["BUY", "SELL"])),
        signature_type=signature_type,
        timestamp=draw(UINT256),
        metadata="0x" + draw(st.binary(min_size=32, max_size=32)).hex(),
        builder="0x" + draw(st.binary(min_size=32, max_size=32)).hex(),
        expiration=0,
        signature="",
    )
    version, contract = DOMAINS[domain_index]
    signed = _sign(order, KEYS[account_index], version, contract)
    digest = _digest(_order_signable(order, version, contract))
    return signed, account_index, domain_index, digest


@settings(max_examples=60, deadline=None)
@given(signed_orders())
def test_digest_and_signer_agree_with_eth_account(
    case: tuple[WireOrder, int, int, bytes],
) -> None:
    order, account_index, domain_index, digest = case
    version, contract = DOMAINS[domain_index]
    eoa = ACCOUNTS[account_index].address
    verified = signatures.verify_order(order, version, contract)
    assert verified.eoa == eoa
    assert verified.digest == digest
    assert signatures.order_digest(order, version, contract) == digest
    if order.signature_type != 3:
        recovered = Account._recover_hash(digest, signature=bytes.fromhex(order.signature[2:]))
        assert recovered == eoa
    for other_index, (other_version, other_contract) in enumerate(DOMAINS):
        if other_index != domain_index:
            with pytest.raises(SimError, match=INVALID_SIGNATURE):
                signatures.verify_order(order, other_version, other_contract)


def _tampered(order: WireOrder, field: str, data: st.DataObject) -> WireOrder:
    """``order`` with one field changed to another value (the signature kept)."""
    value = getattr(order, field)
    if field in ("salt", "maker_amount", "taker_amount", "timestamp"):
        new: Any = data.draw(UINT256.filter(lambda other: other != value))
    elif field == "token_id":
        new = str(data.draw(UINT256.filter(lambda other: other != int(value))))
    elif field == "side":
        new = "SELL" if value == "BUY" else "BUY"
    elif field == "signature_type":
        new = data.draw(st.sampled_from([t for t in (0, 1, 2, 3) if t != value]))
    elif field in ("maker", "signer"):
        other = data.draw(st.binary(min_size=20, max_size=20))
        new = "0x" + other.hex()
        if new.lower() == value.lower():
            new = "0x" + bytes(b ^ 0xFF for b in other).hex()
    elif field in ("metadata", "builder"):
        raw = bytearray.fromhex(value[2:])
        raw[data.draw(st.integers(min_value=0, max_value=31))] ^= 1 << data.draw(
            st.integers(min_value=0, max_value=7)
        )
        new = "0x" + raw.hex()
    else:  # a bit of the signature (r, s, v, or the ERC-7739 trailer)
        raw = bytearray.fromhex(value[2:])
        raw[data.draw(st.integers(min_value=0, max_value=len(raw) - 1))] ^= 1 << data.draw(
            st.integers(min_value=0, max_value=7)
        )
        new = "0x" + raw.hex()
    return dataclasses.replace(order, **{field: new})


TAMPERED_FIELDS = [
    "salt",
    "maker",
    "signer",
    "token_id",
    "maker_amount",
    "taker_amount",
    "side",
    "signature_type",
    "timestamp",
    "metadata",
    "builder",
    "signature",
]


@settings(max_examples=120, deadline=None)
@given(signed_orders(), st.sampled_from(TAMPERED_FIELDS), st.data())
def test_a_tampered_order_is_refused(
    case: tuple[WireOrder, int, int, bytes], field: str, data: st.DataObject
) -> None:
    order, _, domain_index, _ = case
    version, contract = DOMAINS[domain_index]
    signatures.verify_order(order, version, contract)  # the untouched order passes
    tampered = _tampered(order, field, data)
    with pytest.raises(SimError, match=INVALID_SIGNATURE) as refused:
        signatures.verify_order(tampered, version, contract)
    assert refused.value.status == 400


# Position ids with bits 40..103 set: signed for Exchange V2 (or its neg-risk twin).
V2_YES, V2_NO = str((7 << 200) | (1 << 60)), str((7 << 200) | (1 << 61))
V2_NEG_YES, V2_NEG_NO = str((9 << 200) | (1 << 62)), str((9 << 200) | (1 << 63))
# (token, the domain index the exchange expects it signed for once /version is 3)
TOKENS = ((V2_YES, 0), (V2_NEG_YES, 1), (V3_YES, 2))


def _exchange() -> Exchange:
    exchange = Exchange(TimingRecorder())
    exchange.set_version(3)
    exchange.create_market(Market("0x" + "a1" * 32, (V2_YES, V2_NO)))
    exchange.create_market(Market("0x" + "a2" * 32, (V2_NEG_YES, V2_NEG_NO), neg_risk=True))
    exchange.create_market(Market("0x" + "a3" * 32, (V3_YES, V3_NO)))
    return exchange


def _wallet(eoa: str, signature_type: int, legacy: bool) -> str:
    config = PRODUCTION_CONFIG.wallet_derivation
    if signature_type == 1:
        return str(derive_proxy_wallet_address(eoa, config))
    if signature_type == 2:
        return str(derive_safe_wallet_address(eoa, config))
    if signature_type == 3:
        derive = (
            derive_uups_deposit_wallet_address if legacy else derive_beacon_deposit_wallet_address
        )
        return str(derive(eoa, config))
    return eoa


@settings(max_examples=40, deadline=None)
@given(
    account_index=st.integers(min_value=0, max_value=len(KEYS) - 1),
    token_index=st.integers(min_value=0, max_value=len(TOKENS) - 1),
    signed_for=st.integers(min_value=0, max_value=len(DOMAINS) - 1),
    signature_type=st.sampled_from([0, 1, 2, 3]),
    legacy=st.booleans(),
    lower=st.booleans(),
    salt=UINT256,
)
def test_the_order_id_is_the_digest_of_the_domain_the_exchange_expects(
    account_index: int,
    token_index: int,
    signed_for: int,
    signature_type: int,
    legacy: bool,
    lower: bool,
    salt: int,
) -> None:
    exchange = _exchange()
    eoa = ACCOUNTS[account_index].address
    wallet = _wallet(eoa, signature_type, legacy)
    token_id, expected = TOKENS[token_index]
    signer = wallet if signature_type == 3 else eoa
    order = WireOrder(
        salt=salt,
        maker=wallet.lower() if lower else wallet,
        signer=signer.lower() if lower else signer,
        token_id=token_id,
        maker_amount=10_000_000,
        taker_amount=5_000_000,
        side="SELL",
        signature_type=signature_type,
        timestamp=1_700_000_000_000,
        metadata="0x" + "00" * 32,
        builder="0x" + "00" * 32,
        expiration=0,
        signature="",
    )
    version, contract = DOMAINS[signed_for]
    posted = PostedOrder(_sign(order, KEYS[account_index], version, contract), "key", "GTC", False)
    if signed_for != expected:
        with pytest.raises(SimError, match=ORDER_VERSION_MISMATCH):
            placing.verify(exchange, posted, eoa)
        return
    order_id = placing.verify(exchange, posted, eoa.lower() if lower else eoa)
    assert order_id == "0x" + _digest(_order_signable(order, version, contract)).hex()
    other_key = ACCOUNTS[(account_index + 1) % len(ACCOUNTS)].address
    with pytest.raises(SimError, match=SIGNER_NOT_API_KEY):
        placing.verify(exchange, posted, other_key)
    if signature_type in (1, 2):  # a maker that is not the signer's wallet
        stranger = _wallet(other_key, signature_type, legacy)
        foreign = _sign(
            dataclasses.replace(order, maker=stranger), KEYS[account_index], version, contract
        )
        with pytest.raises(SimError, match=INVALID_SIGNATURE):
            placing.verify(exchange, dataclasses.replace(posted, order=foreign), eoa)


@pytest.mark.parametrize("domain_index", range(len(DOMAINS)))
def test_every_bit_of_a_deposit_wallet_signature_is_checked(domain_index: int) -> None:
    """One flipped bit anywhere in (r, s, v) or the ERC-7739 trailer: refused."""
    version, contract = DOMAINS[domain_index]
    wallet = derive_beacon_deposit_wallet_address(
        ACCOUNTS[0].address, PRODUCTION_CONFIG.wallet_derivation
    )
    order = _sign(
        WireOrder(
            salt=7,
            maker=wallet,
            signer=wallet,
            token_id=V3_YES,
            maker_amount=10_000_000,
            taker_amount=5_000_000,
            side="SELL",
            signature_type=3,
            timestamp=1_700_000_000_000,
            metadata="0x" + "00" * 32,
            builder="0x" + "00" * 32,
            expiration=0,
            signature="",
        ),
        KEYS[0],
        version,
        contract,
    )
    assert signatures.verify_order(order, version, contract).eoa == ACCOUNTS[0].address
    raw = bytes.fromhex(order.signature[2:])
    for index in range(len(raw)):
        flipped = bytearray(raw)
        flipped[index] ^= 1 << (index % 8)
        tampered = dataclasses.replace(order, signature="0x" + flipped.hex())
        with pytest.raises(SimError, match=INVALID_SIGNATURE):
            signatures.verify_order(tampered, version, contract)
