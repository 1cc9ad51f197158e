"""Smoke run of bench.mcp at a tiny size: it runs and ends with well-formed JSON.

Figures are not asserted; the measured ones are in docs/performance.md.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_mcp_benchmark_prints_its_figures() -> None:
    completed = subprocess.run(
        [sys.executable, "-m", "bench.mcp", "--db", "sqlite", "--calls", "5"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert completed.returncode == 0, completed.stderr[-3000:]
    result = json.loads(completed.stdout.strip().splitlines()[-1])
    assert result["calls"] == 5
    for transport in ("rest", "mcp_http", "mcp_stdio"):
        assert result[transport]["calls_per_s"] > 0
