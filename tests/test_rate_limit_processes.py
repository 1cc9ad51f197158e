"""With ``serve --api-workers 2`` the per-key limit holds for the service as a whole: each
API process admits its share, so two processes never admit twice the limit (issue 13 §7).
Real processes, separate connections, PostgreSQL."""

from __future__ import annotations

import contextlib
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from bench.common import free_port

from tests.helpers import create_tenant
from tests.test_cli import RULES, _process_env, _stop, _wait_for

LIMIT = 20


@pytest.mark.slow
@pytest.mark.postgres
def test_two_api_processes_admit_no_more_than_the_limit_together(
    tmp_path: Path, postgres_url: str
) -> None:
    port = free_port()
    tenant = create_tenant(postgres_url, "flood")
    env = {
        **_process_env(postgres_url, port),
        "TRADE_MANAGER_ENABLED": "false",
        "RATE_LIMIT_PER_KEY": str(LIMIT),
        # An hour's window, all of it allowed as a burst: nothing refills during the test.
        "RATE_LIMIT_WINDOW_MS": "3600000",
        "RATE_LIMIT_BURST_S": "3600",
    }
    log = tmp_path / "serve.log"
    with log.open("wb") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "vincent.cli", "serve", "--api-workers", "2"],
            cwd=tmp_path,
            env=env,
            stderr=stderr,
        )
        try:

            def healthy() -> bool:
                with contextlib.suppress(httpx.HTTPError):
                    return httpx.get(f"http://127.0.0.1:{port}/health").status_code == 200
                return False

            _wait_for(healthy, "the API")

            def one_request(_: int) -> int:
                # A fresh connection each time, so both processes get a share of them.
                with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
                    return client.get(RULES, headers=tenant.headers).status_code

            with ThreadPoolExecutor(max_workers=8) as pool:
                statuses = list(pool.map(one_request, range(4 * LIMIT)))
        finally:
            returncode = _stop(process)
    assert returncode == 0, log.read_text()[-3000:]
    assert set(statuses) <= {200, 429}
    assert LIMIT // 2 <= statuses.count(200) <= LIMIT
