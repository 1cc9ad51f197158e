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
LAG_KEYS = {"loop_lag_p50_ms", "loop_lag_p99_ms", "loop_lag_max_ms", "loop_lag_samples"}


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
    assert result.keys() >= ENGINE_KEYS | LAG_KEYS
    assert result["mode"] == "index"
    assert result["rules"] == 60
    assert result["loop_lag_samples"] > 0


@pytest.mark.slow
def test_engine_times_the_loops_callbacks_when_asked() -> None:
    result = _last_json_line(
        "bench.engine",
        *("--rules", "60", "--tokens", "6", "--events", "300", "--tenants", "3"),
        *("--db", "sqlite", "--fire-fraction", "0.05", "--rate", "0", "--slow-callbacks"),
    )
    slow = result["slow_callbacks"]
    assert isinstance(slow, dict)
    assert slow["handles"] > 0 and slow["passes"] > 0
    assert [row["generation"] for row in slow["gc"]] == [0, 1, 2]
    assert all(row["cpu_max_ms"] >= row["cpu_p50_ms"] >= 0 for row in slow["gc"])
    assert slow["heavy_passes"]["count"] >= 0 and "heavy_pass_callbacks" in slow


@pytest.mark.slow
def test_engine_single_fires_are_one_order_per_step() -> None:
    result = _last_json_line(
        "bench.engine",
        *("--single", "6", "--rules", "20", "--tokens", "3", "--tenants", "3"),
        *("--spacing-s", "0.05", "--db", "sqlite"),
    )
    assert result.keys() >= ENGINE_KEYS | LAG_KEYS
    assert (result["shape"], result["rules"], result["events"]) == ("single", 20, 6)
    assert (result["expected_fired"], result["fired"], result["orders"]) == (6, 6, 6)
    assert result["latency_samples"] == 6
    assert result["mismatches"] == 0


@pytest.mark.slow
def test_engine_burst_reports_first_and_last_order() -> None:
    result = _last_json_line(
        "bench.engine",
        *("--burst", "8", "--rules", "12", "--tokens", "3", "--tenants", "4", "--db", "sqlite"),
        "--fire-steps",
    )
    assert result.keys() >= ENGINE_KEYS | LAG_KEYS | {"first_order_ms", "last_order_ms"}
    assert (result["shape"], result["rules"], result["events"]) == ("burst", 20, 1)
    # The burst's CPU up to its last order; SQLite's work is the worker's own.
    assert set(result["cpu_to_last_order_s"]) == {"worker", "exchange"}  # type: ignore[arg-type]
    assert result["database_cpu_s"] is None
    # The first fires' timelines: each starts when its fire did and reaches its POST.
    first_fires = result["first_fires"]
    assert isinstance(first_fires, list) and len(first_fires) == 4
    for timeline in first_fires:
        marks = [mark for mark, _ in timeline]
        assert marks[0] == "enter" and "post>" in marks
        assert marks.index("sign>") < marks.index("durable_write<") < marks.index("post>")
    assert (result["expected_fired"], result["fired"], result["orders"]) == (8, 8, 8)
    assert 0 < result["first_order_ms"] <= result["last_order_ms"]  # type: ignore[operator]
    assert result["mismatches"] == 0


@pytest.mark.slow
def test_engine_fires_can_be_left_settling_as_on_polymarket() -> None:
    # Trades held MATCHED for the whole run: every fire's sale is recorded as settling.
    result = _last_json_line(
        "bench.engine",
        *("--single", "3", "--rules", "12", "--tokens", "3", "--tenants", "3"),
        *("--spacing-s", "0.05", "--db", "sqlite", "--settlement-delay-s", "3600"),
    )
    assert (result["fired"], result["orders"], result["mismatches"]) == (3, 3, 0)
    assert (result["settlement_delay_s"], result["settling"]) == (3600.0, 3)


@pytest.mark.slow
def test_bookkeeping_benchmark_prints_its_figures() -> None:
    result = _last_json_line("bench.bookkeeping", "--calls", "3", "--db", "sqlite")
    assert result.keys() >= {"record_settling_ms", "settlement_note_ms", "record_executed_ms"}


@pytest.mark.slow
def test_api_benchmark_prints_its_figures() -> None:
    result = _last_json_line(
        "bench.api", "--db", "sqlite", "--tenants", "2", "--clients", "2", "--seconds", "1"
    )
    assert result.keys() >= {"benchmark", "db", "phases", "errors", "exchange", "http_client"}
    assert set(result["phases"]) == {"mix", "create", "read"}  # type: ignore[arg-type]
    assert (result["exchange"], result["http_client"], result["errors"]) == ("local", "raw", 0)


@pytest.mark.slow
def test_api_benchmark_reads_seeded_rules_with_either_client() -> None:
    result = _last_json_line(
        "bench.api",
        *("--db", "sqlite", "--tenants", "2", "--clients", "2", "--seconds", "0.5"),
        *("--phases", "read", "--seed-rules", "3", "--http-client", "httpx"),
    )
    phases: dict[str, dict[str, object]] = result["phases"]  # type: ignore[assignment]
    assert set(phases) == {"read"}
    assert phases["read"]["rules_per_tenant_at_start"] == 3.0
    assert result["errors"] == 0


def test_registry_benchmark_prints_its_figures() -> None:
    result = _last_json_line(
        "bench.registry",
        *("--rules", "90", "--tokens", "3", "--prices", "500", "--repeat", "1"),
        *("--dormant-fraction", "0.5", "--oco-fraction", "0.5"),
    )
    assert result.keys() >= {"rules", "prices", "prices_per_s", "fired", "raised"}
    assert (result["rules"], result["prices"]) == (90, 500)


def test_feed_replay_prints_its_figures_and_the_same_raises_each_round() -> None:
    result = _last_json_line(
        "bench.feed_replay", *("--rules", "60", "--tokens", "6", "--events", "120"), "--rounds", "2"
    )
    rounds: list[dict[str, object]] = result["rounds"]  # type: ignore[assignment]
    assert result["events"] == 240  # a price_change and its best_bid_ask per step
    assert len(rounds) == 2 and rounds[0]["trailing_raised"] == rounds[1]["trailing_raised"]
    assert result["best"] in rounds


def test_feed_replay_through_the_websocket_layer_raises_as_the_pure_path() -> None:
    args = ("--rules", "60", "--tokens", "6", "--events", "120", "--rounds", "1")
    pure = _last_json_line("bench.feed_replay", *args)
    framed = _last_json_line("bench.feed_replay", *args, "--websocket", "--frames-per-read", "3")
    raised = [result["rounds"][0]["trailing_raised"] for result in (pure, framed)]  # type: ignore[index]
    assert framed["events"] == pure["events"] == 240
    assert raised[0] == raised[1]


@pytest.mark.slow
@pytest.mark.postgres
def test_order_path_costs_prints_both_ways_of_each_piece(postgres_url: str) -> None:
    result = _last_json_line(
        "bench.order_path_costs",
        *("--requests", "20", "--writes", "20", "--rounds", "1", "--pg-url", postgres_url),
    )
    http, statements = result["http_request_cpu_us"], result["statement_cpu_us"]
    assert set(http) == {
        "httpx_default_transport",
        "lean_transport",
        "lean_client_and_transport",
        "httpx_client_alone",
    }
    assert set(statements) == {"one_statement_session", "write_at_driver"}
    assert all(len(v) == 1 and v[0] > 0 for v in (*http.values(), *statements.values()))


@pytest.mark.slow
def test_claim_groups_replays_a_bursts_writes_alone_and_grouped_on_sqlite() -> None:
    result = _last_json_line(
        "bench.claim_groups", *("--db", "sqlite", "--burst", "8", "--group", "4", "--rounds", "1")
    )
    assert (result["db"], result["burst_fired"]) == ("sqlite", 8)
    runs = result["runs"]
    assert [run["group"] for run in runs] == [1, 4]  # type: ignore[union-attr]
    # Every replayed claim wins again (the database was set back before each way).
    assert all(run["written"] == 8 and run["database_cpu_ms_per_claim"] is None for run in runs)  # type: ignore[union-attr, index]


@pytest.mark.slow
@pytest.mark.postgres
def test_claim_groups_measures_the_database_too_on_postgres(postgres_url: str) -> None:
    result = _last_json_line(
        "bench.claim_groups",
        *("--db", postgres_url, "--burst", "8", "--group", "4", "--rounds", "1"),
    )
    assert (result["db"], result["burst_fired"]) == ("postgres", 8)
    runs = result["runs"]
    assert [run["group"] for run in runs] == [1, 4]  # type: ignore[union-attr]
    assert all(run["written"] == 8 and run["database_cpu_ms_per_claim"] is not None for run in runs)  # type: ignore[union-attr, index]
    assert set(result["burst_cpu_to_last_order_s"]) == {"worker", "exchange", "database"}  # type: ignore[arg-type]


def test_sim_order_cost_prints_cpu_per_order() -> None:
    result = _last_json_line(
        "bench.sim_order_cost", *("--orders", "20", "--tenants", "2", "--rounds", "1")
    )
    assert result["orders"] == 20
    assert result["trades"] == 20  # every order was verified and placed, and it traded
    assert all(result[key] > 0 for key in ("us_per_order", "us_verify", "us_place"))


def test_sim_order_cost_over_http_prints_cpu_per_order() -> None:
    # The exchange's CPU is read from /proc in clock ticks (10 ms): 100 orders take several,
    # 10 could read as none.
    result = _last_json_line(
        "bench.sim_order_cost",
        *("--http", "--orders", "100", "--tenants", "2", "--rounds", "1"),
    )
    assert result["orders"] == 100 and result["http"] is True
    assert result["us_per_order"] > 0 and result["instructions_per_order"] == 0


def test_sign_cost_prints_cpu_per_signed_order() -> None:
    result = _last_json_line("bench.sign_cost", *("--orders", "10", "--rounds", "1"))
    assert result["orders"] == 10 and result["rounds"] == 1
    assert result["us_per_order"] > 0


@pytest.mark.slow
def test_batch_post_cost_prints_both_ways_on_both_sides() -> None:
    result = _last_json_line(
        "bench.batch_post_cost", *("--tenants", "4", "--per-tenant", "3", "--rounds", "1")
    )
    assert (result["tenants"], result["per_tenant"]) == (4, 3)
    for way in ("single", "batch"):
        sides = result[way]
        # Every order was answered matched (the bench raises otherwise); the worker's CPU
        # is thread time, never zero. The exchange's comes in 10 ms ticks and may read 0.
        assert len(sides["worker_us"]) == 1 and sides["worker_us"][0] > 0  # type: ignore[index]
        assert len(sides["exchange_us"]) == 1  # type: ignore[index]
