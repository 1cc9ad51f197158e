"""The dashboard's price history and chart lines: pure, tested exhaustively."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from vincent.dashboard.charts import rule_line
from vincent.dashboard.hub import Audience, Broadcast, id_floor
from vincent.dashboard.price_history import BookPrices, PriceHistory
from vincent.db.base import new_id
from vincent.db.models import TradeRule, TradeRuleEvent
from vincent.enums import TradeRuleEventType, TradeRuleStatus, TradeRuleType, TriggerSource

CENTS = st.integers(min_value=1, max_value=99).map(lambda c: Decimal(c) / 100)
# (seconds since the previous event, token, best bid)
EVENTS = st.lists(
    st.tuples(
        st.floats(min_value=0, max_value=3, allow_nan=False), st.sampled_from("abcde"), CENTS
    ),
    max_size=200,
)


def _book(bid: Decimal) -> BookPrices:
    return (bid, bid + Decimal("0.01"), None)


@given(EVENTS, st.integers(min_value=1, max_value=4), st.integers(min_value=2, max_value=40))
def test_history_is_bounded_one_point_per_second_and_keeps_the_last_price(
    events: list[tuple[float, str, Decimal]], max_tokens: int, window_s: int
) -> None:
    history = PriceHistory(window_s=window_s, resolution_s=1.0, max_tokens=max_tokens)
    now_s = 1_000.0
    last: dict[str, BookPrices] = {}
    for gap_s, token, bid in events:
        now_s += gap_s
        history.touch([token], lambda _token, bid=bid: _book(bid))  # type: ignore[misc]
        last[token] = _book(bid)
        history.sample(now_s)
        assert len(history.tokens()) <= max_tokens
        for held in history.tokens():
            points = history.points(held)
            assert len(points) <= window_s
            seconds = [int(p.ts_s) for p in points]
            assert seconds == sorted(set(seconds))  # one point per second, in order
            # Older points expire; the newest stays: it is still the price.
            assert all(p.ts_s >= now_s - window_s for p in points[:-1])
            assert points[-1].prices == last[held]
            recent = history.points(held, since_s=now_s - window_s)
            assert recent[0].ts_s >= now_s - window_s
            assert recent[-1].prices == points[-1].prices


def test_a_token_whose_book_went_away_keeps_its_last_noted_price() -> None:
    history = PriceHistory()
    books: dict[str, BookPrices] = {"t": _book(Decimal("0.40"))}
    history.touch(["t"], books.get)
    del books["t"]  # its last rule fired: the feed stopped tracking it before the sample
    (added,) = history.sample(10.0)
    assert added[1].best_bid == Decimal("0.40")
    assert history.sample(11.0) == []  # nothing new: no point


def _rule(rule_type: TradeRuleType, status: TradeRuleStatus, **values: object) -> TradeRule:
    created = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)
    base: dict[str, object] = {
        "id": "r1",
        "secret_id": "s1",
        "rule_type": rule_type,
        "market_id": "m",
        "token_id": "t",
        "trigger_price": 0.45,
        "trailing_percent": None,
        "action": '{"type":"SELL_ALL"}',
        "status": status,
        "trigger_source": TriggerSource.MIDPOINT,
        "created_at": created,
        "updated_at": created,
        "triggered_at": None,
    }
    base.update(values)
    return TradeRule(**base)


def _event(kind: TradeRuleEventType, seconds: int, data: dict[str, object]) -> TradeRuleEvent:
    moment = datetime(2026, 12, 4, 12, 0, tzinfo=UTC) + timedelta(seconds=seconds)
    return TradeRuleEvent(
        id=new_id(), rule_id="r1", event_type=kind, event_data=data, created_at=moment
    )


def test_a_trailing_stop_is_drawn_as_the_steps_it_followed_and_its_fire() -> None:
    rule = _rule(
        TradeRuleType.TRAILING_STOP,
        TradeRuleStatus.TRIGGERED,
        trigger_price=0.54,
        trailing_percent=10.0,
        triggered_at=datetime(2026, 12, 4, 12, 0, 30, tzinfo=UTC),
    )
    events = [
        _event(TradeRuleEventType.RULE_CREATED, 0, {"payload": {"triggerPrice": 0.45}}),
        _event(TradeRuleEventType.RULE_TRAILING_UPDATED, 10, {"triggerPrice": 0.5}),
        _event(TradeRuleEventType.RULE_TRAILING_UPDATED, 20, {"triggerPrice": 0.54}),
        _event(
            TradeRuleEventType.RULE_EVALUATED, 30, {"currentPrice": 0.53, "shouldTrigger": True}
        ),
        _event(
            TradeRuleEventType.RULE_EVALUATED, 25, {"currentPrice": 0.6, "shouldTrigger": False}
        ),
    ]
    line = rule_line(rule, events)
    start_ms = int(datetime(2026, 12, 4, 12, 0, tzinfo=UTC).timestamp() * 1000)
    assert [step[1] for step in line["steps"]] == [0.45, 0.5, 0.54]
    assert [step[0] - start_ms for step in line["steps"]] == [0, 10_000, 20_000]
    assert line["fires"] == [[start_ms + 30_000, 0.53]]
    assert line["endedAt"] == start_ms + 30_000


def test_a_stop_loss_is_a_flat_line_at_its_current_trigger() -> None:
    rule = _rule(TradeRuleType.STOP_LOSS, TradeRuleStatus.ACTIVE, trigger_price=0.4)
    events = [_event(TradeRuleEventType.RULE_CREATED, 0, {"payload": {"triggerPrice": 0.45}})]
    line = rule_line(rule, events)
    assert [step[1] for step in line["steps"]] == [0.4]  # moved by a PATCH since
    assert line["endedAt"] is None and line["fires"] == []


def test_id_floor_is_below_every_id_made_from_that_moment() -> None:
    floor = id_floor(datetime.now(UTC).timestamp() - 0.001)
    assert all(new_id() >= floor for _ in range(100))
    assert new_id() < id_floor(datetime.now(UTC).timestamp() + 5)


async def test_a_reader_behind_the_ring_is_told_it_lost_entries() -> None:
    ring = Broadcast(size=3)
    for n in range(5):
        await ring.publish(Audience.OWNER, "", "health", {"n": n})
    assert await ring.wait_after(0, 0) == ([], True)
    entries, lost = await ring.wait_after(3, 0)
    assert (lost, [e.seq for e in entries]) == (False, [4, 5])
    waiting = asyncio.create_task(ring.wait_after(5, 5))
    await ring.publish(Audience.TOKEN, "t", "price", {})
    entries, lost = await waiting
    assert (lost, [e.event for e in entries]) == (False, ["price"])
