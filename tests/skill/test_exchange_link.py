"""The order path stays warm (issue 14): every secret's SDK client shares one connection
pool to the exchange and one market-metadata cache, and ``keep_warm`` keeps both from going
cold, so a sell long after the warm-up sends its order and nothing else."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator, Collection
from decimal import Decimal

import httpx
import pytest
import sqlalchemy as sa
from hypothesis import given
from hypothesis import strategies as st

from tests.engine.scripted_skill import ScriptedSkill
from tests.skill.conftest import MarketIds, Wallet, add_wallet, skill_settings
from vincent.crypto import KeyBox
from vincent.db.models import TransactionLog
from vincent.db.session import SessionFactory
from vincent.services.trade_manager.skill_warmup import SkillWarmup
from vincent.sim import LocalExchange
from vincent.skills.polymarket import PolymarketSkill, create_polymarket_skill
from vincent.skills.polymarket.environment import settings_environment
from vincent.skills.polymarket.exchange_link import (
    METADATA_TTL_S,
    REFRESH_AFTER_S,
    WARM_CONNECTIONS,
    ExchangeLink,
    WarmMarkets,
    share_default_tls_context,
)
from vincent.skills.polymarket.signed_orders import order_id_of, signed_order_from_json
from vincent.skills.polymarket.types import BetRequest, BetStatus


class ManualClock:
    """Monotonic seconds that move only when the test says."""

    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
async def clocked_skill(
    exchange: LocalExchange,
    database_url: str,
    session_factory: SessionFactory,
    keybox: KeyBox,
    clock: ManualClock,
) -> AsyncIterator[PolymarketSkill]:
    built = create_polymarket_skill(
        skill_settings(exchange, database_url), session_factory, keybox, clock=clock
    )
    yield built
    await built.aclose()


def held_sell(wallet: Wallet, token_id: str, shares: str) -> BetRequest:
    """A sell as the trade manager sends it: the position size and the worst price (from
    the book it holds) handed in, nothing to read for them."""
    return BetRequest(
        secret_id=wallet.secret_id,
        token_id=token_id,
        side="SELL",
        amount=Decimal(shares),
        order_type="FOK",
        worst_price=Decimal("0.45"),
        shares_held=Decimal(shares),
    )


def requests_after(exchange: LocalExchange, mark: int) -> list[tuple[str, str]]:
    return [(seen.method, seen.path) for seen in exchange.requests_seen()[mark:]]


async def test_every_secret_posts_over_the_same_connection(
    exchange: LocalExchange,
    skill: PolymarketSkill,
    session_factory: SessionFactory,
    keybox: KeyBox,
    market: MarketIds,
) -> None:
    first = await add_wallet(session_factory, keybox)
    second = await add_wallet(session_factory, keybox)
    for wallet in (first, second):
        exchange.credit(wallet.funder, token_id=market.yes, shares="10")
        await skill.prepare(wallet.secret_id, market.yes)
    mark = len(exchange.requests_seen())

    for wallet in (first, second):
        result = await skill.place_bet(held_sell(wallet, market.yes, "4"))
        assert result.status is BetStatus.EXECUTED

    posts = [seen for seen in exchange.requests_seen()[mark:] if seen.path == "/order"]
    assert len(posts) == 2
    # The second secret's first order found the first one's connection open: no handshake.
    assert posts[0].connection is not None
    assert posts[1].connection == posts[0].connection


async def test_a_sell_long_after_the_warm_up_sends_its_order_and_nothing_else(
    exchange: LocalExchange,
    clocked_skill: PolymarketSkill,
    clock: ManualClock,
    wallet: Wallet,
    market: MarketIds,
) -> None:
    exchange.credit(wallet.funder, token_id=market.yes, shares="10")
    await clocked_skill.prepare(wallet.secret_id, market.yes)
    # 11 minutes go by (the caches keep market metadata 10), kept warm as the worker does.
    for _ in range(66):
        clock.now += 10
        await clocked_skill.keep_warm({market.yes})
    seen = requests_after(exchange, 0)
    assert ("GET", "/time") in seen  # pinged while idle
    mark = len(exchange.requests_seen())

    result = await clocked_skill.place_bet(held_sell(wallet, market.yes, "4"))

    assert result.status is BetStatus.EXECUTED
    assert requests_after(exchange, mark) == [("POST", "/order")]
    ping, post = exchange.requests_seen()[mark - 1], exchange.requests_seen()[mark]
    assert ping.path == "/time"
    assert post.connection == ping.connection  # the connection the ping kept open


async def test_without_keep_warm_a_late_sell_reads_its_market_again_first(
    exchange: LocalExchange,
    clocked_skill: PolymarketSkill,
    clock: ManualClock,
    wallet: Wallet,
    market: MarketIds,
) -> None:
    # What keep_warm is for (and proof that the test above can fail).
    exchange.credit(wallet.funder, token_id=market.yes, shares="10")
    await clocked_skill.prepare(wallet.secret_id, market.yes)
    clock.now += METADATA_TTL_S + 60
    mark = len(exchange.requests_seen())

    result = await clocked_skill.place_bet(held_sell(wallet, market.yes, "4"))

    assert result.status is BetStatus.EXECUTED
    seen = requests_after(exchange, mark)
    assert seen[-1] == ("POST", "/order")
    assert ("GET", f"/clob-markets/{market.condition_id}") in seen[:-1]


async def test_keep_warm_reads_each_market_once_for_both_of_its_tokens(
    exchange: LocalExchange,
    clocked_skill: PolymarketSkill,
    clock: ManualClock,
    wallet: Wallet,
    market: MarketIds,
) -> None:
    await clocked_skill.prepare(wallet.secret_id, market.yes)
    await clocked_skill.keep_warm({market.yes, market.no})
    clock.now += REFRESH_AFTER_S
    mark = len(exchange.requests_seen())

    await clocked_skill.keep_warm({market.yes, market.no})
    await clocked_skill.keep_warm({market.yes, market.no})

    market_reads = [path for method, path in requests_after(exchange, mark) if "/time" not in path]
    # Ours and the SDK's, once: the sibling token was read with it.
    assert market_reads.count(f"/clob-markets/{market.condition_id}") == 2


class _KeptWarm(ScriptedSkill):
    """Says when ``keep_warm`` was called."""

    def __init__(self) -> None:
        super().__init__()
        self.called = asyncio.Event()

    async def keep_warm(self, token_ids: Collection[str]) -> None:
        await super().keep_warm(token_ids)
        self.called.set()


async def test_the_worker_keeps_the_tokens_it_watches_warm() -> None:
    skill = _KeptWarm()
    warmup = SkillWarmup(skill)
    stopping = asyncio.Event()
    watched = {"t1", "t2"}
    running = asyncio.create_task(
        warmup.keep_warm(lambda: frozenset(watched), stopping, interval_s=0.001)
    )
    async with asyncio.timeout(5):
        await skill.called.wait()
        watched.discard("t1")
        while skill.kept_warm[-1] != {"t2"}:
            skill.called.clear()
            await skill.called.wait()
        stopping.set()
        await running
    assert skill.kept_warm[0] == {"t1", "t2"}


# ---- WarmMarkets (pure) -------------------------------------------------------------

tokens = st.sets(st.sampled_from([f"t{i}" for i in range(8)]), max_size=8)


@given(
    first=tokens,
    then=tokens,
    waited=st.floats(min_value=0, max_value=2 * REFRESH_AFTER_S),
    limit=st.integers(min_value=0, max_value=8),
)
def test_due_tokens_are_watched_and_old_enough(
    first: set[str], then: set[str], waited: float, limit: int
) -> None:
    warm = WarmMarkets()
    assert warm.due(first, 0.0, limit=8) == []  # first seen: counts as read then
    due = warm.due(then, waited, limit=limit)
    assert len(warm) == len(then)  # tokens no longer watched are forgotten
    assert len(due) <= limit
    assert set(due) <= then & first  # a new token is never due at once
    if waited >= REFRESH_AFTER_S:
        assert len(due) == min(limit, len(then & first))
    else:
        assert due == []


@given(batch=tokens, others=tokens)
def test_a_token_just_read_is_not_due_until_it_ages(batch: set[str], others: set[str]) -> None:
    watched = batch | others
    warm = WarmMarkets()
    warm.due(watched, 0.0, limit=8)
    warm.read(batch, REFRESH_AFTER_S)
    due = warm.due(watched, REFRESH_AFTER_S, limit=8)
    assert set(due) == watched - batch
    later = warm.due(watched, 2 * REFRESH_AFTER_S, limit=8)
    assert set(later) == watched
    # The longest unread first.
    assert later[: len(watched - batch)] == sorted(watched - batch)


class _SortedWarmMarkets:
    """The reference: every watched token's read time, sorted at each call."""

    def __init__(self) -> None:
        self.read_at: dict[str, float] = {}

    def due(self, watched: Collection[str], now: float, limit: int) -> list[str]:
        self.read_at = {t: self.read_at.get(t, now) for t in watched}
        cutoff = now - REFRESH_AFTER_S
        return [t for at, t in sorted((at, t) for t, at in self.read_at.items() if at <= cutoff)][
            :limit
        ]

    def read(self, token_ids: Collection[str], now: float) -> None:
        for token in token_ids:
            if token in self.read_at:
                self.read_at[token] = now


calls = st.lists(
    st.tuples(
        st.sampled_from(["due", "read"]),
        tokens,
        # Time passed before the call: a monotonic clock moves between two calls.
        st.floats(min_value=0.001, max_value=REFRESH_AFTER_S),
        st.integers(min_value=0, max_value=8),
    ),
    max_size=30,
)


@given(calls=calls, as_list=st.booleans())
def test_due_keeps_the_longest_unread_first_without_sorting_every_token(
    calls: list[tuple[str, set[str], float, int]], as_list: bool
) -> None:
    """Whatever the calls (``now`` moving on between them), the same answers as sorting
    every watched token by (read at, token) at each call."""
    warm, reference = WarmMarkets(), _SortedWarmMarkets()
    now = 0.0
    for kind, some, waited, limit in calls:
        now += waited
        if kind == "read":
            warm.read(some, now)
            reference.read(some, now)
        else:
            watched: Collection[str] = sorted(some) if as_list else frozenset(some)
            assert warm.due(watched, now, limit=limit) == reference.due(watched, now, limit)
            assert len(warm) == len(reference.read_at)


@pytest.mark.parametrize("signature_type", [0, 1, 2, 3])
async def test_the_order_id_stored_before_the_post_is_the_orders_digest(
    exchange: LocalExchange,
    skill: PolymarketSkill,
    session_factory: SessionFactory,
    keybox: KeyBox,
    database_url: str,
    market: MarketIds,
    signature_type: int,
) -> None:
    # EOA, proxy and Safe orders take the digest eth_account computed while signing; a
    # deposit wallet's signature covers a wrapper, so its id is hashed again: same answer.
    wallet = await add_wallet(session_factory, keybox, signature_type)
    exchange.credit(wallet.funder, token_id=market.yes, shares="10")
    await skill.prepare(wallet.secret_id, market.yes)
    exchange.hang_next("/order", method="POST")  # the row as stored, before any answer

    placing = asyncio.create_task(skill.place_bet(held_sell(wallet, market.yes, "4")))
    async with asyncio.timeout(10):
        while any(exchange.status()["faults"].values()):  # noqa: ASYNC110 (no event for it)
            await asyncio.sleep(0.01)
    placing.cancel()
    with pytest.raises(asyncio.CancelledError):
        await placing
    exchange.clear_faults()

    async with session_factory() as session:
        [row] = (await session.scalars(sa.select(TransactionLog))).all()
    assert row.signed_order is not None and row.order_id is not None
    stored = signed_order_from_json(row.signed_order)
    environment = settings_environment(skill_settings(exchange, database_url))
    assert row.order_id == order_id_of(stored, environment, neg_risk=False)


async def test_the_shared_pool_keeps_no_cookie_from_one_secret_to_the_next() -> None:
    def set_cookie(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers={"set-cookie": "session=tenant-a; Path=/"})

    link = ExchangeLink("http://exchange.invalid")
    link.http._transport = httpx.MockTransport(set_cookie)  # no network: the jar is the test
    try:
        response = await link.http.get("/time")
        assert response.headers["set-cookie"].startswith("session=")
        assert dict(link.http.cookies) == {}
    finally:
        await link.aclose()


def _ssl_context(client: httpx.AsyncClient) -> object:
    transport = client._transport
    assert isinstance(transport, httpx.AsyncHTTPTransport)
    return transport._pool._ssl_context


async def test_httpx_clients_with_the_default_tls_settings_share_one_context() -> None:
    share_default_tls_context()
    share_default_tls_context()  # idempotent
    first, second = httpx.AsyncClient(), httpx.AsyncClient(base_url="https://other.example")
    unverified = httpx.AsyncClient(verify=False)
    try:
        shared = _ssl_context(first)
        assert shared is _ssl_context(second)
        assert isinstance(shared, ssl.SSLContext)
        assert shared.verify_mode is ssl.CERT_REQUIRED and shared.check_hostname
        # Any other setting builds its own, as httpx would.
        assert _ssl_context(unverified) is not shared
        assert _ssl_context(unverified).verify_mode is ssl.CERT_NONE
    finally:
        for client in (first, second, unverified):
            await client.aclose()


async def test_the_link_keeps_connections_open_for_a_burst_of_orders(
    exchange: LocalExchange,
) -> None:
    link = ExchangeLink(exchange.clob_url)
    try:
        await link.ping_if_idle()
        assert link.transport is not None
        assert link.transport.idle_connections() == WARM_CONNECTIONS
        await link.ping_if_idle()  # already open: none opened again
        assert link.transport.opened == WARM_CONNECTIONS
    finally:
        await link.aclose()
