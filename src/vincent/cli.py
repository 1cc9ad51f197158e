"""The ``vincent`` command: serve, migrate, manage secrets and keys, run the local exchange.

Thin front end: each command builds the settings once and calls the same services the API
uses. Bad settings print one line and exit 2, never a traceback.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer
from pydantic import SecretStr, ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from vincent.config import VAR_DIR, Settings, describe_validation_error, load_settings
from vincent.crypto import KeyBox, load_or_create_key_file
from vincent.db.session import create_engine, create_session_factory
from vincent.errors import VincentError

if TYPE_CHECKING:
    from fastapi import FastAPI

T = TypeVar("T")

app = typer.Typer(
    help="Vincent Trade Manager",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
db_app = typer.Typer(help="Database migrations", no_args_is_help=True)
secrets_app = typer.Typer(help="Tenants: Polymarket wallet secrets", no_args_is_help=True)
keys_app = typer.Typer(help="Agent API keys", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(secrets_app, name="secrets")
app.add_typer(keys_app, name="keys")

KEY_FILE = VAR_DIR / "encryption.key"


def _fail(message: str, code: int = 2) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def settings_or_exit(**overrides: Any) -> Settings:
    try:
        return load_settings(**overrides)
    except ValidationError as error:
        _fail(describe_validation_error(error))
        raise AssertionError("unreachable") from None


def with_encryption_key(settings: Settings, *, announce: bool = True) -> Settings:
    """Fill VINCENT_ENCRYPTION_KEY from ``var/encryption.key``, creating it when missing."""
    if settings.vincent_encryption_key is not None:
        return settings
    key, created = load_or_create_key_file(KEY_FILE)
    if created and announce:
        typer.echo(
            f"VINCENT_ENCRYPTION_KEY is not set: generated one and stored it in {KEY_FILE} "
            "(back it up; wallet keys cannot be decrypted without it)",
            err=True,
        )
    return settings.model_copy(update={"vincent_encryption_key": SecretStr(key)})


def run_db(settings: Settings, work: Callable[[AsyncSession], Awaitable[T]]) -> T:
    """Run ``work`` in one committed session against the (migrated) configured database."""
    from vincent.db.migrate import upgrade

    upgrade(settings.database_url)

    async def main() -> T:
        engine = create_engine(settings.database_url)
        try:
            async with create_session_factory(engine)() as session:
                result = await work(session)
                await session.commit()
                return result
        finally:
            await engine.dispose()

    try:
        return asyncio.run(main())
    except VincentError as error:
        _fail(error.message, 1)
        raise AssertionError("unreachable") from None


def _print_json(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2, default=str))


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Bind address (HOST)")] = None,
    port: Annotated[int | None, typer.Option(help="Port (PORT)")] = None,
    api_workers: Annotated[
        int | None,
        typer.Option(
            "--api-workers",
            min=1,
            help="API processes (API_WORKERS). Past 1, the monitoring worker runs in one more "
            "process of its own (PostgreSQL only)",
        ),
    ] = None,
) -> None:
    """Migrate the database and run the API server and the monitoring worker."""
    import uvicorn

    from vincent.app import create_app
    from vincent.db.migrate import upgrade
    from vincent.logs import configure_logging

    overrides: dict[str, Any] = {}
    if host is not None:
        overrides["host"] = host
    if port is not None:
        overrides["port"] = port
    if api_workers is not None:
        overrides["api_workers"] = api_workers
    settings = with_encryption_key(settings_or_exit(**overrides))
    if settings.api_workers > 1 and settings.is_sqlite:
        _fail(
            f"--api-workers {settings.api_workers} needs PostgreSQL: on SQLite run one process "
            "(one writer at a time)"
        )
    configure_logging(settings.log_level, settings.log_format.value)
    upgrade(settings.database_url)
    if settings.api_workers == 1:
        uvicorn.run(
            create_app(settings, gc_freeze=True),
            host=settings.host,
            port=settings.port,
            log_config=None,
            access_log=False,
        )
        return
    # The API processes read their settings from the environment: each must know how
    # many share the request limits.
    os.environ["API_WORKERS"] = str(settings.api_workers)
    worker = _MonitoringWorkerProcess() if settings.trade_manager_enabled else None
    try:
        uvicorn.run(
            "vincent.cli:api_process_app",
            factory=True,
            workers=settings.api_workers,
            host=settings.host,
            port=settings.port,
            log_config=None,
            access_log=False,
        )
    finally:
        if worker is not None:
            worker.stop()
    if worker is not None and worker.died:
        _fail("the monitoring worker process exited; stopped the API processes too", 1)


def api_process_app() -> FastAPI:
    """One API-only process of ``serve --api-workers N`` (uvicorn imports and calls this).

    Settings come from the environment, as in the parent; the trade manager is off here:
    the parent runs it once, in its own ``vincent worker`` process.
    """
    from vincent.app import create_app
    from vincent.logs import configure_logging

    settings = with_encryption_key(settings_or_exit(trade_manager_enabled=False), announce=False)
    configure_logging(settings.log_level, settings.log_format.value)
    return create_app(settings, gc_freeze=True)


class _MonitoringWorkerProcess:
    """``vincent worker`` as a child of ``serve --api-workers N``.

    If it exits on its own, the parent is sent SIGTERM: the API processes stop too, and the
    whole service is restarted by whatever supervises it, never left without a worker.
    """

    def __init__(self) -> None:
        self.died = False
        self._stopping = False
        # Its own session: a Ctrl-C at the terminal reaches the parent, which stops it.
        self._process = subprocess.Popen(
            [sys.executable, "-m", "vincent.cli", "worker"], start_new_session=True
        )
        threading.Thread(target=self._watch, name="worker-watch", daemon=True).start()

    def _watch(self) -> None:
        self._process.wait()
        if not self._stopping:
            self.died = True
            os.kill(os.getpid(), signal.SIGTERM)

    def stop(self, timeout_s: float = 30) -> None:
        self._stopping = True
        if self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()


@app.command()
def worker(
    metrics_port: Annotated[
        int | None, typer.Option("--metrics-port", help="Serve /metrics (Prometheus) here")
    ] = None,
) -> None:
    """Run only the monitoring worker, no API.

    On PostgreSQL run as many as you like (one command each, any host): one leads and
    executes, the others are hot standbys that take over within seconds. On SQLite only
    one may run; a second refuses to start. Pair it with API-only processes
    (``TRADE_MANAGER_ENABLED=false vincent serve --api-workers N``): on PostgreSQL it hears
    their rule changes at once (LISTEN/NOTIFY), and its poll tick re-syncs anything missed.
    """
    from vincent.app import run_monitoring_worker
    from vincent.db.migrate import upgrade
    from vincent.logs import configure_logging
    from vincent.services.trade_manager.single_worker_lock import WorkerAlreadyRunning

    settings = with_encryption_key(settings_or_exit(trade_manager_enabled=True))
    configure_logging(settings.log_level, settings.log_format.value)
    upgrade(settings.database_url)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        await run_monitoring_worker(settings, stop, metrics_port=metrics_port)

    try:
        asyncio.run(main())
    except WorkerAlreadyRunning as error:
        _fail(error.message, 1)


@db_app.command("upgrade")
def db_upgrade(revision: str = "head") -> None:
    """Apply the Alembic migrations (creates the SQLite file under ./var/ if needed)."""
    from vincent.db.migrate import upgrade

    settings = settings_or_exit()
    upgrade(settings.database_url, revision)
    typer.echo(f"database at revision {revision}")


@secrets_app.command("create")
def secrets_create(
    name: Annotated[str, typer.Option(help="A name for the tenant")],
    private_key: Annotated[
        str | None,
        typer.Option(
            "--private-key",
            help="Wallet private key: '-' reads it from standard input. Omitted (and no "
            "--private-key-file): asked for at a hidden prompt. A key written here lands in "
            "shell history and `ps`",
        ),
    ] = None,
    private_key_file: Annotated[
        Path | None,
        typer.Option("--private-key-file", help="Read the wallet private key from this file"),
    ] = None,
    funder: Annotated[str | None, typer.Option(help="Wallet address traded for")] = None,
    signature_type: Annotated[
        int | None, typer.Option("--signature-type", help="0 EOA, 1 proxy, 2 Safe, 3 deposit")
    ] = None,
) -> None:
    """Store a wallet (key encrypted) and print its id and a new API key, once, as JSON."""
    from vincent.services.secrets import create_secret

    private_key = _read_private_key(private_key, private_key_file)
    settings = with_encryption_key(settings_or_exit())
    assert settings.vincent_encryption_key is not None
    keybox = KeyBox(settings.vincent_encryption_key.get_secret_value())

    async def work(session: AsyncSession) -> dict[str, Any]:
        created = await create_secret(
            session,
            keybox,
            name=name,
            private_key=private_key,
            funder=funder,
            signature_type=signature_type,
        )
        return {
            "secretId": created.secret.id,
            "name": created.secret.name,
            "eoaAddress": created.secret.eoa_address,
            "walletAddress": created.secret.funder_address,
            "signatureType": created.secret.signature_type,
            "apiKey": {"id": created.api_key.id, "key": created.api_key.key},
        }

    _print_json(run_db(settings, work))


def _read_private_key(option: str | None, path: Path | None) -> str:
    """The wallet key from a file, standard input (``-``), the command line, or a hidden
    prompt; a key on the command line works but is warned about (history, ``ps``)."""
    if option is not None and path is not None:
        _fail("give --private-key or --private-key-file, not both")
    if path is not None:
        try:
            key = path.read_text()
        except OSError as error:
            _fail(f"cannot read --private-key-file {path}: {error.strerror}")
            raise AssertionError("unreachable") from None
    elif option == "-":
        key = sys.stdin.readline()
    elif option is not None:
        typer.echo(
            "warning: a private key on the command line is saved in your shell history and "
            "visible to other users in `ps`; prefer the prompt, --private-key - (standard "
            "input) or --private-key-file",
            err=True,
        )
        key = option
    else:
        key = typer.prompt("Wallet private key", hide_input=True, err=True)
    key = key.strip()
    if not key:
        _fail("no private key given")
    return key


@secrets_app.command("list")
def secrets_list() -> None:
    """List the secrets (never their keys)."""
    from vincent.services.secrets import list_secrets

    async def work(session: AsyncSession) -> list[dict[str, Any]]:
        return [
            {
                "secretId": s.id,
                "name": s.name,
                "type": s.type.value,
                "eoaAddress": s.eoa_address,
                "walletAddress": s.funder_address,
                "signatureType": s.signature_type,
                "createdAt": s.created_at.isoformat(),
            }
            for s in await list_secrets(session)
        ]

    _print_json(run_db(settings_or_exit(), work))


@secrets_app.command("claim")
def secrets_claim(
    token: Annotated[str, typer.Argument(help="The claim token, or the whole claim URL")],
) -> None:
    """Claim an agent-created secret with its one-time claim token; print the secret."""
    from urllib.parse import parse_qs, urlsplit

    from vincent.services.secrets import claim_secret

    if "token=" in token:
        token = parse_qs(urlsplit(token).query).get("token", [""])[0]

    async def work(session: AsyncSession) -> dict[str, Any]:
        secret = await claim_secret(session, token)
        assert secret.claimed_at is not None
        return {
            "secretId": secret.id,
            "memo": secret.memo,
            "walletAddress": secret.funder_address,
            "claimed": True,
            "claimedAt": secret.claimed_at.isoformat(),
        }

    _print_json(run_db(settings_or_exit(), work))


@keys_app.command("create")
def keys_create(secret_id: str, name: Annotated[str | None, typer.Option()] = None) -> None:
    """Issue another API key for a secret; the key is printed once."""
    from vincent.services.api_keys import issue_api_key

    async def work(session: AsyncSession) -> dict[str, Any]:
        issued = await issue_api_key(session, secret_id, name)
        return {"id": issued.id, "secretId": issued.secret_id, "key": issued.key}

    _print_json(run_db(settings_or_exit(), work))


@keys_app.command("revoke")
def keys_revoke(key_id: str) -> None:
    """Revoke an API key; requests with it get 401 from then on."""
    from vincent.services.api_keys import revoke_api_key

    async def work(session: AsyncSession) -> dict[str, Any]:
        row = await revoke_api_key(session, key_id)
        return {"id": row.id, "revokedAt": row.revoked_at}

    _print_json(run_db(settings_or_exit(), work))


@app.command("mcp")
def mcp_stdio(
    url: Annotated[
        str, typer.Option(help="The Vincent server the tools call")
    ] = "http://127.0.0.1:3000",
    api_key_file: Annotated[
        Path | None,
        typer.Option(
            "--api-key-file", help="File holding your ssk_ API key (else VINCENT_API_KEY)"
        ),
    ] = None,
) -> None:
    """Serve the trade-manager MCP tools over stdio (for agents that spawn their tools)."""
    from vincent.mcp.rest_client import RestError
    from vincent.mcp.stdio import serve_stdio

    if api_key_file is not None:
        try:
            api_key = api_key_file.read_text().strip()
        except OSError as error:
            _fail(f"cannot read --api-key-file {api_key_file}: {error.strerror}")
    else:
        api_key = os.environ.get("VINCENT_API_KEY", "").strip()
    if not api_key:
        _fail("no API key: pass --api-key-file PATH or set VINCENT_API_KEY")
    try:
        asyncio.run(serve_stdio(url, api_key))
    except RestError as error:
        _fail(f"cannot serve the MCP tools with {url}: {error.code}: {error.message}", 1)
    except KeyboardInterrupt:
        pass


@app.command()
def sim(
    host: Annotated[str, typer.Option()] = "127.0.0.1",
    port: Annotated[int, typer.Option()] = 8080,
) -> None:
    """Run the local Polymarket-compatible exchange (CLOB V2 REST + market WebSocket)."""
    from vincent import sim as local_exchange

    local_exchange.run(host=host, port=port)


@app.command()
def demo(
    watch: Annotated[
        float, typer.Option(help="Seconds to pause before the fall and at the end (dashboard)")
    ] = 0.0,
) -> None:
    """Run the offline demo: local exchange + server, a stop-loss firing (under a minute)."""
    from vincent.demo import run_demo

    asyncio.run(run_demo(watch_s=watch))


def _mount_admin_commands() -> None:
    from vincent.cli_admin import approvals_app, policies_app

    app.add_typer(approvals_app, name="approvals")
    app.add_typer(policies_app, name="policies")


def main() -> None:
    """Entry point: unexpected errors end in one line (a traceback only at LOG_LEVEL=DEBUG)."""
    _mount_admin_commands()
    try:
        app()
    except Exception as error:
        if os.environ.get("LOG_LEVEL", "").upper() == "DEBUG":
            raise
        typer.echo(f"error: {type(error).__name__}: {error}".splitlines()[0], err=True)
        raise SystemExit(1) from None


if __name__ == "__main__":
    main()
