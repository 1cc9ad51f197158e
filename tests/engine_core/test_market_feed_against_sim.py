"""MarketFeed against the local exchange (vincent.sim), an independent protocol witness."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from decimal import Decimal

import pytest

from vincent.services.trade_manager.backoff import BackoffPolicy
from vincent.services.trade_manager.order_book import OrderBooks, TopOfBook
from vincent.services.trade_manager.polymarket_websocket import MarketFeed, MarketFeedConfig
from vincent.sim import LocalExchange

CONDITION_ID = "0x" + "c1" * 32
YES = "71321045679252212594626385532706912750332728571942532289631379312455583992563"
NO = "52114319501245915516055106046884209969926127482827954674443846427813813222426"
WAIT_S = 5.0
CONFIG = MarketFeedConfig(
    ping_interval_s=0.05,
    stale_after_s=2.0,
    close_timeout_s=0.1,
    reconnect_backoff=BackoffPolicy(min_delay_s=0.01, max_delay_s=0.05),
)
# Only where a stall is the point: a loaded machine could trip it elsewhere.
QUICK_STALL = dataclasses.replace(CONFIG, stale_after_s=0.3)


@pytest.fixture
async def exchange() -> AsyncIterator[LocalExchange]:
    async with LocalExchange.start(host="127.0.0.1", port=0) as running:
        running.create_market(CONDITION_ID, [YES, NO], title="Will it rain?", slug="will-it-rain")
        running.set_book(YES, bids=[("0.48", 100), ("0.47", 200)], asks=[("0.52", 100)])
        running.set_book(NO, bids=[("0.47", 100)], asks=[("0.53", 100)])
        yield running


class TopWatcher:
    """The callback: the top of book of every changed token, as the callback saw it."""

    def __init__(self, books: OrderBooks) -> None:
        self.books = books
        self.tops: asyncio.Queue[TopOfBook] = asyncio.Queue()

    def __call__(self, changed: frozenset[str]) -> None:
        for token_id in sorted(changed):
            top = self.books.top(token_id)
            assert top is not None
            self.tops.put_nowait(top)

    async def wait_for_top(self, token_id: str, best_bid: str) -> TopOfBook:
        while True:
            top = await self.tops.get()
            if top.token_id == token_id and top.best_bid == Decimal(best_bid):
                return top


def _feed(
    exchange: LocalExchange, config: MarketFeedConfig = CONFIG
) -> tuple[MarketFeed, TopWatcher]:
    books = OrderBooks()
    watcher = TopWatcher(books)
    feed = MarketFeed(exchange.ws_url, books, watcher, config=config, random_fn=lambda: 0.0)
    feed.set_tokens([YES, NO])
    return feed, watcher


async def test_snapshot_price_changes_and_resolution_reach_the_callback(
    exchange: LocalExchange,
) -> None:
    feed, watcher = _feed(exchange)

    async with feed, asyncio.timeout(WAIT_S):
        snapshot = await watcher.wait_for_top(YES, "0.48")
        exchange.step_price(YES, "0.55", depth=1, size=10)
        stepped = await watcher.wait_for_top(YES, "0.55")
        exchange.resolve(CONDITION_ID, YES)
        while not (await watcher.tops.get()).resolved:
            pass
        status = feed.status()

    assert (snapshot.best_bid, snapshot.best_ask) == (Decimal("0.48"), Decimal("0.52"))
    assert stepped.best_ask == Decimal("0.56")
    assert (status.malformed_messages, status.reconnects) == (0, 0)


async def test_a_drop_and_a_stall_are_both_survived(exchange: LocalExchange) -> None:
    feed, watcher = _feed(exchange, QUICK_STALL)

    async with feed, asyncio.timeout(WAIT_S):
        await watcher.wait_for_top(YES, "0.48")
        assert exchange.drop_websockets() == 1
        await feed.wait_for_status(lambda status: status.reconnects >= 1 and status.connected)
        exchange.step_price(YES, "0.40")
        await watcher.wait_for_top(YES, "0.40")

        exchange.stall_websockets()
        await feed.wait_for_status(lambda status: status.stalls >= 1)
        exchange.resume_websockets()
        await feed.wait_for_status(lambda status: status.connected)
        exchange.step_price(YES, "0.30")
        await watcher.wait_for_top(YES, "0.30")
