"""Policy config shapes, one per policy type, validated before anything is stored. No I/O.

Wire shapes (camelCase, as Vincent): ``{"maxUsd": 50, "approvalOverride": false}`` for the
spending limits, ``{"markets": ["0x…" | "<token id>", …]}`` for MARKET_ALLOWLIST,
``{"enabled": true}`` for REQUIRE_APPROVAL, ``{"thresholdUsd": 25}`` for APPROVAL_THRESHOLD.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from vincent.enums import PolicyType
from vincent.errors import ValidationFailed


class _Config(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="ignore", frozen=True)


class SpendingLimitConfig(_Config):
    max_usd: Decimal = Field(alias="maxUsd", gt=0)
    approval_override: bool = Field(default=False, alias="approvalOverride")


# A condition id or token id: short, and nothing a database or URL would choke on (NUL).
MarketEntry = Annotated[
    str, StringConstraints(min_length=1, max_length=100, pattern=r"^[^\x00-\x1f\x7f/?#%\s]+$")
]


class MarketAllowlistConfig(_Config):
    markets: tuple[MarketEntry, ...] = Field(min_length=1, max_length=1000)
    approval_override: bool = Field(default=False, alias="approvalOverride")


class RequireApprovalConfig(_Config):
    enabled: bool


class ApprovalThresholdConfig(_Config):
    threshold_usd: Decimal = Field(alias="thresholdUsd", gt=0)


PolicyConfig = (
    SpendingLimitConfig | MarketAllowlistConfig | RequireApprovalConfig | (ApprovalThresholdConfig)
)

CONFIG_MODELS: dict[PolicyType, type[_Config]] = {
    PolicyType.SPENDING_LIMIT_PER_TX: SpendingLimitConfig,
    PolicyType.SPENDING_LIMIT_DAILY: SpendingLimitConfig,
    PolicyType.SPENDING_LIMIT_WEEKLY: SpendingLimitConfig,
    PolicyType.MARKET_ALLOWLIST: MarketAllowlistConfig,
    PolicyType.REQUIRE_APPROVAL: RequireApprovalConfig,
    PolicyType.APPROVAL_THRESHOLD: ApprovalThresholdConfig,
}


def parse_config(policy_type: PolicyType, raw: dict[str, Any]) -> PolicyConfig:
    """Validate ``raw`` for ``policy_type``; raises ``ValidationFailed`` naming the fields."""
    try:
        parsed = CONFIG_MODELS[policy_type].model_validate(raw)
    except ValidationError as error:
        details = [
            {"path": list(issue["loc"]), "message": issue["msg"]} for issue in error.errors()
        ]
        raise ValidationFailed(details=details) from error
    assert isinstance(
        parsed,
        SpendingLimitConfig
        | MarketAllowlistConfig
        | RequireApprovalConfig
        | ApprovalThresholdConfig,
    )
    return parsed


def config_to_json(config: PolicyConfig) -> dict[str, Any]:
    """The stored (and returned) camelCase JSON of a validated config; numbers as floats."""
    data = config.model_dump(by_alias=True, mode="python")
    return {k: float(v) if isinstance(v, Decimal) else v for k, v in data.items()} | (
        {"markets": list(config.markets)} if isinstance(config, MarketAllowlistConfig) else {}
    )
