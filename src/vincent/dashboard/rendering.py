"""The dashboard's Jinja2 environment: templates shipped in the package, a few filters."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fastapi.templating import Jinja2Templates

from vincent.dashboard.read_models import RuleRow
from vincent.wire_time import iso

TEMPLATE_DIR = Path(__file__).parent / "templates"
STATIC_DIR = Path(__file__).parent / "static"

templates = Jinja2Templates(directory=TEMPLATE_DIR)


def _when(moment: datetime | None) -> str:
    """``2026-12-04 15:04:05 UTC`` (the page's script turns it into local time)."""
    if moment is None:
        return "—"
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _price(value: float | None) -> str:
    if value is None:
        return "—"
    return f"{value:.4f}".rstrip("0").rstrip(".") if value % 1 else f"{value:.0f}"


def _pretty(data: Any) -> str:
    return json.dumps(data, indent=2, sort_keys=True, default=str)


def _summary(data: Any) -> str:
    """``currentPrice 0.645 · shouldTrigger false`` from an event's flat fields."""
    if not isinstance(data, dict):
        return ""
    parts = []
    for key, value in data.items():
        if isinstance(value, dict | list):
            continue
        shown = json.dumps(value) if isinstance(value, bool) or value is None else str(value)
        parts.append(f"{key} {shown}")
    return " · ".join(parts)


def _nested(data: Any) -> bool:
    return isinstance(data, dict) and any(isinstance(v, dict | list) for v in data.values())


def _short(text: str | None, keep: int = 10) -> str:
    if text is None:
        return "—"
    return text if len(text) <= 2 * keep + 1 else f"{text[:keep]}…{text[-keep:]}"


templates.env.filters["when"] = _when
templates.env.filters["iso"] = iso
templates.env.filters["price"] = _price
templates.env.filters["pretty"] = _pretty
templates.env.filters["short"] = _short
templates.env.filters["summary"] = _summary
templates.env.tests["nested"] = _nested
templates.env.globals["asset_version"] = "2"  # bump when a static file changes


def render_rule_row(row: RuleRow) -> str:
    """One ``<tr>`` of the rules table (the page and the live updates share it)."""
    template = templates.env.get_template("_rule_row.html")
    return template.render(row=row)


def market_label(row: RuleRow) -> str:
    """``slug · outcome`` for a chart's title, falling back to ids."""
    rule = row.rule
    market = rule.market_slug or _short(rule.market_id, 8)
    return f"{market} · {row.outcome or 'token ' + _short(rule.token_id, 6)}"
