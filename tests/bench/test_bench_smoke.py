"""Smoke runs of both benchmarks at tiny sizes: they run and end with well-formed JSON.

Figures are not asserted (the timed suite is no place for performance checks); the real
runs and their figures are in docs/performance.md.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TIMEOUT_S = 60
ENGINE_KEYS = {
    "mode",
    "rules",
    "tokens",
    "events",
    "p50_ms",
    "p90_ms",
    "p99_ms",
    "max_ms",
    "msgs_per_s",
    "cpu_s_per_1k",
    "rss_mb",
    "bytes_per_rule",
    "fired",
    "orders",
    "mismatches",
}


def _last_json_line(*args: str) -> dict[str, object]:
    completed = subprocess.run(
        [sys.executable, "-m", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    lines = completed.stdout.strip().splitlines()
    assert lines, completed.stderr[-3000:]
    result = json.loads(lines[-1])
    assert isinstance(result, dict)
    return result


@pytest.mark.slow
def test_engine_benchmark_prints_its_figures() -> None:
    result = _last_json_line(
        "bench.engine",
        *("--rules", "60", "--tokens", "6", "--events", "300", "--tenants", "3"),
        *("--db", "sqlite", "--fire-fraction", "0.05", "--rate", "0"),
    )
    assert result.keys() >= ENGINE_KEYS
    assert result["mode"] == "index"
    assert result["rules"] == 60


@pytest.mark.slow
def test_api_benchmark_prints_its_figures() -> None:
    result = _last_json_line(
        "bench.api", "--db", "sqlite", "--tenants", "2", "--clients", "2", "--seconds", "1"
    )
    assert result.keys() >= {"benchmark", "db", "phases", "errors"}
    assert set(result["phases"]) == {"mix", "create", "read"}  # type: ignore[arg-type]


def test_registry_benchmark_prints_its_figures() -> None:
    result = _last_json_line(
        "bench.registry",
        *("--rules", "90", "--tokens", "3", "--prices", "500", "--repeat", "1"),
        *("--dormant-fraction", "0.5", "--oco-fraction", "0.5"),
    )
    assert result.keys() >= {"rules", "prices", "prices_per_s", "fired", "raised"}
    assert (result["rules"], result["prices"]) == (90, 500)
