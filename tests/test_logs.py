"""Structured logs: context fields and the request's trace id reach both formats."""

from __future__ import annotations

import json
import logging

from vincent.api.middleware import trace_id_var
from vincent.logs import JsonFormatter, TextFormatter


def _record(**extra: object) -> logging.LogRecord:
    record = logging.LogRecord("vincent.test", logging.INFO, __file__, 1, "rule fired", None, None)
    for key, value in extra.items():
        setattr(record, key, value)
    return record


def test_json_lines_carry_context_and_trace_id() -> None:
    token = trace_id_var.set("trace-1")
    try:
        line = JsonFormatter().format(_record(rule_id="r1", token_id="t1", color_message="x"))
    finally:
        trace_id_var.reset(token)
    entry = json.loads(line)
    assert entry["event"] == "rule fired"
    assert entry["level"] == "INFO"
    assert entry["logger"] == "vincent.test"
    assert (entry["rule_id"], entry["token_id"], entry["trace_id"]) == ("r1", "t1", "trace-1")
    assert "color_message" not in entry


def test_text_lines_append_context() -> None:
    line = TextFormatter().format(_record(order_id="o1"))
    assert line.endswith("vincent.test: rule fired order_id=o1")
