"""Public market data: books, midpoints, markets, exchange version, Gamma slugs.

Reads only; caches what changes rarely (token → condition id, tick size, neg-risk, fee
curve, exchange version) and drops an entry when the exchange says it changed.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any, TypeVar

from vincent.skills.polymarket.errors import MarketClosed, SkillError
from vincent.skills.polymarket.http import JsonGetter, NotFoundOnExchange, path_segment
from vincent.skills.polymarket.market_state import MarketState, parse_market_state
from vincent.skills.polymarket.types import BookLevel, OrderBook

logger = logging.getLogger(__name__)

K = TypeVar("K")
V = TypeVar("V")
# Markets (and their tokens) remembered per cache; far more than any one service trades.
CACHE_SIZE = 10_000


@dataclass(frozen=True, slots=True)
class MarketInfo:
    """What signing needs to know about a token's market (CLOB V2 ``/clob-markets``)."""

    condition_id: str
    token_ids: tuple[str, ...]
    tick_size: Decimal
    min_order_size: Decimal
    neg_risk: bool
    fee_rate: Decimal
    fee_exponent: Decimal


def to_decimal(raw: object) -> Decimal | None:
    """Parse a wire number (string or number) into a Decimal; None when absent or bad."""
    if raw is None or raw == "" or isinstance(raw, bool):
        return None
    try:
        return Decimal(str(raw))
    except (InvalidOperation, ValueError):
        return None


def _levels(raw: object, *, descending: bool) -> tuple[BookLevel, ...]:
    levels: list[BookLevel] = []
    for item in raw if isinstance(raw, list) else []:
        if not isinstance(item, dict):
            continue
        price, size = to_decimal(item.get("price")), to_decimal(item.get("size"))
        if price is not None and size is not None and size > 0:
            levels.append(BookLevel(price, size))
    # The wire lists best last; never rely on an order: sort so the best comes first.
    levels.sort(key=lambda level: level.price, reverse=descending)
    return tuple(levels)


def parse_book(token_id: str, payload: dict[str, Any]) -> OrderBook:
    """Turn a CLOB ``/book`` answer into an ``OrderBook`` (best level first on each side)."""
    return OrderBook(
        token_id=str(payload.get("asset_id") or token_id),
        market=str(payload.get("market") or ""),
        bids=_levels(payload.get("bids", payload.get("buys")), descending=True),
        asks=_levels(payload.get("asks", payload.get("sells")), descending=False),
        tick_size=to_decimal(payload.get("tick_size")) or Decimal("0.01"),
        min_order_size=to_decimal(payload.get("min_order_size")) or Decimal(0),
        neg_risk=bool(payload.get("neg_risk", False)),
        last_trade_price=to_decimal(payload.get("last_trade_price")),
        raw=payload,
    )


def parse_midpoint(payload: object) -> Decimal | None:
    """``{"mid": "0.55"}`` → 0.55; anything else (one-sided, missing, bad) → None."""
    if not isinstance(payload, dict):
        return None
    mid = to_decimal(payload.get("mid"))
    if mid is None or not Decimal(0) < mid < Decimal(1):
        return None
    return mid


class MarketData:
    """Public reads against the CLOB and Gamma, with the small caches signing relies on."""

    def __init__(
        self,
        clob: JsonGetter,
        gamma: JsonGetter,
        *,
        gamma_timeout_s: float = 3.0,
        market_info_ttl_s: float = 600.0,
        clock: Callable[[], float] = time.monotonic,
        cache_size: int = CACHE_SIZE,
    ) -> None:
        self._clob = clob
        self._gamma = gamma
        self._gamma_timeout_s = gamma_timeout_s
        self._ttl_s = market_info_ttl_s
        self._clock = clock
        self._cache_size = cache_size
        self._condition_by_token: dict[str, str] = {}
        self._market_info: dict[str, tuple[float, MarketInfo]] = {}
        self._version: int | None = None

    async def get_order_book(self, token_id: str) -> OrderBook:
        payload = await self._clob.get("/book", {"token_id": token_id})
        if not isinstance(payload, dict):
            raise SkillError("GET /book answered an unexpected shape")
        return parse_book(token_id, payload)

    async def get_midpoint(self, token_id: str) -> Decimal | None:
        try:
            payload = await self._clob.get("/midpoint", {"token_id": token_id})
        except NotFoundOnExchange:
            return None
        return parse_midpoint(payload)

    async def get_market(self, condition_id: str) -> dict[str, Any]:
        """The raw CLOB ``/markets/{condition_id}`` object (Polymarket's snake_case)."""
        payload = await self._clob.get(f"/markets/{path_segment(condition_id)}")
        if not isinstance(payload, dict):
            raise SkillError("GET /markets answered an unexpected shape")
        return payload

    async def get_market_state(self, condition_id: str) -> MarketState | None:
        """The market's trading state; None when the exchange does not know the market."""
        try:
            payload = await self.get_market(condition_id)
        except NotFoundOnExchange:
            return None
        return parse_market_state(condition_id, payload)

    async def market_of_token(self, token_id: str) -> str | None:
        """The condition id of the token's market (cached); None for an unknown token."""
        try:
            return await self.condition_id_for(token_id)
        except NotFoundOnExchange:
            return None

    async def condition_id_for(self, token_id: str) -> str:
        cached = self._condition_by_token.get(token_id)
        if cached is not None:
            return cached
        payload = await self._clob.get(f"/markets-by-token/{path_segment(token_id)}")
        condition_id = payload.get("condition_id") if isinstance(payload, dict) else None
        if not isinstance(condition_id, str) or not condition_id:
            raise SkillError(f"no market for token {token_id}")
        _remember(self._condition_by_token, token_id, condition_id, self._cache_size)
        return condition_id

    async def market_info(self, token_id: str, *, refresh: bool = False) -> MarketInfo:
        """Tick size, min size, neg-risk and fee curve of ``token_id``'s market (cached)."""
        condition_id = await self.condition_id_for(token_id)
        cached = self._market_info.get(condition_id)
        if cached is not None and not refresh and cached[0] > self._clock():
            return cached[1]
        payload = await self._clob.get(f"/clob-markets/{path_segment(condition_id)}")
        if not isinstance(payload, dict):
            raise SkillError("GET /clob-markets answered an unexpected shape")
        info = _parse_market_info(condition_id, payload)
        for token in info.token_ids:
            _remember(self._condition_by_token, token, condition_id, self._cache_size)
        entry = (self._clock() + self._ttl_s, info)
        _remember(self._market_info, condition_id, entry, self._cache_size)
        return info

    async def exchange_version(self, *, refresh: bool = False) -> int:
        if self._version is None or refresh:
            payload = await self._clob.get("/version")
            version = payload.get("version") if isinstance(payload, dict) else None
            self._version = int(version) if isinstance(version, int | str) else 2
        return self._version

    async def lookup_market_slug(self, condition_id: str) -> str | None:
        """The Gamma slug of a market, or None on any failure (one short try)."""
        try:
            payload = await self._gamma.get(
                "/markets",
                {"condition_ids": condition_id},
                timeout_s=self._gamma_timeout_s,
                attempts=1,
            )
        except SkillError as error:
            logger.info("gamma_slug_lookup_failed", extra={"error": error.code})
            return None
        if isinstance(payload, list) and payload and isinstance(payload[0], dict):
            slug = payload[0].get("slug")
            return slug if isinstance(slug, str) and slug else None
        return None

    async def assert_tradable(self, condition_id: str) -> None:
        """Raise ``MarketClosed`` when the CLOB says the market is closed or not accepting."""
        market = await self.get_market(condition_id)
        if market.get("closed") is True or market.get("accepting_orders") is False:
            raise MarketClosed(f"market {condition_id} is closed or not accepting orders")


def _remember(cache: dict[K, V], key: K, value: V, size: int) -> None:
    """Store ``key`` → ``value``, forgetting the oldest entries past ``size``.

    Keys come from clients (any token id an agent names): unbounded, they would grow
    until the process runs out of memory.
    """
    cache.pop(key, None)
    while cache and len(cache) >= size:
        del cache[next(iter(cache))]
    cache[key] = value


def _parse_market_info(condition_id: str, payload: dict[str, Any]) -> MarketInfo:
    tokens = payload.get("t")
    token_ids = tuple(
        str(t["t"]) for t in (tokens if isinstance(tokens, list) else []) if isinstance(t, dict)
    )
    fee = payload.get("fd") if isinstance(payload.get("fd"), dict) else {}
    assert isinstance(fee, dict)
    return MarketInfo(
        condition_id=condition_id,
        token_ids=token_ids,
        tick_size=to_decimal(payload.get("mts")) or Decimal("0.01"),
        min_order_size=to_decimal(payload.get("mos")) or Decimal(0),
        neg_risk=bool(payload.get("nr", False)),
        fee_rate=to_decimal(fee.get("r")) or Decimal(0),
        fee_exponent=to_decimal(fee.get("e")) or Decimal(0),
    )
