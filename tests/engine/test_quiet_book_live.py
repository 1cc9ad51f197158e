"""A quiet book on a live WebSocket connection is not stale (real exchange, real skill, both
databases).

With the feed's connection healthy and nobody trading, poll ticks make no ``GET /book``
however old the book; once the connection is gone (dropped, and the exchange silent so no
new snapshot arrives) the token is priced over HTTP after ``stale_after_s`` again; once the
snapshot arrives it is quiet again. A quiet token is still re-checked after the (here tiny)
re-check interval.
"""

from __future__ import annotations

import asyncio
import time

from tests.engine.conftest import MakeRule
from tests.engine.live import is_connected, open_market, running_worker, worker_settings
from tests.skill.conftest import MarketIds, add_wallet
from vincent.crypto import KeyBox
from vincent.db.session import SessionFactory
from vincent.enums import TradeRuleType
from vincent.services.trade_manager.feed_config import Coverage
from vincent.services.trade_manager.monitoring_worker import TradeMonitoringWorker
from vincent.sim import LocalExchange
from vincent.skills.polymarket import PolymarketSkill

TIMEOUT_S = 20.0


def _book_requests(exchange: LocalExchange) -> int:
    return sum(1 for request in exchange.requests_seen() if request.path == "/book")


def _http_prices(worker: TradeMonitoringWorker, reason: str) -> float:
    name = "vincent_trade_manager_http_prices_total"
    return worker.metrics_registry.get_sample_value(name, {"reason": reason}) or 0.0


async def _ticks(worker: TradeMonitoringWorker, count: int) -> None:
    for _ in range(count):
        await worker.wait_for_ticks(worker.request_tick())


async def _coverage_is(worker: TradeMonitoringWorker, token_id: str, live: bool) -> None:
    feed = worker.feed
    assert feed is not None
    await feed.wait_for_status(
        lambda _: (feed.coverage(token_id, time.monotonic()) is Coverage.LIVE) == live
    )


async def _watched_market(
    exchange: LocalExchange, session_factory: SessionFactory, keybox: KeyBox, make_rule: MakeRule
) -> MarketIds:
    """A market at 0.50 whose YES token a stop-loss watches."""
    wallet = await add_wallet(session_factory, keybox)
    ids = open_market(exchange, "0.50")
    await make_rule(wallet.secret_id, ids.yes, TradeRuleType.STOP_LOSS, "0.40")
    return ids


async def _covered_and_settled(worker: TradeMonitoringWorker, token_id: str) -> None:
    """Connected, ``token_id`` covered live, warm-ups done, and one tick since."""
    await worker.wait_for(is_connected(worker))
    await _coverage_is(worker, token_id, live=True)
    await worker.wait_for(lambda: worker.warmups_pending == 0)
    await worker.wait_for_ticks(1)  # the start's tick may have asked before the snapshot


async def test_a_quiet_live_token_is_not_priced_over_http_until_its_connection_goes(
    exchange: LocalExchange,
    live_skill: PolymarketSkill,
    session_factory: SessionFactory,
    keybox: KeyBox,
    database_url: str,
    make_rule: MakeRule,
) -> None:
    ids = await _watched_market(exchange, session_factory, keybox, make_rule)
    # Every book is older than stale_after_s at once; only requested ticks run.
    settings = worker_settings(
        exchange,
        database_url,
        trade_manager_stale_after_s=0.000001,
        trade_manager_poll_interval_s=3600.0,
    )
    async with running_worker(settings, session_factory, live_skill) as worker:
        feed = worker.feed
        async with asyncio.timeout(TIMEOUT_S):
            await _covered_and_settled(worker, ids.yes)
            before = _book_requests(exchange)
            await _ticks(worker, 3)
            healthy = _book_requests(exchange) - before

            # The connection goes and the exchange stays silent: no snapshot on the next one.
            assert feed is not None
            reconnects = feed.status().reconnects
            exchange.stall_websockets()
            exchange.drop_websockets()
            await feed.wait_for_status(lambda s: s.reconnects > reconnects and s.connected)
            reconnected = feed.coverage(ids.yes, time.monotonic())
            before = _book_requests(exchange)
            stale_before = _http_prices(worker, "stale")
            await _ticks(worker, 1)
            dropped = _book_requests(exchange) - before
            stale = _http_prices(worker, "stale") - stale_before

            # The exchange speaks again: the new connection's snapshot makes it live.
            exchange.resume_websockets()
            await _coverage_is(worker, ids.yes, live=True)
            before = _book_requests(exchange)
            await _ticks(worker, 2)
            recovered = _book_requests(exchange) - before
            quiet = _http_prices(worker, "quiet_recheck")

    assert healthy == 0
    # Connected again, but the book in hand is from the old connection: not covered.
    assert reconnected in (Coverage.AWAITING_SNAPSHOT, Coverage.STALLED, Coverage.DOWN)
    assert dropped == 1
    assert recovered == 0
    assert (stale, quiet) == (1, 0)


async def test_a_quiet_live_token_is_rechecked_after_the_recheck_interval(
    exchange: LocalExchange,
    live_skill: PolymarketSkill,
    session_factory: SessionFactory,
    keybox: KeyBox,
    database_url: str,
    make_rule: MakeRule,
) -> None:
    ids = await _watched_market(exchange, session_factory, keybox, make_rule)
    settings = worker_settings(
        exchange,
        database_url,
        trade_manager_quiet_book_recheck_s=0.000001,
        trade_manager_poll_interval_s=3600.0,
    )
    async with running_worker(settings, session_factory, live_skill) as worker:
        async with asyncio.timeout(TIMEOUT_S):
            await _covered_and_settled(worker, ids.yes)
            before = _book_requests(exchange)
            await _ticks(worker, 2)
            rechecked = _book_requests(exchange) - before
            quiet = _http_prices(worker, "quiet_recheck")

    assert rechecked == 2
    assert quiet >= 2
