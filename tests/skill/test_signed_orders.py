"""Order signing with the domain separator hashed once per domain: the same signatures and
digests as eth_account's generic ``sign_typed_data``, whatever the order and its domain."""

from __future__ import annotations

from typing import Any

import pytest
from eth_account import Account
from eth_account._utils.encode_typed_data.encoding_and_hashing import hash_eip712_message
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
    static_struct_hash,
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


ORDER_TYPES = build_order_typed_data(
    UnsignedOrder(
        chain_id=137,
        builder="0x" + "00" * 32,
        exchange_address=EXCHANGES[0],
        expiration=0,
        maker=ACCOUNT.address,
        maker_amount=1,
        metadata="0x" + "00" * 32,
        order_type="FOK",
        salt=1,
        side="SELL",
        signature_type=0,
        signer=ACCOUNT.address,
        taker_amount=1,
        timestamp=1,
        token_id="1",
        protocol_version="2",
    )
)["types"]
ORDER_ONLY = {"Order": ORDER_TYPES["Order"]}
_ADDRESS = ACCOUNT.address
# Values of every kind eth_account takes for each field type, plain and odd: ints in and
# out of range (negative, too wide, bool), addresses in each case and a wrong checksum,
# bytes32 as bytes, hex text (either case of prefix and digits), short and long.
ODD_VALUES = st.one_of(
    st.integers(min_value=-(2**8), max_value=2**257),
    st.booleans(),
    st.sampled_from(
        [
            _ADDRESS,
            _ADDRESS.lower(),
            "0x" + _ADDRESS[2:].upper(),
            _ADDRESS[:-1] + ("a" if _ADDRESS[-1] != "a" else "b"),
            _ADDRESS[2:],
            "0X" + _ADDRESS[2:],
            "0x" + "ab" * 32,
            "0x" + "AB" * 32,
            "0X" + "ab" * 32,
            2**256,
            2**256 - 1,
            2**8,
            2**8 - 1,
            -1,
            "0x" + "ab" * 31,
            "0x" + "zz" * 32,
            "1",
            "",
        ]
    ),
    st.binary(min_size=0, max_size=40),
    st.none(),
)


def _hash_or_error(types: dict[str, Any], message: dict[str, Any]) -> bytes | str:
    try:
        return hash_eip712_message(types, message)
    except Exception as error:
        return type(error).__name__


@settings(deadline=None, max_examples=300)
@given(st.data())
def test_the_static_struct_hash_is_eth_accounts_hash_or_none(data: st.DataObject) -> None:
    """``static_struct_hash`` gives eth_account's own ``hash_eip712_message`` whenever it
    gives anything, and stands aside (None) for every value it does not lay out itself."""
    message: dict[str, Any] = {}
    for field in ORDER_ONLY["Order"]:
        plain = {
            "uint256": UINT256,
            "uint8": st.integers(min_value=0, max_value=255),
            "address": st.sampled_from([_ADDRESS, _ADDRESS.lower()]),
            "bytes32": st.one_of(BYTES32, st.binary(min_size=32, max_size=32)),
        }[field["type"]]
        message[field["name"]] = data.draw(
            st.one_of(plain, ODD_VALUES) if data.draw(st.booleans()) else plain
        )
    fast = static_struct_hash(ORDER_ONLY, message)
    if fast is not None:
        assert fast == hash_eip712_message(ORDER_ONLY, message)


@settings(deadline=None, max_examples=100)
@given(unsigned_orders())
def test_the_sdks_orders_take_the_static_hash(order: UnsignedOrder) -> None:
    """What the SDK builds for an order (and the Order inside a deposit wallet's
    ``TypedDataSign``) is laid out directly, with eth_account's digest; the wrapper itself
    (two struct types) is left to eth_account."""
    typed = build_order_typed_data(order)
    types = {name: fields for name, fields in typed["types"].items() if name != "EIP712Domain"}
    if typed["primaryType"] == "Order":
        message = typed["message"]
    else:
        assert static_struct_hash(types, typed["message"]) is None
        message = typed["message"]["contents"]
    assert static_struct_hash(ORDER_ONLY, message) == hash_eip712_message(ORDER_ONLY, message)
    assert static_struct_hash(ORDER_ONLY, message) is not None


def test_fields_of_other_types_are_left_to_eth_account() -> None:
    types = {"Mail": [{"name": "note", "type": "string"}, {"name": "to", "type": "address"}]}
    assert static_struct_hash(types, {"note": "hi", "to": _ADDRESS}) is None
    assert static_struct_hash({"Order": ORDER_TYPES["Order"], "Other": []}, {}) is None
    missing = {"Order": [{"name": "salt", "type": "uint256"}]}
    assert static_struct_hash(missing, {}) is None
    assert _hash_or_error(missing, {}) == "ValueError"


ODD_LIST: list[Any] = [
    _ADDRESS,
    _ADDRESS.lower(),
    "0x" + _ADDRESS[2:].upper(),
    _ADDRESS[:-1] + ("a" if _ADDRESS[-1] != "a" else "b"),
    _ADDRESS[2:],
    "0X" + _ADDRESS[2:],
    "0x" + "ab" * 32,
    "0x" + "AB" * 32,
    "0X" + "ab" * 32,
    "0x" + "ab" * 31,
    "0x" + "zz" * 32,
    "1",
    "",
    2**256,
    2**256 - 1,
    2**8,
    2**8 - 1,
    0,
    -1,
    True,
    False,
    bytes(32),
    bytes(31),
    bytes(33),
    bytes(20),
    None,
    1.0,
]


@pytest.mark.parametrize("field", [field["name"] for field in ORDER_ONLY["Order"]])
def test_each_odd_value_of_each_field_is_hashed_as_eth_account_does_or_left(field: str) -> None:
    plain: dict[str, Any] = {
        f["name"]: {"uint256": 7, "uint8": 1, "address": _ADDRESS, "bytes32": bytes(32)}[f["type"]]
        for f in ORDER_ONLY["Order"]
    }
    for value in ODD_LIST:
        message = plain | {field: value}
        fast = static_struct_hash(ORDER_ONLY, message)
        if fast is not None:
            assert fast == _hash_or_error(ORDER_ONLY, message), (field, value)
