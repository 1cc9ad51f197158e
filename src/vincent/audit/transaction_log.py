"""The only writer of ``TransactionLog`` rows: create one per action, move it to its end.

Status moves are conditional UPDATEs (``WHERE status IN (...)``) so two writers never
both move the same row; the row count tells the caller whether it won.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession

from vincent.db.base import new_id, utcnow
from vincent.db.driver_statement import (
    driver_statement,
    equals_any,
    execute_at_driver,
    write_at_driver,
)
from vincent.db.leader_epoch import LEADERSHIP_ROW
from vincent.db.models import TransactionLog, WorkerLeadership
from vincent.db.session import SessionFactory
from vincent.db.sqlite_driver import Step, write_after_claim
from vincent.enums import ExecutionMode, TransactionStatus

ACTION_POLYMARKET_BET = "polymarket_bet"

# Statuses from which an action may still reach the exchange (or already has).
OPEN_STATUSES = (TransactionStatus.PENDING, TransactionStatus.UNKNOWN)


def create_log(
    session: AsyncSession | None,
    *,
    secret_id: str,
    request_data: dict[str, Any],
    status: TransactionStatus,
    usd_value: Decimal | None,
    execution_mode: ExecutionMode,
    api_key_id: str | None = None,
    idempotency_key: str | None = None,
    action_type: str = ACTION_POLYMARKET_BET,
    error_message: str | None = None,
    response_data: dict[str, Any] | None = None,
    signed_order: dict[str, Any] | None = None,
    order_id: str | None = None,
) -> TransactionLog:
    """Add (not commit) the audit row of a new action to ``session`` (None: to no session,
    for ``insert_fenced_log``); its id and timestamps are set at once.

    An action signed before it is recorded carries its ``signed_order`` and ``order_id``
    from the first write, so it is stored before it can be posted. ``execution_mode`` is
    the mode of the process deciding it: the action executes only in that mode.
    """
    row = TransactionLog(
        id=new_id(),
        secret_id=secret_id,
        api_key_id=api_key_id,
        action_type=action_type,
        request_data=request_data,
        status=status,
        usd_value=usd_value,
        idempotency_key=idempotency_key,
        error_message=error_message,
        response_data=response_data,
        signed_order=signed_order,
        order_id=order_id,
        execution_mode=execution_mode,
    )
    row.created_at = row.updated_at = utcnow()
    if session is not None:
        session.add(row)
    return row


async def insert_log(session: AsyncSession, row: TransactionLog) -> None:
    """INSERT ``row`` now, as one Core statement (no unit of work); it stays out of the
    session."""
    table = TransactionLog.__table__
    await session.execute(
        sa.insert(TransactionLog),
        [{column.key: getattr(row, column.key) for column in table.columns}],
    )


async def insert_fenced_log(session: AsyncSession, row: TransactionLog, epoch: int) -> bool:
    """INSERT ``row`` only if the workers' leadership epoch is still ``epoch``, reading it
    ``FOR SHARE`` in the same statement (PostgreSQL: one round trip, atomic by itself).
    Returns whether it was written; ``row`` stays out of the session."""
    table = TransactionLog.__table__
    values = [
        sa.literal(getattr(row, column.key), type_=column.type).label(column.key)
        for column in table.columns
    ]
    fenced = (
        sa.select(*values)
        .select_from(WorkerLeadership)
        .where(WorkerLeadership.id == LEADERSHIP_ROW, WorkerLeadership.epoch == epoch)
        .with_for_update(read=True)
    )
    result = await session.execute(
        sa.insert(TransactionLog).from_select([column.key for column in table.columns], fenced)
    )
    return bool(getattr(result, "rowcount", 0))


_INSERTS_AFTER: dict[tuple[sa.CTE, tuple[sa.CTE, ...]], sa.Insert] = {}


def _insert_after(claimed: sa.CTE, ctes: tuple[sa.CTE, ...]) -> sa.Insert:
    built = _INSERTS_AFTER.get((claimed, ctes))
    if built is None:
        table = cast(sa.Table, TransactionLog.__table__)
        values = [sa.bindparam(f"log_{column.key}", type_=column.type) for column in table.columns]
        built = (
            sa.insert(table)
            .from_select(
                [column.key for column in table.columns],
                sa.select(*values).select_from(claimed),
            )
            .add_cte(claimed, *ctes)
        )
        _INSERTS_AFTER[(claimed, ctes)] = built
    return built


async def insert_log_after(
    sessions: SessionFactory,
    row: TransactionLog,
    claimed: sa.CTE,
    ctes: tuple[sa.CTE, ...],
    params: dict[str, object],
) -> bool:
    """INSERT ``row`` in the same statement as a claim (PostgreSQL's data-modifying
    ``WITH``): ``claimed`` returns one row when the claim won, and the row is written only
    then; ``ctes`` (the claim's other writes, its events) and the claim commit with it,
    all or nothing, in one round trip, autocommitted (PostgreSQL only). ``params`` are the
    claim's bound parameters. Returns whether the claim won (and so the row was written);
    ``row`` stays out of any session. A duplicate idempotency key raises
    ``IntegrityError``, nothing written."""
    table = TransactionLog.__table__
    values = {f"log_{column.key}": getattr(row, column.key) for column in table.columns}
    # At asyncpg itself: the statement is built once per shape, so its SQL is compiled once,
    # and a fire pays only its parameters' processing, no session.
    return bool(await write_at_driver(sessions, _insert_after(claimed, ctes), {**params, **values}))


_LOGS = cast(sa.Table, TransactionLog.__table__)
# The audit row's INSERT, with ``insert_log_after``'s parameters (``log_<column>``).
_INSERT_LOG = sa.insert(_LOGS).values(
    {column.key: sa.bindparam(f"log_{column.key}", type_=column.type) for column in _LOGS.c}
)


async def insert_log_after_steps(
    sessions: SessionFactory,
    row: TransactionLog,
    claim: sa.Update,
    writes: tuple[sa.Insert | sa.Update, ...],
    params: dict[str, object],
) -> bool:
    """``insert_log_after`` on SQLite, which has no data-modifying ``WITH``: the claim's
    UPDATE (``claim``), then, only if it changed a row, its other writes and the INSERT of
    ``row``, in one transaction run as one call on SQLite's thread
    (``sqlite_driver.write_after_claim``): all or nothing, as on PostgreSQL. ``params``
    are the claim's bound parameters. Returns whether the claim won (and so the row was
    written); ``row`` stays out of any session. A duplicate idempotency key raises
    ``IntegrityError``, nothing written."""
    engine = sessions.kw.get("bind")
    if not isinstance(engine, AsyncEngine):
        raise TypeError(f"a session factory bound to an engine is needed, was {engine!r}")
    arguments = {**params, **{f"log_{column.key}": getattr(row, column.key) for column in _LOGS.c}}

    def step(statement: sa.Executable) -> Step:
        # Each statement built once and kept: compiled once, as for ``insert_log_after``.
        driver = driver_statement(statement, engine.dialect)
        return driver.sql, driver.parameters(arguments)

    return await write_after_claim(
        engine, step(claim), [*(step(write) for write in writes), step(_INSERT_LOG)]
    )


async def find_by_idempotency_key(session: AsyncSession, key: str) -> TransactionLog | None:
    return await session.scalar(
        sa.select(TransactionLog).where(TransactionLog.idempotency_key == key)
    )


async def get_log(session: AsyncSession, log_id: str) -> TransactionLog | None:
    return await session.get(TransactionLog, log_id, populate_existing=True)


async def move_status(
    session: AsyncSession | AsyncConnection,
    log_id: str,
    *,
    from_statuses: Iterable[TransactionStatus],
    to_status: TransactionStatus,
    unsent_only: bool = False,
    **fields: Any,
) -> bool:
    """Move ``log_id`` to ``to_status`` (plus ``fields``) only from ``from_statuses``
    (and, with ``unsent_only``, only while no order was signed for it).

    Returns whether this call moved it. Does not commit. A field given as ``IfUnset(v)``
    is set to ``v`` only where the row holds none. ``session`` may be a connection
    (``one_statement_connection``): the move is one statement run at the driver.
    """
    statement, params = _move(log_id, tuple(from_statuses), to_status, unsent_only, fields)
    # At the driver: each shape of move is built and compiled once.
    result = await execute_at_driver(session, statement, params)
    return bool(result.rowcount)


async def move_status_at_driver(
    sessions: SessionFactory,
    log_id: str,
    *,
    from_statuses: Iterable[TransactionStatus],
    to_status: TransactionStatus,
    unsent_only: bool = False,
    **fields: Any,
) -> bool:
    """``move_status`` by itself, committed (``write_at_driver``: on PostgreSQL asyncpg
    itself on a pooled connection, autocommitted; on a SQLite file the statement and its
    commit as one call on aiosqlite's thread; in memory ``one_statement_connection``)."""
    statement, params = _move(log_id, tuple(from_statuses), to_status, unsent_only, fields)
    return bool(await write_at_driver(sessions, statement, params))


def _move(
    log_id: str,
    from_statuses: tuple[TransactionStatus, ...],
    to_status: TransactionStatus,
    unsent_only: bool,
    fields: dict[str, Any],
) -> tuple[sa.Update, dict[str, Any]]:
    """A move's statement (``_move_statement``) and its parameters."""
    if_unset = tuple(sorted(k for k, v in fields.items() if isinstance(v, IfUnset)))
    statement = _move_statement(
        from_statuses, unsent_only, tuple(sorted(set(fields) - set(if_unset))), if_unset
    )
    params = {f"set_{k}": v.value if isinstance(v, IfUnset) else v for k, v in fields.items()}
    params.update(move_id=log_id, move_to=to_status, move_now=utcnow())
    return statement, params


@dataclass(frozen=True, slots=True)
class IfUnset:
    """``move_status``'s value for a field to set only where the row holds none
    (``coalesce(column, value)``: what an order really moved, unless valued before)."""

    value: Any


_MoveShape = tuple[tuple[TransactionStatus, ...], bool, tuple[str, ...], tuple[str, ...]]
_MOVES: dict[_MoveShape, sa.Update] = {}


def _move_statement(
    from_statuses: tuple[TransactionStatus, ...],
    unsent_only: bool,
    fields: tuple[str, ...],
    if_unset: tuple[str, ...] = (),
) -> sa.Update:
    """``move_status``'s UPDATE, built once per shape (a Core statement with bound
    parameters ``move_id``, ``move_to``, ``move_now`` and ``set_<field>``): a move then
    compiles nothing and builds no expression."""
    key = (from_statuses, unsent_only, fields, if_unset)
    built = _MOVES.get(key)
    if built is None:
        table = cast(sa.Table, TransactionLog.__table__)
        columns = table.c
        condition = [
            columns.id == sa.bindparam("move_id"),
            equals_any(columns.status, from_statuses),
        ]
        if unsent_only:
            condition.append(columns.order_id.is_(None))
        values: dict[str, Any] = {
            "status": sa.bindparam("move_to", type_=columns.status.type),
            "updated_at": sa.bindparam("move_now", type_=columns.updated_at.type),
        }
        for name in fields:
            values[name] = sa.bindparam(f"set_{name}", type_=columns[name].type)
        for name in if_unset:
            value = sa.bindparam(f"set_{name}", type_=columns[name].type)
            values[name] = sa.func.coalesce(columns[name], value)
        built = sa.update(table).where(*condition).values(values)
        _MOVES[key] = built
    return built


async def store_signed_order(
    session: AsyncSession,
    log_id: str,
    signed_order: dict[str, Any],
    order_id: str,
    *,
    replace: bool = False,
    request_data: dict[str, Any] | None = None,
) -> bool:
    """Keep the signed order (and its id) an open action will post. Does not commit.

    Only the first signature is stored unless ``replace`` (the exchange definitively
    refused the stored one); ``request_data`` replaces the stored action when the new
    order differs from it (a SELL cut to what the wallet holds). Returns whether this
    call stored it.
    """
    condition = [TransactionLog.id == log_id, TransactionLog.status.in_(list(OPEN_STATUSES))]
    if not replace:
        condition.append(TransactionLog.order_id.is_(None))
    values: dict[str, Any] = {"signed_order": signed_order, "order_id": order_id}
    if request_data is not None:
        values["request_data"] = request_data
    result = await session.execute(
        sa.update(TransactionLog)
        .where(*condition)
        .values(updated_at=utcnow(), **values)
        .execution_options(synchronize_session=False)
    )
    return bool(getattr(result, "rowcount", 0))
