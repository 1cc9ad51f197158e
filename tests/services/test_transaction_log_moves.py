"""``move_status``: a conditional move of an audit row, at the driver, on both databases."""

from __future__ import annotations

from decimal import Decimal

from vincent.audit import transaction_log as audit
from vincent.db.base import new_id
from vincent.db.models import Secret, TransactionLog
from vincent.db.session import SessionFactory
from vincent.enums import ExecutionMode, SecretType, TransactionStatus


async def _row(session_factory: SessionFactory, usd_value: Decimal | None) -> str:
    async with session_factory() as session, session.begin():
        secret = Secret(
            id=new_id(),
            type=SecretType.POLYMARKET_WALLET,
            name="s",
            encrypted_private_key="x",
            eoa_address="0x" + "1" * 40,
            funder_address="0x" + "1" * 40,
        )
        session.add(secret)
        await session.flush()
        row = audit.create_log(
            session,
            secret_id=secret.id,
            request_data={"side": "SELL"},
            status=TransactionStatus.PENDING,
            usd_value=usd_value,
            execution_mode=ExecutionMode.LIVE,
            idempotency_key=None,
        )
        return row.id


async def _move(session_factory: SessionFactory, log_id: str, **fields: object) -> bool:
    async with session_factory() as session, session.begin():
        return await audit.move_status(
            session,
            log_id,
            from_statuses=audit.OPEN_STATUSES,
            to_status=TransactionStatus.EXECUTED,
            **fields,
        )


async def _stored(session_factory: SessionFactory, log_id: str) -> TransactionLog:
    async with session_factory() as session:
        row = await audit.get_log(session, log_id)
    assert row is not None
    return row


async def test_if_unset_fills_only_a_value_the_row_lacks(session_factory: SessionFactory) -> None:
    unvalued = await _row(session_factory, None)
    valued = await _row(session_factory, Decimal("4.5"))

    for log_id in (unvalued, valued):
        moved = await _move(
            session_factory,
            log_id,
            usd_value=audit.IfUnset(Decimal("5")),
            response_data={"filled": "10"},
        )
        assert moved

    assert (await _stored(session_factory, unvalued)).usd_value == Decimal("5")
    kept = await _stored(session_factory, valued)
    assert kept.usd_value == Decimal("4.5")
    assert kept.status is TransactionStatus.EXECUTED
    assert kept.response_data == {"filled": "10"}


async def test_a_row_not_in_the_from_statuses_is_not_moved(
    session_factory: SessionFactory,
) -> None:
    log_id = await _row(session_factory, None)
    assert await _move(session_factory, log_id, error_message=None)
    # EXECUTED is not open: a second move from the open statuses finds nothing to move.
    assert not await _move(session_factory, log_id, error_message="again")
    assert (await _stored(session_factory, log_id)).error_message is None
