"""The admin CLI on a scratch SQLite database: in process (Typer's runner), plus one real
subprocess that proves the installed ``vincent`` entry point starts."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx
import psutil
import pytest
from bench.common import free_port
from eth_account import Account
from typer.testing import CliRunner

from tests.helpers import TEST_ENCRYPTION_KEY, create_tenant
from vincent.cli import app


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str


def _vincent(tmp_path: Path, *args: str, **env: str) -> Result:
    full_env = {
        "DATABASE_URL": f"sqlite:///{tmp_path / 'cli.db'}",
        "VINCENT_ENCRYPTION_KEY": TEST_ENCRYPTION_KEY,
        **env,
    }
    result = CliRunner().invoke(app, list(args), env=full_env)
    return Result(result.exit_code, result.stdout, result.stderr)


def test_entry_point_starts(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "vincent.cli", "--help"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0
    for command in (
        "serve",
        "worker",
        "db",
        "secrets",
        "keys",
        "sim",
        "demo",
        "approvals",
        "policies",
    ):
        assert command in result.stdout


def test_secrets_and_keys_lifecycle(tmp_path: Path) -> None:
    assert _vincent(tmp_path, "db", "upgrade").returncode == 0
    account = Account.create()
    created = _vincent(
        tmp_path, "secrets", "create", "--name", "agent", "--private-key", account.key.hex()
    )
    assert created.returncode == 0, created.stderr
    data = json.loads(created.stdout)
    assert data["eoaAddress"] == account.address
    assert data["walletAddress"] == account.address
    assert data["signatureType"] == 0
    assert data["apiKey"]["key"].startswith("ssk_")
    assert account.key.hex()[2:] not in created.stdout + created.stderr

    listed = json.loads(_vincent(tmp_path, "secrets", "list").stdout)
    assert [s["secretId"] for s in listed] == [data["secretId"]]

    key = json.loads(_vincent(tmp_path, "keys", "create", data["secretId"]).stdout)
    assert key["key"].startswith("ssk_")
    assert key["key"] != data["apiKey"]["key"]
    revoked = json.loads(_vincent(tmp_path, "keys", "revoke", key["id"]).stdout)
    assert revoked["revokedAt"] is not None


def test_signature_type_that_disagrees_is_refused(tmp_path: Path) -> None:
    _vincent(tmp_path, "db", "upgrade")
    account = Account.create()
    result = _vincent(
        tmp_path,
        "secrets",
        "create",
        "--name",
        "x",
        "--private-key",
        account.key.hex(),
        "--funder",
        account.address,
        "--signature-type",
        "2",
    )
    assert result.returncode == 1
    # (After the warning about a key given on the command line.)
    assert result.stderr.splitlines()[-1].startswith("error: signatureType 2")
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("env", "needle"),
    [
        ({"PORT": "70000"}, "PORT"),
        ({"LOG_FORMAT": "yaml"}, "LOG_FORMAT"),
        ({"DATABASE_URL": "mysql://x"}, "DATABASE_URL"),
        ({"TRADE_MANAGER_POLL_INTERVAL_S": "-1"}, "TRADE_MANAGER_POLL_INTERVAL_S"),
        # At or below the heartbeat's interval (0.5 s) a healthy leader would step down.
        ({"TRADE_MANAGER_LEADER_MAX_STALL_S": "0.5"}, "TRADE_MANAGER_LEADER_MAX_STALL_S"),
    ],
)
def test_bad_settings_fail_with_one_line(tmp_path: Path, env: dict[str, str], needle: str) -> None:
    result = _vincent(tmp_path, "secrets", "list", **env)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("error: invalid settings: ")
    assert needle in lines[0]


# --------------------------------------------------------------------------- processes


CLOSED = "http://127.0.0.1:9"
RULES = "/api/skills/polymarket/rules"


def _process_env(database_url: str, port: int) -> dict[str, str]:
    return {
        **os.environ,
        "DATABASE_URL": database_url,
        "VINCENT_ENCRYPTION_KEY": TEST_ENCRYPTION_KEY,
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "LOG_LEVEL": "INFO",
        "TRADE_MANAGER_WS_ENABLED": "false",
        "POLYMARKET_GAMMA_URL": CLOSED,
        "POLYMARKET_CLOB_URL": CLOSED,
        "POLYMARKET_DATA_API_URL": CLOSED,
        "POLYMARKET_RELAYER_URL": CLOSED,
    }


def _wait_for(predicate: Callable[[], bool], what: str, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def _stop(process: subprocess.Popen[bytes]) -> int:
    process.send_signal(signal.SIGTERM)
    return process.wait(timeout=60)


def test_more_than_one_api_worker_is_refused_on_sqlite(tmp_path: Path) -> None:
    result = _vincent(tmp_path, "serve", "--api-workers", "2")
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("error: --api-workers 2 needs PostgreSQL")


@pytest.mark.slow
def test_worker_command_runs_the_trade_manager_and_stops_on_sigterm(tmp_path: Path) -> None:
    log = tmp_path / "worker.log"
    env = _process_env(f"sqlite:///{tmp_path / 'worker.db'}", free_port())
    with log.open("wb") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "vincent.cli", "worker"], cwd=tmp_path, env=env, stderr=stderr
        )
        try:
            _wait_for(lambda: b"vincent worker started" in log.read_bytes(), "the worker")
        finally:
            returncode = _stop(process)
    assert returncode == 0, log.read_text()[-2000:]
    assert "vincent worker stopping" in log.read_text()


@pytest.mark.slow
@pytest.mark.postgres
def test_serve_with_api_workers_runs_n_api_processes_and_one_worker(
    tmp_path: Path, postgres_url: str
) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    tenant = create_tenant(postgres_url, "multi")
    log = tmp_path / "serve.log"
    with log.open("wb") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "vincent.cli", "serve", "--api-workers", "2"],
            cwd=tmp_path,
            env=_process_env(postgres_url, port),
            stderr=stderr,
        )
        try:
            parent = psutil.Process(process.pid)

            def children(word: str) -> list[psutil.Process]:
                found = []
                for child in parent.children():
                    with contextlib.suppress(psutil.Error):
                        if word in " ".join(child.cmdline()):
                            found.append(child)
                return found

            _wait_for(lambda: len(children("spawn_main")) == 2, "two API processes")
            _wait_for(lambda: len(children("vincent.cli worker")) == 1, "the worker process")
            _wait_for(lambda: b"vincent worker started" in log.read_bytes(), "the worker")
            with httpx.Client(base_url=base, timeout=10) as client:

                def healthy() -> bool:
                    with contextlib.suppress(httpx.HTTPError):
                        return client.get("/health").status_code == 200
                    return False

                _wait_for(healthy, "the API")
                body = {
                    "ruleType": "STOP_LOSS",
                    "marketId": "0x" + "cd" * 32,
                    "tokenId": "42",
                    "triggerPrice": 0.3,
                    "action": {"type": "SELL_ALL"},
                }
                created = client.post(RULES, json=body, headers=tenant.headers)
                assert created.status_code == 201, created.text
                rule_id = created.json()["data"]["id"]
                for _ in range(10):  # whichever process answers, it sees the rule
                    got = client.get(f"{RULES}/{rule_id}", headers=tenant.headers)
                    assert got.status_code == 200

                def worker_running() -> bool:
                    status = client.get(f"{RULES}/status", headers=tenant.headers)
                    return bool(status.json()["data"]["running"])

                _wait_for(worker_running, "the worker's status in an API process")
            spawned = [*children("spawn_main"), *children("vincent.cli worker")]
        finally:
            returncode = _stop(process)
    assert returncode == 0, log.read_text()[-3000:]
    _, alive = psutil.wait_procs(spawned, timeout=30)
    assert alive == []
