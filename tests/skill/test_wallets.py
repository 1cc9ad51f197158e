"""Wallet classification, checked against the local exchange's own address derivation."""

from __future__ import annotations

import pytest

from vincent.errors import BadRequest
from vincent.sim import wallets as exchange_wallets
from vincent.skills.polymarket.wallets import InvalidWallet, classify_wallet

KEY = "0x" + "42" * 32


def test_defaults_to_the_signer_itself() -> None:
    info = classify_wallet(KEY, None, None)

    assert info.signature_type == 0
    assert info.funder_address == info.eoa_address


@pytest.mark.parametrize("signature_type", [1, 2, 3])
def test_derived_wallets_match_the_exchange(signature_type: int) -> None:
    info = classify_wallet(KEY, None, signature_type)

    expected = {
        1: [exchange_wallets.proxy_wallet(info.eoa_address)],
        2: [exchange_wallets.safe_wallet(info.eoa_address)],
        3: list(exchange_wallets.deposit_wallets(info.eoa_address)),
    }[signature_type]
    assert info.funder_address in expected
    assert classify_wallet(KEY, info.funder_address, None).signature_type == signature_type


def test_a_disagreeing_signature_type_is_a_clear_bad_request() -> None:
    safe = classify_wallet(KEY, None, 2).funder_address

    with pytest.raises(BadRequest, match=r"signatureType 0 \(EOA\) does not match.*Safe"):
        classify_wallet(KEY, safe, 0)


@pytest.mark.parametrize(
    ("key", "funder", "signature_type", "message"),
    [
        ("0x1234", None, None, "privateKey is not a valid"),
        (KEY, "0xnot-an-address", None, "funder must be"),
        (KEY, None, 7, "signatureType must be 0, 1, 2 or 3, was 7"),
    ],
)
def test_bad_input_is_named(
    key: str, funder: str | None, signature_type: int | None, message: str
) -> None:
    with pytest.raises(InvalidWallet, match=message) as caught:
        classify_wallet(key, funder, signature_type)

    assert "42" * 8 not in caught.value.message
