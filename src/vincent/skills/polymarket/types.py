"""The skill's request/result value types and the role the trade manager depends on. No I/O.

``TradingSkill`` is what the worker and the API are given; ``PolymarketSkill`` implements
it against the real exchange (or the local one), paper mode included.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any, Literal, Protocol

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from vincent.enums import TransactionStatus
from vincent.skills.polymarket.errors import SkillError

Side = Literal["BUY", "SELL"]
OrderType = Literal["FOK", "FAK", "GTC", "GTD"]


class BetStatus(StrEnum):
    EXECUTED = "executed"
    DENIED = "denied"
    PENDING_APPROVAL = "pending_approval"
    # The order was sent and its answer was lost or ambiguous: it may have filled. The
    # audit row stays open (UNKNOWN) until it is settled; nothing is sent again meanwhile.
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class Claimed:
    """An ``ActionClaim`` that won: the leadership epoch it was made under (None: no fence)."""

    leader_epoch: int | None


@dataclass(frozen=True, slots=True)
class ClaimGuard:
    """A condition of the skill's that a claim's UPDATE must also meet: ``condition``,
    built once with bound parameters, and this claim's ``params`` for them."""

    condition: sa.ColumnElement[bool]
    params: dict[str, object]


@dataclass(frozen=True, slots=True)
class ClaimStatement:
    """An ``ActionClaim`` as parts of one statement (PostgreSQL's data-modifying ``WITH``):
    ``claimed`` returns one row when the claim wins and none otherwise; ``ctes`` are its
    other writes (its events), which select from ``claimed``; ``params`` bind them all.
    The skill adds the audit row's INSERT, selecting from ``claimed``, and runs the whole
    as one autocommitted statement: claim, events and row commit together or not at all.
    ``won`` is called once that statement wrote them; ``leader_epoch`` as in ``Claimed``.
    """

    claimed: sa.CTE
    ctes: tuple[sa.CTE, ...]
    params: dict[str, object]
    leader_epoch: int | None
    won: Callable[[], None]


@dataclass(frozen=True, slots=True)
class ClaimSteps:
    """An ``ActionClaim`` as statements of one transaction (SQLite, which has no
    data-modifying ``WITH``): ``claim``, an UPDATE that changes one row when the claim wins
    and none otherwise (the transaction then rolls back: nothing is written); ``writes``,
    its other writes (its events, an OCO group's pause), run after it in their order;
    ``params`` bind them all. The skill adds
    the audit row's INSERT last and runs the whole as one call on SQLite's thread.
    ``won`` and ``leader_epoch`` as in ``ClaimStatement``.
    """

    claim: sa.Update
    writes: tuple[sa.Insert | sa.Update, ...]
    params: dict[str, object]
    leader_epoch: int | None
    won: Callable[[], None]


class ActionClaim(Protocol):
    """What the caller writes in the same transaction as the action's audit row, before it
    (a trade rule's claim ACTIVE → TRIGGERED and its events). Returns None when the action
    must not happen (the rule moved on): nothing is written then and ``ClaimLost`` is
    raised. May raise ``LeaderDeposed``. Called at most once per ``place_bet``.

    ``guard``: the skill's own condition (its cached inputs are still current), to be met
    by the claim's UPDATE as well, in the same statement; unmet, the claim returns None.
    """

    async def __call__(
        self, session: AsyncSession, guard: ClaimGuard | None = None
    ) -> Claimed | None: ...

    def statement(self, guard: ClaimGuard | None = None) -> ClaimStatement | None:
        """The claim as parts of one statement, when it can be one (else None: it runs as
        ``__call__`` in a transaction). Only used on PostgreSQL. May raise ``LeaderDeposed``."""
        ...

    def steps(self, guard: ClaimGuard | None = None) -> ClaimSteps | None:
        """The claim as statements of one transaction, when it can be (else None: it runs
        as ``__call__``). Only used on SQLite. May raise ``LeaderDeposed``."""
        ...


@dataclass(frozen=True, slots=True)
class BetRequest:
    """One skill action. BUY ``amount`` is collateral (USD) to spend; SELL ``amount`` is shares.

    ``price`` makes it a limit order (GTC unless ``order_type`` says GTD); without it, a market
    order (FOK unless FAK). ``worst_price`` bounds slippage: the lowest acceptable price of a
    SELL, the highest of a BUY. ``idempotency_key`` makes a retried action land on the same
    audit row and the same signed order. ``rule_id`` ties a pending approval to a trade rule.
    ``leader_epoch``: set by the trade manager's worker on PostgreSQL (the leadership epoch
    its claim was made under); the order is stored only while that epoch is current, else
    ``LeaderDeposed``. None for agents' own bets and on SQLite (one worker).

    The trade manager's hot path (issue 14) adds five: ``claim`` is written in the audit
    row's own transaction (one durable write before the POST; its ``Claimed`` epoch then
    fences later stores); ``stored`` is called once that write committed, just before the
    POST (so the caller can let its next fire sign); ``answered`` is set the moment the
    exchange answered the order's first POST (or nothing will be posted), so the caller
    can free its execution slot while the outcome is recorded; ``shares_held_as_of`` says
    when ``shares_held`` was read: if the secret bought the token since (an EXECUTED,
    PENDING or UNKNOWN BUY written later), the skill raises ``StaleHoldings`` before
    signing, and the caller reads the position again. ``record_gate`` is entered before
    the outcome of an answered order is written (the caller's next fires go first).
    """

    secret_id: str
    token_id: str
    side: Side
    amount: Decimal
    price: Decimal | None = None
    api_key_id: str | None = None
    order_type: OrderType | None = None
    worst_price: Decimal | None = None
    idempotency_key: str | None = None
    rule_id: str | None = None
    shares_held: Decimal | None = None
    leader_epoch: int | None = None
    claim: ActionClaim | None = field(default=None, compare=False)
    answered: asyncio.Event | None = field(default=None, compare=False)
    shares_held_as_of: datetime | None = None
    stored: Callable[[], None] | None = field(default=None, compare=False)
    # Entered before an answered order's outcome is written (``Executor.execute_row``).
    record_gate: Callable[[], contextlib.AbstractAsyncContextManager[None]] | None = field(
        default=None, compare=False
    )


@dataclass(frozen=True, slots=True)
class ExecutedRow:
    """An audit row as the call that moved it to EXECUTED wrote it: what following its
    settlement needs, so ``follow_settlement`` need not read the row back."""

    secret_id: str
    order_id: str
    # The trades the POST answer named when they are all the order will have (FOK/FAK).
    trade_ids: tuple[str, ...]
    response_data: dict[str, Any]


@dataclass(frozen=True, slots=True)
class BetResult:
    """What a skill action came to. Denial and pending approval are results, not errors."""

    status: BetStatus
    transaction_log_id: str
    wallet_address: str
    order_id: str | None = None
    reason: str | None = None
    order_details: dict[str, Any] | None = None
    # Shares sold (SELL) or bought (BUY), and collateral moved, as the exchange reported.
    filled_shares: Decimal | None = None
    filled_usd: Decimal | None = None
    pending_approval_id: str | None = None
    # The row as this call wrote it EXECUTED (None when it did not write it: paper, or
    # another call's record): hand it to ``follow_settlement``. A hand-off, not part of
    # what the action came to: results compare equal with or without it.
    recorded: ExecutedRow | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class Holding:
    """A position of the secret's wallet (Data API positions, or the paper ledger)."""

    token_id: str
    condition_id: str
    shares: Decimal
    average_entry_price: Decimal | None
    current_price: Decimal | None
    pnl: Decimal | None = None
    pnl_percent: Decimal | None = None
    market_title: str | None = None
    market_slug: str | None = None
    outcome: str | None = None
    end_date: str | None = None
    redeemable: bool = False


@dataclass(frozen=True, slots=True)
class BookLevel:
    price: Decimal
    size: Decimal


@dataclass(frozen=True, slots=True)
class OrderBook:
    """A CLOB book. ``bids`` best (highest) first, ``asks`` best (lowest) first."""

    token_id: str
    market: str
    bids: tuple[BookLevel, ...]
    asks: tuple[BookLevel, ...]
    tick_size: Decimal
    min_order_size: Decimal
    neg_risk: bool
    last_trade_price: Decimal | None = None
    raw: dict[str, Any] = field(default_factory=dict, compare=False)


class AttemptOutcome(StrEnum):
    """What became of an action identified by its idempotency key (crash reconciliation)."""

    EXECUTED = "executed"  # the exchange has the order (filled); result carries the order id
    NOT_SENT = "not_sent"  # never reached the exchange, or the exchange has no trace of it
    DENIED = "denied"
    PENDING_APPROVAL = "pending_approval"
    FAILED = "failed"  # refused or killed; ``failure`` says how (retryable, no liquidity...)
    SETTLEMENT_FAILED = "settlement_failed"  # matched, but its settlement reverted


@dataclass(frozen=True, slots=True)
class AttemptResolution:
    """What ``resolve_attempt`` found. A FAILED (or SETTLEMENT_FAILED) one always carries
    the typed error, so a caller decides from the class alone (``is_retryable``,
    ``NoLiquidity``...), never from an audit row."""

    outcome: AttemptOutcome
    result: BetResult | None = None
    message: str | None = None
    failure: SkillError | None = None
    order_id: str | None = None  # the exchange order the action was sent as, if signed

    def __post_init__(self) -> None:
        failed = (AttemptOutcome.FAILED, AttemptOutcome.SETTLEMENT_FAILED)
        if self.outcome in failed and self.failure is None:
            raise ValueError(f"a {self.outcome.value} resolution needs its failure, was None")


class ApprovalState(StrEnum):
    """What became of an action that waited on its owner's approval."""

    WAITING = "waiting"  # not decided yet, or approved and still executing
    EXECUTED = "executed"  # approved and executed: ``result`` carries the order
    DENIED = "denied"  # denied by the owner (or by cancelling the rule it was for)
    EXPIRED = "expired"  # not decided before it expired
    FAILED = "failed"  # approved, then failed or refused: ``message`` says why


@dataclass(frozen=True, slots=True)
class ApprovalResolution:
    """What ``resolve_approvals`` found for one pending approval."""

    state: ApprovalState
    result: BetResult | None = None
    message: str | None = None


class SettlementState(StrEnum):
    """Where an order's trades are on chain (Polymarket trade statuses, summed up)."""

    CONFIRMED = "confirmed"  # every trade CONFIRMED: the sale is final
    SETTLING = "settling"  # some trade still MATCHED, MINED or RETRYING
    FAILED = "failed"  # some trade FAILED: its shares stayed in the wallet
    NONE = "none"  # nothing filled (or paper): nothing to settle


@dataclass(frozen=True, slots=True)
class Settlement:
    """What the exchange reports of an executed action's trades."""

    state: SettlementState
    order_id: str | None = None
    confirmed_shares: Decimal = Decimal(0)
    failed_shares: Decimal = Decimal(0)
    transaction_hashes: tuple[str, ...] = ()
    trade_statuses: tuple[str, ...] = ()


class TradingSkill(Protocol):
    """The Polymarket skill as its callers (routes, trade-manager worker) see it."""

    async def place_bet(self, request: BetRequest) -> BetResult:
        """Check policies, audit, and (if allowed) place the order. Raises ``SkillError``."""
        ...

    async def get_holdings(self, secret_id: str) -> list[Holding]: ...

    async def get_midpoint(self, token_id: str) -> Decimal | None:
        """The CLOB midpoint, or None when the book is one-sided or missing."""
        ...

    async def get_order_book(self, token_id: str) -> OrderBook: ...

    async def resolve_attempt(self, idempotency_key: str) -> AttemptResolution:
        """Find out what became of the action sent with ``idempotency_key``; never re-sign."""
        ...

    async def resolve_approvals(
        self, approval_ids: Collection[str], *, now: datetime
    ) -> dict[str, ApprovalResolution]:
        """What became of each action waiting on an approval, by approval id (ids not
        found are left out); an undecided approval past its expiry at ``now`` is EXPIRED."""
        ...

    async def settle_unknown_actions(
        self, *, older_than: datetime, limit: int = 100
    ) -> list[tuple[str, TransactionStatus]]:
        """Resolve actions left UNKNOWN since before ``older_than`` (never re-signing)."""
        ...

    async def follow_settlement(
        self, transaction_log_id: str, recorded: ExecutedRow | None = None
    ) -> Settlement:
        """Where the executed action's trades are on chain; a FAILED settlement is recorded
        on its audit row (once). ``recorded``: the row as its place_bet wrote it (the row
        is then not read back). Raises ``SkillError`` when the exchange cannot say."""
        ...

    async def prepare(self, secret_id: str, token_id: str) -> None:
        """Warm what the first order would otherwise fetch (SDK client, market info)."""
        ...

    async def warm_claim(self, claim: ActionClaim) -> None:
        """Run the statement a rule's sell is written with once, for a ``claim`` that wins
        nothing, so that a first fire does not pay for preparing it. Writes nothing."""
        ...

    async def keep_warm(self, token_ids: Collection[str]) -> None:
        """Keep what an order of these (watched) tokens needs warm: an open connection to
        the exchange, market info read again before it ages out. Call every ~20 s."""
        ...

    async def lookup_market_slug(self, condition_id: str) -> str | None:
        """The market's slug from Gamma, or None on any failure (short timeout)."""
        ...
