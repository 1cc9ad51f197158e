"""When a market ends its rules, and how often a market is asked. Pure: no I/O."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from vincent.services.trade_manager.market_endings import (
    CLOSED,
    RESOLVED,
    MarketCheckSchedule,
    MarketEnding,
    ending_of,
    resolved,
)
from vincent.skills.polymarket.market_state import parse_market_state

# A CLOB ``GET /markets/{condition_id}`` answer for a resolved market (the local exchange's,
# in Polymarket's shape; extra production fields are ignored).
RESOLVED_MARKET = {
    "condition_id": "0xabc",
    "question": "Will it rain?",
    "market_slug": "will-it-rain",
    "end_date_iso": "2026-12-01T00:00:00Z",
    "active": True,
    "closed": True,
    "accepting_orders": False,
    "neg_risk": False,
    "minimum_order_size": 5.0,
    "minimum_tick_size": 0.01,
    "tokens": [
        {"token_id": "111", "outcome": "Yes", "price": 1.0, "winner": True},
        {"token_id": "222", "outcome": "No", "price": 0.0, "winner": False},
    ],
}


def test_a_resolved_market_state_is_read_typed() -> None:
    state = parse_market_state("0xabc", RESOLVED_MARKET)

    assert state.outcomes == {"111": "Yes", "222": "No"}
    assert (state.closed, state.accepting_orders, state.winning_token_id) == (True, False, "111")
    assert state.end_date == datetime(2026, 12, 1, tzinfo=UTC)


def test_missing_flags_read_as_a_market_that_still_trades() -> None:
    state = parse_market_state("0xabc", {"tokens": [{"token_id": "1", "outcome": "Yes"}]})

    assert (state.closed, state.accepting_orders, state.winning_token_id) == (False, True, None)
    assert state.end_date is None


def test_the_ending_names_the_winner_or_says_closed() -> None:
    winner = ending_of(
        closed=True, accepting_orders=False, winning_token_id="111", outcomes={"111": "Yes"}
    )
    closed = ending_of(closed=True, accepting_orders=True, winning_token_id=None, outcomes={})
    halted = ending_of(closed=False, accepting_orders=False, winning_token_id=None, outcomes={})
    trading = ending_of(closed=False, accepting_orders=True, winning_token_id=None, outcomes={})

    assert winner == MarketEnding(RESOLVED, "market resolved: Yes won", "111")
    assert closed == halted == MarketEnding(CLOSED, "market closed")
    assert trading is None
    assert resolved(None, None).message == "market resolved"
    assert winner.event_data() == {"reason": "market_resolved", "winningTokenId": "111"}
    assert closed.event_data() == {"reason": "market_closed"}


def test_a_market_is_asked_again_only_after_the_interval_never_asked_first() -> None:
    schedule = MarketCheckSchedule()
    schedule.checked("old", 0.0)
    schedule.checked("recent", 150.0)

    assert schedule.due(["recent", "old", "new"], 200.0, interval_s=180.0) == ["new", "old"]
    assert schedule.due(["recent", "old", "new"], 200.0, interval_s=180.0, limit=1) == ["new"]


@settings(deadline=None)
@given(
    st.lists(
        st.tuples(st.floats(min_value=0, max_value=50), st.sets(st.sampled_from("abcdef"))),
        max_size=40,
    )
)
def test_no_market_is_asked_twice_within_the_interval(
    ticks: list[tuple[float, set[str]]],
) -> None:
    schedule = MarketCheckSchedule()
    asked: dict[str, float] = {}
    now_s = 0.0
    for step_s, markets in ticks:
        now_s += step_s
        for market in schedule.due(sorted(markets), now_s, interval_s=100.0, limit=3):
            assert market not in asked or now_s - asked[market] >= 100.0
            asked[market] = now_s
            schedule.checked(market, now_s)
