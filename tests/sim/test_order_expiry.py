"""GTD expiry looks only at the orders due and cancels what a walk over all orders would."""

from __future__ import annotations

from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from tests.sim.conftest import CONDITION_ID, NO, YES
from vincent.sim.exchange import Exchange
from vincent.sim.markets import Market
from vincent.sim.records import OrderRecord
from vincent.sim.timing import TimingRecorder

orders = st.lists(
    st.tuples(
        st.integers(min_value=0, max_value=20),  # expiration
        st.sampled_from(["GTD", "GTC"]),
        st.sampled_from(["rests", "filled", "canceled"]),  # what happened to it since
    ),
    max_size=30,
)


def _rest(exchange: Exchange, number: int, expiration: int, order_type: str) -> OrderRecord:
    record = OrderRecord(
        order_id=f"0x{number:064x}",
        market=CONDITION_ID,
        asset_id=YES,
        owner="key",
        maker_address="0x" + "11" * 20,
        side="SELL",
        price=Decimal("0.6"),
        original_size=5_000_000,
        order_type=order_type,
        outcome="Yes",
        expiration=expiration,
    )
    exchange.orders[record.order_id] = record
    exchange.books[YES].rest("SELL", record.price, record.order_id, record.maker_address, 5_000_000)
    exchange.watch_expiry(record)
    return record


@given(orders=orders, times=st.lists(st.integers(min_value=0, max_value=25), max_size=4))
def test_expiry_cancels_exactly_the_live_gtd_orders_due(
    orders: list[tuple[int, str, str]], times: list[int]
) -> None:
    exchange = Exchange(TimingRecorder())
    exchange.create_market(Market(CONDITION_ID, (YES, NO)))
    for number, (expiration, order_type, fate) in enumerate(orders):
        record = _rest(exchange, number, expiration, order_type)
        if fate == "canceled":
            exchange.cancel_order(record)
        elif fate == "filled":
            exchange.books[YES].remove(record.order_id)
            record.size_matched, record.status = record.original_size, "MATCHED"
    for now_s in sorted(times):
        before = {o.order_id: o.status for o in exchange.orders.values()}
        due = {
            o.order_id
            for o in exchange.orders.values()
            if o.status == "LIVE" and o.order_type == "GTD" and o.expiration <= now_s
        }
        exchange.expire_orders(now_s)
        after = {o.order_id: o.status for o in exchange.orders.values()}
        assert after == {i: "CANCELED" if i in due else status for i, status in before.items()}
        assert all(i not in exchange.books[YES].orders for i in due)
