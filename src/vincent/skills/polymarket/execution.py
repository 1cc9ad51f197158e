"""Executing an allowed action, exactly once: the only writer of an action's final status.

Live: sign → store the signed order and its id on the audit row → commit → post → record
EXECUTED or FAILED. A new action is signed before its row is written and the row carries
the signed order from its first commit (``sign`` then ``execute_row(row, signed=...)``);
a row written unsigned (an approved action, a retried one) is signed and stored here.
A lost or ambiguous answer (5xx, 408, 425, dropped, unreadable) leaves the row UNKNOWN
until the order is found by id (looked for during the settle window), or the SAME signed
order is re-posted — never a new one. Only a fill is an execution: an order answered
``delayed`` (or a FOK answered ``live``) is followed to its final state; one killed
without a fill is ``NoLiquidity``. A SELL refused for balance refreshes the exchange's
balance cache and is retried once with what the wallet really holds. Paper: walk the
book, write the fills and the row in one transaction.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from polymarket.models.clob.orders import SignedOrder

from vincent.audit import transaction_log as audit
from vincent.db.models import TransactionLog
from vincent.db.session import SessionFactory, one_statement_session
from vincent.enums import TransactionStatus
from vincent.skills.polymarket import paper
from vincent.skills.polymarket.actions import (
    StoredAction,
    executed_result,
    response_data,
    result_of,
    stored_action,
)
from vincent.skills.polymarket.book_walk import round_shares_down
from vincent.skills.polymarket.errors import (
    DuplicateOrder,
    InsufficientBalance,
    InvalidOrder,
    LeaderDeposed,
    NoLiquidity,
    OrderNotPlaced,
    OrderVersionMismatch,
    SkillError,
    TickSizeChanged,
    TransientSkillError,
    UnknownOutcome,
    is_retryable,
)
from vincent.skills.polymarket.leader_fence import require_leader_epoch
from vincent.skills.polymarket.market_data import MarketData, MarketInfo
from vincent.skills.polymarket.orders import Fills, LiveOrders, OrderSpec, refresh_sdk_market
from vincent.skills.polymarket.settlement import named_trades
from vincent.skills.polymarket.signed_orders import signed_order_from_json, signed_order_to_json
from vincent.skills.polymarket.types import BetResult, ExecutedRow

logger = logging.getLogger(__name__)

OPEN = audit.OPEN_STATUSES
Sleep = Callable[[float], Awaitable[None]]
RecordGate = Callable[[], contextlib.AbstractAsyncContextManager[None]]

# How long an order the exchange may have taken can take to show up when looked up by
# id; only after it does the same signed order get posted again.
SETTLE_WINDOW_S = 1.0
# How long an order answered ``delayed`` (or a FOK answered ``live``) is followed before
# its row is left UNKNOWN for reconciliation.
FOLLOW_TIMEOUT_S = 5.0
_POLL_FIRST_S, _POLL_MAX_S = 0.05, 0.5

# How each way of learning an order's fate is written on its audit row (``resolvedBy``).
FOUND_BY_ID = "found by order id after an ambiguous answer"
REPOSTED_SAME = "the same signed order re-posted after it was not found"
FOLLOWED = "followed from delayed/live to its final state"


class _SignedElsewhere(Exception):
    """A concurrent execution of the same row stored its signed order first."""


@dataclass(frozen=True, slots=True)
class SignedAction:
    """An order signed for an action, and its exchange order id (known before posting)."""

    order: SignedOrder
    order_id: str


class Executor:
    def __init__(
        self,
        session_factory: SessionFactory,
        market_data: MarketData,
        orders: LiveOrders,
        *,
        paper_mode: bool,
        settle_window_s: float = SETTLE_WINDOW_S,
        follow_timeout_s: float = FOLLOW_TIMEOUT_S,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self._sessions = session_factory
        self._market_data = market_data
        self._orders = orders
        self._paper = paper_mode
        self._settle_window_s = settle_window_s
        self._follow_timeout_s = follow_timeout_s
        self._sleep = sleep

    @property
    def paper(self) -> bool:
        return self._paper

    async def sign(self, secret_id: str, spec: OrderSpec, *, neg_risk: bool) -> SignedAction:
        """Sign ``spec`` (nothing is sent or stored); raises the typed ``SkillError``."""
        try:
            signed, order_id = await self._orders.sign(secret_id, spec, neg_risk=neg_risk)
        except InvalidOrder:
            # Possibly checked against a stale tick size: nothing was sent, so refresh the
            # market parameters and sign once more; a second refusal stands.
            await self._refresh_market(secret_id, spec.token_id)
            signed, order_id = await self._orders.sign(secret_id, spec, neg_risk=neg_risk)
        return SignedAction(signed, order_id)

    async def execute(
        self, log_id: str, wallet_address: str, *, leader_epoch: int | None = None
    ) -> BetResult:
        """Carry out the action of row ``log_id`` (status PENDING or UNKNOWN)."""
        return await self.execute_row(
            await self._row(log_id), wallet_address, leader_epoch=leader_epoch
        )

    async def execute_row(
        self,
        row: TransactionLog,
        wallet_address: str,
        *,
        signed: SignedAction | None = None,
        leader_epoch: int | None = None,
        answered: asyncio.Event | None = None,
        record_gate: RecordGate | None = None,
    ) -> BetResult:
        """Carry out the action of ``row`` (status PENDING or UNKNOWN), read just before.

        ``signed``: the order the row was written with, in the same commit, and never
        posted; without it a row with a stored order is resolved, never signed again.
        A failure is recorded FAILED (retryable ones say so, and a retry with the same
        idempotency key reopens the row and re-posts the same signed order); a lost answer
        leaves the row UNKNOWN. Raises the typed error after recording it.
        ``leader_epoch`` (a rule's sell by the trade manager's worker): any signed order
        stored here is stored only while that epoch is current, else ``LeaderDeposed``
        (raised with nothing recorded or sent). ``answered`` is set as soon as the
        exchange answered the first POST (or it failed): what follows is recording.
        ``record_gate``: entered before an answered order's outcome is written (the trade
        manager's record lane: its next fires go first); until then the row stays as stored,
        as across a crash, and is settled by its order id if this process dies meanwhile.
        """
        action = stored_action(row.request_data)
        if self._paper:
            return await self._execute_paper(row, action, wallet_address)
        if signed is None and row.signed_order is not None:
            return await self.resolve(row, wallet_address)
        try:
            order = (
                await self._sign_and_store(row, action, leader_epoch=leader_epoch)
                if signed is None
                else signed.order
            )
            try:
                fills = await self._post_with_refresh(row, action, order, leader_epoch)
            finally:
                if answered is not None:
                    answered.set()
        except LeaderDeposed:
            raise  # the new leader owns the action: record nothing
        except UnknownOutcome as error:
            await self._move(row.id, TransactionStatus.UNKNOWN, error_message=error.message)
            return await self._resolve_after_ambiguous(row, wallet_address, error)
        except (DuplicateOrder, _SignedElsewhere):
            current = await self._row(row.id)
            if current.signed_order is None:
                # Closed as never sent (resolve_attempt) while this call was signing.
                raise SkillError("the action was closed before its order was sent") from None
            return await self.resolve(current, wallet_address)
        except SkillError as error:
            await self._fail(row.id, error)
            raise
        if record_gate is None:
            return await self._conclude(row, action.spec.order_type, fills, wallet_address, None)
        async with record_gate():
            return await self._conclude(row, action.spec.order_type, fills, wallet_address, None)

    async def resolve(
        self, row: TransactionLog, wallet_address: str, *, by: str | None = None
    ) -> BetResult:
        """Find out what became of a row's signed order; record it once. Never re-signs.

        Looks the order up by id; if the exchange has no trace of it, posts the SAME signed
        order again (a "Duplicated" refusal proves the first one arrived). A row whose
        order may have been posted never ends "not sent" on a transient failure here: it
        is left UNKNOWN and ``UnknownOutcome`` is raised. ``by`` names who resolved it
        (written on the audit row with how).
        """
        assert row.signed_order is not None and row.order_id is not None
        order_type = stored_action(row.request_data).spec.order_type
        try:
            fills, how = await self._find_or_repost(row)
            how = how if by is None else f"{by}: {how}"
        except OrderNotPlaced as error:
            await self._fail(row.id, error)  # retryable: a new order may be signed
            raise
        except TransientSkillError as error:
            await self._move(row.id, TransactionStatus.UNKNOWN, error_message=error.message)
            raise UnknownOutcome(
                error.message, transaction_log_id=row.id, order_id=row.order_id
            ) from error
        except SkillError as error:
            await self._fail(row.id, error)
            raise
        return await self._conclude(row, order_type, fills, wallet_address, how)

    async def _find_or_repost(self, row: TransactionLog) -> tuple[Fills, str]:
        assert row.signed_order is not None and row.order_id is not None
        fills = await self._orders.lookup(row.secret_id, row.order_id)
        if fills is not None:
            return fills, FOUND_BY_ID
        try:
            signed = signed_order_from_json(row.signed_order)
            return await self._orders.post(row.secret_id, signed), REPOSTED_SAME
        except DuplicateOrder:
            fills = await self._orders.lookup(row.secret_id, row.order_id)
        except InvalidOrder as refused:
            # Not found, and refused again other than as a duplicate: never placed.
            raise OrderNotPlaced(
                f"order {row.order_id} was never placed (its re-post was refused: "
                f"{refused.message})"
            ) from refused
        if fills is None:
            raise UnknownOutcome("the exchange has the order but does not show it yet")
        return fills, FOUND_BY_ID

    async def _resolve_after_ambiguous(
        self, row: TransactionLog, wallet_address: str, error: UnknownOutcome
    ) -> BetResult:
        """Settle a row whose post was answered ambiguously: look the order up by id for
        the settle window, then (not found) re-post the same signed order."""
        fills = await self._lookup_until(row, self._settle_window_s, lambda found: True)
        if fills is None:
            logger.info(
                "order_not_found_reposting",
                extra={"transaction_log_id": row.id, "order_id": row.order_id},
            )
            return await self.resolve(row, wallet_address)
        order_type = stored_action(row.request_data).spec.order_type
        return await self._conclude(row, order_type, fills, wallet_address, FOUND_BY_ID)

    async def _lookup_until(
        self, row: TransactionLog, within_s: float, done: Callable[[Fills], bool]
    ) -> Fills | None:
        """Look ``row``'s order up until ``done`` holds or ``within_s`` passed; the last
        answer (None: never found). A failed lookup counts as not found."""
        deadline = time.monotonic() + within_s
        delay_s = _POLL_FIRST_S
        fills: Fills | None = None
        while True:
            with contextlib.suppress(SkillError):  # a failed lookup counts as not found
                fills = await self._orders.lookup(row.secret_id, row.order_id or "") or fills
            if (fills is not None and done(fills)) or time.monotonic() >= deadline:
                return fills
            await self._sleep(min(delay_s, max(deadline - time.monotonic(), 0.0)))
            delay_s = min(delay_s * 2, _POLL_MAX_S)

    async def _conclude(
        self,
        row: TransactionLog,
        order_type: str,
        fills: Fills,
        wallet_address: str,
        how: str | None,
    ) -> BetResult:
        """Record what an order the exchange has came to: only a fill is an execution."""
        if not fills.is_final(order_type):
            followed = await self._lookup_until(
                row, self._follow_timeout_s, lambda found: found.is_final(order_type)
            )
            fills, how = (followed, FOLLOWED) if followed is not None else (fills, how)
        if not fills.is_final(order_type):
            message = f"order {fills.order_id} is still {fills.status}"
            await self._move(row.id, TransactionStatus.UNKNOWN, error_message=message)
            raise UnknownOutcome(message, transaction_log_id=row.id, order_id=fills.order_id)
        if fills.killed_empty():
            # The exchange has it, killed without a fill (a FOK/FAK that found no match).
            killed = NoLiquidity("the exchange killed the order without a fill")
            await self._fail(row.id, killed)
            raise killed
        return await self._record_executed(row, order_type, fills, wallet_address, how)

    # ---- live steps ------------------------------------------------------------------

    async def _sign_and_store(
        self,
        row: TransactionLog,
        action: StoredAction,
        *,
        replace: bool = False,
        request_data: dict[str, Any] | None = None,
        leader_epoch: int | None = None,
    ) -> SignedOrder:
        signed = await self.sign(row.secret_id, action.spec, neg_risk=action.neg_risk)
        order_json = signed_order_to_json(signed.order)
        scope = (
            one_statement_session(self._sessions)
            if leader_epoch is None
            else self._sessions.begin()
        )
        async with scope as session:
            if leader_epoch is not None:
                await require_leader_epoch(session, leader_epoch)
            stored = await audit.store_signed_order(
                session,
                row.id,
                order_json,
                signed.order_id,
                replace=replace,
                request_data=request_data,
            )
        if not stored:
            # Another execution of this row signed first: its order is the one that counts.
            raise _SignedElsewhere()
        row.signed_order, row.order_id = order_json, signed.order_id
        return signed.order

    async def _post_with_refresh(
        self,
        row: TransactionLog,
        action: StoredAction,
        signed: SignedOrder,
        leader_epoch: int | None,
    ) -> Fills:
        try:
            return await self._orders.post(row.secret_id, signed)
        except InsufficientBalance:
            if action.spec.side != "SELL":
                raise
            return await self._post_what_is_held(row, action, signed, leader_epoch)
        except (OrderVersionMismatch, TickSizeChanged) as error:
            # Definitely refused, so a fresh signature is safe: re-read and retry once.
            logger.info(
                "order_refresh_and_retry",
                extra={"transaction_log_id": row.id, "reason": error.code},
            )
            await self._market_data.exchange_version(refresh=True)
            info = await self._refresh_market(row.secret_id, action.spec.token_id)
            action = StoredAction(action.spec, action.condition_id, info.neg_risk, action.rule_id)
            signed = await self._sign_and_store(
                row, action, replace=True, leader_epoch=leader_epoch
            )
            return await self._orders.post(row.secret_id, signed)

    async def _post_what_is_held(
        self,
        row: TransactionLog,
        action: StoredAction,
        refused: SignedOrder,
        leader_epoch: int | None,
    ) -> Fills:
        """A SELL refused for balance: refresh the exchange's balance cache, re-read what
        the wallet holds, and sell that (rounded down) once. Never loops."""
        held = await self._orders.refresh_balance(row.secret_id, refused)
        amount = min(action.spec.amount, round_shares_down(held))
        logger.info(
            "sell_balance_refreshed",
            extra={"transaction_log_id": row.id, "held": str(held), "amount": str(amount)},
        )
        if amount <= 0:
            raise InsufficientBalance(
                f"not enough balance / allowance: with its balance refreshed the wallet has "
                f"{held} shares of token {action.spec.token_id} free to sell, "
                f"not {action.spec.amount}"
            )
        spec = replace(action.spec, amount=amount)
        action = StoredAction(spec, action.condition_id, action.neg_risk, action.rule_id)
        data = {**row.request_data, "amount": str(amount)}
        signed = await self._sign_and_store(
            row, action, replace=True, request_data=data, leader_epoch=leader_epoch
        )
        row.request_data = data
        # A second refusal stands (InsufficientBalance): the wallet truly lacks the shares.
        return await self._orders.post(row.secret_id, signed)

    async def close_unsent(self, log_id: str) -> bool:
        """Close an open action that was never signed as FAILED (retryable with its key)."""
        error = TransientSkillError("the order was never sent")
        async with one_statement_session(self._sessions) as session:
            return await audit.move_status(
                session,
                log_id,
                from_statuses=OPEN,
                to_status=TransactionStatus.FAILED,
                unsent_only=True,
                error_message=error.message,
                response_data={"errorCode": error.code, "error": error.message, "retryable": True},
            )

    async def _refresh_market(self, secret_id: str, token_id: str) -> MarketInfo:
        """Re-read tick size, neg-risk and fees, ours and the SDK's."""
        info = await self._market_data.market_info(token_id, refresh=True)
        await refresh_sdk_market(await self._orders.client(secret_id), token_id)
        return info

    # ---- paper -----------------------------------------------------------------------

    async def _execute_paper(
        self, row: TransactionLog, action: StoredAction, wallet_address: str
    ) -> BetResult:
        spec = action.spec
        try:
            book = await self._market_data.get_order_book(spec.token_id)
            walk = paper.paper_walk(
                book,
                spec.side,
                spec.amount,
                order_type=spec.order_type,
                worst_price=spec.worst_price,
                limit_price=spec.price,
            )
        except SkillError as error:
            await self._fail(row.id, error)
            raise
        async with self._sessions() as session, session.begin():
            fills = await paper.record_paper_fills(session, row, action, walk)
        return executed_result(row.id, fills, wallet_address)

    # ---- rows ------------------------------------------------------------------------

    async def _row(self, log_id: str) -> TransactionLog:
        async with one_statement_session(self._sessions) as session:
            row = await audit.get_log(session, log_id)
        if row is None:
            raise SkillError(f"transaction {log_id} not found")
        return row

    async def _record_executed(
        self,
        row: TransactionLog,
        order_type: str,
        fills: Fills,
        wallet_address: str,
        how: str | None = None,
    ) -> BetResult:
        log_id = row.id
        data = response_data(fills)
        if how is not None:
            data["resolvedBy"] = how  # the audit row says how the outcome was learnt
        # By itself at the driver (on PostgreSQL asyncpg itself, autocommitted).
        moved = await audit.move_status_at_driver(
            self._sessions,
            log_id,
            from_statuses=OPEN,
            to_status=TransactionStatus.EXECUTED,
            order_id=fills.order_id,
            response_data=data,
            error_message=None,
            # Not valued before (no policy needed it): what it really moved.
            usd_value=audit.IfUnset(fills.filled_usd),
        )
        logger.info(
            "order_executed", extra={"transaction_log_id": log_id, "order_id": fills.order_id}
        )
        if moved:
            recorded = ExecutedRow(
                row.secret_id, fills.order_id, named_trades(order_type, data), data
            )
            return replace(executed_result(log_id, fills, wallet_address), recorded=recorded)
        # Another call finished this row first: its record is the answer.
        return result_of(await self._row(log_id), wallet_address)

    async def _move(self, log_id: str, status: TransactionStatus, **fields: Any) -> None:
        async with one_statement_session(self._sessions) as session:
            await audit.move_status(session, log_id, from_statuses=OPEN, to_status=status, **fields)

    async def _fail(
        self,
        log_id: str,
        error: SkillError,
        *,
        from_statuses: Sequence[TransactionStatus] = OPEN,
    ) -> None:
        async with one_statement_session(self._sessions) as session:
            await audit.move_status(
                session,
                log_id,
                from_statuses=from_statuses,
                to_status=TransactionStatus.FAILED,
                error_message=error.message,
                response_data={
                    "errorCode": error.code,
                    "error": error.message,
                    "retryable": is_retryable(error),
                },
            )
        logger.info("order_failed", extra={"transaction_log_id": log_id, "error": error.code})
