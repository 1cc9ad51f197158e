"""Exchange refusals (Polymarket's own texts) map to error classes; policies decide purely."""

from __future__ import annotations

from decimal import Decimal

import pytest

from vincent.enums import PolicyType
from vincent.policies.config import parse_config
from vincent.policies.evaluator import (
    ActionFacts,
    PolicyRule,
    SpendingWindows,
    Verdict,
    evaluate,
)
from vincent.skills.polymarket.errors import (
    DuplicateOrder,
    ExchangeUnavailable,
    InsufficientBalance,
    InvalidOrder,
    MarketClosed,
    NoLiquidity,
    OrderVersionMismatch,
    RateLimited,
    SkillError,
    TickSizeChanged,
    WalletError,
    is_retryable,
)
from vincent.skills.polymarket.exchange_errors import classify_refusal


@pytest.mark.parametrize(
    ("status", "message", "expected"),
    [
        (400, "not enough balance / allowance", InsufficientBalance),
        (
            400,
            "order couldn't be fully filled. FOK orders are fully filled or killed.",
            NoLiquidity,
        ),
        (
            400,
            "no orders found to match with FAK order. FAK orders are partially filled or killed "
            "if no match is found.",
            NoLiquidity,
        ),
        (400, "market is closed", MarketClosed),
        (404, "No orderbook exists for the requested token id", MarketClosed),
        (400, "order 0xab is invalid. Duplicated.", DuplicateOrder),
        (400, "order_version_mismatch", OrderVersionMismatch),
        (400, "invalid order version, please use the latest clob-client", OrderVersionMismatch),
        (
            400,
            "order 0xab is invalid. Price (0.455) breaks minimum tick size rule: 0.01",
            TickSizeChanged,
        ),
        (400, "order 0xab is invalid. Size (1) lower than the minimum: 5", InvalidOrder),
        (400, "invalid signature", InvalidOrder),
        (401, "Unauthorized/Invalid api key", WalletError),
        (400, "maker address not allowed, please use the deposit wallet flow", WalletError),
        (429, "Too Many Requests", RateLimited),
        (503, "Internal Server Error", ExchangeUnavailable),
    ],
)
def test_refusals_map_to_their_class(status: int, message: str, expected: type[SkillError]) -> None:
    error = classify_refusal(message, status=status)

    assert type(error) is expected
    assert is_retryable(error) == (status in (429, 503))
    assert error.details == {"status": status, "exchangeMessage": message}


def rule(policy_type: PolicyType, config: dict[str, object]) -> PolicyRule:
    return PolicyRule(f"p-{policy_type.value}", policy_type, parse_config(policy_type, config))


NOTHING_SPENT = SpendingWindows(Decimal(0), Decimal(0))


def test_deny_phase_wins_over_the_approval_phase() -> None:
    rules = [
        rule(PolicyType.REQUIRE_APPROVAL, {"enabled": True}),
        rule(PolicyType.SPENDING_LIMIT_PER_TX, {"maxUsd": 1}),
    ]

    decision = evaluate(rules, ActionFacts(Decimal(2), "1", "0xc"), NOTHING_SPENT)

    assert decision.verdict is Verdict.DENY
    assert decision.policy_type is PolicyType.SPENDING_LIMIT_PER_TX


def test_no_policies_allow_even_an_unknown_value() -> None:
    assert evaluate([], ActionFacts(None, "1", None), NOTHING_SPENT).verdict is Verdict.ALLOW


def test_allowlist_accepts_token_ids_and_condition_ids_in_any_case() -> None:
    rules = [rule(PolicyType.MARKET_ALLOWLIST, {"markets": ["0xABC", "42"]})]

    by_condition = evaluate(rules, ActionFacts(Decimal(1), "7", "0xabc"), NOTHING_SPENT)
    by_token = evaluate(rules, ActionFacts(Decimal(1), "42", "0xother"), NOTHING_SPENT)
    neither = evaluate(rules, ActionFacts(Decimal(1), "7", "0xother"), NOTHING_SPENT)

    assert by_condition.verdict is by_token.verdict is Verdict.ALLOW
    assert neither.reason == "Market 0xother is not in the allowlist"


def test_a_limit_at_exactly_the_maximum_is_allowed() -> None:
    rules = [rule(PolicyType.SPENDING_LIMIT_DAILY, {"maxUsd": 25})]
    windows = SpendingWindows(Decimal(15), Decimal(15))

    assert evaluate(rules, ActionFacts(Decimal(10), "1", None), windows).verdict is Verdict.ALLOW
    assert evaluate(rules, ActionFacts(Decimal("10.01"), "1", None), windows).verdict is (
        Verdict.DENY
    )
