"""API-only processes answer GET /rules/status from the file ``vincent worker`` writes."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

from fastapi.testclient import TestClient

from tests.api.conftest import RULES, api_settings
from tests.helpers import Tenant
from vincent.api.worker_status_file import STALE_AFTER_S, publish_status, read_status, write_status
from vincent.app import create_app
from vincent.services.trade_manager.types import WorkerStatus

RUNNING = WorkerStatus(
    state="running",
    running=True,
    active_rules_count=3,
    last_sync_time=datetime(2026, 11, 25, 12, 0, 0, 123000, tzinfo=UTC),
    web_socket_connected=True,
    web_socket_subscriptions=6,
    web_socket_connections=1,
    last_message_age_s=0.5,
    leader=True,
    worker_id="host:1:abc123",
)


def test_a_fresh_file_reads_back_and_a_stale_or_missing_one_is_a_stopped_worker(
    tmp_path: Path,
) -> None:
    path = tmp_path / "status.json"
    assert read_status(path) == WorkerStatus()
    write_status(path, RUNNING)
    written_at = path.stat().st_mtime
    status = read_status(path, now=written_at + 1)
    assert status.running is True
    assert status.last_sync_time == RUNNING.last_sync_time
    assert status.web_socket_subscriptions == 6
    assert status.last_message_age_s is not None and status.last_message_age_s >= 1.4
    assert read_status(path, now=written_at + STALE_AFTER_S + 1) == WorkerStatus()
    path.write_text("{not json")
    assert read_status(path) == WorkerStatus()


async def test_the_publisher_writes_until_stopped_then_removes_the_file(tmp_path: Path) -> None:
    path = tmp_path / "status.json"
    stop = asyncio.Event()
    written = asyncio.Event()

    def status() -> WorkerStatus:
        written.set()
        return RUNNING

    task = asyncio.create_task(publish_status(path, status, stop))
    await asyncio.wait_for(written.wait(), 10)
    stop.set()
    await asyncio.wait_for(task, 10)
    assert not path.exists()


async def test_a_standby_neither_writes_the_file_nor_removes_the_leaders(tmp_path: Path) -> None:
    path = tmp_path / "status.json"
    write_status(path, RUNNING)  # the leader's
    stop = asyncio.Event()
    asked = asyncio.Event()

    def status() -> WorkerStatus:
        asked.set()
        return replace(RUNNING, leader=False, worker_id="host:2:def456")

    task = asyncio.create_task(publish_status(path, status, stop))
    await asyncio.wait_for(asked.wait(), 10)
    stop.set()
    await asyncio.wait_for(task, 10)
    assert read_status(path).worker_id == "host:1:abc123"


def test_status_of_an_api_only_process_comes_from_the_worker_file(
    database_url: str, alice: Tenant, tmp_path: Path
) -> None:
    path = tmp_path / "status.json"
    settings = api_settings(database_url, worker_status_file=path)
    with TestClient(create_app(settings, skill_factory=None)) as client:
        assert (
            client.get(RULES + "/status", headers=alice.headers).json()["data"]["running"] is False
        )
        write_status(path, RUNNING)
        client.app.state.vincent.status_reader._read_at = float("-inf")  # type: ignore[attr-defined]
        data = client.get(RULES + "/status", headers=alice.headers).json()["data"]
    assert data["running"] is True
    assert data["webSocketConnected"] is True
    assert data["lastSyncTime"] == "2026-11-25T12:00:00.123Z"
    assert data["webSocketSubscriptions"] == 6
    # No worker in this process: ``leader`` names the leader that wrote the file.
    assert (data["leader"], data["workerId"]) == ("host:1:abc123", None)
