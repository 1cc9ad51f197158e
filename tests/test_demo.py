"""``vincent demo`` runs offline and shows a stop-loss selling the whole position once."""

from __future__ import annotations

from vincent.demo import run_demo


async def test_demo_shows_a_stop_firing() -> None:
    lines: list[str] = []
    result = await run_demo(lines.append)
    assert result["stop_status"] == "TRIGGERED"
    assert result["order_id"] is not None
    assert result["orders_received"] == 1
    assert result["shares_left"] == "0"
    assert result["take_profit_status"] == "CANCELED"
    # By the stop-loss's fill (one cancels the other), not by hand.
    assert result["take_profit_canceled_by"] == result["stop_id"]
    assert result["market_slug"] == "will-the-demo-stop-loss-fire"  # looked up on Gamma
    assert any("RULE_TRIGGERED" in line for line in lines)
    assert any("/dashboard (sign in" in line for line in lines)
    assert any("POST /api/skills/polymarket/rules/bracket -> 201" in line for line in lines)
    assert any("'reason': 'oco'" in line for line in lines)
