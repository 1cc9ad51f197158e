"""Orders and trades the exchange has accepted, and their ``/data/...`` wire shapes.

Pure data; the exchange is the only writer.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from vincent.sim.book import units_text


@dataclass(slots=True)
class OrderRecord:
    """One accepted order. ``status`` is LIVE, DELAYED (accepted, not matched yet),
    MATCHED or CANCELED."""

    order_id: str
    market: str
    asset_id: str
    owner: str
    maker_address: str
    side: str
    price: Decimal
    original_size: int
    order_type: str
    outcome: str
    expiration: int
    size_matched: int = 0
    status: str = "LIVE"
    associate_trades: list[str] = field(default_factory=list)
    created_at: int = field(default_factory=lambda: int(time.time()))

    def wire(self) -> dict[str, Any]:
        return {
            "id": self.order_id,
            "status": self.status,
            "owner": self.owner,
            "maker_address": self.maker_address,
            "market": self.market,
            "asset_id": self.asset_id,
            "side": self.side,
            "original_size": units_text(self.original_size),
            "size_matched": units_text(self.size_matched),
            "price": str(self.price),
            "outcome": self.outcome,
            "order_type": self.order_type,
            "associate_trades": list(self.associate_trades),
            "created_at": self.created_at,
            "expiration": str(self.expiration),
        }


@dataclass(frozen=True, slots=True)
class MakerFill:
    """The resting side of a trade (``owner`` None for the exchange's synthetic liquidity)."""

    order_id: str
    owner: str | None
    maker_address: str | None
    price: Decimal
    size: int


@dataclass(frozen=True, slots=True)
class LedgerMove:
    """One balance change a trade made, kept so a failed settlement can undo it."""

    address: str
    token_id: str
    shares: int  # + received, - given
    cost: int  # cost basis that moved with the shares
    collateral: int  # + received, - paid


@dataclass(slots=True)
class TradeRecord:
    """One taker order's execution against one or more resting orders.

    ``status`` follows settlement (see ``settlement``): MATCHED, MINED, CONFIRMED, or
    RETRYING then FAILED (its ``moves`` undone).
    """

    trade_id: str
    taker_order_id: str
    market: str
    asset_id: str
    side: str
    price: Decimal
    size: int
    outcome: str
    owner: str
    maker_address: str
    transaction_hash: str
    makers: list[MakerFill]
    match_time: int = field(default_factory=lambda: int(time.time()))
    status: str = "MATCHED"
    ts_match_s: float = field(default_factory=time.monotonic)
    fails: bool = False
    moves: list[LedgerMove] = field(default_factory=list)
    last_update: int = field(default_factory=lambda: int(time.time()))

    def wire(self, trader_side: str = "TAKER") -> dict[str, Any]:
        return {
            "id": self.trade_id,
            "taker_order_id": self.taker_order_id,
            "market": self.market,
            "asset_id": self.asset_id,
            "side": self.side,
            "size": units_text(self.size),
            "fee_rate_bps": "0",
            "price": str(self.price),
            "status": self.status,
            "match_time": str(self.match_time),
            "last_update": str(self.last_update),
            "outcome": self.outcome,
            "bucket_index": 0,
            "owner": self.owner,
            "maker_address": self.maker_address,
            "transaction_hash": self.transaction_hash,
            "trader_side": trader_side,
            "maker_orders": [
                {
                    "order_id": m.order_id,
                    "owner": m.owner or "",
                    "maker_address": m.maker_address or "",
                    "matched_amount": units_text(m.size),
                    "price": str(m.price),
                    "fee_rate_bps": "0",
                    "asset_id": self.asset_id,
                    "outcome": self.outcome,
                    "side": "SELL" if self.side == "BUY" else "BUY",
                }
                for m in self.makers
            ],
        }
