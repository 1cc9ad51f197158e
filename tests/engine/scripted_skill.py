"""A scripted ``TradingSkill`` for executor and worker unit tests: the outermost edge only.

End-to-end tests use the real skill against the local exchange instead.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from datetime import datetime
from decimal import Decimal

from vincent.db.session import SessionFactory
from vincent.enums import TransactionStatus
from vincent.skills.polymarket.approval_resolutions import resolve_approvals
from vincent.skills.polymarket.errors import ClaimLost
from vincent.skills.polymarket.types import (
    ActionClaim,
    ApprovalResolution,
    AttemptOutcome,
    AttemptResolution,
    BetRequest,
    BetResult,
    BetStatus,
    BookLevel,
    ExecutedRow,
    Holding,
    OrderBook,
    Settlement,
    SettlementState,
)

Answer = BetResult | Exception | Callable[[BetRequest], BetResult]


class ScriptedSkill:
    """Answers ``place_bet`` from a script; records every request it was given.

    As the real skill does, a request's ``claim`` (a rule's sell) is run first in a
    transaction of ``sessions`` (where the real skill writes the audit row too); the
    scripted answer comes after it, as an answer of the exchange would.
    """

    def __init__(self, sessions: SessionFactory | None = None) -> None:
        self.sessions = sessions
        self.holdings: dict[str, list[Holding]] = {}
        self.answers: list[Answer] = []
        self.requests: list[BetRequest] = []
        self.resolutions: dict[str, AttemptResolution] = {}
        self.books: dict[str, OrderBook] = {}
        self.midpoints: dict[str, Decimal | None] = {}
        self.holdings_error: Exception | None = None
        self.holdings_calls = 0
        self.prepared: list[tuple[str, str]] = []
        self.kept_warm: list[frozenset[str]] = []
        self.warmed_claims = 0
        self.settlements: dict[str, Settlement] = {}

    def hold(self, secret_id: str, token_id: str, shares: str, **extra: object) -> None:
        holding = Holding(
            token_id=token_id,
            condition_id=f"0xcond-{token_id}",
            shares=Decimal(shares),
            average_entry_price=Decimal("0.5"),
            current_price=Decimal("0.5"),
            **extra,  # type: ignore[arg-type]
        )
        self.holdings.setdefault(secret_id, []).append(holding)

    def executed(self, request: BetRequest) -> BetResult:
        return BetResult(
            status=BetStatus.EXECUTED,
            transaction_log_id=f"log-{len(self.requests)}",
            wallet_address="0xwallet",
            order_id=f"0xorder{len(self.requests)}",
            filled_shares=request.amount,
        )

    async def place_bet(self, request: BetRequest) -> BetResult:
        # ``requests``: the actions that happened (a lost claim writes and sends nothing).
        if request.claim is not None:
            assert self.sessions is not None, "a rule's claim needs ScriptedSkill(sessions)"
            async with self.sessions.begin() as session:
                claimed = await request.claim(session)
            if claimed is None:
                raise ClaimLost("the rule was no longer ACTIVE")
        if request.stored is not None:
            request.stored()  # as the real skill: the action is on record, the POST next
        self.requests.append(request)
        answer: Answer = self.answers.pop(0) if self.answers else self.executed
        if isinstance(answer, Exception):
            raise answer
        result = answer if isinstance(answer, BetResult) else answer(request)
        if request.answered is not None and result.status in (
            BetStatus.EXECUTED,
            BetStatus.UNKNOWN,
        ):
            # As the real skill: set when an order's POST was answered, not for an action
            # that never reached the exchange (denied, pending approval).
            request.answered.set()
        return result

    async def get_holdings(self, secret_id: str) -> list[Holding]:
        self.holdings_calls += 1
        if self.holdings_error is not None:
            raise self.holdings_error
        return list(self.holdings.get(secret_id, []))

    async def get_midpoint(self, token_id: str) -> Decimal | None:
        return self.midpoints.get(token_id)

    async def get_order_book(self, token_id: str) -> OrderBook:
        return self.books[token_id]

    async def resolve_attempt(self, idempotency_key: str) -> AttemptResolution:
        return self.resolutions.get(idempotency_key, AttemptResolution(AttemptOutcome.NOT_SENT))

    async def resolve_approvals(
        self, approval_ids: Collection[str], *, now: datetime
    ) -> dict[str, ApprovalResolution]:
        # The real skill's read of the approval and audit rows the test wrote.
        assert self.sessions is not None, "approvals need ScriptedSkill(sessions)"
        return await resolve_approvals(self.sessions, approval_ids, now=now)

    async def prepare(self, secret_id: str, token_id: str) -> None:
        self.prepared.append((secret_id, token_id))

    async def keep_warm(self, token_ids: Collection[str]) -> None:
        self.kept_warm.append(frozenset(token_ids))

    async def warm_claim(self, claim: ActionClaim) -> None:
        self.warmed_claims += 1

    async def follow_settlement(
        self, transaction_log_id: str, recorded: ExecutedRow | None = None
    ) -> Settlement:
        return self.settlements.get(transaction_log_id, Settlement(SettlementState.CONFIRMED))

    async def settle_unknown_actions(
        self, *, older_than: datetime, limit: int = 100
    ) -> list[tuple[str, TransactionStatus]]:
        return []

    async def lookup_market_slug(self, condition_id: str) -> str | None:
        return None

    def set_book(
        self, token_id: str, bids: list[tuple[str, str]], asks: list[tuple[str, str]]
    ) -> None:
        self.books[token_id] = OrderBook(
            token_id=token_id,
            market="0xmarket",
            bids=tuple(BookLevel(Decimal(p), Decimal(s)) for p, s in bids),
            asks=tuple(BookLevel(Decimal(p), Decimal(s)) for p, s in asks),
            tick_size=Decimal("0.01"),
            min_order_size=Decimal("5"),
            neg_risk=False,
        )
