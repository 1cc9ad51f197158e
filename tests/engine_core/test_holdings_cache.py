"""HoldingsCache: the newest read wins, a forget outlives older reads, fills come off. No I/O."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from vincent.services.trade_manager.holdings_cache import HoldingsCache
from vincent.skills.polymarket.types import Holding

T0 = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)


def held(token_id: str, shares: str) -> Holding:
    return Holding(
        token_id=token_id,
        condition_id="0xc",
        shares=Decimal(shares),
        average_entry_price=None,
        current_price=None,
    )


def shares(cache: HoldingsCache, secret_id: str, token_id: str, now: datetime) -> Decimal | None:
    found = cache.get(secret_id, now)
    if found is None:
        return None
    return next((h.shares for h in found.holdings if h.token_id == token_id), Decimal(0))


def test_a_read_is_used_until_it_is_too_old() -> None:
    cache = HoldingsCache(max_age_s=60)
    cache.remember("s", [held("t", "9")], T0)
    assert shares(cache, "s", "t", T0 + timedelta(seconds=60)) == Decimal(9)
    assert cache.get("s", T0 + timedelta(seconds=61)) is None


def test_an_older_read_finishing_late_never_replaces_a_newer_one() -> None:
    cache = HoldingsCache()
    cache.remember("s", [held("t", "9")], T0 + timedelta(seconds=5))
    cache.remember("s", [held("t", "3")], T0)
    assert shares(cache, "s", "t", T0 + timedelta(seconds=6)) == Decimal(9)


def test_a_read_started_before_a_forget_is_not_kept() -> None:
    cache = HoldingsCache()
    cache.remember("s", [held("t", "9")], T0)
    cache.forget("s", T0 + timedelta(seconds=2))
    assert cache.get("s", T0 + timedelta(seconds=3)) is None
    cache.remember("s", [held("t", "9")], T0 + timedelta(seconds=1))  # began before the sale
    assert cache.get("s", T0 + timedelta(seconds=3)) is None
    cache.remember("s", [held("t", "4")], T0 + timedelta(seconds=2))
    assert shares(cache, "s", "t", T0 + timedelta(seconds=3)) == Decimal(4)


def test_a_fill_takes_its_shares_off_that_token_only_and_never_below_zero() -> None:
    cache = HoldingsCache()
    cache.remember("s", [held("t", "9"), held("u", "5")], T0)
    cache.sold("s", "t", Decimal("4.5"))
    assert shares(cache, "s", "t", T0) == Decimal("4.5")
    assert shares(cache, "s", "u", T0) == Decimal(5)
    cache.sold("s", "t", Decimal(10))
    assert shares(cache, "s", "t", T0) == Decimal(0)
    cache.sold("unknown", "t", Decimal(1))  # nothing held: nothing to adjust
    assert cache.get("unknown", T0) is None


def test_reads_too_old_to_use_are_dropped_as_newer_ones_arrive() -> None:
    cache = HoldingsCache(max_age_s=60)
    cache.remember("gone", [held("t", "1")], T0)  # a secret the poll tick reads no more
    cache.forget("sold", T0)
    cache.remember("kept", [held("t", "1")], T0 + timedelta(seconds=30))
    assert len(cache) == 2
    cache.remember("kept", [held("t", "2")], T0 + timedelta(seconds=90))
    assert len(cache) == 1
    assert cache.get("gone", T0 + timedelta(seconds=90)) is None
    # The forget of "sold" is older than any read that could still be used: gone too.
    cache.remember("sold", [held("t", "3")], T0 + timedelta(seconds=95))
    assert shares(cache, "sold", "t", T0 + timedelta(seconds=95)) == Decimal(3)


reads = st.lists(
    st.tuples(st.integers(0, 100), st.decimals(0, 1000, places=2)), min_size=1, max_size=20
)


@given(reads=reads, forget_at=st.none() | st.integers(0, 100))
def test_what_is_held_is_the_newest_read_not_older_than_the_last_forget(
    reads: list[tuple[int, Decimal]], forget_at: int | None
) -> None:
    cache = HoldingsCache(max_age_s=1e9)
    if forget_at is not None:
        cache.forget("s", T0 + timedelta(seconds=forget_at))
    for second, amount in reads:
        cache.remember("s", [held("t", str(amount))], T0 + timedelta(seconds=second))
    kept = [
        (second, amount) for second, amount in reads if forget_at is None or second >= forget_at
    ]
    found = cache.get("s", T0 + timedelta(seconds=200))
    if not kept:
        assert found is None
        return
    assert found is not None
    newest = max(second for second, _ in kept)
    # Of equal read times the last remembered wins.
    expected = [amount for second, amount in kept if second == newest][-1]
    assert found.read_at == T0 + timedelta(seconds=newest)
    assert found.holdings[0].shares == expected
