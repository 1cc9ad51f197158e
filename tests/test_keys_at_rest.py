"""Keys at rest: the wallet key never has to touch the command line, and ``var/`` (the
encryption key, the SQLite database) is readable by its owner only."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
from eth_account import Account
from typer.testing import CliRunner

from tests.helpers import TEST_ENCRYPTION_KEY
from vincent.cli import app
from vincent.crypto import load_or_create_key_file
from vincent.db.migrate import upgrade

HISTORY_WARNING = "shell history"


def _create(tmp_path: Path, *args: str, stdin: str | None = None) -> tuple[int, str, str]:
    env = {
        "DATABASE_URL": f"sqlite:///{tmp_path / 'cli.db'}",
        "VINCENT_ENCRYPTION_KEY": TEST_ENCRYPTION_KEY,
    }
    result = CliRunner().invoke(
        app, ["secrets", "create", "--name", "agent", *args], env=env, input=stdin
    )
    return result.exit_code, result.stdout, result.stderr


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.parametrize("how", ["prompt", "stdin", "file"])
def test_the_wallet_key_can_be_given_without_the_command_line(tmp_path: Path, how: str) -> None:
    account = Account.create()
    key = account.key.hex()
    key_file = tmp_path / "wallet.key"
    key_file.write_text(key + "\n")
    args = {"prompt": [], "stdin": ["--private-key", "-"], "file": ["--private-key-file"]}[how]
    if how == "file":
        args = [*args, str(key_file)]

    code, stdout, stderr = _create(tmp_path, *args, stdin=None if how == "file" else key + "\n")

    assert code == 0, stderr
    data = json.loads(stdout[stdout.index("{") :])
    assert data["eoaAddress"] == account.address
    assert HISTORY_WARNING not in stderr
    assert key[2:] not in stdout + stderr  # a hidden prompt echoes nothing


def test_a_key_on_the_command_line_still_works_but_is_warned_about(tmp_path: Path) -> None:
    account = Account.create()

    code, stdout, stderr = _create(tmp_path, "--private-key", account.key.hex())

    assert code == 0, stderr
    assert json.loads(stdout)["eoaAddress"] == account.address
    assert HISTORY_WARNING in stderr and "ps" in stderr


def test_two_sources_or_an_empty_key_are_refused(tmp_path: Path) -> None:
    key_file = tmp_path / "wallet.key"
    key_file.write_text("")

    both = _create(tmp_path, "--private-key", "-", "--private-key-file", str(key_file))
    empty = _create(tmp_path, "--private-key-file", str(key_file))
    missing = _create(tmp_path, "--private-key-file", str(tmp_path / "nope"))

    assert both[0] == 2 and "not both" in both[2]
    assert empty[0] == 2 and "no private key" in empty[2]
    assert missing[0] == 2 and "cannot read" in missing[2]


def test_var_is_private_and_so_are_the_database_and_the_key_file(tmp_path: Path) -> None:
    var = tmp_path / "var"
    database = var / "vincent.db"

    upgrade(f"sqlite+aiosqlite:///{database}")
    load_or_create_key_file(var / "encryption.key")

    assert _mode(var) == 0o700
    assert _mode(database) == 0o600
    assert _mode(var / "encryption.key") == 0o600
    for sidecar in (var / "vincent.db-wal", var / "vincent.db-shm"):
        if sidecar.exists():
            assert _mode(sidecar) & 0o077 == 0


def test_a_database_file_left_world_readable_is_tightened(tmp_path: Path) -> None:
    database = tmp_path / "old.db"
    database.touch()
    os.chmod(database, 0o644)

    upgrade(f"sqlite+aiosqlite:///{database}")

    assert _mode(database) == 0o600
