"""The error mapping: statuses by class, and validation issues that are always valid JSON."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from vincent.api.errors import status_for, zod_issue
from vincent.errors import RuleNotFound, Unauthorized, ValidationFailed, VincentError
from vincent.skills.polymarket.errors import (
    ExchangeTimeout,
    ExchangeUnavailable,
    InsufficientBalance,
    InvalidOrder,
    MarketClosed,
    NoLiquidity,
    NoPosition,
    RateLimited,
    UnknownOutcome,
    WalletError,
)


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (ValidationFailed(), 400),
        (Unauthorized(), 401),
        (RuleNotFound(), 404),
        (RateLimited(retry_after_s=2), 429),
        (UnknownOutcome(), 502),
        (ExchangeUnavailable(), 503),
        (ExchangeTimeout(), 504),
        (InsufficientBalance(), 400),
        (NoPosition(), 400),
        (InvalidOrder(), 400),
        (MarketClosed(), 409),
        (NoLiquidity(), 409),
        (WalletError(), 500),
        (VincentError(), 500),
    ],
)
def test_status_by_error_class(error: VincentError, status: int) -> None:
    assert status_for(error) == status


def test_decimal_bounds_render_as_json_numbers() -> None:
    issue = zod_issue(
        {
            "type": "greater_than",
            "loc": ("body", "amount"),
            "ctx": {"gt": Decimal("0")},
            "input": Decimal("-1.5"),
        }
    )
    assert json.loads(json.dumps(issue)) == {
        "origin": "number",
        "code": "too_small",
        "minimum": 0,
        "inclusive": False,
        "path": ["amount"],
        "message": "Too small: expected number to be >0, was -1.5",
    }
