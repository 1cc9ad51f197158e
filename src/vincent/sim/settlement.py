"""Trade settlement after a match: MATCHED → MINED → CONFIRMED, or MATCHED → RETRYING → FAILED.

Polymarket settles a match on chain after answering the order; a settlement can revert
(the shares stay with the seller). ``SettlementPlan`` says how long settling takes and
which trades fail; ``advance`` moves every trade whose time has come and undoes the
balance moves of a failed one. No I/O.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from vincent.sim.accounts import Ledger
from vincent.sim.records import TradeRecord

FINAL_STATUSES = frozenset({"CONFIRMED", "FAILED"})


@dataclass(slots=True)
class SettlementPlan:
    """``delay_s``: time from match to the final status (half of it in MINED/RETRYING);
    0 settles at the next request. ``fail_next``: how many of the next trades fail."""

    delay_s: float = 0.0
    fail_next: int = 0

    def take_failure(self) -> bool:
        if self.fail_next <= 0:
            return False
        self.fail_next -= 1
        return True


def advance(
    trades: list[TradeRecord], ledger: Ledger, plan: SettlementPlan, now_s: float
) -> list[TradeRecord]:
    """Move unsettled trades on to the status their age gives them; return those still
    unsettled, in their order (settled trades are never looked at again)."""
    pending: list[TradeRecord] = []
    for trade in trades:
        if trade.status in FINAL_STATUSES:
            continue
        age_s = now_s - trade.ts_match_s
        if age_s >= plan.delay_s:
            trade.status = "FAILED" if trade.fails else "CONFIRMED"
            if trade.fails:
                _undo(trade, ledger)
        elif age_s >= plan.delay_s / 2:
            trade.status = "RETRYING" if trade.fails else "MINED"
            pending.append(trade)
        else:
            pending.append(trade)
            continue
        trade.last_update = int(time.time())
    return pending


def _undo(trade: TradeRecord, ledger: Ledger) -> None:
    # The on-chain transfer reverted: every balance goes back to where it was.
    for move in trade.moves:
        if move.shares:
            ledger.credit_shares(move.address, move.token_id, -move.shares, -move.cost)
        if move.collateral:
            ledger.credit_collateral(move.address, -move.collateral)
