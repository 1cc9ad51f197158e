"""Order signing with the domain separator hashed once per domain: the same signatures and
digests as eth_account's generic ``sign_typed_data``, whatever the order and its domain."""

from __future__ import annotations

from typing import Any

import pytest
from eth_account import Account
from eth_account.messages import _hash_eip191_message, encode_typed_data
from eth_keys.datatypes import PrivateKey
from eth_utils.exceptions import ValidationError
from hypothesis import given, settings
from hypothesis import strategies as st
from polymarket._internal.actions.orders.typed_data import build_order_typed_data
from polymarket._internal.actions.orders.types import UnsignedOrder

from vincent.skills.polymarket.signed_orders import (
    OrderIdSigner,
    _KeptKeyBackend,
    encode_typed_data_once_per_domain,
)

ACCOUNT = Account.from_key("0x" + "42" * 32)
EXCHANGES = (
    "0x4bFb41d5B3570DeFd03C39a9A4D8dE6Bd8B8982E",
    "0xC5d563A36AE78145C45a50134d48A1215220f80a",
)
UINT256 = st.integers(min_value=0, max_value=2**256 - 1)
BYTES32 = st.binary(min_size=32, max_size=32).map(lambda raw: "0x" + raw.hex())


@st.composite
def unsigned_orders(draw: st.DrawFn) -> UnsignedOrder:
    return UnsignedOrder(
        chain_id=draw(st.sampled_from([137, 80002])),
        builder=draw(BYTES32),
        exchange_address=draw(st.sampled_from(EXCHANGES)),
        expiration=draw(st.integers(min_value=0, max_value=2**40)),
        maker=ACCOUNT.address,
        maker_amount=draw(UINT256),
        metadata=draw(BYTES32),
        order_type=draw(st.sampled_from(["GTC", "GTD", "FAK", "FOK"])),
        salt=draw(UINT256),
        side=draw(st.sampled_from(["BUY", "SELL"])),
        signature_type=draw(st.sampled_from([0, 1, 2, 3])),
        signer=ACCOUNT.address,
        taker_amount=draw(UINT256),
        timestamp=draw(st.integers(min_value=0, max_value=2**48)),
        token_id=str(draw(st.integers(min_value=1, max_value=2**256 - 1))),
        protocol_version=draw(st.sampled_from(["2", "3"])),
    )


@settings(deadline=None, max_examples=150)
@given(st.lists(unsigned_orders(), min_size=1, max_size=6))
def test_signatures_and_digests_match_eth_accounts_own(orders: list[UnsignedOrder]) -> None:
    # Several orders per example, over alternating domains: a separator kept for the wrong
    # domain would show as a different signature.
    signer = OrderIdSigner(ACCOUNT)
    for order in orders:
        typed = build_order_typed_data(order)

        ours = signer.sign_typed_data(full_message=typed)
        theirs = Account.sign_typed_data(ACCOUNT.key, full_message=typed)

        assert ours.signature == theirs.signature
        assert ours.message_hash == theirs.message_hash
        assert _hash_eip191_message(
            encode_typed_data_once_per_domain(typed)
        ) == _hash_eip191_message(encode_typed_data(full_message=typed))


def _order_typed_data() -> dict[str, Any]:
    return build_order_typed_data(
        UnsignedOrder(
            chain_id=137,
            builder="0x" + "00" * 32,
            exchange_address=EXCHANGES[0],
            expiration=0,
            maker=ACCOUNT.address,
            maker_amount=1_000_000,
            metadata="0x" + "00" * 32,
            order_type="FOK",
            salt=7,
            side="SELL",
            signature_type=0,
            signer=ACCOUNT.address,
            taker_amount=500_000,
            timestamp=1_765_000_000_000,
            token_id="12345",
            protocol_version="3",
        )
    )


def test_a_wrong_primary_type_is_refused_even_after_its_domain_was_seen() -> None:
    typed = _order_typed_data()
    encode_typed_data_once_per_domain(typed)  # the domain is known from here on

    wrong = {**typed, "primaryType": "EIP712Domain"}
    with pytest.raises(ValidationError, match="primaryType"):
        encode_typed_data_once_per_domain(wrong)


def test_a_domain_not_matching_its_declared_fields_is_refused_even_after_it_was_seen() -> None:
    typed = _order_typed_data()
    encode_typed_data_once_per_domain(typed)

    extra = {**typed, "domain": {**typed["domain"], "salt": "0x" + "11" * 32}}
    with pytest.raises(ValidationError, match="do not match"):
        encode_typed_data_once_per_domain(extra)


def test_the_order_id_is_kept_for_an_order_signed_here() -> None:
    signer = OrderIdSigner(ACCOUNT)
    typed = _order_typed_data()

    signed = signer.sign_typed_data(full_message=typed)

    expected = "0x" + _hash_eip191_message(encode_typed_data(full_message=typed)).hex()
    assert "0x" + signed.message_hash.hex() == expected


def test_the_kept_coincurve_key_signs_only_for_its_own_private_key() -> None:
    mine, other = b"\x42" * 32, b"\x17" * 32
    backend = _KeptKeyBackend(mine)
    digest = bytes(range(32))

    assert backend.ecdsa_sign(digest, PrivateKey(mine)) == PrivateKey(mine).sign_msg_hash(digest)
    assert backend.ecdsa_sign(digest, PrivateKey(other)) == PrivateKey(other).sign_msg_hash(digest)
