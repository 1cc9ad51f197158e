"""Holdings: the wallet's positions from the Data API, parsed into ``Holding`` values.

``sizeThreshold=0`` is always sent: the Data API hides positions under one share otherwise.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from vincent.skills.polymarket.http import JsonGetter
from vincent.skills.polymarket.market_data import to_decimal
from vincent.skills.polymarket.types import Holding

PAGE_SIZE = 500
MAX_PAGES = 20


def parse_position(raw: dict[str, Any]) -> Holding | None:
    """One Data API position; None when it lacks a token id or a size."""
    token_id, shares = raw.get("asset"), to_decimal(raw.get("size"))
    if not isinstance(token_id, str) or not token_id or shares is None:
        return None
    end_date = raw.get("endDate")
    return Holding(
        token_id=token_id,
        condition_id=str(raw.get("conditionId") or ""),
        shares=shares,
        average_entry_price=to_decimal(raw.get("avgPrice")),
        current_price=to_decimal(raw.get("curPrice")),
        pnl=to_decimal(raw.get("cashPnl")),
        pnl_percent=to_decimal(raw.get("percentPnl")),
        market_title=_text(raw.get("title")),
        market_slug=_text(raw.get("slug")),
        outcome=_text(raw.get("outcome")),
        end_date=_text(end_date),
        redeemable=bool(raw.get("redeemable", False)),
    )


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


async def fetch_positions(data_api: JsonGetter, funder_address: str) -> list[Holding]:
    """Every position of ``funder_address`` (paged), as the Data API reports them."""
    holdings: list[Holding] = []
    for page in range(MAX_PAGES):
        payload = await data_api.get(
            "/positions",
            {
                "user": funder_address.lower(),
                "sizeThreshold": 0,
                "limit": PAGE_SIZE,
                "offset": page * PAGE_SIZE,
            },
        )
        rows = payload if isinstance(payload, list) else []
        holdings.extend(h for r in rows if isinstance(r, dict) and (h := parse_position(r)))
        if len(rows) < PAGE_SIZE:
            break
    return holdings


def shares_held(holdings: list[Holding], token_id: str) -> Decimal:
    return sum((h.shares for h in holdings if h.token_id == token_id), Decimal(0))
