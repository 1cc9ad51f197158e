"""Wallet classification: which address a secret trades for and with which signature type.

Offline: the wallet type comes from the SDK's CREATE2 address derivation from the signer
(EOA 0, proxy 1, Safe 2, deposit wallet 3). Never logs or returns the private key.
"""

from __future__ import annotations

from dataclasses import dataclass

from eth_account import Account
from eth_utils.address import to_checksum_address
from polymarket._internal import wallet as sdk_wallet

from vincent.errors import BadRequest
from vincent.skills.polymarket.environment import wallet_derivation_config

SIGNATURE_TYPE_NAMES = {0: "EOA", 1: "proxy", 2: "Safe", 3: "deposit wallet"}


class InvalidWallet(BadRequest):
    code = "INVALID_WALLET"
    default_message = "Invalid wallet"


@dataclass(frozen=True, slots=True)
class WalletInfo:
    eoa_address: str
    funder_address: str
    signature_type: int


def eoa_address_of(private_key: str) -> str:
    """The checksummed signer address of ``private_key``; raises ``InvalidWallet``."""
    try:
        return str(Account.from_key(private_key).address)
    except (ValueError, TypeError) as error:
        # The key itself never goes into the message.
        raise InvalidWallet("privateKey is not a valid secp256k1 private key") from error


def derived_wallet_address(eoa_address: str, signature_type: int) -> str:
    """The wallet address the SDK derives for ``eoa_address`` and ``signature_type``."""
    config = wallet_derivation_config()
    if signature_type == 0:
        return eoa_address
    if signature_type == 1:
        return str(sdk_wallet.derive_proxy_wallet_address(eoa_address, config))
    if signature_type == 2:
        return str(sdk_wallet.derive_safe_wallet_address(eoa_address, config))
    if signature_type == 3:
        return str(sdk_wallet.derive_beacon_deposit_wallet_address(eoa_address, config))
    raise InvalidWallet(f"signatureType must be 0, 1, 2 or 3, was {signature_type}")


def classify_wallet(private_key: str, funder: str | None, signature_type: int | None) -> WalletInfo:
    """Classify the wallet ``private_key`` trades for, as the SDK will when it signs.

    Without ``funder``, the wallet is the one derived for ``signature_type`` (the signer
    itself when neither is given). A funder the signer does not derive is a deposit
    wallet the signer acts for as a session key (type 3), as the SDK treats it.
    Raises ``InvalidWallet`` (a ``BadRequest``) when a given ``signature_type`` disagrees.
    """
    eoa = eoa_address_of(private_key)
    if signature_type is not None and signature_type not in SIGNATURE_TYPE_NAMES:
        raise InvalidWallet(f"signatureType must be 0, 1, 2 or 3, was {signature_type}")
    if funder is None:
        wallet_type = 0 if signature_type is None else signature_type
        return WalletInfo(eoa, derived_wallet_address(eoa, wallet_type), wallet_type)
    try:
        funder_checksum = to_checksum_address(funder)
    except ValueError as error:
        raise InvalidWallet(f"funder must be a 0x-prefixed 40-hex address, was {funder!r}") from (
            error
        )
    account = sdk_wallet.classify_account(
        signer=eoa, wallet=funder_checksum, config=wallet_derivation_config()
    )
    detected = sdk_wallet.signature_type_for(account.wallet_type)
    if signature_type is not None and signature_type != detected:
        raise InvalidWallet(
            f"signatureType {signature_type} ({SIGNATURE_TYPE_NAMES[signature_type]}) does not "
            f"match the wallet: {funder_checksum} is a {SIGNATURE_TYPE_NAMES[detected]} "
            f"(type {detected}) for signer {eoa}"
        )
    return WalletInfo(eoa, funder_checksum, detected)
