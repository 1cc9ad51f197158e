"""Signed orders at rest: JSON for the audit row, and the order id (its EIP-712 digest).

The order id is known before posting, so an attempt whose answer never came back can be
looked up by id. Typed data comes from the SDK (pinned, see environment.py); only the
standard EIP-712 hashing of eth_account is applied to it. Hashing takes a third of the time
of signing an order, so ``OrderIdSigner`` keeps the digest eth_account computed while
signing, and ``order_id_of`` hashes again only for an order it did not sign (a deposit
wallet's, whose signature covers a wrapper of the order; or one read back from the row).

Of that hashing, the domain separator was a third: the same few domains (one per exchange
contract) hashed again for every order. ``encode_typed_data_once_per_domain`` keeps each
domain's hash, computed and checked by eth_account's ``encode_typed_data`` the first time,
and hashes only the message after that, with eth_account's own ``hash_eip712_message``.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

import coincurve
from eth_account import Account
from eth_account._utils.encode_typed_data.encoding_and_hashing import hash_eip712_message
from eth_account.datastructures import SignedMessage
from eth_account.messages import SignableMessage, _hash_eip191_message, encode_typed_data
from eth_account.signers.local import LocalAccount
from eth_keys.backends.coincurve import CoinCurveECCBackend
from eth_keys.datatypes import PrivateKey, Signature
from hexbytes import HexBytes
from polymarket._internal.actions.orders.context import resolve_order_exchange_address
from polymarket._internal.actions.orders.typed_data import build_order_typed_data
from polymarket._internal.actions.orders.types import UnsignedOrder
from polymarket._internal.environment import get_environment_config
from polymarket._internal.protocol import is_v2_position_id
from polymarket.environments import Environment
from polymarket.models.clob.orders import SignedOrder

_FIELDS = (
    "builder",
    "expiration",
    "maker",
    "maker_amount",
    "metadata",
    "order_type",
    "salt",
    "side",
    "signature",
    "signature_type",
    "signer",
    "taker_amount",
    "timestamp",
    "token_id",
    "post_only",
)


def signed_order_to_json(order: SignedOrder) -> dict[str, Any]:
    """A JSON-safe copy; big integers become strings so no database loses precision."""
    data: dict[str, Any] = {}
    for name in _FIELDS:
        value = getattr(order, name)
        data[name] = str(value) if isinstance(value, int) and not isinstance(value, bool) else value
    return data


def signed_order_from_json(data: dict[str, Any]) -> SignedOrder:
    return SignedOrder(
        builder=data["builder"],
        expiration=int(data["expiration"]),
        maker=data["maker"],
        maker_amount=int(data["maker_amount"]),
        metadata=data["metadata"],
        order_type=data["order_type"],
        salt=int(data["salt"]),
        side=data["side"],
        signature=data["signature"],
        signature_type=int(data["signature_type"]),
        signer=data["signer"],
        taker_amount=int(data["taker_amount"]),
        timestamp=int(data["timestamp"]),
        token_id=data["token_id"],
        post_only=bool(data.get("post_only", False)),
    )


def order_id_of(order: SignedOrder, environment: Environment, *, neg_risk: bool) -> str:
    """The exchange's id for ``order``: the EIP-712 digest of its Order struct."""
    config = get_environment_config(environment)
    unsigned = UnsignedOrder(
        chain_id=config.chain_id,
        builder=order.builder,
        exchange_address=resolve_order_exchange_address(
            config, asset_id=order.token_id, neg_risk=neg_risk
        ),
        expiration=order.expiration,
        maker=order.maker,
        maker_amount=order.maker_amount,
        metadata=order.metadata,
        order_type=order.order_type,
        salt=order.salt,
        side=order.side,
        signature_type=order.signature_type,
        signer=order.signer,
        taker_amount=order.taker_amount,
        timestamp=order.timestamp,
        token_id=order.token_id,
        protocol_version="3" if is_v2_position_id(order.token_id) else "2",
    )
    typed = build_order_typed_data(unsigned)
    if typed["primaryType"] != "Order":
        # Deposit wallets sign a TypedDataSign wrapper; the id is still the Order digest.
        typed = {
            "types": {
                "EIP712Domain": typed["types"]["EIP712Domain"],
                "Order": typed["types"]["Order"],
            },
            "primaryType": "Order",
            "domain": typed["domain"],
            "message": typed["message"]["contents"],
        }
    digest: bytes = _hash_eip191_message(encode_typed_data_once_per_domain(typed))
    return "0x" + digest.hex()


# Distinct (domain, types) seen by a process: a handful (one per exchange contract and
# protocol version); the bound only keeps a misuse from growing it without end.
_MAX_DOMAINS = 64
_domain_hashes: dict[tuple[Any, ...], bytes] = {}


def _typed_data_key(full_message: dict[str, Any]) -> tuple[Any, ...]:
    """Everything but the message: the domain, the types and the primary type."""
    return (
        full_message.get("primaryType"),
        tuple(full_message["domain"].items()),
        tuple(
            (name, tuple((field["name"], field["type"]) for field in fields))
            for name, fields in full_message["types"].items()
        ),
    )


def encode_typed_data_once_per_domain(full_message: dict[str, Any]) -> SignableMessage:
    """``encode_typed_data(full_message=...)``, with the domain separator hashed once per
    distinct domain and types: the first message of each goes through ``encode_typed_data``
    whole (its checks of the domain against ``EIP712Domain`` and of ``primaryType`` run
    then), later ones hash only their message, as ``encode_typed_data`` does."""
    try:
        key: tuple[Any, ...] | None = _typed_data_key(full_message)
        header = _domain_hashes.get(key)  # type: ignore[arg-type]
    except TypeError:  # a value that cannot be a key (a list in the domain): no caching
        key, header = None, None
    if key is None or header is None:
        signable = encode_typed_data(full_message=full_message)
        if key is not None and len(_domain_hashes) < _MAX_DOMAINS:
            _domain_hashes[key] = bytes(signable.header)
        return signable
    types = dict(full_message["types"])
    types.pop("EIP712Domain", None)
    return SignableMessage(
        HexBytes(b"\x01"), header, hash_eip712_message(types, full_message["message"])
    )


# Digests kept for orders signed and not yet asked for (an order's id is asked for right
# after it is signed, in the same step of the event loop).
_KEPT_DIGESTS = 64


def _signature_key(signature: object) -> str:
    text = signature.hex() if isinstance(signature, bytes) else str(signature)
    return text.lower().removeprefix("0x")


class _KeptKeyBackend(CoinCurveECCBackend):
    """eth_keys' coincurve backend holding the coincurve key of one private key: coincurve
    derives the public keys whenever a key is built, which eth_keys does for every signature
    (~15 % of signing an order). Signs exactly as the backend does, with that key kept."""

    def __init__(self, secret: bytes) -> None:
        super().__init__()
        self._secret = secret
        self._signing_key = coincurve.PrivateKey(secret)

    def ecdsa_sign(self, msg_hash: bytes, private_key: PrivateKey) -> Signature:
        if private_key.to_bytes() != self._secret:
            return super().ecdsa_sign(msg_hash, private_key)
        return Signature(self._signing_key.sign_recoverable(msg_hash, hasher=None), backend=self)


class OrderIdSigner:
    """The signer an SDK client signs its secret's orders with: the secret's
    ``LocalAccount`` (everything else is passed to it), whose key is parsed once (and its
    coincurve key built once: ``_KeptKeyBackend``), and which
    keeps the EIP-712 digest eth_account computed for each ``Order`` it signed: the order's
    exchange id (``order_id``), by the signature that ended up on the order."""

    def __init__(self, account: LocalAccount) -> None:
        self._account = account
        secret = bytes(account.key)
        self._key = PrivateKey(secret, backend=_KeptKeyBackend(secret))
        self._digests: OrderedDict[str, str] = OrderedDict()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._account, name)

    def sign_typed_data(
        self,
        domain_data: dict[str, Any] | None = None,
        message_types: dict[str, Any] | None = None,
        message_data: dict[str, Any] | None = None,
        full_message: dict[str, Any] | None = None,
    ) -> SignedMessage:
        signed: SignedMessage
        if full_message is None:
            signed = Account.sign_typed_data(self._key, domain_data, message_types, message_data)
            return signed
        signed = Account.sign_message(encode_typed_data_once_per_domain(full_message), self._key)
        if full_message.get("primaryType") == "Order":
            self._digests[_signature_key(signed.signature)] = "0x" + signed.message_hash.hex()
            while len(self._digests) > _KEPT_DIGESTS:
                self._digests.popitem(last=False)
        return signed

    def order_id(self, order: SignedOrder) -> str | None:
        """The id of ``order`` if this signer signed it as an ``Order``, else None."""
        return self._digests.pop(_signature_key(order.signature), None)
