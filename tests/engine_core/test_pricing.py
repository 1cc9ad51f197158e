"""The price a rule watches, per trigger source."""

from __future__ import annotations

from decimal import Decimal

import pytest

from vincent.enums import TriggerSource
from vincent.services.trade_manager.order_book import TopOfBook
from vincent.services.trade_manager.pricing import rule_price


def _top(bid: str | None, ask: str | None, last: str | None = None) -> TopOfBook:
    return TopOfBook(
        token_id="1",
        best_bid=None if bid is None else Decimal(bid),
        best_ask=None if ask is None else Decimal(ask),
        last_trade=None if last is None else Decimal(last),
        tick_size=None,
        resolved=False,
        ts_updated_s=0.0,
    )


def test_midpoint_needs_both_sides() -> None:
    assert rule_price(_top("0.48", "0.53"), TriggerSource.MIDPOINT) == Decimal("0.505")
    assert rule_price(_top("0.48", None), TriggerSource.MIDPOINT) is None
    assert rule_price(_top(None, "0.53"), TriggerSource.MIDPOINT) is None
    assert rule_price(_top(None, None), TriggerSource.MIDPOINT) is None


@pytest.mark.parametrize(
    ("source", "expected"),
    [(TriggerSource.BEST_BID, Decimal("0.48")), (TriggerSource.LAST_TRADE, Decimal("0.5"))],
)
def test_best_bid_and_last_trade(source: TriggerSource, expected: Decimal) -> None:
    assert rule_price(_top("0.48", None, "0.5"), source) == expected
    assert rule_price(_top(None, None), source) is None
