"""The worker's pure per-event path alone: frames → parse → books → prices → rule index.

    python -m bench.feed_replay [--rules 100000] [--tokens 10000] [--events 40000]
                                [--rounds 3]

No socket, no database, no exchange: ``bench.engine``'s scenario (seeded, no fires) turned
into the frames the local exchange would send for it (per step one ``price_change`` with the
level changes of a one-tick-spread book three levels deep, then its ``best_bid_ask``), applied
in this process by a ``FrameHandler`` over ``OrderBooks`` whose callback is a real
``PriceDispatcher`` over a ``RuleRegistry`` holding the rules (trailing raises recorded in
``TrailingLevels``, never flushed). Each round loads the rules afresh, freezes the GC as the
worker does after its load, and measures its CPU (``time.process_time``) over the frames.
Deterministic: the same arguments give the same frames and the same raises, so it also runs
under an instruction counter, which the machine's load does not move:

    valgrind --tool=callgrind --collect-atstart=no --toggle-collect=starmap_next
        python -m bench.feed_replay --rules 10000 --tokens 1000 --events 4000 --rounds 1
    (one command)

The last line is one JSON object with every round and the best.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import time
from collections import deque
from decimal import Decimal
from itertools import starmap
from typing import Any, cast

from bench.scenario import TICK, Scenario, build_scenario
from vincent.services.trade_manager.feed_config import FeedCounters
from vincent.services.trade_manager.feed_frames import FrameHandler
from vincent.services.trade_manager.metrics import WorkerMetrics
from vincent.services.trade_manager.order_book import OrderBooks
from vincent.services.trade_manager.price_dispatch import PriceDispatcher
from vincent.services.trade_manager.rule_registry import RuleRegistry
from vincent.services.trade_manager.task_owner import TaskOwner
from vincent.services.trade_manager.trailing_levels import TrailingLevels
from vincent.services.trade_manager.types import SystemClock
from vincent.sim import events
from vincent.sim.pricepath import QuoteShape, quote_levels

_SHAPE = QuoteShape()  # what ``bench.drive``'s steps quote: spread 1 tick, depth 3


def _dumps(message: object) -> bytes:
    return json.dumps(message, separators=(",", ":")).encode()


def _quote(bid: Decimal) -> tuple[dict[Decimal, str], dict[Decimal, str]]:
    bids, asks = quote_levels(bid, TICK, _SHAPE.spread_ticks, _SHAPE.depth, _SHAPE.size)
    return (
        {price: str(size) for price, size in bids},
        {price: str(size) for price, size in asks},
    )


def frames_for(scenario: Scenario) -> tuple[list[bytes], list[bytes]]:
    """The scenario's book snapshots, then its steps (round robin over tokens) as frames."""
    market_of = {
        token: market.condition_id for market in scenario.markets for token in market.token_ids
    }
    books: dict[str, tuple[dict[Decimal, str], dict[Decimal, str]]] = {}
    snapshots = []
    for path in scenario.paths:
        bids, asks = books[path.token_id] = _quote(path.start_bid)
        snapshots.append(
            _dumps(
                events.book_event(
                    market_of[path.token_id],
                    path.token_id,
                    [{"price": str(p), "size": s} for p, s in bids.items()],
                    [{"price": str(p), "size": s} for p, s in asks.items()],
                    "0x0",
                )
            )
        )
    steps = []
    longest = max(len(path.steps) for path in scenario.paths)
    for i in range(longest):
        for path in scenario.paths:
            if i >= len(path.steps):
                continue
            token, market = path.token_id, market_of[path.token_id]
            old_bids, old_asks = books[token]
            new_bids, new_asks = books[token] = _quote(path.steps[i])
            changed = [
                (side, price, new.get(price, "0"))
                for side, old, new in (("BUY", old_bids, new_bids), ("SELL", old_asks, new_asks))
                for price in sorted(old.keys() | new.keys())
                if old.get(price) != new.get(price)
            ]
            best_bid, best_ask = max(new_bids), min(new_asks)
            changes = [
                events.price_change_entry(token, price, size, side, "0x1", best_bid, best_ask)
                for side, price, size in changed
            ]
            steps.append(_dumps(events.price_change_event(market, changes)))
            steps.append(_dumps(events.best_bid_ask_event(market, token, best_bid, best_ask)))
    return snapshots, steps


async def _round(scenario: Scenario, snapshots: list[bytes], steps: list[bytes]) -> dict[str, Any]:
    rules = RuleRegistry()
    for rule in scenario.rules:
        rules.upsert(rule)
    books = OrderBooks()
    books.track(rules.tokens())
    trailing = TrailingLevels()
    metrics = WorkerMetrics()
    dispatcher = PriceDispatcher(
        rules=rules,
        books=books,
        trailing=trailing,
        executor=cast(Any, None),  # no rule fires (the scenario's fire fraction is 0)
        tasks=TaskOwner("bench"),
        metrics=metrics,
        clock=SystemClock(),
        stopping=asyncio.Event(),
        on_tokens=lambda changes: None,
        on_change=lambda: None,
    )
    handler = FrameHandler(
        books, dispatcher.on_prices, FeedCounters(), waiters=(), notify=lambda: None
    )
    for snapshot in snapshots:
        handler.handle(snapshot, 0.0)
    gc.collect()
    gc.freeze()
    arrivals = [(frame, 1.0 + i * 1e-6) for i, frame in enumerate(steps)]
    cpu0 = time.process_time()
    # Consumed in C: the only ``starmap`` of the run, so ``--toggle-collect=starmap_next``
    # counts exactly the frames' instructions.
    deque(starmap(handler.handle, arrivals), maxlen=0)
    cpu_s = time.process_time() - cpu0
    gc.unfreeze()
    raised = metrics.registry.get_sample_value(
        "vincent_trade_manager_evaluations_total", {"result": "trailing_raised"}
    )
    return {
        "cpu_s": round(cpu_s, 3),
        "us_per_event": round(1e6 * cpu_s / len(steps), 2),
        "events_per_cpu_s": round(len(steps) / cpu_s),
        "trailing_raised": raised,
        "trailing_pending": len(trailing),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rules", type=int, default=100_000)
    parser.add_argument("--tokens", type=int, default=10_000)
    parser.add_argument("--events", type=int, default=40_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    scenario = build_scenario(
        rules=args.rules,
        tokens=args.tokens,
        events=args.events,
        tenants=100,
        fire_fraction=0.0,
        seed=args.seed,
    )
    snapshots, steps = frames_for(scenario)
    rounds = []
    for _ in range(args.rounds):
        result = asyncio.run(_round(scenario, snapshots, steps))
        print(result, flush=True)
        rounds.append(result)
    best = min(rounds, key=lambda result: result["cpu_s"])
    print(json.dumps({**vars(args), "events": len(steps), "rounds": rounds, "best": best}))


if __name__ == "__main__":
    main()
