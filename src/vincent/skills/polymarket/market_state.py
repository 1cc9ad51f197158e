"""A market's trading state from CLOB ``GET /markets/{condition_id}``, typed. No I/O.

The trade manager ends a market's rules from this (closed, not accepting orders, resolved
with a winner) and checks that a rule's token is one of the market's outcomes.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any


@dataclass(frozen=True, slots=True)
class MarketState:
    """``outcomes`` maps each outcome token id to its name ("Yes", "No", ...)."""

    condition_id: str
    outcomes: dict[str, str]
    closed: bool
    accepting_orders: bool
    end_date: datetime | None = None
    winning_token_id: str | None = None

    @property
    def token_ids(self) -> frozenset[str]:
        return frozenset(self.outcomes)


def parse_market_state(condition_id: str, payload: dict[str, Any]) -> MarketState:
    """Read the CLOB market object; missing flags read as open (never end rules on a guess)."""
    outcomes: dict[str, str] = {}
    winner: str | None = None
    tokens = payload.get("tokens")
    for token in tokens if isinstance(tokens, list) else []:
        if not isinstance(token, dict) or token.get("token_id") in (None, ""):
            continue
        token_id = str(token["token_id"])
        outcomes[token_id] = str(token.get("outcome") or "")
        if token.get("winner") is True:
            winner = token_id
    return MarketState(
        condition_id=str(payload.get("condition_id") or condition_id),
        outcomes=outcomes,
        closed=payload.get("closed") is True,
        accepting_orders=payload.get("accepting_orders") is not False,
        end_date=_datetime(payload.get("end_date_iso")),
        winning_token_id=winner,
    )


def _datetime(raw: object) -> datetime | None:
    if not isinstance(raw, str) or not raw:
        return None
    try:
        return datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        return None
