"""An agent in a real Chromium: sign-in, live rules, the price chart, a fire, page actions,
and never another agent's rules."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from tests.dashboard.conftest import sign_in, sign_in_agent
from tests.dashboard.stack import LiveStack


def _row(page: Any, rule_id: str) -> Any:
    return page.locator(f"#rule-{rule_id}")


def _status(page: Any, rule_id: str) -> Any:
    return page.locator(f"#rule-{rule_id} .status")


def test_sign_in_keeps_the_key_out_of_urls_and_in_a_secure_http_only_cookie(
    stack: LiveStack, strict_page: Any
) -> None:
    page = strict_page  # under the page's Content-Security-Policy: no inline script runs
    alice = stack.tenant("alice")
    sign_in_agent(page, alice)

    assert page.locator("header .who").inner_text().startswith("●")
    assert "Agent alice" in page.locator("header .who").inner_text()
    (cookie,) = page.context.cookies()
    assert cookie["httpOnly"] and cookie["secure"] and cookie["sameSite"] == "Strict"
    assert alice.api_key not in cookie["value"]
    assert alice.api_key not in page.url
    assert page.evaluate("document.cookie") == ""  # HTTP-only: scripts cannot read it

    page.click("text=Sign out")
    page.wait_for_url("**/dashboard/login")
    page.goto("/dashboard/rules")
    assert page.url.endswith("/dashboard/login")


def test_a_wrong_credential_is_refused(stack: LiveStack, page: Any) -> None:
    page.goto("/dashboard/login")
    page.fill("#credential", "ssk_" + "0" * 64)
    page.click("button[type=submit]")
    assert "Unknown, revoked or malformed credential" in page.locator("#login-error").inner_text()
    assert page.context.cookies() == []


def test_a_rule_created_through_the_api_appears_without_reloading(
    stack: LiveStack, page: Any
) -> None:
    alice = stack.tenant("alice")
    ids = stack.market("0.50")
    sign_in_agent(page, alice)
    page.evaluate("window.loadedOnce = true")
    requests: list[str] = []
    page.on("request", lambda request: requests.append(urlsplit(request.url).path))

    rule = stack.create_rule(alice, ids, "STOP_LOSS", 0.45)

    _row(page, rule["id"]).wait_for()
    assert _status(page, rule["id"]).inner_text() == "ACTIVE"
    assert page.evaluate("window.loadedOnce") is True  # the same page: no reload
    chart = page.locator(f'figure.chart[data-token="{ids.yes}"]')
    chart.locator('path.trigger[data-type="STOP_LOSS"]').wait_for(state="attached")
    # The history the page missed comes once; the price line is then drawn.
    chart.locator("path.price").wait_for(state="attached")
    # Nothing polled: all that arrived came on the event stream, plus that one chart request.
    assert set(requests) <= {"/dashboard/stream", f"/dashboard/charts/{ids.yes}"}
    assert requests.count(f"/dashboard/charts/{ids.yes}") == 1


def test_moving_the_price_fires_the_rule_on_the_chart_and_in_the_table(
    stack: LiveStack, page: Any
) -> None:
    alice = stack.tenant("alice")
    ids = stack.market("0.50")
    stack.credit(alice, ids.yes, "10")
    rule = stack.create_rule(alice, ids, "STOP_LOSS", 0.45)
    sign_in_agent(page, alice)
    chart = page.locator(f'figure.chart[data-token="{ids.yes}"]')
    chart.locator("path.price").wait_for(state="attached")
    assert float(chart.get_attribute("data-last-price") or 0) > 0.45

    stack.move_price(ids.yes, "0.40")

    page.wait_for_function(
        "([id]) => document.querySelector('#rule-' + id + ' .status').textContent === 'TRIGGERED'",
        arg=[rule["id"]],
    )
    page.wait_for_function(
        '([token]) => document.querySelector(`figure.chart[data-token="${token}"]`)'
        ".dataset.fires === '1'",
        arg=[ids.yes],
    )
    # The next sample of the price (one a second) moves the line below the trigger.
    page.wait_for_function(
        '([token]) => Number(document.querySelector(`figure.chart[data-token="${token}"]`)'
        ".dataset.lastPrice) < 0.45",
        arg=[ids.yes],
    )
    assert float(chart.get_attribute("data-last-price") or 0) >= 0.40
    assert chart.locator("g.fire").count() == 1
    assert stack.order_count(ids.yes) == 1

    # The rule's timeline links its order to the audit log row.
    page.click(f"#rule-{rule['id']} td.market a")
    page.wait_for_url(f"**/dashboard/rules/{rule['id']}")
    order_id = stack.rule(alice, rule["id"])["triggerTxHash"]
    page.locator(".e-action_executed a.order").click()
    page.wait_for_url(f"**/dashboard/orders/{order_id}")
    assert page.locator("#audit-order").inner_text() == order_id
    assert "EXECUTED" in page.locator("#audit").inner_text()


def test_trigger_moves_and_cancels_from_the_page_use_the_api_validation(
    stack: LiveStack, page: Any
) -> None:
    alice = stack.tenant("alice")
    ids = stack.market("0.50")
    rule = stack.create_rule(alice, ids, "TAKE_PROFIT", 0.8)
    sign_in_agent(page, alice)
    row = _row(page, rule["id"])

    row.locator("input[name=triggerPrice]").fill("1.5")
    row.locator("form.move button").click()
    page.locator(".flash.error").wait_for()
    assert "triggerPrice" in page.locator(".flash.error").inner_text()
    assert stack.rule(alice, rule["id"])["triggerPrice"] == 0.8

    row.locator("input[name=triggerPrice]").fill("0.7")
    row.locator("form.move button").click()
    page.wait_for_function(
        "([id]) => document.querySelector('#rule-' + id + ' td.trigger').textContent"
        ".trim().startsWith('0.7')",
        arg=[rule["id"]],
    )
    assert stack.rule(alice, rule["id"])["triggerPrice"] == 0.7

    row.locator("button.cancel").click()
    page.wait_for_function(
        "([id]) => document.querySelector('#rule-' + id + ' .status').textContent === 'CANCELED'",
        arg=[rule["id"]],
    )
    assert stack.rule(alice, rule["id"])["status"] == "CANCELED"


def test_a_live_update_of_a_row_keeps_the_trigger_being_typed(stack: LiveStack, page: Any) -> None:
    alice = stack.tenant("alice")
    ids = stack.market("0.50")
    rule = stack.create_rule(alice, ids, "TAKE_PROFIT", 0.8)
    sign_in_agent(page, alice)
    row = _row(page, rule["id"])
    row.locator("input[name=triggerPrice]").fill("1.5")

    # The agent moves the trigger through the API while the person types in the page.
    with stack.api(alice) as client:
        moved = client.patch(
            f"/api/skills/polymarket/rules/{rule['id']}", json={"triggerPrice": 0.75}
        )
    assert moved.status_code == 200, moved.text
    page.wait_for_function(
        "([id]) => document.querySelector('#rule-' + id + ' td.trigger').textContent"
        ".trim().startsWith('0.75')",
        arg=[rule["id"]],
    )

    assert row.locator("input[name=triggerPrice]").input_value() == "1.5"
    row.locator("form.move button").click()
    page.locator(".flash.error").wait_for()
    assert "triggerPrice" in page.locator(".flash.error").inner_text()
    assert stack.rule(alice, rule["id"])["triggerPrice"] == 0.75


def test_an_agent_never_sees_another_agents_rules(stack: LiveStack, page: Any) -> None:
    alice = stack.tenant("alice")
    bob = stack.tenant("bob")
    ids = stack.market("0.50")
    bobs_first = stack.create_rule(bob, ids, "STOP_LOSS", 0.3)
    sign_in_agent(page, alice)
    assert bobs_first["id"] not in page.content()

    # Bob's new rule on the same token while Alice watches; then one of Alice's own, which
    # proves the stream delivered everything up to it.
    bobs_second = stack.create_rule(bob, ids, "TAKE_PROFIT", 0.9)
    alices = stack.create_rule(alice, ids, "STOP_LOSS", 0.2)
    _row(page, alices["id"]).wait_for()
    html = page.content()
    assert bobs_first["id"] not in html and bobs_second["id"] not in html
    assert bob.secret_id not in html

    response = page.goto(f"/dashboard/rules/{bobs_first['id']}")
    assert response is not None and response.status == 404
    assert "Rule not found" in page.locator("#error-page").inner_text()
    page.goto("/dashboard/owner")
    assert "FORBIDDEN" in page.content()


def test_a_status_filter_shows_only_that_status(stack: LiveStack, page: Any) -> None:
    carol = stack.tenant("carol")
    ids = stack.market("0.50")
    kept = stack.create_rule(carol, ids, "STOP_LOSS", 0.3)
    dropped = stack.create_rule(carol, ids, "STOP_LOSS", 0.2)
    with stack.api(carol) as client:
        client.delete(f"/api/skills/polymarket/rules/{dropped['id']}")
    sign_in(page, carol.api_key)
    page.select_option("#status", "ACTIVE")
    page.wait_for_url("**/dashboard/rules?status=ACTIVE")
    _row(page, kept["id"]).wait_for()
    assert _row(page, dropped["id"]).count() == 0


def test_the_chart_draws_the_price_each_rule_watches(stack: LiveStack, page: Any) -> None:
    heidi = stack.tenant("heidi")
    ids = stack.market("0.50")
    stack.create_rule(heidi, ids, "STOP_LOSS", 0.3)
    stack.create_rule(heidi, ids, "STOP_LOSS", 0.2, triggerSource="BEST_BID")
    sign_in_agent(page, heidi)
    chart = page.locator(f'figure.chart[data-token="{ids.yes}"]')

    chart.locator('path.price[data-source="BEST_BID"]').wait_for(state="attached")
    chart.locator('path.price[data-source="MIDPOINT"]').wait_for(state="attached")
    assert chart.locator("path.price.alt").count() == 1
    assert float(chart.get_attribute("data-last-price") or 0) > 0  # the bold line's price
    assert "(grey:" in chart.locator(".legend").inner_text()
