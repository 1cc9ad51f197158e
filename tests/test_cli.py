"""The admin CLI on a scratch SQLite database: in process (Typer's runner), plus one real
subprocess that proves the installed ``vincent`` entry point starts."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from eth_account import Account
from typer.testing import CliRunner

from tests.helpers import TEST_ENCRYPTION_KEY
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
    for command in ("serve", "db", "secrets", "keys", "sim", "demo", "approvals", "policies"):
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
    assert result.stderr.startswith("error: signatureType 2")
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("env", "needle"),
    [
        ({"PORT": "70000"}, "PORT"),
        ({"LOG_FORMAT": "yaml"}, "LOG_FORMAT"),
        ({"DATABASE_URL": "mysql://x"}, "DATABASE_URL"),
        ({"TRADE_MANAGER_POLL_INTERVAL_S": "-1"}, "TRADE_MANAGER_POLL_INTERVAL_S"),
    ],
)
def test_bad_settings_fail_with_one_line(tmp_path: Path, env: dict[str, str], needle: str) -> None:
    result = _vincent(tmp_path, "secrets", "list", **env)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("error: invalid settings: ")
    assert needle in lines[0]
