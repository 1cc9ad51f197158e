"""Reading a posted order: the wire body, its price and size, and the static checks.

Pure. Knows Polymarket's rules for V2 bodies, V1 refusal, tick size, minimum size and
amount precision; the exchange adds the checks that need state (balances, duplicates).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from vincent.sim.book import units_text
from vincent.sim.errors import ORDER_VERSION_MISMATCH, SimError
from vincent.sim.signatures import WireOrder

ORDER_TYPES = frozenset({"GTC", "GTD", "FOK", "FAK"})
_V1_ONLY_FIELDS = ("taker", "nonce", "feeRateBps")
# Decimals allowed on the collateral amount of market orders, by tick size.
_AMOUNT_DECIMALS = {
    Decimal("0.1"): 3,
    Decimal("0.01"): 4,
    Decimal("0.005"): 5,
    Decimal("0.0025"): 6,
    Decimal("0.001"): 5,
    Decimal("0.0001"): 6,
}


@dataclass(frozen=True, slots=True)
class PostedOrder:
    """A ``POST /order`` body: the signed order plus owner and execution flags."""

    order: WireOrder
    owner: str
    order_type: str
    post_only: bool

    @property
    def shares(self) -> int:
        o = self.order
        return o.maker_amount if o.side == "SELL" else o.taker_amount

    @property
    def collateral(self) -> int:
        o = self.order
        return o.taker_amount if o.side == "SELL" else o.maker_amount

    @property
    def price(self) -> Decimal:
        """Collateral per share the order asks for: a SELL's floor, a BUY's cap."""
        return (Decimal(self.collateral) / Decimal(self.shares)).normalize()

    @property
    def is_market(self) -> bool:
        return self.order_type in ("FOK", "FAK")


def parse_post(body: Any) -> PostedOrder:
    """Parse a V2/V3 body; a V1 body is refused with ``order_version_mismatch``."""
    try:
        raw = body["order"]
        if any(name in raw for name in _V1_ONLY_FIELDS) or "timestamp" not in raw:
            raise SimError(400, ORDER_VERSION_MISMATCH)
        order = WireOrder(
            salt=int(raw["salt"]),
            maker=str(raw["maker"]),
            signer=str(raw["signer"]),
            token_id=str(int(raw["tokenId"])),
            maker_amount=int(raw["makerAmount"]),
            taker_amount=int(raw["takerAmount"]),
            side=str(raw["side"]),
            signature_type=int(raw["signatureType"]),
            timestamp=int(raw["timestamp"]),
            metadata=str(raw["metadata"]),
            builder=str(raw["builder"]),
            expiration=int(raw.get("expiration", "0")),
            signature=str(raw["signature"]),
        )
        posted = PostedOrder(
            order=order,
            owner=str(body["owner"]),
            order_type=str(body.get("orderType", "GTC")),
            post_only=bool(body.get("postOnly", False)),
        )
    except SimError:
        raise
    except (KeyError, TypeError, ValueError) as error:
        raise SimError(400, "Invalid order payload") from error
    if order.side not in ("BUY", "SELL") or posted.order_type not in ORDER_TYPES:
        raise SimError(400, "Invalid order payload")
    if order.maker_amount <= 0 or order.taker_amount <= 0:
        raise SimError(400, "Invalid order payload")
    return posted


def check_amounts(posted: PostedOrder, order_id: str, tick: Decimal, min_size: Decimal) -> None:
    """Tick size, price range, minimum size and amount precision, as Polymarket checks them."""
    price = posted.price
    if posted.is_market:
        maker_decimals, taker_decimals = 2, _AMOUNT_DECIMALS.get(tick, 4)
        o = posted.order
        if o.maker_amount % 10 ** (6 - maker_decimals) or o.taker_amount % 10 ** (
            6 - taker_decimals
        ):
            kind = "market buy" if o.side == "BUY" else "sell"
            raise SimError(
                400,
                f"invalid amounts, the {kind} orders maker amount supports a max accuracy of "
                f"{maker_decimals} decimals, taker amount a max of {taker_decimals} decimals",
            )
        if not Decimal(0) < price <= Decimal(1):
            raise SimError(400, f"order {order_id} is invalid. Price ({price}) out of range")
        return
    if price < tick or price > 1 - tick or price % tick != 0:
        raise SimError(
            400,
            f"order {order_id} is invalid. Price ({price}) breaks minimum tick size rule: {tick}",
        )
    size = Decimal(units_text(posted.shares))
    if size < min_size:
        raise SimError(
            400, f"order {order_id} is invalid. Size ({size}) lower than the minimum: {min_size}"
        )
    if posted.shares % 10_000:
        raise SimError(400, f"order {order_id} is invalid. Size ({size}) has too many decimals")
