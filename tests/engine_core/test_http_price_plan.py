"""Which tokens the poll tick prices over HTTP (``http_pricing.http_price_plan``): pure.

A token the feed covers live is fresh however old its book; it is re-checked only after the
quiet interval, a bounded number per tick, quiet longest first. Any other token is stale
after ``stale_after_s``, as before there was coverage.
"""

from __future__ import annotations

import math

from hypothesis import given
from hypothesis import strategies as st

from vincent.services.trade_manager.http_pricing import (
    HttpPricePlan,
    http_price_plan,
    quiet_rechecks_per_tick,
)
from vincent.services.trade_manager.market_messages import BookEvent
from vincent.services.trade_manager.order_book import OrderBooks

NOW_S = 10_000.0
STALE_AFTER_S = 120.0
QUIET_RECHECK_S = 900.0


def _books(updated_at_s: dict[str, float | None]) -> OrderBooks:
    """Books tracked for every token; a token with a time got its snapshot then."""
    books = OrderBooks()
    books.track(updated_at_s)
    for token_id, at_s in updated_at_s.items():
        if at_s is not None:
            event = BookEvent(token_id, "0xm", (("0.4", "1"),), (("0.6", "1"),), "0", "")
            books.apply(event, at_s)
    return books


def _plan(
    updated_at_s: dict[str, float | None],
    *,
    live: set[str] | None,
    last_http_s: dict[str, float] | None = None,
    tracked_since_s: dict[str, float] | None = None,
    max_quiet: int = 1000,
) -> HttpPricePlan:
    return http_price_plan(
        updated_at_s,
        _books(updated_at_s),
        tracked_since_s or {},
        covered_live=live,
        last_http_s=last_http_s or {},
        now_s=NOW_S,
        stale_after_s=STALE_AFTER_S,
        quiet_recheck_s=QUIET_RECHECK_S,
        max_quiet=max_quiet,
    )


def test_a_quiet_book_on_a_live_connection_is_not_stale() -> None:
    two_minutes_ago = NOW_S - STALE_AFTER_S
    plan = _plan({"quiet": two_minutes_ago, "uncovered": two_minutes_ago}, live={"quiet"})

    assert plan == HttpPricePlan(stale=("uncovered",))


def test_a_live_token_quiet_past_the_recheck_interval_is_rechecked() -> None:
    plan = _plan(
        {"long_quiet": NOW_S - QUIET_RECHECK_S, "short_quiet": NOW_S - QUIET_RECHECK_S + 1},
        live={"long_quiet", "short_quiet"},
    )

    assert plan == HttpPricePlan(quiet=("long_quiet",))


def test_a_recent_http_answer_postpones_the_recheck() -> None:
    old = NOW_S - 2 * QUIET_RECHECK_S
    plan = _plan(
        {"checked": old, "unchecked": old},
        live={"checked", "unchecked"},
        last_http_s={"checked": NOW_S - 10.0},
    )

    assert plan.quiet == ("unchecked",)


def test_rechecks_are_bounded_per_tick_quiet_longest_first() -> None:
    tokens = {f"t{i}": NOW_S - QUIET_RECHECK_S - i for i in range(10)}

    plan = _plan(tokens, live=set(tokens), max_quiet=3)

    assert plan.quiet == ("t9", "t8", "t7")
    assert plan.quiet_deferred == 7


def test_without_feed_or_coverage_every_old_book_is_stale_as_before() -> None:
    tokens = {"old": NOW_S - STALE_AFTER_S, "new": NOW_S - 1.0, "never": None}
    without_feed = http_price_plan(
        tokens,
        None,
        {},
        covered_live=None,
        last_http_s={},
        now_s=NOW_S,
        stale_after_s=STALE_AFTER_S,
        quiet_recheck_s=QUIET_RECHECK_S,
        max_quiet=10,
    )

    assert without_feed == HttpPricePlan(stale=("never", "new", "old"))
    # A token never priced counts from when it was first watched.
    assert _plan(tokens, live=None, tracked_since_s={"never": NOW_S - 1.0}).stale == ("old",)
    assert _plan(tokens, live=None).stale == ("old",)


_times = st.one_of(st.none(), st.floats(min_value=0.0, max_value=NOW_S))


@given(
    books=st.dictionaries(st.text("abcdef", min_size=1, max_size=3), _times, max_size=12),
    live_picks=st.sets(st.text("abcdef", min_size=1, max_size=3)),
    last_http=st.dictionaries(
        st.text("abcdef", min_size=1, max_size=3),
        st.floats(min_value=0.0, max_value=NOW_S),
    ),
    tracked=st.dictionaries(
        st.text("abcdef", min_size=1, max_size=3),
        st.floats(min_value=0.0, max_value=NOW_S),
    ),
    max_quiet=st.integers(min_value=0, max_value=5),
)
def test_the_plan_follows_coverage_and_ages(
    books: dict[str, float | None],
    live_picks: set[str],
    last_http: dict[str, float],
    tracked: dict[str, float],
    max_quiet: int,
) -> None:
    live = live_picks & set(books)
    plan = _plan(
        books, live=live, last_http_s=last_http, tracked_since_s=tracked, max_quiet=max_quiet
    )

    def age_s(token_id: str) -> float:
        at_s = books[token_id]
        return NOW_S - (tracked.get(token_id, NOW_S) if at_s is None else at_s)

    def quiet_s(token_id: str) -> float:
        return min(age_s(token_id), NOW_S - last_http.get(token_id, -math.inf))

    # Not covered live: stale exactly when the book (or the watch) is old enough.
    assert plan.stale == tuple(sorted(t for t in books if t not in live and age_s(t) >= 120.0))
    # Covered live: never stale; re-checked only once quiet long enough, bounded, oldest first.
    due = [t for t in live if quiet_s(t) >= QUIET_RECHECK_S]
    assert set(plan.quiet) <= set(due)
    assert len(plan.quiet) == min(max_quiet, len(due))
    assert plan.quiet_deferred == len(due) - len(plan.quiet)
    left = set(due) - set(plan.quiet)
    assert all(quiet_s(t) >= quiet_s(u) for t in plan.quiet for u in left)
    assert [quiet_s(t) for t in plan.quiet] == sorted(
        (quiet_s(t) for t in plan.quiet), reverse=True
    )


@given(
    watched=st.integers(min_value=0, max_value=100_000),
    poll_interval_s=st.floats(min_value=0.1, max_value=3600.0),
    quiet_recheck_s=st.floats(min_value=1.0, max_value=86_400.0),
)
def test_the_recheck_bound_spreads_every_token_over_one_interval(
    watched: int, poll_interval_s: float, quiet_recheck_s: float
) -> None:
    per_tick = quiet_rechecks_per_tick(
        watched, poll_interval_s=poll_interval_s, quiet_recheck_s=quiet_recheck_s
    )
    ticks_per_interval = quiet_recheck_s / poll_interval_s

    assert per_tick >= 1
    # Every token gets its re-check within one interval, even if all fell due at once ...
    assert per_tick * ticks_per_interval >= watched * (1 - 1e-9)
    # ... and no tick asks for more than that steady rate (no burst after a restart).
    assert per_tick <= max(1.0, watched / ticks_per_interval + 1 + 1e-6)
