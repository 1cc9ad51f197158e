"""OCO groups (one cancels the other): the group's transitions, in the caller's transaction.

A group is rules of one secret and one token sharing ``oco_group_id``. When one fires, its
claim pauses the others (``oco_paused_by`` = the fired rule, still ACTIVE) so they cannot
fire while it executes; when its sell fills they become CANCELED (``RULE_CANCELED``
``{"reason": "oco", "firedRuleId"}``); when it ends without selling they watch again. Every
write is one conditional UPDATE, committed with the fired rule's own transition, so a crash
leaves the group exactly as consistent as the rule (reconciliation settles both at once).
Never commits; the caller owns the transaction.
"""

from __future__ import annotations

from datetime import datetime
from typing import cast

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from vincent.db.base import utcnow
from vincent.db.leader_epoch import leads_under
from vincent.db.models import TradeRule
from vincent.enums import TradeRuleEventType, TradeRuleStatus
from vincent.errors import ValidationFailed
from vincent.services.trade_manager.event_logger import log_event
from vincent.services.trade_manager.rule_manager import mark_rule_triggered
from vincent.services.trade_manager.types import RuleSnapshot
from vincent.skills.polymarket.types import ClaimGuard

OCO_REASON = "oco"


async def check_group_token(
    session: AsyncSession, secret_id: str, group_id: str, token_id: str
) -> None:
    """Refuse a rule joining a group that holds another token's rules (400, ``ocoGroupId``)."""
    other = (
        await session.execute(
            sa.select(TradeRule.token_id)
            .where(
                TradeRule.secret_id == secret_id,
                TradeRule.oco_group_id == group_id,
                TradeRule.token_id != token_id,
            )
            .limit(1)
        )
    ).scalar_one_or_none()
    if other is not None:
        message = (
            f"ocoGroupId {group_id} holds rules of token {other}: a group is one token's "
            f"rules, was tokenId {token_id}"
        )
        raise ValidationFailed(
            message, details=[{"code": "custom", "path": ["ocoGroupId"], "message": message}]
        )


async def claim_rule(
    session: AsyncSession,
    rule: RuleSnapshot,
    now: datetime,
    *,
    leader_epoch: int | None = None,
    guard: ClaimGuard | None = None,
) -> bool:
    """Claim ``rule`` (ACTIVE → TRIGGERED) and pause its group. True only for the one winner.

    A rule paused by a sibling cannot be claimed. On PostgreSQL the group's rows are locked
    in id order first, so two siblings firing at once queue instead of deadlocking (SQLite
    serialises writers anyway). ``leader_epoch``: the claim's UPDATE also requires that
    epoch to be current, share-locking it until the transaction ends (``leads_under``).
    ``guard``: a further condition of the same UPDATE (the skill's, ``ActionClaim``).
    """
    conditions = [] if guard is None else [guard.condition]
    params = {} if guard is None else dict(guard.params)
    if leader_epoch is not None:
        fence_condition, fence_params = leads_under(leader_epoch)
        conditions.append(fence_condition)
        params.update(fence_params)
    fence = sa.and_(*conditions) if conditions else None
    group_id = rule.oco_group_id
    if group_id is None:
        return await mark_rule_triggered(session, rule.id, now, fence=fence, params=params)
    in_group = (TradeRule.secret_id == rule.secret_id, TradeRule.oco_group_id == group_id)
    if (await session.connection()).dialect.name == "postgresql":
        await session.execute(
            sa.select(TradeRule.id).where(*in_group).order_by(TradeRule.id).with_for_update()
        )
    claimed = await session.execute(
        sa.update(TradeRule)
        .where(
            TradeRule.id == rule.id,
            TradeRule.status == TradeRuleStatus.ACTIVE,
            TradeRule.oco_paused_by.is_(None),
            sa.true() if fence is None else fence,
        )
        .values(status=TradeRuleStatus.TRIGGERED, triggered_at=now, updated_at=now)
        .execution_options(synchronize_session=False),
        params,
    )
    if _rowcount(claimed) != 1:
        return False
    await session.execute(PAUSE_SIBLINGS, pause_params(rule, now))
    return True


# The claim's further condition for a rule in a group: no sibling paused it
# (``claim_rule``'s), built once.
NOT_PAUSED: sa.ColumnElement[bool] = cast(sa.Table, TradeRule.__table__).c.oco_paused_by.is_(None)


def _pause_siblings() -> sa.Update:
    rules = cast(sa.Table, TradeRule.__table__)
    fired = sa.bindparam("oco_fired_id", type_=rules.c.id.type)
    return (
        sa.update(rules)
        .where(
            rules.c.secret_id == sa.bindparam("oco_secret_id", type_=rules.c.secret_id.type),
            rules.c.oco_group_id == sa.bindparam("oco_group", type_=rules.c.oco_group_id.type),
            rules.c.id != fired,
            rules.c.status == TradeRuleStatus.ACTIVE,
        )
        .values(
            oco_paused_by=fired, updated_at=sa.bindparam("oco_now", type_=rules.c.updated_at.type)
        )
    )


# The pause of the fired rule's siblings, built once: ``claim_rule``'s, and a claim's run
# as statements (``ClaimSteps``, SQLite: its write lock serialises the group's claims, no
# row locks needed); ``pause_params`` fills it.
PAUSE_SIBLINGS = _pause_siblings()


def pause_params(rule: RuleSnapshot, now: datetime) -> dict[str, object]:
    """``PAUSE_SIBLINGS``'s parameters for the fired ``rule`` (in a group)."""
    return {
        "oco_fired_id": rule.id,
        "oco_secret_id": rule.secret_id,
        "oco_group": rule.oco_group_id,
        "oco_now": now,
    }


async def cancel_paused_siblings(
    session: AsyncSession, fired_rule_id: str, now: datetime | None = None
) -> list[str]:
    """The fired rule sold: its paused siblings → CANCELED with ``RULE_CANCELED`` (oco)."""
    now = now or utcnow()
    result = await session.execute(
        sa.update(TradeRule)
        .where(
            TradeRule.oco_paused_by == fired_rule_id,
            TradeRule.status == TradeRuleStatus.ACTIVE,
        )
        .values(status=TradeRuleStatus.CANCELED, oco_paused_by=None, updated_at=now)
        .returning(TradeRule.id)
        .execution_options(synchronize_session=False)
    )
    canceled = list(result.scalars().all())
    for rule_id in canceled:
        log_event(
            session,
            rule_id,
            TradeRuleEventType.RULE_CANCELED,
            {"reason": OCO_REASON, "firedRuleId": fired_rule_id},
        )
    return canceled


async def release_paused_siblings(
    session: AsyncSession, fired_rule_id: str, now: datetime | None = None
) -> list[str]:
    """The fired rule ended without a sell: its siblings watch again."""
    result = await session.execute(
        sa.update(TradeRule)
        .where(TradeRule.oco_paused_by == fired_rule_id)
        .values(oco_paused_by=None, updated_at=now or utcnow())
        .returning(TradeRule.id)
        .execution_options(synchronize_session=False)
    )
    return list(result.scalars().all())


def _rowcount(result: object) -> int:
    return int(getattr(result, "rowcount", 0))
