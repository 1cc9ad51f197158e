"""An HTTP price that the feed overtook while it was being fetched is dropped, never applied.

An older price must not cross a level the newer feed price has already raised past (or, as
here, fire a stop the market has already moved away from).
"""

from __future__ import annotations

import asyncio
from decimal import Decimal

from tests.engine.conftest import MakeRule, MakeSecret
from tests.engine.live import is_connected, open_market, running_worker, worker_settings
from tests.engine.scripted_skill import ScriptedSkill
from vincent.db.session import SessionFactory
from vincent.enums import TradeRuleType
from vincent.sim import LocalExchange
from vincent.skills.polymarket.types import OrderBook

TIMEOUT_S = 15.0


class GatedBookSkill(ScriptedSkill):
    """Holds the first REST book answer until the test lets it go; later answers are fresh."""

    def __init__(self, sessions: SessionFactory) -> None:
        super().__init__(sessions)
        self.book_requested = asyncio.Event()
        self.release = asyncio.Event()

    async def get_order_book(self, token_id: str) -> OrderBook:
        self.book_requested.set()
        await self.release.wait()
        book = await super().get_order_book(token_id)
        # Only the answer held back is old: a later tick asks after the move and sees it.
        self.set_book(token_id, [("0.52", "100")], [("0.53", "100")])
        return book


async def test_http_book_overtaken_by_the_feed_does_not_fire(
    exchange: LocalExchange,
    session_factory: SessionFactory,
    database_url: str,
    make_secret: MakeSecret,
    make_rule: MakeRule,
) -> None:
    secret_id = await make_secret("alice")
    ids = open_market(exchange, "0.50")
    rule = await make_rule(secret_id, ids.yes, TradeRuleType.STOP_LOSS, "0.45")
    skill = GatedBookSkill(session_factory)
    skill.hold(secret_id, ids.yes, "10")
    # The REST answer is an old book below the stop (midpoint 0.40).
    skill.set_book(ids.yes, [("0.39", "100")], [("0.41", "100")])
    # Every token is priced over HTTP on every tick, and only requested ticks run: the feed
    # covers the token live, so it is asked as a quiet re-check (a re-check interval of a
    # microsecond); were the connection to blip, as a stale token (the same microsecond).
    settings = worker_settings(
        exchange,
        database_url,
        trade_manager_stale_after_s=0.000001,
        trade_manager_quiet_book_recheck_s=0.000001,
        trade_manager_poll_interval_s=3600.0,
    )
    async with running_worker(settings, session_factory, skill) as worker:
        async with asyncio.timeout(TIMEOUT_S):
            await worker.wait_for(is_connected(worker))
            await worker.wait_for(lambda: worker.feed_price(ids.yes) is not None)
            worker.request_tick()
            await skill.book_requested.wait()
            # The tick waiting for that answer (the first one, or the one just requested).
            asking = worker.next_tick - 1
            exchange.step_price(ids.yes, "0.52")
            await worker.wait_for(lambda: worker.feed_price(ids.yes) == Decimal("0.525"))
            skill.release.set()
            await worker.wait_for_ticks(asking)
            await worker.wait_for_idle()
        assert skill.requests == []
        assert worker.watched_rule(rule.id) is not None
