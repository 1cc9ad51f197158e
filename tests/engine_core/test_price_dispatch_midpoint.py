"""The dispatcher's remembered MIDPOINT: exactly ``source_price``'s, object for object."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any, cast

from hypothesis import example, given
from hypothesis import strategies as st

from vincent.enums import TriggerSource
from vincent.services.trade_manager.metrics import WorkerMetrics
from vincent.services.trade_manager.order_book import OrderBooks
from vincent.services.trade_manager.price_dispatch import PriceDispatcher
from vincent.services.trade_manager.pricing import source_price
from vincent.services.trade_manager.rule_registry import RuleRegistry
from vincent.services.trade_manager.task_owner import TaskOwner
from vincent.services.trade_manager.trailing_levels import TrailingLevels
from vincent.services.trade_manager.types import SystemClock


def _dispatcher() -> PriceDispatcher:
    return PriceDispatcher(
        rules=RuleRegistry(),
        books=OrderBooks(),
        trailing=TrailingLevels(),
        executor=cast(Any, None),
        tasks=TaskOwner("test"),
        metrics=WorkerMetrics(),
        clock=SystemClock(),
        stopping=asyncio.Event(),
        on_tokens=lambda changes: None,
        on_change=lambda: None,
    )


# One value written several ways: equal, but not the same exponent.
texts = st.sampled_from(["0.4", "0.40", "0.400", "0.45", "0.5", "0.50", "0.55", "0.6"])


@given(st.lists(st.tuples(texts, texts), max_size=12), st.booleans())
@example([("0.4", "0.6"), ("0.40", "0.6")], False)
def test_a_remembered_midpoint_is_the_one_computed_now(
    pairs: list[tuple[str, str]], same_objects: bool
) -> None:
    dispatcher = _dispatcher()
    # The books hand over one object per text (``read_best`` remembers them); the same
    # values as fresh objects must give the same answers.
    objects = {text: Decimal(text) for pair in pairs for text in pair}
    for bid_text, ask_text in pairs:
        bid = objects[bid_text] if same_objects else Decimal(bid_text)
        ask = objects[ask_text] if same_objects else Decimal(ask_text)
        expected = source_price(TriggerSource.MIDPOINT, bid, ask, None)
        assert expected is not None
        got = dispatcher._midpoint(bid, ask)
        # The exact result: the same digits and exponent, not merely an equal value.
        assert got.as_tuple() == expected.as_tuple()
