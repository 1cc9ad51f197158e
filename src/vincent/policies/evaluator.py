"""Policy evaluation: allow, deny or ask the owner. Pure, no I/O.

Two phases as in Vincent: the deny phase (spending limits, market allowlist) — first hit
wins, ``approvalOverride`` turns its denial into an approval request — then the approval
phase (REQUIRE_APPROVAL, APPROVAL_THRESHOLD). No policies → allow. Money is in real USD.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from enum import StrEnum

from vincent.enums import PolicyType
from vincent.policies.config import (
    ApprovalThresholdConfig,
    MarketAllowlistConfig,
    PolicyConfig,
    RequireApprovalConfig,
    SpendingLimitConfig,
)


class Verdict(StrEnum):
    ALLOW = "allow"
    DENY = "deny"
    REQUIRE_APPROVAL = "require_approval"


@dataclass(frozen=True, slots=True)
class PolicyRule:
    policy_id: str
    policy_type: PolicyType
    config: PolicyConfig


@dataclass(frozen=True, slots=True)
class ActionFacts:
    """What the policies look at: value (None = unknown), the market and the token."""

    usd_value: Decimal | None
    token_id: str
    condition_id: str | None


@dataclass(frozen=True, slots=True)
class SpendingWindows:
    """USD of this secret's executed and in-flight actions in the rolling last 24 h and
    7 days (see ``repository.NOT_SPENDING``)."""

    daily_usd: Decimal
    weekly_usd: Decimal


@dataclass(frozen=True, slots=True)
class Decision:
    verdict: Verdict
    reason: str | None = None
    policy_type: PolicyType | None = None
    policy_id: str | None = None


ALLOW = Decision(Verdict.ALLOW)
UNKNOWN_VALUE_DENY = "Unable to determine USD value of transaction"
UNKNOWN_VALUE_APPROVAL = "Unable to determine USD value; requiring approval as a precaution"

_DENY_ORDER = (
    PolicyType.MARKET_ALLOWLIST,
    PolicyType.SPENDING_LIMIT_PER_TX,
    PolicyType.SPENDING_LIMIT_DAILY,
    PolicyType.SPENDING_LIMIT_WEEKLY,
)


def usd(value: Decimal) -> str:
    """Money as Vincent prints it: ``$12.30``."""
    return "$" + str(value.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP))


def evaluate(
    rules: Sequence[PolicyRule], action: ActionFacts, windows: SpendingWindows
) -> Decision:
    """Decide on ``action`` under ``rules`` given what was already spent."""
    by_type = {rule.policy_type: rule for rule in rules}
    for policy_type in _DENY_ORDER:
        rule = by_type.get(policy_type)
        if rule is None:
            continue
        reason = _deny_reason(rule, action, windows)
        if reason is not None:
            override = getattr(rule.config, "approval_override", False)
            if override:
                return Decision(
                    Verdict.REQUIRE_APPROVAL,
                    reason + " (requires approval)",
                    policy_type,
                    rule.policy_id,
                )
            return Decision(Verdict.DENY, reason, policy_type, rule.policy_id)
    require = by_type.get(PolicyType.REQUIRE_APPROVAL)
    if (
        require is not None
        and isinstance(require.config, RequireApprovalConfig)
        and require.config.enabled
    ):
        return Decision(
            Verdict.REQUIRE_APPROVAL,
            "All transactions require human approval",
            require.policy_type,
            require.policy_id,
        )
    threshold = by_type.get(PolicyType.APPROVAL_THRESHOLD)
    if threshold is not None and isinstance(threshold.config, ApprovalThresholdConfig):
        limit = threshold.config.threshold_usd
        if action.usd_value is None:
            return Decision(
                Verdict.REQUIRE_APPROVAL,
                UNKNOWN_VALUE_APPROVAL,
                threshold.policy_type,
                threshold.policy_id,
            )
        if action.usd_value > limit:
            return Decision(
                Verdict.REQUIRE_APPROVAL,
                f"Transaction value {usd(action.usd_value)} exceeds approval threshold of "
                f"{usd(limit)}",
                threshold.policy_type,
                threshold.policy_id,
            )
    return ALLOW


def _deny_reason(rule: PolicyRule, action: ActionFacts, windows: SpendingWindows) -> str | None:
    config = rule.config
    if isinstance(config, MarketAllowlistConfig):
        allowed = {m.lower() for m in config.markets}
        if action.token_id.lower() in allowed:
            return None
        if action.condition_id is not None and action.condition_id.lower() in allowed:
            return None
        return f"Market {action.condition_id or action.token_id} is not in the allowlist"
    if not isinstance(config, SpendingLimitConfig):
        return None
    if action.usd_value is None:
        return UNKNOWN_VALUE_DENY
    value, limit = action.usd_value, config.max_usd
    if rule.policy_type is PolicyType.SPENDING_LIMIT_PER_TX:
        if value > limit:
            return f"Transaction value {usd(value)} exceeds per-tx limit of {usd(limit)}"
        return None
    window, spent = (
        ("daily", windows.daily_usd)
        if rule.policy_type is PolicyType.SPENDING_LIMIT_DAILY
        else ("weekly", windows.weekly_usd)
    )
    if spent + value > limit:
        return (
            f"Adding {usd(value)} would exceed {window} limit of {usd(limit)} "
            f"(already spent {usd(spent)})"
        )
    return None


def needs_spending_windows(rules: Sequence[PolicyRule]) -> bool:
    return any(
        r.policy_type in (PolicyType.SPENDING_LIMIT_DAILY, PolicyType.SPENDING_LIMIT_WEEKLY)
        for r in rules
    )


_VALUED = (
    PolicyType.SPENDING_LIMIT_PER_TX,
    PolicyType.SPENDING_LIMIT_DAILY,
    PolicyType.SPENDING_LIMIT_WEEKLY,
    PolicyType.APPROVAL_THRESHOLD,
)


def needs_value(rules: Sequence[PolicyRule]) -> bool:
    """Whether any rule looks at the action's USD value."""
    return any(r.policy_type in _VALUED for r in rules)
