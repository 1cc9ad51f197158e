"""``PolymarketSkill``: the facade the routes and the trade-manager worker call.

Wires market data, the SDK client registry, the bet pipeline and the executor; owns the
shared HTTP client and closes everything in ``aclose``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Collection
from datetime import datetime
from decimal import Decimal
from typing import Any

import httpx
import sqlalchemy as sa

from vincent.audit import transaction_log as audit
from vincent.db.models import Secret, TransactionLog
from vincent.db.session import SessionFactory, one_statement_session
from vincent.enums import ExecutionMode, TransactionStatus
from vincent.errors import ExecutionModeMismatch, VincentError
from vincent.skills.polymarket import holdings as holdings_api
from vincent.skills.polymarket import paper, settlement
from vincent.skills.polymarket.actions import result_of
from vincent.skills.polymarket.approval_resolutions import resolve_approvals
from vincent.skills.polymarket.bets import BetPipeline
from vincent.skills.polymarket.clients import (
    WALLET_COLUMNS,
    ClientRegistry,
    WalletRef,
    Wallets,
    wallet_of,
)
from vincent.skills.polymarket.errors import (
    OrderNotPlaced,
    SettlementFailed,
    SkillError,
    TransientSkillError,
)
from vincent.skills.polymarket.exchange_link import WarmMarkets
from vincent.skills.polymarket.execution import Executor
from vincent.skills.polymarket.http import JsonGetter
from vincent.skills.polymarket.market_data import MarketData
from vincent.skills.polymarket.market_state import MarketState
from vincent.skills.polymarket.orders import LiveOrders, refresh_sdk_market, warm_sdk_market
from vincent.skills.polymarket.types import (
    ActionClaim,
    ApprovalResolution,
    AttemptOutcome,
    AttemptResolution,
    BetRequest,
    BetResult,
    ExecutedRow,
    Holding,
    OrderBook,
    Settlement,
)

logger = logging.getLogger(__name__)

# Market metadata read again per ``keep_warm`` call at most, and at once at most.
MAX_REFRESHES_PER_CALL = 256
REFRESH_CONCURRENCY = 4

_OUTCOME_OF_STATUS = {
    TransactionStatus.EXECUTED: AttemptOutcome.EXECUTED,
    TransactionStatus.DENIED: AttemptOutcome.DENIED,
    TransactionStatus.PENDING_APPROVAL: AttemptOutcome.PENDING_APPROVAL,
    TransactionStatus.FAILED: AttemptOutcome.FAILED,
}


class PolymarketSkill:
    """The Polymarket skill (live or paper). Implements ``TradingSkill``."""

    def __init__(
        self,
        *,
        session_factory: SessionFactory,
        http_client: httpx.AsyncClient,
        market_data: MarketData,
        data_api: JsonGetter,
        registry: ClientRegistry,
        post_timeout_s: float,
        paper_mode: bool,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._sessions = session_factory
        self._clock = clock
        self._warm = WarmMarkets()
        self._http = http_client
        self._market_data = market_data
        self._data_api = data_api
        self._registry = registry
        self._orders = LiveOrders(registry, post_timeout_s=post_timeout_s)
        self._paper = paper_mode
        self._executor = Executor(session_factory, market_data, self._orders, paper_mode=paper_mode)
        self._bets = BetPipeline(session_factory, market_data, self._executor, self._shares_held)
        self._wallets = Wallets(session_factory)

    @property
    def paper_mode(self) -> bool:
        return self._paper

    # ---- actions ---------------------------------------------------------------------

    async def place_bet(self, request: BetRequest) -> BetResult:
        """Check policies, audit, and (if allowed) place the order. Raises ``SkillError``."""
        return await self._bets.place_bet(request)

    async def execute_approved(self, transaction_log_id: str) -> BetResult:
        """Execute an action the owner approved; only from PENDING_APPROVAL, only once.

        The caller (``services.approvals``) has already won the approval's status
        transition; this moves the audit row out of PENDING_APPROVAL the same way.
        """
        async with self._sessions() as session, session.begin():
            row = await audit.get_log(session, transaction_log_id)
            if row is None:
                raise SkillError(f"transaction {transaction_log_id} not found")
            mode = ExecutionMode.PAPER if self._paper else ExecutionMode.LIVE
            if row.execution_mode is not mode:
                # Checked by services.approvals before approving; never crossed here either.
                raise ExecutionModeMismatch("This approval", row.execution_mode.value, mode.value)
            moved = await audit.move_status(
                session,
                transaction_log_id,
                from_statuses=[TransactionStatus.PENDING_APPROVAL],
                to_status=TransactionStatus.PENDING,
            )
        if not moved:
            raise SkillError(f"transaction {transaction_log_id} is not awaiting approval")
        wallet = await self._wallets.load(row.secret_id)
        return await self._executor.execute_row(row, wallet.funder_address)

    async def resolve_attempt(self, idempotency_key: str) -> AttemptResolution:
        """Find out what became of the action sent with ``idempotency_key``; never re-sign."""
        async with one_statement_session(self._sessions) as session:
            found = (
                await session.execute(
                    sa.select(TransactionLog, *WALLET_COLUMNS)
                    .join(Secret, Secret.id == TransactionLog.secret_id)
                    .where(TransactionLog.idempotency_key == idempotency_key)
                )
            ).one_or_none()
        if found is None:
            return AttemptResolution(AttemptOutcome.NOT_SENT, message="no such action")
        row: TransactionLog = found.TransactionLog
        wallet = wallet_of(row.secret_id, found)
        if row.signed_order is None and row.status not in _OUTCOME_OF_STATUS:
            if await self._executor.close_unsent(row.id):
                return AttemptResolution(AttemptOutcome.NOT_SENT, message="never signed or posted")
            async with self._sessions() as session:  # it moved meanwhile: read it again
                row = await audit.get_log(session, row.id) or row
        if row.status in _OUTCOME_OF_STATUS or row.signed_order is None:
            outcome = _OUTCOME_OF_STATUS.get(row.status, AttemptOutcome.FAILED)
            if outcome is not AttemptOutcome.FAILED:
                return AttemptResolution(
                    outcome, result_of(row, wallet.funder_address), row.error_message
                )
            # Only a FAILED row records its error; an unsigned row that stayed open while
            # it was closed (it vanished) is failed untyped: neither retried nor killed.
            failure = settlement.recorded_failure(row) or SkillError(
                row.error_message or "the action's record changed while it was read"
            )
            if isinstance(failure, SettlementFailed):
                outcome = AttemptOutcome.SETTLEMENT_FAILED
            return AttemptResolution(outcome, None, row.error_message, failure, row.order_id)
        try:
            result = await self._executor.resolve(row, wallet.funder_address)
        except OrderNotPlaced as error:  # known dead: the caller may sign anew
            return AttemptResolution(
                AttemptOutcome.FAILED, message=error.message, failure=error, order_id=row.order_id
            )
        except TransientSkillError:
            raise
        except SkillError as error:
            return AttemptResolution(AttemptOutcome.FAILED, message=error.message, failure=error)
        return AttemptResolution(AttemptOutcome.EXECUTED, result)

    async def resolve_approvals(
        self, approval_ids: Collection[str], *, now: datetime
    ) -> dict[str, ApprovalResolution]:
        """What became of each action waiting on an approval, by approval id (ids not
        found are left out); an undecided approval past its expiry at ``now`` is EXPIRED."""
        return await resolve_approvals(self._sessions, approval_ids, now=now)

    async def settle_unknown_actions(
        self, *, older_than: datetime, limit: int = 100
    ) -> list[tuple[str, TransactionStatus]]:
        """Resolve actions left UNKNOWN (an ambiguous answer to a ``/bet``, a lost one)
        and untouched since ``older_than``: by order id, or by re-posting the same signed
        order; never a new one. Returns (transaction log id, status now) for each."""
        if self._paper:
            return []
        async with one_statement_session(self._sessions) as session:
            found = (
                await session.execute(
                    sa.select(TransactionLog, *WALLET_COLUMNS)
                    .join(Secret, Secret.id == TransactionLog.secret_id)
                    .where(
                        TransactionLog.status == TransactionStatus.UNKNOWN,
                        TransactionLog.signed_order.is_not(None),
                        TransactionLog.updated_at <= older_than,
                    )
                    .order_by(TransactionLog.updated_at)
                    .limit(limit)
                )
            ).all()
        settled: list[tuple[str, TransactionStatus]] = []
        for item in found:
            row: TransactionLog = item.TransactionLog
            try:
                wallet = wallet_of(row.secret_id, item)
                await self._executor.resolve(row, wallet.funder_address, by="reconciliation")
            except VincentError as error:  # still unknown, or settled as failed
                logger.info(
                    "unknown_action_checked",
                    extra={"transaction_log_id": row.id, "error": error.code},
                )
            async with one_statement_session(self._sessions) as session:
                current = await audit.get_log(session, row.id)
            settled.append((row.id, current.status if current else row.status))
        return settled

    async def follow_settlement(
        self, transaction_log_id: str, recorded: ExecutedRow | None = None
    ) -> Settlement:
        """Where the executed action's trades are on chain (see ``settlement.follow``)."""
        return await settlement.follow(
            self._sessions, self._orders, transaction_log_id, paper=self._paper, recorded=recorded
        )

    async def cancel_order(self, secret_id: str, order_id: str | None) -> dict[str, Any]:
        """Cancel one open order (or all with ``order_id=None``); the CLOB's answer."""
        await self._wallets.load(secret_id)
        if self._paper:
            return {"canceled": [], "not_canceled": {}}
        return await self._orders.cancel(secret_id, order_id)

    # ---- reads -----------------------------------------------------------------------

    async def get_holdings(self, secret_id: str) -> list[Holding]:
        known = self._wallets.known(secret_id)
        if known is not None and not self._paper:
            # The address is known: the secret's liveness is read alongside its positions.
            live, held = await asyncio.gather(
                self._wallets.load(secret_id),
                holdings_api.fetch_positions(self._data_api, known.funder_address),
                return_exceptions=True,
            )
            for outcome in (live, held):
                if isinstance(outcome, BaseException):
                    raise outcome
            assert isinstance(held, list)
            return held
        wallet = await self._wallets.load(secret_id)
        if not self._paper:
            return await holdings_api.fetch_positions(self._data_api, wallet.funder_address)
        async with self._sessions() as session:
            positions = await paper.paper_positions(session, secret_id)
        return [
            paper.to_holding(p, await self._market_data.get_midpoint(p.token_id)) for p in positions
        ]

    async def wallet_address(self, secret_id: str) -> str:
        return (await self._wallets.load(secret_id)).funder_address

    async def get_open_orders(self, secret_id: str, market: str | None) -> list[dict[str, Any]]:
        await self._wallets.load(secret_id)
        return [] if self._paper else await self._orders.open_orders(secret_id, market)

    async def get_trades(self, secret_id: str, market: str | None) -> list[dict[str, Any]]:
        await self._wallets.load(secret_id)
        return [] if self._paper else await self._orders.trades(secret_id, market)

    async def get_midpoint(self, token_id: str) -> Decimal | None:
        return await self._market_data.get_midpoint(token_id)

    async def get_order_book(self, token_id: str) -> OrderBook:
        return await self._market_data.get_order_book(token_id)

    async def get_market(self, condition_id: str) -> dict[str, Any]:
        return await self._market_data.get_market(condition_id)

    async def lookup_market_slug(self, condition_id: str) -> str | None:
        return await self._market_data.lookup_market_slug(condition_id)

    async def get_market_state(self, condition_id: str) -> MarketState | None:
        """Closed / accepting orders / winner of a market; None when it is unknown."""
        return await self._market_data.get_market_state(condition_id)

    async def market_of_token(self, token_id: str) -> str | None:
        """The condition id of a token's market (cached, bounded); None when unknown."""
        return await self._market_data.market_of_token(token_id)

    async def prepare(self, secret_id: str, token_id: str) -> None:
        """Warm the secret's SDK client, wallet and policies and the token's market info
        before a first order.

        Nothing is fetched again that is already held: a tick size that changed since is
        caught when signing or posting, which refresh it then; policies changed since are
        caught when a sell writes its action (``bet_inputs.inputs_guard``).
        """
        await self._bets.warm_inputs(secret_id)
        await self._market_data.market_info(token_id)
        if not self._paper:
            client = await self._registry.client_for(secret_id)
            await warm_sdk_market(client, token_id)

    async def warm_claim(self, claim: ActionClaim) -> None:
        """Run the statement a rule's sell writes with, once, for ``claim`` (which claims
        nothing): its compile and prepare are then not paid by the first fire."""
        await self._bets.warm_claim(claim)

    async def keep_warm(self, token_ids: Collection[str]) -> None:
        """Keep the order path of ``token_ids`` free of network calls but the POST: call
        every ~20 s with the tokens watched. Keeps a CLOB connection open (a ping when idle)
        and reads the markets' metadata again, ours and the SDK's, before either cache
        would drop it (``exchange_link``); a failed read is tried again next call."""
        if self._paper:
            return
        await self._registry.link.ping_if_idle()
        due = self._warm.due(token_ids, self._clock(), limit=MAX_REFRESHES_PER_CALL)
        one_per_market: dict[str, str] = {}  # a market's tokens are read together
        for token in due:
            try:
                condition_id = await self._market_data.condition_id_for(token)
            except Exception:
                condition_id = token  # read on its own; its failure is logged there
            one_per_market.setdefault(condition_id, token)
        reads = list(one_per_market.values())
        for start in range(0, len(reads), REFRESH_CONCURRENCY):
            await asyncio.gather(
                *(self._refresh(token) for token in reads[start : start + REFRESH_CONCURRENCY])
            )

    async def _refresh(self, token_id: str) -> None:
        try:
            info = await self._market_data.market_info(token_id, refresh=True)
            client = self._registry.any_client()
            if client is not None:  # all clients share the SDK's metadata cache
                await refresh_sdk_market(client, token_id)
        except Exception as error:
            logger.info(
                "market_refresh_failed",
                extra={"token_id": token_id, "error": type(error).__name__},
            )
            return
        self._warm.read(info.token_ids, self._clock())

    async def aclose(self) -> None:
        await self._registry.aclose()
        await self._http.aclose()

    async def _shares_held(self, wallet: WalletRef, token_id: str) -> Decimal | None:
        """Shares the wallet holds of ``token_id``; None when the Data API cannot say."""
        if self._paper:
            async with self._sessions() as session:
                positions = await paper.paper_positions(session, wallet.secret_id)
            return sum((p.shares for p in positions if p.token_id == token_id), Decimal(0))
        try:
            positions_now = await holdings_api.fetch_positions(
                self._data_api, wallet.funder_address
            )
        except SkillError as error:
            logger.warning("holdings_unavailable", extra={"error": error.code})
            return None
        return holdings_api.shares_held(positions_now, token_id)
