"""Typed skill errors: the class says whether to retry. Callers never match message text.

VincentError
└── SkillError                      code, message, details
    ├── TransientSkillError         retry later (retry_after_s when the exchange said)
    │   ├── ExchangeUnavailable     5xx of a read, connection refused (nothing sent)
    │   ├── RateLimited             429
    │   ├── ExchangeTimeout         no answer, and nothing was accepted
    │   ├── UnknownOutcome          order sent, answer lost or ambiguous (5xx, 408, 425,
    │                               dropped, unreadable, or still delayed/live): it may
    │                               have filled. Resolve by order id, never re-sign.
    │   └── OrderNotPlaced          not found by id, and its re-post refused as invalid
    │                               (not as a duplicate): known dead, sign anew
    ├── LeaderDeposed               a rule's order refused: the worker that claimed it no
    │                               longer leads (nothing written, nothing sent); the new
    │                               leader owns the rule
    ├── ClaimLost                   the request's ``claim`` found the rule moved on:
    │                               nothing written, nothing sent
    ├── StaleHoldings               the position handed in predates a BUY of the secret:
    │                               nothing written or sent; read it again
    └── PermanentSkillError         do not retry the same action
        ├── InsufficientBalance     not enough balance / allowance
        ├── NoLiquidity             a FOK/FAK found nothing (or not enough) to match
        ├── MarketClosed            closed, resolved or not accepting orders
        ├── InvalidOrder            tick, size, precision, signature, version
        │   ├── OrderVersionMismatch    signed for another exchange version (re-read, retry once)
        │   ├── TickSizeChanged         price off the market's current tick (refresh, retry once)
        │   └── DuplicateOrder          this very signed order already reached the exchange
        ├── WalletError             the secret's wallet cannot be used
        ├── NoPosition              nothing held to sell
        └── SettlementFailed        matched, but the trade's settlement reverted on chain
"""

from __future__ import annotations

from typing import Any

from vincent.errors import VincentError


class SkillError(VincentError):
    code = "BET_FAILED"
    default_message = "Polymarket bet failed"


class TransientSkillError(SkillError):
    def __init__(
        self, message: str | None = None, *, retry_after_s: float | None = None, details: Any = None
    ) -> None:
        super().__init__(message, details=details)
        self.retry_after_s = retry_after_s


class ExchangeUnavailable(TransientSkillError):
    code = "EXCHANGE_UNAVAILABLE"


class RateLimited(TransientSkillError):
    code = "RATE_LIMITED"


class ExchangeTimeout(TransientSkillError):
    code = "EXCHANGE_TIMEOUT"


class UnknownOutcome(TransientSkillError):
    code = "UNKNOWN_OUTCOME"

    def __init__(
        self,
        message: str | None = None,
        *,
        transaction_log_id: str | None = None,
        order_id: str | None = None,
        retry_after_s: float | None = None,
        details: Any = None,
    ) -> None:
        super().__init__(message, retry_after_s=retry_after_s, details=details)
        self.transaction_log_id = transaction_log_id
        self.order_id = order_id


class OrderNotPlaced(TransientSkillError):
    """The exchange has no trace of the order and refused the same signed order again
    (not as a duplicate): it was never placed, so a new order may be signed."""

    code = "ORDER_NOT_PLACED"


class LeaderDeposed(SkillError):
    """The trade manager's worker that claimed the rule was deposed (its leadership epoch
    is no longer the current one): its order was neither stored nor posted. Neither
    transient nor permanent for the caller: it must record nothing, the new leader
    settles the rule."""

    code = "LEADER_DEPOSED"


class ClaimLost(SkillError):
    """The request's ``claim`` did not win (the rule was no longer ACTIVE): nothing was
    written or sent. Not a failure of the action: there is no action."""

    code = "CLAIM_LOST"


class StaleHoldings(SkillError):
    """``shares_held`` was read before the secret's latest BUY: nothing was written or
    sent; the caller reads the position again and asks once more."""

    code = "STALE_HOLDINGS"


class PermanentSkillError(SkillError):
    pass


class InsufficientBalance(PermanentSkillError):
    code = "INSUFFICIENT_BALANCE"


class NoLiquidity(PermanentSkillError):
    code = "NO_LIQUIDITY"


class MarketClosed(PermanentSkillError):
    code = "MARKET_CLOSED"


class InvalidOrder(PermanentSkillError):
    code = "INVALID_ORDER"


class OrderVersionMismatch(InvalidOrder):
    code = "ORDER_VERSION_MISMATCH"


class TickSizeChanged(InvalidOrder):
    code = "TICK_SIZE_CHANGED"


class DuplicateOrder(InvalidOrder):
    """The exchange already has this signed order: proof that an earlier post arrived."""

    code = "DUPLICATE_ORDER"


class WalletError(PermanentSkillError):
    code = "WALLET_ERROR"


class NoPosition(PermanentSkillError):
    code = "NO_POSITION"


class SettlementFailed(PermanentSkillError):
    """The order matched but its trade went MATCHED → RETRYING → FAILED: nothing was sold."""

    code = "SETTLEMENT_FAILED"


def error_from_code(code: object, message: str, *, retryable: bool) -> SkillError:
    """Rebuild the typed error an audit row recorded (by its stable ``code``)."""
    for cls in _ALL_ERRORS:
        if cls.code == code:
            return cls(message)
    return TransientSkillError(message) if retryable else PermanentSkillError(message)


def is_retryable(error: BaseException) -> bool:
    """Whether the same action may be tried again later (a pure function of the error)."""
    return isinstance(error, TransientSkillError)


# Most specific first: subclasses share no codes with their parents except by design.
_ALL_ERRORS: tuple[type[SkillError], ...] = (
    ExchangeUnavailable,
    RateLimited,
    ExchangeTimeout,
    UnknownOutcome,
    OrderNotPlaced,
    InsufficientBalance,
    NoLiquidity,
    MarketClosed,
    OrderVersionMismatch,
    TickSizeChanged,
    DuplicateOrder,
    InvalidOrder,
    WalletError,
    NoPosition,
    SettlementFailed,
)
