"""Owner commands: ``vincent approvals list/approve/deny`` and ``vincent policies
set/list/delete``. Thin front ends over ``services.approvals`` and ``services.policies``.

They run with the owner's database access, never through an agent's API key.
"""

from __future__ import annotations

import asyncio
import getpass
import json
from typing import Annotated, Any

import typer
from sqlalchemy.ext.asyncio import AsyncSession

from vincent.cli import run_db, settings_or_exit, with_encryption_key
from vincent.crypto import KeyBox
from vincent.db.base import utcnow
from vincent.db.session import create_engine, create_session_factory
from vincent.enums import ApprovalStatus
from vincent.errors import VincentError
from vincent.services import approvals, policies
from vincent.skills.polymarket import create_polymarket_skill

approvals_app = typer.Typer(
    help="Pending approvals: decided by the owner only.", no_args_is_help=True
)
policies_app = typer.Typer(help="Policies limiting what agents may do.", no_args_is_help=True)


def _echo(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2, default=str))


def _actor() -> str:
    return f"cli:{getpass.getuser()}"


@approvals_app.command("list")
def approvals_list(
    status: Annotated[str, typer.Option(help="PENDING, APPROVED, DENIED, EXPIRED or ALL")] = (
        "PENDING"
    ),
    secret_id: Annotated[str | None, typer.Option("--secret-id")] = None,
) -> None:
    """List approvals (expiring the ones that are due first)."""
    try:
        wanted = None if status.upper() == "ALL" else ApprovalStatus(status.upper())
    except ValueError:
        raise typer.BadParameter(
            f"status must be PENDING, APPROVED, DENIED, EXPIRED or ALL, was {status!r}"
        ) from None

    async def work(session: AsyncSession) -> list[dict[str, Any]]:
        found = await approvals.list_approvals(
            session, utcnow(), status=wanted, secret_id=secret_id
        )
        return [approvals.approval_json(a) for a in found]

    _echo(run_db(settings_or_exit(), work))


@approvals_app.command("approve")
def approvals_approve(approval_id: str) -> None:
    """Approve an action and execute it now (exactly once)."""
    settings = with_encryption_key(settings_or_exit())
    assert settings.vincent_encryption_key is not None
    keybox = KeyBox(settings.vincent_encryption_key.get_secret_value())

    async def main() -> dict[str, Any]:
        engine = create_engine(settings.database_url)
        session_factory = create_session_factory(engine)
        skill = create_polymarket_skill(settings, session_factory, keybox)
        try:
            outcome = await approvals.approve(
                session_factory, skill, approval_id, decided_by=_actor(), now=utcnow()
            )
        finally:
            await skill.aclose()
            await engine.dispose()
        data: dict[str, Any] = {"approval": approvals.approval_json(outcome.approval)}
        if outcome.result is not None:
            data["result"] = approvals.bet_result_json(outcome.result)
        else:
            data["error"] = {"code": outcome.error_code, "message": outcome.error_message}
        return data

    try:
        _echo(asyncio.run(main()))
    except VincentError as error:
        typer.echo(f"error: {error.message}", err=True)
        raise typer.Exit(1) from None


@approvals_app.command("deny")
def approvals_deny(approval_id: str) -> None:
    """Deny an action; it will never execute."""

    async def work(session: AsyncSession) -> dict[str, Any]:
        denied = await approvals.deny(session, approval_id, decided_by=_actor(), now=utcnow())
        return approvals.approval_json(denied)

    _echo(run_db(settings_or_exit(), work))


@policies_app.command("set")
def policies_set(
    secret_id: str,
    policy_type: str,
    config: Annotated[str, typer.Argument(help="JSON config, e.g. '{\"maxUsd\": 50}'")],
) -> None:
    """Create or replace a secret's policy of one type."""
    try:
        parsed = json.loads(config)
    except ValueError:
        parsed = None
    if not isinstance(parsed, dict):
        raise typer.BadParameter(f"config must be a JSON object, was {config!r}")

    async def work(session: AsyncSession) -> dict[str, Any]:
        policy = await policies.set_policy(
            session, secret_id, policies.parse_policy_type(policy_type), parsed
        )
        return policies.policy_json(policy)

    _echo(run_db(settings_or_exit(), work))


@policies_app.command("list")
def policies_list(secret_id: Annotated[str | None, typer.Option("--secret-id")] = None) -> None:
    """List policies (of one secret, or all)."""

    async def work(session: AsyncSession) -> list[dict[str, Any]]:
        return [policies.policy_json(p) for p in await policies.list_policies(session, secret_id)]

    _echo(run_db(settings_or_exit(), work))


@policies_app.command("delete")
def policies_delete(secret_id: str, policy_type: str) -> None:
    """Delete a secret's policy of one type."""

    async def work(session: AsyncSession) -> dict[str, Any]:
        await policies.delete_policy(session, secret_id, policies.parse_policy_type(policy_type))
        return {"deleted": True}

    _echo(run_db(settings_or_exit(), work))


__all__ = ["approvals_app", "policies_app"]
