"""How many shares a fired rule sells. No I/O.

Market SELL sizes carry at most 2 decimals on the exchange; sizes are rounded DOWN so the
order never asks for more than the position holds.
"""

from __future__ import annotations

from decimal import ROUND_DOWN, Decimal

from vincent.services.trade_manager.types import ActionType, RuleAction

SHARE_STEP = Decimal("0.01")


def sell_shares(shares_held: Decimal, requested: Decimal | None = None) -> Decimal:
    """Return ``min(requested, held)`` (all held when ``requested`` is None), rounded down.

    The result is a multiple of 0.01, never above ``shares_held``, and 0 when nothing can be
    sold (the caller fails the rule then).
    """
    wanted = shares_held if requested is None else min(requested, shares_held)
    if not wanted > 0:
        return Decimal(0)
    # Down, never up: selling more than is held would be refused, or sell shares not ours.
    return wanted.quantize(SHARE_STEP, rounding=ROUND_DOWN)


def sell_size(action: RuleAction, shares_held: Decimal) -> Decimal | None:
    """Return the shares ``action`` sells out of ``shares_held``, or None when nothing.

    SELL_ALL sells every held share, SELL_PARTIAL ``min(amount, held)``; both rounded down to
    0.01 share. Raise ``ValueError`` for a SELL_PARTIAL without a positive amount.
    """
    requested = None
    if action.type is ActionType.SELL_PARTIAL:
        if action.amount is None or not action.amount > 0:
            raise ValueError(f"SELL_PARTIAL amount must be positive, was {action.amount}")
        requested = action.amount
    size = sell_shares(shares_held, requested)
    return size if size > 0 else None
