"""Moving a token's price: quotes around a price, scripted paths and seeded random walks.

``quote_levels`` and ``random_walk_prices`` are pure; ``PriceMover`` applies them to the
exchange (each step publishes WebSocket events) and owns the background walk tasks.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

from vincent.sim.exchange import Exchange, synthetic_levels

Number = Decimal | str | float


def quote_levels(
    best_bid: Decimal, tick: Decimal, spread_ticks: int, depth: int, size: Decimal
) -> tuple[list[tuple[Decimal, Decimal]], list[tuple[Decimal, Decimal]]]:
    """Bid levels from ``best_bid`` down and ask levels from ``best_bid + spread`` up."""
    bids = [(best_bid - tick * i, size) for i in range(depth) if best_bid - tick * i >= tick]
    best_ask = best_bid + tick * spread_ticks
    asks = [(best_ask + tick * i, size) for i in range(depth) if best_ask + tick * i <= 1 - tick]
    return bids, asks


def random_walk_prices(
    start: Decimal, steps: int, seed: int, tick: Decimal, max_step_ticks: int = 1
) -> list[Decimal]:
    """A reproducible walk of best-bid prices, kept inside [tick, 1 - 2 ticks]."""
    rng = random.Random(seed)
    prices: list[Decimal] = []
    price = start
    for _ in range(steps):
        price += tick * rng.randint(-max_step_ticks, max_step_ticks)
        price = min(max(price, tick), 1 - 2 * tick)
        prices.append(price)
    return prices


@dataclass(frozen=True, slots=True)
class QuoteShape:
    """How a price step quotes the book: spread in ticks, levels per side, size per level."""

    spread_ticks: int = 1
    depth: int = 3
    size: Decimal = Decimal(100)


# A quote as ``Exchange.set_synthetic`` takes it: bid and ask levels, price -> size in units.
Quote = tuple[dict[Decimal, int], dict[Decimal, int]]
_QUOTE_CACHE_MAX = 4096


class PriceMover:
    """Applies price steps to the exchange and runs paths in tracked background tasks."""

    def __init__(self, exchange: Exchange) -> None:
        self._exchange = exchange
        self._tasks: set[asyncio.Task[None]] = set()
        self._quotes: dict[tuple[str, Decimal, QuoteShape], Quote] = {}
        """Quotes already worked out, by (best bid as text, tick, shape)."""

    def step(self, token_id: str, best_bid: Number, shape: QuoteShape = QuoteShape()) -> None:
        """Re-quote the token's synthetic book so its best bid is ``best_bid``."""
        tick = self._exchange.market_of(token_id).tick_size
        bids, asks = self._quote(str(best_bid), tick, shape)
        self._exchange.set_synthetic(token_id, bids, asks)

    def _quote(self, best_bid: str, tick: Decimal, shape: QuoteShape) -> Quote:
        """The levels of a quote, each worked out once: a path visits the same few prices
        again and again, and Decimal arithmetic and hashing were most of a step's CPU
        (round 13). The same price objects come back each time, and a Decimal keeps its
        hash, so the book's dictionaries do not hash a new one per level and step."""
        key = (best_bid, tick, shape)
        quote = self._quotes.get(key)
        if quote is None:
            if len(self._quotes) >= _QUOTE_CACHE_MAX:
                self._quotes.clear()
            bids, asks = quote_levels(
                Decimal(best_bid), tick, shape.spread_ticks, shape.depth, shape.size
            )
            quote = self._quotes[key] = (synthetic_levels(bids), synthetic_levels(asks))
        return quote

    async def run_path(
        self,
        token_id: str,
        prices: Sequence[Number],
        interval_s: float = 0.0,
        burst: int = 1,
        shape: QuoteShape = QuoteShape(),
    ) -> None:
        """Step through ``prices`` (best bids): ``burst`` steps, then wait ``interval_s``.

        A burst above 1 lets events queue up between writes (see ``ws_batch_max``).
        """
        for index, price in enumerate(prices, start=1):
            self.step(token_id, price, shape)
            if index % burst == 0:
                await asyncio.sleep(interval_s)

    def start_path(
        self,
        token_id: str,
        prices: Sequence[Number],
        interval_s: float = 0.0,
        burst: int = 1,
        shape: QuoteShape = QuoteShape(),
    ) -> asyncio.Task[None]:
        if burst < 1 or interval_s < 0:
            raise ValueError(f"burst must be >= 1 and interval_s >= 0, was {burst}, {interval_s}")
        self._exchange.market_of(token_id)
        task = asyncio.create_task(self.run_path(token_id, prices, interval_s, burst, shape))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def start_random_walk(
        self,
        token_id: str,
        steps: int,
        seed: int,
        start: Number | None = None,
        interval_s: float = 0.0,
        burst: int = 1,
        max_step_ticks: int = 1,
    ) -> asyncio.Task[None]:
        market = self._exchange.market_of(token_id)
        book = self._exchange.book(token_id)
        first = Decimal(str(start)) if start is not None else book.best_bid() or Decimal("0.5")
        prices = random_walk_prices(first, steps, seed, market.tick_size, max_step_ticks)
        return self.start_path(token_id, list(prices), interval_s, burst)

    @property
    def running(self) -> int:
        return len(self._tasks)

    async def stop(self) -> None:
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
