"""Poll ticks over quiet books: ``GET /book`` per tick with and without the feed's coverage.

    python -m bench.quiet_books [--tokens 2000] [--stale-after-s 2] [--ticks 3] [--db sqlite]

A real worker (real skill, real feed) over the local exchange in this process, one rule per
token, nobody trading. Once every token's snapshot is in and every book is older than
``--stale-after-s``, it runs ``--ticks`` poll ticks twice: as the worker does now (a token the
feed covers live is not stale), then as it did before (the coverage withheld from the tick:
every old book is stale). For each: ``GET /book`` per tick, the tick's wall time, and the
pricing step's plan alone (``http_price_plan`` over every token, with the coverage and
without, best of 5). The
last line is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from typing import Any

from cryptography.fernet import Fernet

from bench.common import scratch_database
from bench.engine_setup import create_tenants, insert_rules
from bench.scenario import build_scenario
from vincent.config import Settings
from vincent.crypto import KeyBox
from vincent.db.session import create_engine, create_session_factory
from vincent.services.trade_manager.feed_config import Coverage
from vincent.services.trade_manager.http_pricing import http_price_plan
from vincent.services.trade_manager.monitoring_worker import TradeMonitoringWorker
from vincent.sim import LocalExchange
from vincent.skills.polymarket import create_polymarket_skill


def _book_requests(exchange: LocalExchange) -> int:
    return sum(1 for request in exchange.requests_seen() if request.path == "/book")


async def _ticks(
    worker: TradeMonitoringWorker, exchange: LocalExchange, count: int
) -> dict[str, Any]:
    before = _book_requests(exchange)
    walls = []
    for _ in range(count):
        started = time.perf_counter()
        await worker.wait_for_ticks(worker.request_tick())
        walls.append((time.perf_counter() - started) * 1000)
    return {
        "book_requests_per_tick": (_book_requests(exchange) - before) / count,
        "tick_wall_ms": [round(wall, 1) for wall in walls],
    }


async def run(args: argparse.Namespace, url: str) -> dict[str, Any]:
    engine = create_engine(url)
    session_factory = create_session_factory(engine)
    scenario = build_scenario(
        rules=args.tokens, tokens=args.tokens, events=args.tokens, tenants=10,
        fire_fraction=0.0, seed=7, rules_per_position=1,
    )  # fmt: skip
    keybox = KeyBox(Fernet.generate_key().decode())
    tenants = await create_tenants(session_factory, keybox, 10)
    await insert_rules(session_factory, scenario, tenants)
    result: dict[str, Any] = {"db": "postgres" if "postgresql" in url else "sqlite"}
    result["tokens"] = args.tokens
    async with LocalExchange.start(host="127.0.0.1", port=0) as exchange:
        for market in scenario.markets:
            exchange.create_market(market.condition_id, list(market.token_ids))
        for path in scenario.paths:
            exchange.step_price(path.token_id, str(path.start_bid))
        settings = Settings(
            database_url=url,
            polymarket_clob_url=exchange.clob_url,
            polymarket_ws_url=exchange.ws_url,
            polymarket_data_api_url=exchange.data_api_url,
            polymarket_gamma_url=exchange.gamma_url,
            polymarket_relayer_url=exchange.relayer_url,
            trade_manager_stale_after_s=args.stale_after_s,
            trade_manager_poll_interval_s=3600.0,
        )
        skill = create_polymarket_skill(settings, session_factory, keybox)
        worker = TradeMonitoringWorker(settings, session_factory, skill)
        tokens = [path.token_id for path in scenario.paths]
        async with worker:
            feed = worker.feed
            assert feed is not None

            def live() -> int:
                now_s = time.monotonic()
                return sum(feed.coverage(t, now_s) is Coverage.LIVE for t in tokens)

            started = time.perf_counter()
            await asyncio.wait_for(feed.wait_for_status(lambda _: live() == len(tokens)), 120)
            result["all_live_after_s"] = round(time.perf_counter() - started, 2)
            await worker.wait_for(lambda: worker.warmups_pending == 0)
            # Every book older than the stale threshold (nobody trades): the quiet case.
            await asyncio.sleep(args.stale_after_s)

            books = worker._books  # the worker's own books

            def plan_ms(with_coverage: bool) -> float:
                """The pricing step's decision alone (best of 5): it holds the loop."""
                best = float("inf")
                for _ in range(5):
                    started = time.perf_counter()
                    now_s = time.monotonic()
                    http_price_plan(
                        tokens, books, {},
                        covered_live=feed.live_tokens(now_s) if with_coverage else None,
                        last_http_s={}, now_s=now_s, stale_after_s=args.stale_after_s,
                        quiet_recheck_s=900.0, max_quiet=len(tokens),
                    )  # fmt: skip
                    best = min(best, time.perf_counter() - started)
                return round(best * 1000, 2)

            result["plan_ms"] = plan_ms(True)
            result["plan_without_coverage_ms"] = plan_ms(False)
            result["covered"] = await _ticks(worker, exchange, args.ticks)
            tick = worker._tick  # as before: the tick without the coverage
            tick._feed_coverage = None
            result["without_coverage"] = await _ticks(worker, exchange, args.ticks)
        await skill.aclose()
    await engine.dispose()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=2000)
    parser.add_argument("--stale-after-s", type=float, default=2.0)
    parser.add_argument("--ticks", type=int, default=3)
    parser.add_argument("--db", default="sqlite", help="sqlite or postgres")
    args = parser.parse_args()
    with scratch_database(args.db) as url:
        result = asyncio.run(run(args, url))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
