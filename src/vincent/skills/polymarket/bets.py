"""``place_bet``: inputs (wallet, policies, idempotency: one read) → amounts → USD value
→ policies → (allowed, live: sign) → one audit row → outcome.

With a daily or weekly spending limit the decision is taken again, and the row written,
under the secret's lock (``db.secret_locks``): a bet in flight counts toward spend from
the moment it passed the check, and a failed one stops counting.

Denied and pending-approval actions end here (their row is final or waiting); allowed
ones go to ``Executor`` with the order already stored on their row. A repeated
idempotency key resumes the action it names.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import replace
from decimal import Decimal

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from vincent.audit import transaction_log as audit
from vincent.db.base import new_id, utcnow
from vincent.db.models import TransactionLog
from vincent.db.secret_locks import LockScope, secret_locked_transaction
from vincent.db.session import SessionFactory, is_postgresql, one_statement_session
from vincent.db.sqlite_driver import is_one_hop
from vincent.enums import ExecutionMode, TransactionStatus
from vincent.errors import ExecutionModeMismatch, ValidationFailed
from vincent.policies import repository as policy_repository
from vincent.policies.evaluator import (
    ActionFacts,
    Decision,
    PolicyRule,
    SpendingWindows,
    Verdict,
    evaluate,
    needs_spending_windows,
    needs_value,
)
from vincent.skills.polymarket.actions import request_data, result_of, stored_action
from vincent.skills.polymarket.bet_inputs import (
    NO_SPENDING,
    InputsCache,
    SecretInputs,
    inputs_current,
    inputs_guard,
    read_bet_inputs,
)
from vincent.skills.polymarket.bet_records import BetDraft, add_rows, audit_row, status_of
from vincent.skills.polymarket.book_walk import round_shares_down
from vincent.skills.polymarket.clients import WalletRef
from vincent.skills.polymarket.errors import (
    ClaimLost,
    InvalidOrder,
    NoPosition,
    PermanentSkillError,
    SkillError,
    StaleHoldings,
)
from vincent.skills.polymarket.execution import Executor, SignedAction
from vincent.skills.polymarket.leader_fence import require_leader_epoch
from vincent.skills.polymarket.market_data import MarketData, MarketInfo
from vincent.skills.polymarket.orders import OrderSpec
from vincent.skills.polymarket.types import (
    ActionClaim,
    BetRequest,
    BetResult,
    ClaimGuard,
    ClaimStatement,
    ClaimSteps,
    OrderBook,
    OrderType,
)
from vincent.skills.polymarket.valuation import action_usd_value

logger = logging.getLogger(__name__)

# Pool connections opened and readied for the fire path before the first fire: the
# pre-POST lane's two, and the recordings that follow them.
WARM_CONNECTIONS = 4

SharesHeld = Callable[[WalletRef, str], Awaitable[Decimal | None]]


async def _none() -> None:
    return None


def validate_request(request: BetRequest) -> None:
    """Field checks that need no I/O; raises ``ValidationFailed`` naming the field."""
    if request.side not in ("BUY", "SELL"):
        raise ValidationFailed(f"side must be BUY or SELL, was {request.side!r}")
    if not request.amount > 0:
        raise ValidationFailed(f"amount must be positive, was {request.amount}")
    for name, value in (("price", request.price), ("worstPrice", request.worst_price)):
        if value is not None and not Decimal(0) < value < Decimal(1):
            raise ValidationFailed(f"{name} must be between 0 and 1, was {value}")
    if request.price is None and request.order_type not in (None, "FOK", "FAK"):
        raise ValidationFailed(
            f"orderType must be FOK or FAK for a market order, was {request.order_type}"
        )


def order_type_of(request: BetRequest) -> OrderType:
    if request.order_type is not None:
        return request.order_type
    return "GTC" if request.price is not None else "FOK"


class BetPipeline:
    def __init__(
        self,
        session_factory: SessionFactory,
        market_data: MarketData,
        executor: Executor,
        shares_held: SharesHeld,
    ) -> None:
        self._sessions = session_factory
        self._market_data = market_data
        self._executor = executor
        self._shares_held = shares_held
        self._mode = ExecutionMode.PAPER if executor.paper else ExecutionMode.LIVE
        self._inputs = InputsCache()
        # A rule's claim and its audit row as one statement (``ClaimStatement``), or on
        # SQLite as one call on its thread (``ClaimSteps``).
        self._one_statement = is_postgresql(session_factory)
        engine = session_factory.kw.get("bind")
        self._one_call = isinstance(engine, AsyncEngine) and is_one_hop(engine)

    async def place_bet(self, request: BetRequest) -> BetResult:
        validate_request(request)
        cached = self._cached_inputs(request)
        if cached is not None:
            try:
                return await self._decide(
                    request, cached.wallet, cached.rules, NO_SPENDING, cached_version=cached.version
                )
            except _InputsChanged:
                # Policies changed, the secret went, it bought into the position, or the
                # action was refused: decide again from a fresh read (nothing was written).
                self._inputs.forget(request.secret_id)
        async with one_statement_session(self._sessions) as session:
            inputs = await read_bet_inputs(
                session,
                request.secret_id,
                request.idempotency_key,
                utcnow(),
                positions_read_at=request.shares_held_as_of,
                token_id=request.token_id,
            )
        self._inputs.remember(request.secret_id, inputs)
        wallet, rules = inputs.wallet, inputs.rules
        if inputs.existing is not None:
            owned = self._owned(inputs.existing, request.secret_id)
            return await self.resume(owned, wallet, rules, leader_epoch=request.leader_epoch)
        if inputs.acted_since:
            raise StaleHoldings(
                f"the position of token {request.token_id} handed in was read before the "
                "wallet's latest BUY of it"
            )
        return await self._decide(request, wallet, rules, inputs.windows, cached_version=None)

    def _cached_inputs(self, request: BetRequest) -> SecretInputs | None:
        """The secret's cached inputs when this bet may decide with them: a rule's sell
        (its claim's transaction checks them) under no spending window (whose check reads
        the spend under the secret's lock anyway)."""
        if request.claim is None:
            return None
        cached = self._inputs.get(request.secret_id)
        if cached is None or needs_spending_windows(cached.rules):
            return None
        return cached

    async def warm_inputs(self, secret_id: str) -> None:
        """Read the secret's wallet and policies into the cache before its first sell
        (unless held: a change since is caught when a sell writes)."""
        if self._inputs.get(secret_id) is not None:
            return
        async with one_statement_session(self._sessions) as session:
            inputs = await read_bet_inputs(session, secret_id, None, utcnow())
        self._inputs.remember(secret_id, inputs)

    async def _decide(
        self,
        request: BetRequest,
        wallet: WalletRef,
        rules: list[PolicyRule],
        windows: SpendingWindows,
        *,
        cached_version: int | None,
    ) -> BetResult:
        """Prepare, decide, sign, write and (if allowed) execute. ``cached_version``:
        ``wallet`` and ``rules`` come from ``InputsCache`` at that policies version, to be
        checked by the writing transaction (``_InputsChanged`` when they are not current).
        """
        try:
            spec, condition_id, neg_risk, book = await self._prepare(
                request, wallet, fetch_book=needs_value(rules)
            )
        except PermanentSkillError as error:
            if cached_version is not None:
                raise _InputsChanged() from error  # refused: recorded after a fresh read
            await self._record_refusal(request, error)
            raise
        # A market SELL is valued from the book only when a policy needs the value; else
        # the audit row gets what the sale really brought once it executed.
        usd_value = action_usd_value(spec.side, spec.amount, spec.price, book)
        facts = ActionFacts(usd_value, spec.token_id, condition_id)
        # A first decision on the spend read above: signing (live) happens before the
        # row is written, outside any lock. The decision that counts is taken again under
        # the secret's lock when a spending window is involved (``_decide_and_write``).
        decision = evaluate(rules, facts, windows)
        data = request_data(
            spec,
            requested_amount=request.amount,
            usd_value=usd_value,
            condition_id=condition_id,
            neg_risk=neg_risk,
            rule_id=request.rule_id,
        )
        key = request.idempotency_key or f"auto:{new_id()}"
        signed: SignedAction | None = None
        failure: SkillError | None = None
        if decision.verdict is Verdict.ALLOW and not self._executor.paper:
            # Signed before the row is written and stored in the row's own INSERT: the
            # order is on record before it can be posted, with no second write for it.
            try:
                signed = await self._executor.sign(request.secret_id, spec, neg_risk=neg_risk)
            except SkillError as error:
                failure = error
        try:
            row, decision, leader_epoch = await self._decide_and_write(
                BetDraft(request, key, data, usd_value, signed, failure),
                rules,
                facts,
                decision,
                cached_version=cached_version,
            )
        except IntegrityError:
            # Another call with the same idempotency key won the insert: join it (a
            # signature made here is dropped unsent; the stored one is the order).
            existing = await self._existing(key, request.secret_id)
            assert existing is not None
            return await self.resume(existing, wallet, rules, leader_epoch=request.leader_epoch)
        if request.stored is not None:
            request.stored()  # durable: the caller's next fire may go on meanwhile
        status = row.status
        logger.info(
            "bet_decided",
            extra={
                "transaction_log_id": row.id,
                "secret_id": request.secret_id,
                "token_id": spec.token_id,
                "verdict": decision.verdict.value,
            },
        )
        if status is TransactionStatus.FAILED and failure is not None:
            raise failure
        if status is not TransactionStatus.PENDING:
            return result_of(row, wallet.funder_address)
        return await self._executor.execute_row(
            row,
            wallet.funder_address,
            signed=signed,
            leader_epoch=leader_epoch,
            answered=request.answered,
            record_gate=request.record_gate,
        )

    async def resume(
        self,
        row: TransactionLog,
        wallet: WalletRef,
        rules: list[PolicyRule] | None = None,
        *,
        leader_epoch: int | None = None,
    ) -> BetResult:
        """The outcome of an action already on record; carries on one left open (only in
        the execution mode it was recorded in: ``ExecutionModeMismatch`` otherwise).

        A retryable failure is reopened; under a daily or weekly limit (``rules``) only if
        its amount still fits, else it ends DENIED.
        """
        reopens = row.status in (TransactionStatus.PENDING, TransactionStatus.UNKNOWN) or (
            row.status is TransactionStatus.FAILED
            and (row.response_data or {}).get("retryable") is True
        )
        if reopens and row.execution_mode is not self._mode:
            raise ExecutionModeMismatch(
                "The action recorded under this idempotencyKey",
                row.execution_mode.value,
                self._mode.value,
            )
        if row.status in (TransactionStatus.PENDING, TransactionStatus.UNKNOWN):
            return await self._executor.execute_row(
                row, wallet.funder_address, leader_epoch=leader_epoch
            )
        if row.status is TransactionStatus.FAILED:
            data = row.response_data or {}
            if data.get("retryable") is True:
                # A transient failure retried with the same key: reopen the same row; if it
                # was signed, the same signed order is what gets posted.
                denied = await self._reopen(row, rules or [])
                if denied is not None:
                    return result_of(denied, wallet.funder_address)
                return await self._executor.execute(
                    row.id, wallet.funder_address, leader_epoch=leader_epoch
                )
            error = PermanentSkillError(row.error_message or "the action failed")
            error.code = str(data.get("errorCode") or error.code)
            raise error
        return result_of(row, wallet.funder_address)

    async def _reopen(self, row: TransactionLog, rules: list[PolicyRule]) -> TransactionLog | None:
        """FAILED → PENDING. A FAILED row spends nothing, so under a spending window the
        policies decide again under the secret's lock; a refusal ends the row DENIED (and
        is returned)."""
        if not needs_spending_windows(rules):
            async with one_statement_session(self._sessions) as session:
                await _reopen_failed(session, row.id)
            return None
        action = stored_action(row.request_data)
        facts = ActionFacts(row.usd_value, action.spec.token_id, action.condition_id)
        async with secret_locked_transaction(
            self._sessions, row.secret_id, LockScope.SPENDING
        ) as session:
            windows = await policy_repository.spending_windows(session, row.secret_id, utcnow())
            decision = evaluate(rules, facts, windows)
            if decision.verdict is Verdict.ALLOW:
                await _reopen_failed(session, row.id)
                return None
            await audit.move_status(
                session,
                row.id,
                from_statuses=[TransactionStatus.FAILED],
                to_status=TransactionStatus.DENIED,
                error_message=decision.reason,
                response_data={"reason": decision.reason},
            )
            denied = await audit.get_log(session, row.id)
        assert denied is not None
        return denied

    @staticmethod
    def _owned(row: TransactionLog, secret_id: str) -> TransactionLog:
        if row.secret_id != secret_id:
            raise ValidationFailed("idempotencyKey is already used by another secret")
        return row

    async def _existing(self, key: str, secret_id: str) -> TransactionLog | None:
        async with one_statement_session(self._sessions) as session:
            row = await audit.find_by_idempotency_key(session, key)
        return None if row is None else self._owned(row, secret_id)

    async def _prepare(
        self, request: BetRequest, wallet: WalletRef, *, fetch_book: bool
    ) -> tuple[OrderSpec, str | None, bool, OrderBook | None]:
        token_id = request.token_id
        is_sell = request.side == "SELL"
        fetch_book = fetch_book and is_sell
        # A caller that just read the position (the trade manager) saves this round trip.
        fetch_held = is_sell and request.shares_held is None
        info: object
        book: object = None
        held: object = None
        if not fetch_book and not fetch_held:
            # A rule's sell: market info is in hand (cached), nothing else to read, so no
            # tasks either: each would hand the event loop to the burst's other fires.
            info = await self._market_data.market_info(token_id)
        else:
            # The reads a SELL needs go out together: one round trip of latency, not three.
            results = await asyncio.gather(
                self._market_data.market_info(token_id),
                self._book_for_value(token_id) if fetch_book else _none(),
                self._shares_held(wallet, token_id) if fetch_held else _none(),
                return_exceptions=True,  # all three finish before anything is raised
            )
            for outcome in results:
                if isinstance(outcome, BaseException):
                    raise outcome
            info, book, held = results
        if is_sell and request.shares_held is not None:
            held = request.shares_held
        assert isinstance(info, MarketInfo)
        assert book is None or isinstance(book, OrderBook)
        assert held is None or isinstance(held, Decimal)
        amount = request.amount
        if is_sell:
            amount = round_shares_down(amount)
            if held is not None:
                if held <= 0:
                    raise NoPosition(f"no shares of token {token_id} held")
                # Never sell more than is held, and never above what was asked.
                amount = min(amount, round_shares_down(held))
            if amount <= 0:
                raise InvalidOrder(f"amount rounds to zero shares, was {request.amount}")
        spec = OrderSpec(
            token_id=token_id,
            side=request.side,
            amount=amount,
            price=request.price,
            order_type=order_type_of(request),
            worst_price=request.worst_price,
        )
        return spec, info.condition_id, info.neg_risk, book

    async def _book_for_value(self, token_id: str) -> OrderBook | None:
        try:
            return await self._market_data.get_order_book(token_id)
        except SkillError:
            return None  # valued as unknown: the policies decide what that means

    async def _decide_and_write(
        self,
        draft: BetDraft,
        rules: list[PolicyRule],
        facts: ActionFacts,
        decision: Decision,
        *,
        cached_version: int | None = None,
    ) -> tuple[TransactionLog, Decision, int | None]:
        """Write the action's row (and approval) under the final decision; return them
        with the leadership epoch later stores of its order are fenced by.

        With a daily or weekly limit, check-and-reserve is one step: under the secret's
        lock the spend is read again (in-flight actions included), the policies decide,
        and the row is written in the same transaction, so a concurrent bet of the same
        secret sees this one as spent. A signature the final decision does not allow is
        dropped unsent. The request's ``claim`` (a rule's sell) goes first in the same
        transaction (on PostgreSQL one statement, on SQLite one call on its thread:
        ``_claim_and_write``): the claim, the signed order and its audit row commit
        together. With
        ``cached_version`` the claim's UPDATE also requires the cached inputs to be current
        (``inputs_guard``), and a lost claim whose inputs were not is ``_InputsChanged``.
        """
        request = draft.request
        secret_id, epoch, claim = request.secret_id, request.leader_epoch, request.claim
        if draft.failure is not None or not needs_spending_windows(rules):
            status = status_of(decision, draft.failure)
            approval = status is TransactionStatus.PENDING_APPROVAL
            if claim is not None:
                row, epoch = await self._claim_and_write(
                    draft, decision, status, claim, cached_version, approval=approval
                )
                return row, decision, epoch
            # One INSERT (a rule's sell: fenced by its leadership epoch in the same
            # statement), unless an approval goes with it.
            scope = self._sessions.begin() if approval else one_statement_session(self._sessions)
            async with scope as session:
                if epoch is not None and approval:
                    await require_leader_epoch(session, epoch)
                row = await add_rows(
                    session,
                    draft,
                    decision,
                    status,
                    self._mode,
                    fenced_insert=epoch is not None and not approval,
                )
            return row, decision, epoch
        async with secret_locked_transaction(
            self._sessions, secret_id, LockScope.SPENDING
        ) as session:
            if claim is not None:
                epoch = await _claim(session, claim)
            elif epoch is not None:
                await require_leader_epoch(session, epoch)
            windows = await policy_repository.spending_windows(session, secret_id, utcnow())
            decision = evaluate(rules, facts, windows)
            status = status_of(decision, None)
            if status is not TransactionStatus.PENDING:
                draft = replace(draft, signed=None)
            row = await add_rows(session, draft, decision, status, self._mode)
        return row, decision, epoch

    async def _claim_and_write(
        self,
        draft: BetDraft,
        decision: Decision,
        status: TransactionStatus,
        claim: ActionClaim,
        cached_version: int | None,
        *,
        approval: bool,
    ) -> tuple[TransactionLog, int | None]:
        """The request's claim and the action's rows, committed together; the row and the
        epoch the claim was made under. With no approval to write: on PostgreSQL one
        autocommitted statement (``ClaimStatement``: one round trip, no BEGIN or COMMIT), on
        SQLite one transaction run as one call on its thread (``ClaimSteps``); else a
        session's transaction. ``ClaimLost`` (nothing written) or ``_InputsChanged``."""
        request = draft.request
        guard = None
        if cached_version is not None:
            guard = inputs_guard(
                request.secret_id,
                cached_version,
                positions_read_at=request.shares_held_as_of,
                token_id=request.token_id,
            )
        try:
            if not approval:
                written = await self._claim_at_driver(draft, decision, status, claim, guard)
                if written is not None:
                    return written
            async with self._sessions.begin() as session:
                epoch = await _claim(session, claim, guard)
                return await add_rows(session, draft, decision, status, self._mode), epoch
        except ClaimLost:
            if guard is not None and not await self._still_current(guard):
                raise _InputsChanged() from None
            raise

    async def _claim_at_driver(
        self,
        draft: BetDraft,
        decision: Decision,
        status: TransactionStatus,
        claim: ActionClaim,
        guard: ClaimGuard | None,
    ) -> tuple[TransactionLog, int | None] | None:
        """The claim, its events and the audit row written with no session, when the claim
        can be (None: it cannot, see ``ActionClaim.statement`` and ``.steps``); the row and
        the claim's epoch, or ``ClaimLost`` with nothing written."""
        parts = self._claim_parts(claim, guard)
        if parts is None:
            return None
        row = audit_row(draft, decision, status, self._mode)
        if not await self._write_after(parts, row):
            raise ClaimLost(_CLAIM_LOST)
        parts.won()
        return row, parts.leader_epoch

    def _claim_parts(
        self, claim: ActionClaim, guard: ClaimGuard | None
    ) -> ClaimStatement | ClaimSteps | None:
        if self._one_statement:
            return claim.statement(guard)
        if self._one_call:
            return claim.steps(guard)
        return None

    async def _write_after(self, parts: ClaimStatement | ClaimSteps, row: TransactionLog) -> bool:
        """Write ``row`` after the claim ``parts`` (PostgreSQL: one autocommitted statement;
        SQLite: one transaction in one call on its thread); whether the claim won."""
        if isinstance(parts, ClaimStatement):
            return await audit.insert_log_after(
                self._sessions, row, parts.claimed, parts.ctes, parts.params
            )
        return await audit.insert_log_after_steps(
            self._sessions, row, parts.claim, parts.writes, parts.params
        )

    async def warm_claim(self, claim: ActionClaim, *, connections: int = WARM_CONNECTIONS) -> None:
        """Run a rule sell's one statement (PostgreSQL; on SQLite its one transaction) with
        ``claim``, which must win nothing, for each shape of guard (with and without a
        position read), on ``connections`` pool connections at once: they are opened now,
        SQLAlchemy compiles the statement and each connection prepares it, all before a
        fire would (the first fire after a start otherwise paid ~10 ms of CPU for each).
        Writes nothing: every part of the statement selects from a claim that matched no
        row (on SQLite the transaction rolls back when the claim changed none)."""
        for read_at in (utcnow(), None):
            guard = inputs_guard("", 0, positions_read_at=read_at, token_id="")
            parts = self._claim_parts(claim, guard)
            if parts is not None:
                await asyncio.gather(*(self._run_unwon(parts) for _ in range(connections)))

    async def _run_unwon(self, parts: ClaimStatement | ClaimSteps) -> None:
        if await self._write_after(parts, TransactionLog()):
            raise RuntimeError("a warm-up claim matched a rule")  # a bug, never data

    async def _still_current(self, guard: ClaimGuard) -> bool:
        async with one_statement_session(self._sessions) as session:
            return await inputs_current(session, guard)

    async def _record_refusal(self, request: BetRequest, error: SkillError) -> None:
        """Audit an action refused before any policy ran (no position, closed market...)."""
        async with one_statement_session(self._sessions) as session:
            audit.create_log(
                session,
                secret_id=request.secret_id,
                api_key_id=request.api_key_id,
                request_data={
                    "tokenId": request.token_id,
                    "side": request.side,
                    "amount": str(request.amount),
                    "price": None if request.price is None else str(request.price),
                },
                status=TransactionStatus.FAILED,
                usd_value=None,
                execution_mode=self._mode,
                idempotency_key=request.idempotency_key or f"auto:{new_id()}",
                error_message=error.message,
            )


_CLAIM_LOST = "the rule was no longer ACTIVE: nothing was written or sent"


class _InputsChanged(Exception):
    """Cached inputs found out of date in the writing transaction (which rolls back)."""


async def _claim(
    session: AsyncSession, claim: ActionClaim, guard: ClaimGuard | None = None
) -> int | None:
    """Run the request's claim in ``session``'s transaction; its epoch, or ``ClaimLost``
    (the caller's transaction then rolls back: nothing of the action is written)."""
    claimed = await claim(session, guard)
    if claimed is None:
        raise ClaimLost(_CLAIM_LOST)
    return claimed.leader_epoch


async def _reopen_failed(session: AsyncSession, log_id: str) -> None:
    await audit.move_status(
        session,
        log_id,
        from_statuses=[TransactionStatus.FAILED],
        to_status=TransactionStatus.PENDING,
        error_message=None,
    )
