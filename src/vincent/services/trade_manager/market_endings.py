"""When a market has ended for its rules, and when to ask the exchange again. No I/O.

A market ends its rules when the feed says it resolved, or when its state says it is closed
or no longer accepting orders. The end date alone does not: Polymarket keeps trading many
markets past their announced end date until they resolve, and a stop must keep protecting
the position meanwhile.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

RESOLVED = "market_resolved"
CLOSED = "market_closed"
EXPIRES_AT = "expiresAt"

# A watched market's state is asked at most once per this many seconds, and at most
# ``MAX_MARKETS_PER_TICK`` markets per poll tick (the rest wait for the next ticks).
MARKET_CHECK_INTERVAL_S = 180.0
MAX_MARKETS_PER_TICK = 50
# Markets remembered by the schedule; past this the oldest check is forgotten (it is only
# asked again sooner).
MAX_SCHEDULED_MARKETS = 100_000


@dataclass(frozen=True, slots=True)
class MarketEnding:
    """Why a market's rules end: ``reason`` for the event, ``message`` for ``errorMessage``."""

    reason: str
    message: str
    winning_token_id: str | None = None

    def event_data(self) -> dict[str, Any]:
        """RULE_EXPIRED data: the reason, and the winning token when known."""
        data: dict[str, Any] = {"reason": self.reason}
        if self.winning_token_id is not None:
            data["winningTokenId"] = self.winning_token_id
        return data


def resolved(winning_token_id: str | None, winning_outcome: str | None) -> MarketEnding:
    """The ending of a market that resolved ("market resolved: Yes won")."""
    message = "market resolved"
    if winning_outcome:
        message = f"market resolved: {winning_outcome} won"
    return MarketEnding(RESOLVED, message, winning_token_id)


def ending_of(
    *,
    closed: bool,
    accepting_orders: bool,
    winning_token_id: str | None,
    outcomes: Mapping[str, str],
) -> MarketEnding | None:
    """The ending a market's state shows (the CLOB's flags), or None while it still trades."""
    if winning_token_id is not None:
        return resolved(winning_token_id, outcomes.get(winning_token_id))
    if closed or not accepting_orders:
        return MarketEnding(CLOSED, "market closed")
    return None


def misplaced_message(token_id: str, market_id: str) -> str:
    """The refusal of a rule whose token is not an outcome of its market."""
    return f"tokenId {token_id} is not an outcome of market {market_id}"


class MarketCheckSchedule:
    """When each watched market was last asked about (monotonic seconds)."""

    __slots__ = ("_checked_s",)

    def __init__(self) -> None:
        self._checked_s: dict[str, float] = {}

    def due(
        self,
        markets: Iterable[str],
        now_s: float,
        *,
        interval_s: float = MARKET_CHECK_INTERVAL_S,
        limit: int = MAX_MARKETS_PER_TICK,
    ) -> list[str]:
        """Markets not asked within ``interval_s``, never asked first, at most ``limit``."""
        checked = self._checked_s
        waiting = [m for m in markets if now_s - checked.get(m, float("-inf")) >= interval_s]
        waiting.sort(key=lambda m: checked.get(m, float("-inf")))
        return waiting[:limit]

    def checked(self, market_id: str, now_s: float) -> None:
        checked = self._checked_s
        checked.pop(market_id, None)
        if len(checked) >= MAX_SCHEDULED_MARKETS:
            del checked[next(iter(checked))]
        checked[market_id] = now_s

    def forget_except(self, markets: Mapping[str, object]) -> None:
        """Drop markets no longer watched."""
        self._checked_s = {m: s for m, s in self._checked_s.items() if m in markets}
