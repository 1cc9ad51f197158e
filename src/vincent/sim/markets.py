"""A binary market's static description and its shapes on the wire (CLOB, Gamma).

Pure data. The exchange owns the mutable state (books, resolution) and passes it in.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any


@dataclass(slots=True)
class Market:
    """One condition with two outcome tokens. ``tick_size`` and ``closed`` can change."""

    condition_id: str
    token_ids: tuple[str, str]
    tick_size: Decimal = Decimal("0.01")
    min_order_size: Decimal = Decimal("5")
    neg_risk: bool = False
    end_date: str = "2030-01-01T00:00:00Z"
    title: str = "Local exchange market"
    slug: str = "local-exchange-market"
    outcomes: tuple[str, str] = ("Yes", "No")
    fee_rate: Decimal = Decimal("0")
    fee_exponent: Decimal = Decimal("0")
    closed: bool = False
    winning_token_id: str | None = None
    last_trade_price: dict[str, Decimal] = field(default_factory=dict)

    def outcome_of(self, token_id: str) -> str:
        return self.outcomes[self.token_ids.index(token_id)]

    def opposite(self, token_id: str) -> str:
        return self.token_ids[1 - self.token_ids.index(token_id)]

    def clob_market(self) -> dict[str, Any]:
        """``GET /clob-markets/{condition_id}``: the short-key form the SDK parses."""
        return {
            "c": self.condition_id,
            "t": [{"t": t, "o": o} for t, o in zip(self.token_ids, self.outcomes, strict=True)],
            "mts": float(self.tick_size),
            "mos": float(self.min_order_size),
            "nr": self.neg_risk,
            "fd": {"r": float(self.fee_rate), "e": float(self.fee_exponent), "to": True},
            "ao": not self.closed,
            "cl": self.closed,
        }

    def markets_by_token(self, token_id: str) -> dict[str, Any]:
        return {
            "condition_id": self.condition_id,
            "primary_token_id": self.token_ids[0],
            "secondary_token_id": self.token_ids[1],
        }

    def clob_detail(self) -> dict[str, Any]:
        """``GET /markets/{condition_id}``."""
        return {
            "condition_id": self.condition_id,
            "question": self.title,
            "market_slug": self.slug,
            "end_date_iso": self.end_date,
            "active": True,
            "closed": self.closed,
            "accepting_orders": not self.closed,
            "neg_risk": self.neg_risk,
            "minimum_order_size": float(self.min_order_size),
            "minimum_tick_size": float(self.tick_size),
            "tokens": [
                {
                    "token_id": t,
                    "outcome": o,
                    "price": float(self.last_trade_price.get(t, Decimal("0.5"))),
                    "winner": self.winning_token_id == t,
                }
                for t, o in zip(self.token_ids, self.outcomes, strict=True)
            ],
        }

    def gamma(self, prices: tuple[Decimal, Decimal]) -> dict[str, Any]:
        """``GET /gamma/markets`` item: clobTokenIds and outcomes are JSON-encoded strings."""
        return {
            "id": str(int(self.condition_id[2:14], 16)),
            "conditionId": self.condition_id,
            "question": self.title,
            "slug": self.slug,
            "endDate": self.end_date,
            "active": True,
            "closed": self.closed,
            "acceptingOrders": not self.closed,
            "clobTokenIds": json.dumps(list(self.token_ids)),
            "outcomes": json.dumps(list(self.outcomes)),
            "outcomePrices": json.dumps([str(p) for p in prices]),
            "negRisk": self.neg_risk,
            "orderPriceMinTickSize": float(self.tick_size),
            "orderMinSize": float(self.min_order_size),
        }
