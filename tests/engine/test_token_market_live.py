"""A rule whose token is not an outcome of its market is refused (or failed on the next tick
when the exchange could not be asked). Real API, real exchange, both databases."""

from __future__ import annotations

import asyncio

from tests.engine.conftest import MakeRule
from tests.engine.live import rule_row
from tests.engine.test_bracket_live import (
    RULES,
    api_with_worker,
    bracket_body,
    tenants_and_market,
)
from tests.skill.conftest import new_market_ids
from vincent.db.session import SessionFactory
from vincent.enums import TradeRuleStatus
from vincent.sim import LocalExchange

TIMEOUT_S = 15.0


def stop_loss(market_id: str, token_id: str) -> dict[str, object]:
    return {
        "ruleType": "STOP_LOSS",
        "marketId": market_id,
        "tokenId": token_id,
        "triggerPrice": 0.3,
        "action": {"type": "SELL_ALL"},
    }


async def test_a_token_of_another_market_is_refused_from_a_cached_lookup(
    exchange: LocalExchange,
    session_factory: SessionFactory,
    database_url: str,
    make_rule: MakeRule,
) -> None:
    alice, ids = await tenants_and_market(session_factory, exchange, make_rule)
    other = new_market_ids()
    exchange.create_market(other.condition_id, [other.yes, other.no])
    unknown_token = new_market_ids().yes

    async with api_with_worker(exchange, database_url) as (client, _worker):
        async with asyncio.timeout(TIMEOUT_S):
            wrong = await client.post(
                RULES, headers=alice.headers, json=stop_loss(ids.condition_id, other.yes)
            )
            unknown = await client.post(
                RULES, headers=alice.headers, json=stop_loss(ids.condition_id, unknown_token)
            )
            bracket = await client.post(
                f"{RULES}/bracket", headers=alice.headers, json=bracket_body(ids, tokenId=other.yes)
            )
            # The exchange now fails every lookup of that token: the answer comes from the cache.
            exchange.fail_next(f"/markets-by-token/{other.yes}", count=50)
            cached = await client.post(
                RULES, headers=alice.headers, json=stop_loss(ids.condition_id, other.yes)
            )
            exchange.clear_faults()
            right = await client.post(
                RULES, headers=alice.headers, json=stop_loss(ids.condition_id.upper(), ids.yes)
            )
            listed = (await client.get(RULES, headers=alice.headers)).json()["data"]["rules"]

    for response, token in ((wrong, other.yes), (unknown, unknown_token), (cached, other.yes)):
        assert response.status_code == 400, response.text
        error = response.json()["error"]
        message = f"tokenId {token} is not an outcome of market {ids.condition_id}"
        assert (error["code"], error["message"]) == ("VALIDATION_ERROR", message)
        assert error["details"] == [{"code": "custom", "path": ["tokenId"], "message": message}]
    assert bracket.status_code == 400
    assert right.status_code == 201, right.text
    assert [r["id"] for r in listed] == [right.json()["data"]["id"]]


async def test_an_unreachable_exchange_accepts_the_rule_and_the_next_tick_fails_it(
    exchange: LocalExchange,
    session_factory: SessionFactory,
    database_url: str,
    make_rule: MakeRule,
) -> None:
    alice, ids = await tenants_and_market(session_factory, exchange, make_rule)
    other = new_market_ids()
    exchange.create_market(other.condition_id, [other.yes, other.no])

    async with api_with_worker(exchange, database_url) as (client, worker):
        async with asyncio.timeout(TIMEOUT_S):
            exchange.fail_next(f"/markets-by-token/{other.yes}", count=50)
            response = await client.post(
                RULES, headers=alice.headers, json=stop_loss(ids.condition_id, other.yes)
            )
            exchange.clear_faults()
            assert response.status_code == 201, response.text
            rule_id = response.json()["data"]["id"]
            await worker.wait_for_ticks(worker.request_tick())
            assert worker.watched_rule(rule_id) is None

    row = await rule_row(session_factory, rule_id)
    assert (row.status, row.error_message) == (
        TradeRuleStatus.FAILED,
        f"tokenId {other.yes} is not an outcome of market {ids.condition_id}",
    )
