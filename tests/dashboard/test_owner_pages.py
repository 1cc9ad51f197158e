"""The owner in a real Chromium: a pending sell appears live, Approve executes it once."""

from __future__ import annotations

from typing import Any

from tests.dashboard.conftest import sign_in_owner
from tests.dashboard.stack import LiveStack
from tests.helpers import Tenant
from tests.skill.conftest import set_policy
from vincent.enums import PolicyType


def _require_approval(stack: LiveStack, tenant: Tenant) -> None:
    async def add() -> None:
        await set_policy(
            stack.session_factory, tenant.secret_id, PolicyType.REQUIRE_APPROVAL, {"enabled": True}
        )

    stack.call(add)


def _wait_for_status(page: Any, rule_id: str, status: str) -> None:
    page.wait_for_function(
        "([id, status]) => document.querySelector('#rule-' + id + ' .status')"
        "?.textContent === status.replace('_', ' ')",
        arg=[rule_id, status],
    )


def test_owner_approves_a_pending_sell_and_it_executes_once(stack: LiveStack, page: Any) -> None:
    dave = stack.tenant("dave")
    ids = stack.market("0.50")
    stack.credit(dave, ids.yes, "8")
    _require_approval(stack, dave)
    rule = stack.create_rule(dave, ids, "STOP_LOSS", 0.45)
    sign_in_owner(page)
    page.goto("/dashboard/owner")
    page.locator("#live.on").wait_for()
    assert "require approval" in page.locator("section", has_text="Policies").inner_text()

    stack.move_price(ids.yes, "0.40")  # the stop fires; the sell waits for the owner

    row = page.locator("#approvals-box tr[data-approval]")
    row.wait_for()
    assert "dave" in row.inner_text()
    assert "$" in row.locator("td.num").inner_text()
    assert row.locator("td.expires").inner_text().startswith("in ")
    assert stack.order_count(ids.yes) == 0
    approval_id = row.get_attribute("data-approval")

    row.locator("button.approve").click()
    page.locator(".flash").wait_for()
    assert "Approved and executed: order" in page.locator(".flash").inner_text()
    assert stack.order_count(ids.yes) == 1

    # A second decision (another tab, a double click) is refused: the sell went out once.
    again = page.evaluate(
        """async ([id, csrf]) => {
            const r = await fetch(`/dashboard/approvals/${id}/approve`,
                {method: 'POST', headers: {'x-csrf-token': csrf}});
            return [r.status, (await r.json()).error.code];
        }""",
        [approval_id, page.locator('meta[name="csrf-token"]').get_attribute("content")],
    )
    assert again == [409, "APPROVAL_NOT_PENDING"]
    assert stack.order_count(ids.yes) == 1

    page.goto("/dashboard/rules")
    _wait_for_status(page, rule["id"], "TRIGGERED")
    assert stack.rule(dave, rule["id"])["triggerTxHash"] is not None


def test_owner_denies_a_pending_sell_and_nothing_executes(stack: LiveStack, page: Any) -> None:
    erin = stack.tenant("erin")
    ids = stack.market("0.50")
    stack.credit(erin, ids.yes, "8")
    _require_approval(stack, erin)
    rule = stack.create_rule(erin, ids, "STOP_LOSS", 0.45)
    sign_in_owner(page)
    stack.move_price(ids.yes, "0.40")
    _wait_for_status(page, rule["id"], "PENDING_APPROVAL")

    page.goto("/dashboard/owner")
    row = page.locator("#approvals-box tr", has_text="erin")
    row.locator("button.deny").click()
    page.locator(".flash").wait_for()
    assert "Denied" in page.locator(".flash").inner_text()

    page.goto("/dashboard/rules")
    _wait_for_status(page, rule["id"], "FAILED")
    assert stack.order_count(ids.yes) == 0


def test_owner_sees_every_secret_and_the_worker_health(stack: LiveStack, page: Any) -> None:
    frank = stack.tenant("frank")
    grace = stack.tenant("grace")
    ids = stack.market("0.50")
    franks = stack.create_rule(frank, ids, "STOP_LOSS", 0.3)
    graces = stack.create_rule(grace, ids, "TRAILING_STOP", 0.4, trailingPercent=10)
    sign_in_owner(page)
    page.locator(f"#rule-{franks['id']}").wait_for()
    page.locator(f"#rule-{graces['id']}").wait_for()

    page.goto("/dashboard/owner")
    health = page.locator("#health-box")
    assert "running" in health.inner_text()
    page.wait_for_function(
        "document.querySelector('#health-box').textContent.includes('connected ·')"
    )
    assert "closed" in health.inner_text()  # the breaker
    assert "this worker" in health.inner_text()  # the only worker leads
