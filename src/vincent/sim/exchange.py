"""The exchange's state and its one writer: markets, books, balances, orders, trades.

Synchronous and single-threaded (runs on the server's event loop); every book change is
published to the market feed through ``publisher``. Order placement lives in ``placing``.
"""

from __future__ import annotations

import heapq
import itertools
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from vincent.sim import events
from vincent.sim.accounts import Ledger
from vincent.sim.book import Level, OrderBook, to_units, units_text
from vincent.sim.errors import NO_ORDERBOOK, SimError
from vincent.sim.feed import MarketFeed
from vincent.sim.markets import Market
from vincent.sim.orders import PostedOrder
from vincent.sim.records import OrderRecord, TradeRecord
from vincent.sim.settlement import SettlementPlan
from vincent.sim.timing import TimingRecorder

_CONDITION_ID = re.compile(r"0x[0-9a-fA-F]{64}")
TICK_SIZES = frozenset(Decimal(t) for t in ("0.1", "0.01", "0.005", "0.0025", "0.001", "0.0001"))


def synthetic_levels(levels: Iterable[Level]) -> dict[Decimal, int]:
    """(price, size) pairs as the book keeps them: normalized price -> size in units."""
    return {Decimal(str(price)).normalize(): to_units(size) for price, size in levels}


def _check_tick_size(tick_size: Decimal) -> None:
    if tick_size not in TICK_SIZES:
        raise SimError(400, f"tick_size must be one of {sorted(TICK_SIZES)}, was {tick_size}")


@dataclass(slots=True)
class DeferralPlan:
    """The next ``remaining`` orders are accepted unmatched, answered ``answer``
    ("delayed" or "live"), and matched ``delay_s`` later (Polymarket's matching delay)."""

    remaining: int = 0
    answer: str = "delayed"
    delay_s: float = 0.2


@dataclass(frozen=True, slots=True)
class DeferredOrder:
    """An accepted order waiting for its matching delay to pass."""

    order_id: str
    posted: PostedOrder
    api_key: str
    due_s: float  # time.monotonic()


class Exchange:
    """All mutable exchange state. Control operations are methods here."""

    def __init__(self, timing: TimingRecorder, ws_batch_max: int = 1) -> None:
        self.timing = timing
        self.feed = MarketFeed(timing, self.book_event, ws_batch_max)
        self.version = 2
        self.deposit_wallet_only = False
        """When set, signature types 0-2 are refused as for API users created since 2026-05."""
        self.markets: dict[str, Market] = {}
        self.token_market: dict[str, Market] = {}
        self.books: dict[str, OrderBook] = {}
        self.ledger = Ledger()
        self.orders: dict[str, OrderRecord] = {}
        self.trades: list[TradeRecord] = []
        """Every trade, oldest first (written through ``add_trade``)."""
        self.trades_by_id: dict[str, TradeRecord] = {}
        self.unsettled: list[TradeRecord] = []
        """Trades not CONFIRMED or FAILED yet, oldest first: all that settlement looks at."""
        self.settlement = SettlementPlan()
        self.deferral = DeferralPlan()
        self.deferred: list[DeferredOrder] = []
        self._expiries: list[tuple[int, int, OrderRecord]] = []
        """Heap of resting GTD orders: (expiration, order of resting, record)."""
        self._rested = itertools.count()
        self.stale_balances: set[str] = set()
        """Makers (lower case) whose balance cache is stale: their SELLs are refused with
        ``not enough balance / allowance`` until ``/balance-allowance/update``."""

    # ---- markets and books -------------------------------------------------------------

    def create_market(self, market: Market) -> Market:
        if not _CONDITION_ID.fullmatch(market.condition_id):
            raise SimError(
                400, f"condition_id must be 0x + 64 hex digits, was {market.condition_id!r}"
            )
        if not all(t.isdigit() for t in market.token_ids) or len(set(market.token_ids)) != 2:
            raise SimError(
                400, f"token_ids must be two distinct decimal ids, was {list(market.token_ids)}"
            )
        _check_tick_size(market.tick_size)
        self.markets[market.condition_id.lower()] = market
        for token_id in market.token_ids:
            self.token_market[token_id] = market
            self.books.setdefault(token_id, OrderBook())
        return market

    def market_of(self, token_id: str) -> Market:
        market = self.token_market.get(token_id)
        if market is None:
            raise SimError(404, NO_ORDERBOOK)
        return market

    def market(self, condition_id: str) -> Market:
        market = self.markets.get(condition_id.lower())
        if market is None:
            raise SimError(404, "market not found")
        return market

    def book(self, token_id: str) -> OrderBook:
        market = self.market_of(token_id)
        if market.closed:
            raise SimError(404, NO_ORDERBOOK)
        return self.books[token_id]

    def book_event(self, token_id: str) -> dict[str, Any] | None:
        market = self.token_market.get(token_id)
        if market is None or market.closed:
            return None
        book = self.books[token_id]
        seq = self.timing.next_seq()
        return events.book_event(
            market.condition_id, token_id, book.bids.wire(), book.asks.wire(), f"0x{seq:040x}"
        )

    def publish_book(self, token_id: str) -> None:
        """Publish a ``book`` snapshot (and ``best_bid_ask`` for custom subscribers)."""
        snapshot = self.book_event(token_id)
        if snapshot is None:
            return
        seq = int(snapshot["hash"], 16)
        self.feed.publish(snapshot, [token_id], seq=seq)
        self._publish_best_bid_ask(token_id)

    def book_rest(self, token_id: str) -> dict[str, Any]:
        """``GET /book``: levels in production order (best last)."""
        market = self.market_of(token_id)
        book = self.book(token_id)
        last = market.last_trade_price.get(token_id)
        return {
            "market": market.condition_id,
            "asset_id": token_id,
            "timestamp": events.now_ms(),
            "hash": f"0x{self.timing.next_seq():040x}",
            "bids": book.bids.wire(),
            "asks": book.asks.wire(),
            "min_order_size": str(market.min_order_size),
            "tick_size": str(market.tick_size),
            "neg_risk": market.neg_risk,
            "last_trade_price": "" if last is None else str(last),
        }

    def set_book(self, token_id: str, bids: Iterable[Level], asks: Iterable[Level]) -> None:
        """Replace the synthetic liquidity of a token; user orders stay. Publishes changes."""
        self.set_synthetic(token_id, synthetic_levels(bids), synthetic_levels(asks))

    def set_synthetic(
        self, token_id: str, bids: Mapping[Decimal, int], asks: Mapping[Decimal, int]
    ) -> None:
        """``set_book`` with levels already as ``synthetic_levels`` makes them (read only)."""
        changed = self.book(token_id).replace_synthetic(bids, asks)
        self.publish_levels(token_id, changed)

    def publish_levels(self, token_id: str, levels: list[tuple[str, Decimal]]) -> None:
        """Publish ``price_change`` for changed levels, then ``best_bid_ask`` (custom)."""
        if not levels:
            return
        market = self.token_market[token_id]
        book = self.books[token_id]
        seq = self.timing.next_seq()
        changes = [
            (side, price, units_text(book.side(side).size_at(price)))
            for side, price in sorted(levels, key=lambda level: (level[0], level[1]))
        ]
        text = events.price_change_text(
            market.condition_id,
            token_id,
            changes,
            f"0x{seq:040x}",
            book.best_bid(),
            book.best_ask(),
        )
        self.feed.publish_text(text, "price_change", token_id, seq)
        self._publish_best_bid_ask(token_id)

    def _publish_best_bid_ask(self, token_id: str) -> None:
        if not self.feed.has_custom_subscriber(token_id):
            return
        market = self.token_market[token_id]
        book = self.books[token_id]
        seq = self.timing.next_seq()
        text = events.best_bid_ask_text(
            market.condition_id, token_id, book.best_bid(), book.best_ask()
        )
        self.feed.publish_text(text, "best_bid_ask", token_id, seq, custom=True)

    def set_tick_size(self, token_id: str, tick_size: Decimal) -> None:
        _check_tick_size(tick_size)
        market = self.market_of(token_id)
        old, market.tick_size = market.tick_size, tick_size
        for token in market.token_ids:
            self.feed.publish(
                events.tick_size_change_event(market.condition_id, token, old, tick_size),
                [token],
            )

    # ---- balances, resolution, version ----------------------------------------------------

    def credit(
        self,
        address: str,
        collateral: Decimal | str | float = 0,
        token_id: str | None = None,
        shares: Decimal | str | float = 0,
        avg_price: Decimal | str | float = 0,
    ) -> None:
        """Give an address pUSD and/or shares of a token (bought at ``avg_price``)."""
        self.ledger.credit_collateral(address, to_units(collateral))
        if token_id is not None:
            self.market_of(token_id)
            size = to_units(shares)
            cost = int(Decimal(str(avg_price)) * size)
            self.ledger.credit_shares(address, token_id, size, cost)

    def resolve(self, condition_id: str, winning_token_id: str) -> None:
        """Close the market: trading stops, books vanish, positions become redeemable."""
        market = self.market(condition_id)
        if winning_token_id not in market.token_ids:
            raise SimError(
                400, f"winning_token_id must be one of the market's tokens, was {winning_token_id}"
            )
        for order in self.orders.values():
            if order.market == market.condition_id and order.status == "LIVE":
                self.cancel_order(order)
        market.closed = True
        market.winning_token_id = winning_token_id
        for token in market.token_ids:
            market.last_trade_price[token] = Decimal(1 if token == winning_token_id else 0)
        self.feed.publish(
            events.market_resolved_event(
                market.condition_id,
                list(market.token_ids),
                winning_token_id,
                market.outcome_of(winning_token_id),
            ),
            market.token_ids,
            custom=True,
        )

    def set_version(self, version: int) -> None:
        if version not in (2, 3) or isinstance(version, bool):
            raise SimError(400, f"version must be 2 or 3, was {version}")
        self.version = version

    # ---- orders and trades ------------------------------------------------------------

    def add_trade(self, trade: TradeRecord) -> None:
        if trade.trade_id in self.trades_by_id:
            raise RuntimeError(f"trade id {trade.trade_id} is already recorded")
        self.trades.append(trade)
        self.trades_by_id[trade.trade_id] = trade
        self.unsettled.append(trade)

    def cancel_order(self, order: OrderRecord) -> None:
        book = self.books[order.asset_id]
        book.remove(order.order_id)
        remaining = order.original_size - order.size_matched
        if order.side == "SELL":
            self.ledger.release(order.maker_address, order.asset_id, remaining)
        else:
            self.ledger.release(order.maker_address, "", int(order.price * remaining))
        order.status = "CANCELED"
        self.publish_levels(order.asset_id, [(order.side, order.price)])

    def cancel(self, order_ids: Iterable[str], owner: str) -> dict[str, Any]:
        """Cancel the owner's live orders: ``{"canceled": [...], "not_canceled": {id: why}}``."""
        canceled: list[str] = []
        not_canceled: dict[str, str] = {}
        for order_id in order_ids:
            order = self.orders.get(order_id)
            if order is None or order.owner != owner:
                not_canceled[order_id] = "order not found"
            elif order.status != "LIVE":
                not_canceled[order_id] = "order already canceled or matched"
            else:
                self.cancel_order(order)
                canceled.append(order_id)
        return {"canceled": canceled, "not_canceled": not_canceled}

    def watch_expiry(self, order: OrderRecord) -> None:
        """Note an order that now rests on the book; a GTD one is cancelled once it expires."""
        if order.order_type == "GTD":
            heapq.heappush(self._expiries, (order.expiration, next(self._rested), order))

    def expire_orders(self, now_s: float) -> None:
        """Cancel resting GTD orders whose expiration (epoch seconds) has passed.

        Only the orders due are looked at (a heap by expiration), and they are cancelled in
        the order they came to rest, as a walk over every order would find them.
        """
        due: list[tuple[int, OrderRecord]] = []
        while self._expiries and self._expiries[0][0] <= now_s:
            _, rested, order = heapq.heappop(self._expiries)
            if order.status == "LIVE" and self.orders.get(order.order_id) is order:
                due.append((rested, order))
        for _, order in sorted(due, key=lambda item: item[0]):
            self.cancel_order(order)

    def live_order_ids(self, owner: str) -> list[str]:
        return [o.order_id for o in self.orders.values() if o.owner == owner and o.status == "LIVE"]
