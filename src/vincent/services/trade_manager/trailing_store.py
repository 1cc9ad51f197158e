"""Bulk trailing-stop writes: raise many triggers with one statement per chunk of rules.

Only raises: a level lands only on an ACTIVE trailing stop whose stored trigger is lower.
Activations land once (``activated_at`` only where NULL). Writes no events and never
commits; the caller owns the transaction.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from vincent.db.models import TradeRule
from vincent.enums import TradeRuleStatus, TradeRuleType

# Rules per UPDATE: two bound values each, far below SQLite's 32,766 and asyncpg's 32,767.
CHUNK_ROWS = 500

_T = TypeVar("_T")


def chunked(items: Sequence[_T], size: int) -> Iterator[Sequence[_T]]:
    """Split ``items`` into consecutive runs of at most ``size`` (the last may be shorter)."""
    if size < 1:
        raise ValueError(f"size must be at least 1, was {size}")
    for start in range(0, len(items), size):
        yield items[start : start + size]


def statement_rows(rows: int) -> int:
    """The VALUES size that carries ``rows`` levels: a power of two, at most ``CHUNK_ROWS``.

    Few distinct sizes keep every statement in the compiled cache (a miss costs ~10 ms).
    """
    if not 1 <= rows <= CHUNK_ROWS:
        raise ValueError(f"rows must be between 1 and {CHUNK_ROWS}, was {rows}")
    return min(CHUNK_ROWS, 1 << (rows - 1).bit_length())


@functools.lru_cache(maxsize=16)
def _raise_statement(rows: int) -> sa.Update:
    # A VALUES list read through column1/column2 works on both engines: SQLite has no column
    # aliases on a derived table (``AS levels (id, ...)``). The casts give PostgreSQL the types
    # of otherwise untyped parameters.
    values = ", ".join(
        f"(CAST(:id_{i} AS VARCHAR), CAST(:trigger_{i} AS DOUBLE PRECISION))" for i in range(rows)
    )
    levels = (
        sa.text(
            f"SELECT column1 AS id, column2 AS new_trigger FROM (VALUES {values}) AS level_rows"
        )
        .columns(sa.column("id", sa.String), sa.column("new_trigger", sa.Double))
        .subquery("levels")
    )
    # One statement both decides and writes, so a rule canceled or claimed meanwhile is
    # never touched (PostgreSQL re-checks the WHERE after waiting for the row lock).
    return (
        sa.update(TradeRule)
        .where(
            TradeRule.id == levels.c.id,
            TradeRule.status == TradeRuleStatus.ACTIVE,
            TradeRule.rule_type == TradeRuleType.TRAILING_STOP,
            TradeRule.trigger_price < levels.c.new_trigger,
        )
        .values(
            trigger_price=levels.c.new_trigger,
            updated_at=sa.bindparam("now", type_=TradeRule.__table__.c.updated_at.type),
        )
        .returning(TradeRule.id)
        .execution_options(synchronize_session=False)
    )


async def raise_trailing_triggers(
    session: AsyncSession, levels: Mapping[str, Decimal], now: datetime
) -> set[str]:
    """Raise each rule's stored trigger to its level where that is higher; return who moved.

    A rule that is no longer ACTIVE, is not a trailing stop, or already has this level or a
    higher one is left as it is. Runs ``ceil(len(levels) / CHUNK_ROWS)`` statements.
    """
    moved: set[str] = set()
    for chunk in chunked(list(levels.items()), CHUNK_ROWS):
        params: dict[str, Any] = {"now": now}
        for i, (rule_id, level) in enumerate(chunk):
            params[f"id_{i}"] = rule_id
            params[f"trigger_{i}"] = float(level)
        rows = statement_rows(len(chunk))
        for i in range(len(chunk), rows):
            # Padding: a NULL id matches no rule.
            params[f"id_{i}"] = params[f"trigger_{i}"] = None
        result = await session.execute(_raise_statement(rows), params)
        moved.update(result.scalars().all())
    return moved


async def activate_trailing_stops(
    session: AsyncSession, rule_ids: Sequence[str], now: datetime
) -> set[str]:
    """Mark dormant ACTIVE trailing stops activated; return the ones this call woke.

    ``activated_at`` is written only where it is still NULL, so an activation seen twice
    (a flush retried, a claim after a flush) is stored and reported once.
    """
    woken: set[str] = set()
    for chunk in chunked(list(rule_ids), CHUNK_ROWS):
        result = await session.execute(
            sa.update(TradeRule)
            .where(
                TradeRule.id.in_(chunk),
                TradeRule.status == TradeRuleStatus.ACTIVE,
                TradeRule.rule_type == TradeRuleType.TRAILING_STOP,
                TradeRule.activation_price.is_not(None),
                TradeRule.activated_at.is_(None),
            )
            .values(activated_at=now, updated_at=now)
            .returning(TradeRule.id)
            .execution_options(synchronize_session=False)
        )
        woken.update(result.scalars().all())
    return woken
