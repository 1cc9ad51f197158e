"""The poll tick's market check: ask the exchange about each watched market, batched and at
most once per market per ``MARKET_CHECK_INTERVAL_S``, and end the rules of markets that ended.

Also refuses, after the fact, rules whose token is not an outcome of their market (created
while the exchange could not be asked). Its failures are logged and counted, never raised:
a market asked in vain is asked again on the next tick.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Protocol, runtime_checkable

from vincent.db.session import SessionFactory
from vincent.services.trade_manager.market_endings import MarketCheckSchedule, ending_of
from vincent.services.trade_manager.market_expiry import expire_market_rules, fail_misplaced_rules
from vincent.services.trade_manager.price_dispatch import PriceDispatcher
from vincent.services.trade_manager.rule_registry import RuleRegistry
from vincent.services.trade_manager.types import Clock, RuleSnapshot
from vincent.skills.polymarket.market_state import MarketState

logger = logging.getLogger(__name__)

MARKET_CHECK_CONCURRENCY = 8


@runtime_checkable
class MarketStates(Protocol):
    """A skill that can tell a market's trading state (None: the market is unknown)."""

    async def get_market_state(self, condition_id: str) -> MarketState | None: ...


class MarketWatch:
    """Checks the watched markets' states; ends and refuses rules accordingly."""

    def __init__(
        self,
        *,
        skill: object,
        rules: RuleRegistry,
        dispatcher: PriceDispatcher,
        session_factory: SessionFactory,
        clock: Clock,
    ) -> None:
        self._skill = skill if isinstance(skill, MarketStates) else None
        self._rules = rules
        self._dispatcher = dispatcher
        self._session_factory = session_factory
        self._clock = clock
        self._schedule = MarketCheckSchedule()
        self.markets_checked = 0

    async def run(self) -> None:
        """Check the markets that are due; end or refuse their rules."""
        if self._skill is None:
            return
        by_market: dict[str, list[RuleSnapshot]] = {}
        for rule in self._rules.held():
            by_market.setdefault(rule.market_id, []).append(rule)
        self._schedule.forget_except(by_market)
        now_s = self._clock.monotonic()
        due = self._schedule.due(by_market, now_s)
        for start in range(0, len(due), MARKET_CHECK_CONCURRENCY):
            batch = due[start : start + MARKET_CHECK_CONCURRENCY]
            states = await asyncio.gather(
                *(self._skill.get_market_state(market_id) for market_id in batch),
                return_exceptions=True,
            )
            for market_id, state in zip(batch, states, strict=True):
                if isinstance(state, Exception):
                    logger.warning(
                        "market_check_failed",
                        extra={"market_id": market_id, "error": type(state).__name__},
                    )
                    continue
                if isinstance(state, BaseException):
                    raise state
                self._schedule.checked(market_id, now_s)
                self.markets_checked += 1
                if state is not None:
                    await self._apply(market_id, state, by_market[market_id])

    async def _apply(self, market_id: str, state: MarketState, rules: list[RuleSnapshot]) -> None:
        outcomes = state.outcomes
        misplaced = [r for r in rules if outcomes and r.token_id not in outcomes]
        if misplaced:
            async with self._session_factory() as session, session.begin():
                failed = await fail_misplaced_rules(
                    session,
                    ((r.id, r.token_id, market_id) for r in misplaced),
                    self._clock.now(),
                )
            for rule_id in failed:
                self._rules.remove(rule_id)
            logger.warning("rules_misplaced", extra={"market_id": market_id, "rules": len(failed)})
            self._dispatcher.sync_tokens()
        ending = ending_of(
            closed=state.closed,
            accepting_orders=state.accepting_orders,
            winning_token_id=state.winning_token_id,
            outcomes=outcomes,
        )
        if ending is None:
            return
        tokens = state.token_ids
        self._dispatcher.end_market(tokens, ending, write=False)
        async with self._session_factory() as session, session.begin():
            expired = await expire_market_rules(session, tokens, ending, self._clock.now())
        logger.info(
            "market_ended",
            extra={"market_id": market_id, "reason": ending.reason, "rules": len(expired)},
        )
