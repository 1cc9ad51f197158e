"""One worker per SQLite database; the status and metrics of a worker's leadership."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import httpx
import pytest
from bench.worker_processes import worker_processes
from pydantic import SecretStr

from tests.engine.live import worker_settings
from tests.engine.scripted_skill import ScriptedSkill
from tests.helpers import TEST_ENCRYPTION_KEY, make_tenant
from vincent.app import create_app
from vincent.config import Settings
from vincent.db.session import create_engine, create_session_factory
from vincent.services.trade_manager import TradeMonitoringWorker
from vincent.services.trade_manager.single_worker_lock import WorkerAlreadyRunning
from vincent.sim import LocalExchange

RULES = "/api/skills/polymarket/rules"
TIMEOUT_S = 30.0


def quiet_settings(database_url: str) -> Settings:
    return Settings(
        database_url=database_url,
        trade_manager_ws_enabled=False,
        trade_manager_poll_interval_s=3600.0,
    )


async def test_a_second_worker_on_one_sqlite_file_refuses_to_start_until_the_first_stops(
    skill: ScriptedSkill, sqlite_template: Path, tmp_path: Path
) -> None:
    path = tmp_path / "vincent.db"
    shutil.copyfile(sqlite_template, path)
    database_url = f"sqlite+aiosqlite:///{path}"
    engine = create_engine(database_url)
    session_factory = create_session_factory(engine)
    first = TradeMonitoringWorker(quiet_settings(database_url), session_factory, skill)
    second = TradeMonitoringWorker(quiet_settings(database_url), session_factory, skill)
    try:
        async with first:
            assert first.status().leader is True
            with pytest.raises(WorkerAlreadyRunning, match="already running against this SQLite"):
                await second.start()
        third = TradeMonitoringWorker(quiet_settings(database_url), session_factory, skill)
        async with third:
            assert third.status().leader is True
    finally:
        await engine.dispose()


@pytest.mark.slow
async def test_a_second_vincent_worker_process_on_sqlite_exits_with_a_clear_message(
    exchange: LocalExchange, keybox_key: str, tmp_path: Path
) -> None:
    database_url = f"sqlite+aiosqlite:///{tmp_path / 'vincent.db'}"
    settings = worker_settings(exchange, database_url)
    async with asyncio.timeout(TIMEOUT_S), worker_processes(tmp_path) as workers:
        first = await workers.start("A", settings, keybox_key)
        await first.wait_for_log("trade_monitoring_worker.started", role="leader")
        second = await workers.start("B", settings, keybox_key)
        assert await second.wait() == 1
        assert first.process.returncode is None

    refusal = " ".join(str(entry.get("line", "")) for entry in second.logs)
    assert "another vincent worker" in refusal
    assert "SQLite allows one worker" in refusal
    assert second.find("trade_monitoring_worker.started") is None


async def test_status_and_metrics_name_the_leader(
    exchange: LocalExchange, database_url: str
) -> None:
    settings = worker_settings(
        exchange, database_url, vincent_encryption_key=SecretStr(TEST_ENCRYPTION_KEY)
    )
    app = create_app(settings)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://vincent"
        ) as client,
    ):
        worker: TradeMonitoringWorker = app.state.vincent.worker
        async with app.state.vincent.session_factory() as session:
            alice = await make_tenant(session, "alice")
            await session.commit()
        status = (await client.get(f"{RULES}/status", headers=alice.headers)).json()["data"]
        metrics = (await client.get("/metrics")).text

    assert status["running"] is True
    assert status["leader"] is True
    assert status["workerId"] == worker.worker_id
    assert "vincent_trade_manager_leader 1.0" in metrics
    # PostgreSQL: won the leadership at start; SQLite: alone, never elected.
    takeovers = 0 if database_url.startswith("sqlite") else 1
    assert f"vincent_trade_manager_takeovers_total {takeovers}.0" in metrics
