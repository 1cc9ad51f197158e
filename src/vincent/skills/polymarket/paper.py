"""Paper mode: orders fill against the current book (walking its levels) into a ledger.

The ledger is the ``PaperFill`` table; paper holdings are derived from it. The fill math
is ``book_walk`` (pure); this module adds the rows and the position arithmetic.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from decimal import Decimal

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from vincent.audit import transaction_log as audit
from vincent.db.models import PaperFill, TransactionLog
from vincent.enums import TransactionStatus
from vincent.skills.polymarket.actions import StoredAction, response_data
from vincent.skills.polymarket.book_walk import Walk, walk_book
from vincent.skills.polymarket.errors import InvalidOrder, NoLiquidity, SkillError
from vincent.skills.polymarket.orders import Fills
from vincent.skills.polymarket.types import Holding, OrderBook, OrderType, Side


@dataclass(frozen=True, slots=True)
class PaperPosition:
    token_id: str
    condition_id: str | None
    shares: Decimal
    cost_usd: Decimal  # what the shares still held cost, at the average entry price


def paper_walk(
    book: OrderBook,
    side: Side,
    amount: Decimal,
    *,
    order_type: OrderType,
    worst_price: Decimal | None,
    limit_price: Decimal | None,
) -> Walk:
    """The fills a paper order gets now; FOK all-or-nothing, FAK whatever crosses.

    A limit order fills what crosses its price right away; the rest is not rested (paper
    mode has no resting orders) and a limit order that crosses nothing is refused.
    """
    levels = book.asks if side == "BUY" else book.bids
    bound = limit_price if limit_price is not None else worst_price
    walk = walk_book(levels, side, amount, bound)
    if not walk.fills:
        raise NoLiquidity("no orders found to match (paper)")
    if order_type == "FOK" and limit_price is None and not walk.complete:
        raise NoLiquidity("order couldn't be fully filled (paper FOK)")
    return walk


def fill_rows(
    walk: Walk,
    *,
    secret_id: str,
    token_id: str,
    condition_id: str | None,
    side: Side,
    transaction_log_id: str,
) -> list[PaperFill]:
    return [
        PaperFill(
            secret_id=secret_id,
            token_id=token_id,
            condition_id=condition_id,
            side=side,
            shares=fill.shares,
            price=fill.price,
            usd_amount=fill.usd,
            transaction_log_id=transaction_log_id,
        )
        for fill in walk.fills
    ]


MICRO = Decimal("0.000001")


def exact(value: Decimal) -> Decimal:
    """Back to the 6 decimals of collateral units: SQLite keeps NUMERIC as a binary float."""
    return value.quantize(MICRO)


async def record_paper_fills(
    session: AsyncSession, row: TransactionLog, action: StoredAction, walk: Walk
) -> Fills:
    """Write the fills to the paper ledger and the row EXECUTED, in the caller's transaction."""
    fills = Fills(
        order_id=f"paper-{row.id}",
        status="matched",
        filled_shares=walk.shares,
        filled_usd=walk.usd,
        response={
            "paper": True,
            "fills": [{"price": str(f.price), "size": str(f.shares)} for f in walk.fills],
        },
    )
    spec = action.spec
    session.add_all(
        fill_rows(
            walk,
            secret_id=row.secret_id,
            token_id=spec.token_id,
            condition_id=action.condition_id,
            side=spec.side,
            transaction_log_id=row.id,
        )
    )
    moved = await audit.move_status(
        session,
        row.id,
        from_statuses=audit.OPEN_STATUSES,
        to_status=TransactionStatus.EXECUTED,
        order_id=fills.order_id,
        response_data=response_data(fills),
        usd_value=audit.IfUnset(fills.filled_usd),
    )
    if not moved:
        raise SkillError(f"transaction {row.id} was already finished")
    return fills


async def paper_positions(session: AsyncSession, secret_id: str) -> list[PaperPosition]:
    """Net paper positions of ``secret_id`` from its fills, in fill order."""
    rows = (
        await session.scalars(
            sa.select(PaperFill)
            .where(PaperFill.secret_id == secret_id)
            .order_by(PaperFill.created_at, PaperFill.id)
        )
    ).all()
    shares: dict[str, Decimal] = defaultdict(Decimal)
    cost: dict[str, Decimal] = defaultdict(Decimal)
    conditions: dict[str, str | None] = {}
    for row in rows:
        token = row.token_id
        conditions.setdefault(token, row.condition_id)
        row_shares, row_usd = exact(row.shares), exact(row.usd_amount)
        if row.side == "BUY":
            shares[token] += row_shares
            cost[token] += row_usd
        elif shares[token] > 0:
            # A sale removes shares at the average cost, leaving the average unchanged.
            average = cost[token] / shares[token]
            shares[token] -= row_shares
            cost[token] -= average * row_shares
    return [
        PaperPosition(token, conditions[token], shares[token], cost[token])
        for token in shares
        if shares[token] > 0
    ]


def to_holding(position: PaperPosition, current_price: Decimal | None) -> Holding:
    average = position.cost_usd / position.shares if position.shares > 0 else None
    pnl = pnl_percent = None
    if current_price is not None and average is not None:
        pnl = position.shares * current_price - position.cost_usd
        pnl_percent = (pnl / position.cost_usd * 100) if position.cost_usd > 0 else None
    return Holding(
        token_id=position.token_id,
        condition_id=position.condition_id or "",
        shares=position.shares,
        average_entry_price=average,
        current_price=current_price,
        pnl=pnl,
        pnl_percent=pnl_percent,
    )


def require_positive(amount: Decimal) -> None:
    if amount <= 0:
        raise InvalidOrder(f"amount must be positive, was {amount}")
