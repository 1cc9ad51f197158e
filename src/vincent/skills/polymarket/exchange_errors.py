"""Exchange refusals and SDK failures → the typed skill errors. Pure, no I/O.

The only place that reads Polymarket's error texts; everything above it branches on
error classes (``is_retryable``), never on messages.
"""

from __future__ import annotations

import httpx
from polymarket.errors import (
    InsufficientLiquidityError,
    RateLimitError,
    RequestRejectedError,
    SigningError,
    TransportError,
    UnexpectedResponseError,
    UserInputError,
)
from polymarket.models.clob.order_response import RejectedOrder

from vincent.skills.polymarket.errors import (
    DuplicateOrder,
    ExchangeTimeout,
    ExchangeUnavailable,
    InsufficientBalance,
    InvalidOrder,
    MarketClosed,
    NoLiquidity,
    OrderVersionMismatch,
    RateLimited,
    SkillError,
    TickSizeChanged,
    UnknownOutcome,
    WalletError,
)

# Answers to an order POST that do not say whether the matcher took it: a gateway's error
# (5xx), a request timeout (408) or "too early" (425). The order may have been matched.
AMBIGUOUS_STATUSES = frozenset({408, 425})


def is_ambiguous_status(status: int) -> bool:
    """Whether an HTTP answer to an order POST leaves its outcome unknown."""
    return status >= 500 or status in AMBIGUOUS_STATUSES


_NO_LIQUIDITY = ("fok orders are fully filled or killed", "no orders found to match", "no match")
_CLOSED = ("market is closed", "closed", "resolved", "not accepting", "not yet ready")


def classify_refusal(message: str, *, status: int = 400, code: str | None = None) -> SkillError:
    """The skill error for an exchange refusal of an order (HTTP 4xx or success=false)."""
    text = message.lower()
    details = {"status": status, "exchangeMessage": message}
    if status == 429:
        return RateLimited(message, details=details)
    if status >= 500:
        return ExchangeUnavailable(f"exchange answered {status}: {message}", details=details)
    if "duplicated" in text:
        return DuplicateOrder(message, details=details)
    if "version" in text or code == "order_version_mismatch":
        return OrderVersionMismatch(message, details=details)
    if "tick size" in text:
        return TickSizeChanged(message, details=details)
    if "balance" in text or "allowance" in text or code == "not_enough_balance":
        return InsufficientBalance(message, details=details)
    if code in ("fok_not_filled", "fak_not_filled", "unmatched") or any(
        token in text for token in _NO_LIQUIDITY
    ):
        return NoLiquidity(message, details=details)
    if code == "market_not_ready" or any(token in text for token in _CLOSED):
        return MarketClosed(message, details=details)
    if status == 401 or "api key" in text or "maker address not allowed" in text:
        return WalletError(message, details=details)
    if "no orderbook" in text:
        return MarketClosed(message, details=details)
    return InvalidOrder(message, details=details)


def classify_rejected_order(rejected: RejectedOrder) -> SkillError:
    return classify_refusal(rejected.message, status=400, code=rejected.code)


def classify_sdk_error(error: BaseException, *, order_sent: bool = False) -> SkillError:
    """Map an SDK exception. ``order_sent``: a POST of an order was written, so a lost,
    ambiguous (5xx, 408, 425) or unreadable answer is an ``UnknownOutcome``; only a
    connection that never opened is safe to retry."""
    if isinstance(error, RateLimitError):
        return RateLimited(str(error), retry_after_s=error.retry_after)
    if isinstance(error, RequestRejectedError):
        if order_sent and is_ambiguous_status(error.status):
            # A gateway answered for a matcher that may have taken the order.
            return UnknownOutcome(
                f"order sent, exchange answered {error.status}: {error}",
                retry_after_s=error.retry_after,
                details={"status": error.status},
            )
        classified = classify_refusal(str(error), status=error.status, code=error.code)
        if isinstance(classified, RateLimited | ExchangeUnavailable):
            classified.retry_after_s = error.retry_after
        if error.restriction is not None:
            return MarketClosed(f"trading restricted ({error.restriction}): {error}")
        return classified
    if isinstance(error, TransportError):
        cause = error.__cause__
        if isinstance(cause, httpx.ConnectError | httpx.ConnectTimeout):
            # The connection never opened: nothing reached the exchange.
            return ExchangeUnavailable(f"cannot reach the exchange: {type(cause).__name__}")
        if order_sent:
            return UnknownOutcome(f"order sent, answer lost: {type(cause).__name__}")
        if isinstance(cause, httpx.TimeoutException):
            return ExchangeTimeout("the exchange did not answer in time")
        return ExchangeUnavailable(f"exchange connection failed: {type(cause).__name__}")
    if isinstance(error, InsufficientLiquidityError):
        return NoLiquidity(f"not enough liquidity on the book: {error}")
    if isinstance(error, UserInputError):
        return InvalidOrder(str(error))
    if isinstance(error, SigningError):
        return WalletError("the order could not be signed")
    if isinstance(error, UnexpectedResponseError | ValueError):
        if order_sent:
            return UnknownOutcome(f"order sent, unreadable answer: {error}")
        return ExchangeUnavailable(f"unexpected exchange answer: {error}")
    if order_sent:
        return UnknownOutcome(f"order sent, {type(error).__name__}: {error}")
    return SkillError(f"{type(error).__name__}: {error}")
