"""The control operations, as Python methods: the one implementation behind /_sim and tests.

Markets, books, prices, balances, resolution, version, WebSocket faults, REST faults and
timing. Every method runs on the server's event loop.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Sequence
from decimal import Decimal
from typing import Any

from vincent.sim import placing
from vincent.sim.book import Level, units_text
from vincent.sim.faults import Fault, SeenRequest, WithholdMode
from vincent.sim.markets import Market
from vincent.sim.pricepath import PriceMover, QuoteShape
from vincent.sim.state import SimState
from vincent.sim.timing import OrderReceipt, PriceSend

Number = Decimal | str | float


class SimControl:
    """Drives one exchange; ``LocalExchange`` inherits these methods."""

    def __init__(self, state: SimState) -> None:
        self.state = state
        self.prices = PriceMover(state.exchange)

    # ---- markets, books, prices ------------------------------------------------------------

    def create_market(
        self,
        condition_id: str,
        token_ids: Sequence[str],
        *,
        tick_size: Number = "0.01",
        min_order_size: Number = 5,
        neg_risk: bool = False,
        end_date: str = "2030-01-01T00:00:00Z",
        title: str = "Local exchange market",
        slug: str | None = None,
        outcomes: Sequence[str] = ("Yes", "No"),
    ) -> Market:
        market = Market(
            condition_id=condition_id,
            token_ids=(str(token_ids[0]), str(token_ids[1])),
            tick_size=Decimal(str(tick_size)),
            min_order_size=Decimal(str(min_order_size)),
            neg_risk=neg_risk,
            end_date=end_date,
            title=title,
            slug=slug or f"market-{condition_id[2:10]}",
            outcomes=(outcomes[0], outcomes[1]),
        )
        return self.state.exchange.create_market(market)

    def set_book(self, token_id: str, bids: Iterable[Level], asks: Iterable[Level]) -> None:
        """Replace the token's synthetic levels ([(price, size)], any order)."""
        self.state.exchange.set_book(token_id, bids, asks)

    def step_price(
        self,
        token_id: str,
        best_bid: Number,
        spread_ticks: int = 1,
        depth: int = 3,
        size: Number = 100,
    ) -> None:
        """Re-quote the synthetic book around ``best_bid`` (publishes the changes)."""
        self.prices.step(token_id, best_bid, QuoteShape(spread_ticks, depth, Decimal(str(size))))

    def start_path(
        self, token_id: str, prices: Sequence[Number], interval_s: float = 0.0, burst: int = 1
    ) -> asyncio.Task[None]:
        """Step through ``prices`` (best bids) in the background; await the task to finish."""
        return self.prices.start_path(token_id, prices, interval_s, burst)

    def start_random_walk(
        self,
        token_id: str,
        steps: int,
        seed: int,
        start: Number | None = None,
        interval_s: float = 0.0,
        burst: int = 1,
    ) -> asyncio.Task[None]:
        """A seeded random walk of the best bid, one tick at most per step."""
        return self.prices.start_random_walk(token_id, steps, seed, start, interval_s, burst)

    def set_tick_size(self, token_id: str, tick_size: Number) -> None:
        self.state.exchange.set_tick_size(token_id, Decimal(str(tick_size)))

    # ---- balances, resolution, version ------------------------------------------------------

    def credit(
        self,
        address: str,
        collateral: Number = 0,
        token_id: str | None = None,
        shares: Number = 0,
        avg_price: Number = 0,
    ) -> None:
        self.state.exchange.credit(address, collateral, token_id, shares, avg_price)

    def balances(self, address: str) -> dict[str, Any]:
        ledger = self.state.exchange.ledger
        return {
            "address": address,
            "collateral": units_text(ledger.collateral(address)),
            "shares": {t: units_text(h.size) for t, h in ledger.holdings(address).items()},
        }

    def resolve(self, condition_id: str, winning_token_id: str) -> None:
        self.state.exchange.resolve(condition_id, winning_token_id)

    def set_version(self, version: int) -> None:
        self.state.exchange.set_version(version)

    def require_deposit_wallet(self, enabled: bool = True) -> None:
        """Refuse EOA/proxy/Safe orders with Polymarket's deposit-wallet-flow error."""
        self.state.exchange.deposit_wallet_only = bool(enabled)

    # ---- WebSocket faults ---------------------------------------------------------------

    def drop_websockets(self) -> int:
        return self.state.exchange.feed.drop_all()

    def stall_websockets(self) -> None:
        self.state.exchange.feed.stall()

    def resume_websockets(self) -> None:
        self.state.exchange.feed.resume()

    # ---- REST faults -------------------------------------------------------------------

    def fail_next(
        self, path: str, count: int = 1, status: int = 503, method: str | None = None
    ) -> None:
        self.state.faults.arm(path, Fault("error", count, method, status=status))

    def rate_limit_next(
        self, path: str, count: int = 1, retry_after_s: int = 1, method: str | None = None
    ) -> None:
        self.state.faults.arm(path, Fault("rate_limit", count, method, retry_after_s=retry_after_s))

    def hang_next(self, path: str, count: int = 1, method: str | None = None) -> None:
        self.state.faults.arm(path, Fault("hang", count, method))

    def withhold_next(
        self,
        path: str = "/order",
        count: int = 1,
        mode: WithholdMode = "close",
        method: str | None = "POST",
    ) -> None:
        """Execute the next ``count`` calls for real but never answer them."""
        self.state.faults.arm(path, Fault("withhold", count, method, withhold_mode=mode))

    def fail_after_next(
        self, path: str = "/order", count: int = 1, status: int = 502, method: str | None = "POST"
    ) -> None:
        """Execute the next ``count`` calls for real, then answer ``status`` (5xx, 408, 425)
        as a gateway in front of the matcher would."""
        self.state.faults.arm(path, Fault("error_after", count, method, status=status))

    def garble_next(
        self, path: str = "/order", count: int = 1, method: str | None = "POST"
    ) -> None:
        """Execute the next ``count`` calls for real, then answer 200 with an unreadable body."""
        self.state.faults.arm(path, Fault("garble", count, method))

    def clear_faults(self) -> None:
        self.state.faults.clear()

    # ---- order lifecycle: matching delay, settlement, balance cache ----------------------

    def defer_next_orders(
        self, count: int = 1, answer: str = "delayed", delay_s: float = 0.2
    ) -> None:
        """Accept the next ``count`` orders unmatched, answered ``answer`` ("delayed" or
        "live"); each is matched (or killed) against the book ``delay_s`` later."""
        if answer not in ("delayed", "live"):
            raise ValueError(f"answer must be delayed or live, was {answer!r}")
        plan = self.state.exchange.deferral
        plan.remaining, plan.answer, plan.delay_s = int(count), answer, float(delay_s)

    def set_settlement_delay(self, delay_s: float) -> None:
        """Time from a match to its final status (0: settled by the next request)."""
        self.state.exchange.settlement.delay_s = float(delay_s)

    def fail_settlement_next(self, count: int = 1) -> None:
        """The next ``count`` trades go MATCHED → RETRYING → FAILED; their shares and
        collateral go back where they came from."""
        self.state.exchange.settlement.fail_next = int(count)

    def stale_balance_cache(self, address: str) -> None:
        """Refuse ``address``'s SELLs with ``not enough balance / allowance`` (and report a
        zero token balance) until its owner calls ``/balance-allowance/update``."""
        self.state.exchange.stale_balances.add(address.lower())

    def trade_statuses(self) -> list[str]:
        """Every trade's settlement status, oldest first."""
        return [t.status for t in self.state.exchange.trades]

    async def wait_for_settlement(self, timeout_s: float = 5.0) -> list[str]:
        """Wait until every trade is CONFIRMED or FAILED; their statuses, oldest first.

        Settlement moves when time has come and a request arrives; this moves it too.
        """
        exchange = self.state.exchange
        async with asyncio.timeout(timeout_s):
            while True:
                placing.advance(exchange, time.monotonic())
                pending = [t for t in exchange.trades if t.status not in ("CONFIRMED", "FAILED")]
                if not pending:
                    return self.trade_statuses()
                due_s = min(t.ts_match_s for t in pending) + exchange.settlement.delay_s
                await asyncio.sleep(max(due_s - time.monotonic(), 0.001))

    # ---- timing ------------------------------------------------------------------------

    def price_sends(self) -> tuple[PriceSend, ...]:
        return self.state.timing.price_sends()

    def order_receipts(self) -> tuple[OrderReceipt, ...]:
        return self.state.timing.order_receipts()

    def requests_seen(self) -> tuple[SeenRequest, ...]:
        """Every HTTP request received so far, in order, with the connection it came on."""
        return tuple(self.state.faults.traffic.requests)

    async def wait_for_order_receipts(
        self, count: int, timeout_s: float = 5.0
    ) -> tuple[OrderReceipt, ...]:
        """Wait until at least ``count`` orders were received; TimeoutError after ``timeout_s``."""
        timing = self.state.timing
        async with asyncio.timeout(timeout_s):
            while len(timing.order_receipts()) < count:
                timing.order_recorded.clear()
                await timing.order_recorded.wait()
        return timing.order_receipts()

    def clear_timing(self) -> None:
        self.state.timing.clear()

    def status(self) -> dict[str, Any]:
        exchange = self.state.exchange
        return {
            "version": exchange.version,
            "deposit_wallet_only": exchange.deposit_wallet_only,
            "markets": len(exchange.markets),
            "orders": len(exchange.orders),
            "trades": len(exchange.trades),
            "websocket_connections": exchange.feed.connection_count,
            "websocket_stalled": exchange.feed.stalled,
            "messages_published": exchange.feed.messages_published,
            "price_paths_running": self.prices.running,
            "faults": self.state.faults.armed(),
            "deferred_orders": len(exchange.deferred),
            "settlement_delay_s": exchange.settlement.delay_s,
            "settlement_failures_armed": exchange.settlement.fail_next,
            "stale_balance_caches": sorted(exchange.stale_balances),
        }
