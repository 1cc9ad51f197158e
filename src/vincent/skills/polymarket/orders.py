"""Live orders through the SDK: sign, post, look up, settle, cancel, list. No database.

Signing and posting are separate calls so the caller can persist the signed order (and
its id) before it is posted: the exactly-once tool. A post whose answer is lost or
ambiguous raises ``UnknownOutcome``; it is resolved by ``lookup`` or by posting the same
signed order again. ``settlement`` follows an order's trades on chain.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import ROUND_DOWN, Decimal
from typing import Any, cast

from polymarket import AsyncSecureClient
from polymarket._internal.actions.account import build_update_balance_allowance_request
from polymarket._internal.actions.orders.allowance import resolve_order_balance_allowance_target
from polymarket._internal.wallet import signature_type_for
from polymarket.errors import RequestRejectedError, UnexpectedResponseError
from polymarket.models.clob.account import ClobTrade
from polymarket.models.clob.order_response import AcceptedOrder
from polymarket.models.clob.orders import SignedOrder
from polymarket.models.types import ClobAssetId

from vincent.skills.polymarket.clients import ClientRegistry
from vincent.skills.polymarket.errors import InvalidOrder, SkillError, UnknownOutcome, WalletError
from vincent.skills.polymarket.exchange_errors import classify_rejected_order, classify_sdk_error
from vincent.skills.polymarket.signed_orders import OrderIdSigner, order_id_of
from vincent.skills.polymarket.types import OrderType, Settlement, SettlementState, Side

_BASE_UNITS = Decimal(1_000_000)  # the exchange's amounts are in millionths


@dataclass(frozen=True, slots=True)
class OrderSpec:
    """What to sign. ``amount``: USD for a market BUY, shares otherwise (a limit BUY's USD
    budget is turned into shares at ``price``)."""

    token_id: str
    side: Side
    amount: Decimal
    price: Decimal | None
    order_type: OrderType
    worst_price: Decimal | None = None


@dataclass(frozen=True, slots=True)
class Fills:
    """An order's outcome on the exchange: its status (lower case) and what it filled."""

    order_id: str
    status: str
    filled_shares: Decimal
    filled_usd: Decimal
    response: dict[str, Any]

    def is_final(self, order_type: str) -> bool:
        """Whether the order can fill no further than it has.

        ``delayed`` is always still open (the matcher has not run it yet). A resting limit
        order is placed once it is ``live``. A FOK/FAK never rests: it is done once it
        filled something or was killed; "live", or "matched" with no fill seen yet, is
        followed further (never taken for a fill, never for a kill).
        """
        if self.status == "delayed":
            return False
        if order_type in ("FOK", "FAK"):
            return self.filled_shares > 0 or self.status in ("canceled", "unmatched")
        return True

    def killed_empty(self) -> bool:
        """Ended without a single fill (a FOK/FAK killed, a delayed order unmatched)."""
        return self.filled_shares == 0 and self.status in ("canceled", "unmatched")


def settlement_of(order_id: str, trades: Sequence[ClobTrade]) -> Settlement:
    """Sum an order's trades up: FAILED if any failed, CONFIRMED once all are. Pure."""
    mine = [t for t in trades if t.taker_order_id == order_id] or list(trades)
    statuses = tuple(t.status for t in mine)
    confirmed = sum((t.size for t in mine if t.status == "CONFIRMED"), Decimal(0))
    failed = sum((t.size for t in mine if t.status == "FAILED"), Decimal(0))
    hashes = tuple(t.transaction_hash for t in mine if t.transaction_hash)
    if not mine:
        state = SettlementState.NONE
    elif "FAILED" in statuses:
        state = SettlementState.FAILED
    elif all(status == "CONFIRMED" for status in statuses):
        state = SettlementState.CONFIRMED
    else:
        state = SettlementState.SETTLING
    return Settlement(state, order_id, confirmed, failed, hashes, statuses)


def limit_buy_shares(budget_usd: Decimal, price: Decimal) -> Decimal:
    # Rounded down: a limit BUY never commits more than its USD budget.
    return (budget_usd / price).quantize(Decimal("0.01"), rounding=ROUND_DOWN)


def fills_of(accepted: AcceptedOrder, side: Side) -> Fills:
    # SELL: making = shares given, taking = USD received; BUY the other way round.
    shares, usd = (
        (accepted.making_amount, accepted.taking_amount)
        if side == "SELL"
        else (accepted.taking_amount, accepted.making_amount)
    )
    return Fills(
        order_id=str(accepted.order_id),
        status=accepted.status,
        filled_shares=shares,
        filled_usd=usd,
        response=accepted.model_dump(mode="json"),
    )


class LiveOrders:
    """SDK calls for one exchange, by secret."""

    def __init__(self, registry: ClientRegistry, *, post_timeout_s: float) -> None:
        self._registry = registry
        self._post_timeout_s = post_timeout_s

    async def client(self, secret_id: str) -> AsyncSecureClient:
        return await self._registry.client_for(secret_id)

    async def sign(
        self, secret_id: str, spec: OrderSpec, *, neg_risk: bool
    ) -> tuple[SignedOrder, str]:
        """Sign ``spec`` (no post); return the signed order and its exchange order id."""
        client = await self.client(secret_id)
        try:
            signed = await self._sign(client, spec)
        except SkillError:
            raise
        except Exception as error:
            raise classify_sdk_error(error) from error
        signer = client._ctx.signer
        known = signer.order_id(signed) if isinstance(signer, OrderIdSigner) else None
        return signed, known or order_id_of(signed, self._registry.environment, neg_risk=neg_risk)

    async def _sign(self, client: AsyncSecureClient, spec: OrderSpec) -> SignedOrder:
        if spec.price is not None:
            size = limit_buy_shares(spec.amount, spec.price) if spec.side == "BUY" else spec.amount
            if size <= 0:
                raise InvalidOrder(f"amount buys no shares at price {spec.price}")
            return await client.create_limit_order(
                token_id=spec.token_id, price=spec.price, size=size, side=spec.side
            )
        if spec.order_type not in ("FOK", "FAK"):
            raise InvalidOrder(
                f"orderType must be FOK or FAK without a price, was {spec.order_type}"
            )
        if spec.side == "SELL":
            return await client.create_market_order(
                token_id=spec.token_id,
                side="SELL",
                shares=spec.amount,
                min_price=spec.worst_price,
                order_type=spec.order_type,
            )
        return await client.create_market_order(
            token_id=spec.token_id,
            side="BUY",
            amount=spec.amount,
            max_price=spec.worst_price,
            order_type=spec.order_type,
        )

    async def post(self, secret_id: str, signed: SignedOrder) -> Fills:
        """Post a signed order. Refusals raise typed errors; a lost answer ``UnknownOutcome``."""
        client = await self.client(secret_id)
        try:
            async with asyncio.timeout(self._post_timeout_s):
                response = await client.post_order(signed)
        except TimeoutError as error:
            raise UnknownOutcome("order sent, no answer in time") from error
        except Exception as error:
            mapped = classify_sdk_error(error, order_sent=True)
            if isinstance(mapped, WalletError):
                await self._registry.discard(secret_id)
            raise mapped from error
        if isinstance(response, AcceptedOrder):
            return fills_of(response, signed.side)
        raise classify_rejected_order(response)

    async def lookup(self, secret_id: str, order_id: str) -> Fills | None:
        """What the exchange knows of ``order_id`` (status and fills), or None if nothing."""
        client = await self.client(secret_id)
        try:
            order = await client.get_order(order_id=order_id)
        except RequestRejectedError as error:
            if error.status in (400, 404):
                return None
            raise classify_sdk_error(error) from error
        except UnexpectedResponseError:
            return None
        except Exception as error:
            raise classify_sdk_error(error) from error
        trades = await self._trades_of(client, order.associate_trades)
        mine = [t for t in trades if t.taker_order_id == order_id]
        shares = sum((t.size for t in mine), Decimal(0))
        usd = sum((t.size * t.price for t in mine), Decimal(0))
        if shares == 0 and order.size_matched > 0:
            shares, usd = order.size_matched, order.size_matched * order.price
        return Fills(
            order_id=order.id,
            status=order.status.lower(),
            filled_shares=shares,
            filled_usd=usd,
            response=order.model_dump(mode="json"),
        )

    async def settlement(
        self, secret_id: str, order_id: str, trade_ids: Sequence[str] = ()
    ) -> Settlement:
        """Where ``order_id``'s trades are on chain (``/data/trades``): ``trade_ids`` when
        the caller knows them all (a FOK/FAK's POST answer), else its associate_trades."""
        client = await self.client(secret_id)
        if not trade_ids:
            try:
                order = await client.get_order(order_id=order_id)
            except Exception as error:
                raise classify_sdk_error(error) from error
            trade_ids = order.associate_trades
        trades = await self._trades_of(client, trade_ids)
        return settlement_of(order_id, trades)

    async def _trades_of(
        self, client: AsyncSecureClient, trade_ids: Sequence[str]
    ) -> list[ClobTrade]:
        """The account's trades with these ids (one ``/data/trades?id=`` read each)."""
        found: list[ClobTrade] = []
        try:
            for trade_id in trade_ids:
                found.extend(
                    [t async for t in client.list_account_trades(id=trade_id).iter_items()]
                )
        except Exception as error:
            raise classify_sdk_error(error) from error
        return found

    async def refresh_balance(self, secret_id: str, signed: SignedOrder) -> Decimal:
        """Make the exchange refresh its cached balance of what ``signed`` spends
        (``/balance-allowance/update``), then read it: shares (SELL) or collateral (BUY)."""
        client = await self.client(secret_id)
        ctx = client._ctx
        asset_type, asset_id = resolve_order_balance_allowance_target(
            side=signed.side, asset_id=signed.token_id
        )
        path, params = build_update_balance_allowance_request(
            asset_type=asset_type,
            asset_id=asset_id,
            signature_type=signature_type_for(ctx.wallet_type),
        )
        try:
            # A side-effect endpoint: its body means nothing (the SDK reads it the same way).
            await ctx.secure_clob.get_bytes(path, params=params)
            balance = await client.get_balance_allowance(asset_type=asset_type, asset_id=asset_id)
        except Exception as error:
            raise classify_sdk_error(error) from error
        return Decimal(balance.balance) / _BASE_UNITS

    async def cancel(self, secret_id: str, order_id: str | None) -> dict[str, Any]:
        """Cancel one order, or every open order when ``order_id`` is None."""
        client = await self.client(secret_id)
        try:
            result = (
                await client.cancel_all()
                if order_id is None
                else await client.cancel_order(order_id=order_id)
            )
        except Exception as error:
            raise classify_sdk_error(error) from error
        return result.model_dump(mode="json")

    async def open_orders(self, secret_id: str, market: str | None) -> list[dict[str, Any]]:
        client = await self.client(secret_id)
        try:
            return [
                o.model_dump(mode="json")
                async for o in client.list_open_orders(market=market).iter_items()
            ]
        except Exception as error:
            raise classify_sdk_error(error) from error

    async def trades(self, secret_id: str, market: str | None) -> list[dict[str, Any]]:
        client = await self.client(secret_id)
        try:
            return [
                t.model_dump(mode="json")
                async for t in client.list_account_trades(market=market).iter_items()
            ]
        except Exception as error:
            raise classify_sdk_error(error) from error


async def refresh_sdk_market(client: AsyncSecureClient, token_id: str) -> None:
    """Make the SDK re-read a market's tick size / neg-risk / fees (the exchange said they
    changed). Uses the SDK's metadata cache, which has no public refresh."""
    ctx = client._ctx
    try:
        await ctx.order_metadata.fetch_current_market(ctx, token_id=cast(ClobAssetId, token_id))
    except Exception as error:
        raise classify_sdk_error(error) from error


async def warm_sdk_market(client: AsyncSecureClient, token_id: str) -> None:
    """Have the SDK hold a market's tick size / neg-risk / fees: fetched only if it does
    not hold them yet (or they aged out of its cache)."""
    ctx = client._ctx
    try:
        await ctx.order_metadata.resolve_market(ctx, token_id=cast(ClobAssetId, token_id))
    except Exception as error:
        raise classify_sdk_error(error) from error
