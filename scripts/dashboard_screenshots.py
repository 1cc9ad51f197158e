"""Regenerate the dashboard's screenshots under docs/ (one per page) from a live scenario.

    .venv/bin/python scripts/dashboard_screenshots.py

Starts the local exchange and a Vincent server on a scratch SQLite database (the browser
tests' ``LiveStack``), plays a short scenario (a bracket and a trailing stop on one market,
a price path that raises the trail and then fires it, a sell waiting for the owner's
approval), and photographs each page with Debian's Chromium through Playwright.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from playwright.sync_api import Page, sync_playwright  # noqa: E402
from tests.dashboard.conftest import CHROMIUM  # noqa: E402
from tests.dashboard.stack import ADMIN_TOKEN, LiveStack  # noqa: E402
from tests.skill.conftest import set_policy  # noqa: E402

from vincent.db.migrate import upgrade  # noqa: E402
from vincent.enums import PolicyType  # noqa: E402

DOCS = ROOT / "docs"
# One price a second: the chart keeps one point per second.
RISE = ["0.52", "0.54", "0.55", "0.57", "0.58", "0.60", "0.61", "0.63", "0.62", "0.64"]
FALL = ["0.62", "0.60", "0.59", "0.58", "0.57", "0.55"]


def _sign_in(page: Page, credential: str) -> None:
    page.goto("/dashboard/login")
    page.fill("#credential", credential)
    page.click("button[type=submit]")
    page.wait_for_url("**/dashboard/rules")
    page.locator("#live.on").wait_for()


def _shoot(page: Page, name: str) -> None:
    page.wait_for_timeout(300)  # let the last frame paint
    path = DOCS / f"dashboard-{name}.png"
    page.screenshot(path=str(path), full_page=True)
    print(f"wrote {path.relative_to(ROOT)}")


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="vincent-shots-") as folder:
        database_url = f"sqlite+aiosqlite:///{Path(folder) / 'shots.db'}"
        upgrade(database_url)
        stack = LiveStack(database_url).start()
        try:
            _scenario(stack)
        finally:
            stack.stop()


def _scenario(stack: LiveStack) -> None:
    alice = stack.tenant("alice-agent")
    bob = stack.tenant("bob-agent")
    ids = stack.market("0.50")
    stack.credit(alice, ids.yes, "100")
    stack.credit(bob, ids.yes, "40")

    async def approval_policy() -> None:
        await set_policy(
            stack.session_factory, bob.secret_id, PolicyType.REQUIRE_APPROVAL, {"enabled": True}
        )

    stack.call(approval_policy)
    stack.create_rule(alice, ids, "TAKE_PROFIT", 0.8)
    stop = stack.create_rule(alice, ids, "STOP_LOSS", 0.42)
    trail = stack.create_rule(alice, ids, "TRAILING_STOP", 0.45, trailingPercent=5)
    stack.create_rule(bob, ids, "STOP_LOSS", 0.56)

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        context = browser.new_context(
            base_url=stack.base_url, viewport={"width": 1280, "height": 860}, bypass_csp=True
        )
        page = context.new_page()
        page.goto("/dashboard/login")
        _shoot(page, "login")

        _sign_in(page, alice.api_key)
        for price in RISE + FALL:
            stack.move_price(ids.yes, price)
            time.sleep(1.0)  # a paced price path for the picture, not a wait for a result
        page.wait_for_function(
            "([id]) => document.querySelector('#rule-' + id + ' .status')"
            ".textContent === 'TRIGGERED'",
            arg=[trail["id"]],
        )
        with stack.api(alice) as client:
            client.patch(f"/api/skills/polymarket/rules/{stop['id']}", json={"triggerPrice": 0.4})
        page.reload()
        page.locator("#live.on").wait_for()
        _shoot(page, "rules")

        page.goto(f"/dashboard/rules/{trail['id']}")
        _shoot(page, "rule")
        page.locator(".e-action_executed a.order").click()
        page.wait_for_url("**/dashboard/orders/**")
        _shoot(page, "audit")

        owner = browser.new_context(
            base_url=stack.base_url, viewport={"width": 1280, "height": 860}, bypass_csp=True
        ).new_page()
        _sign_in(owner, ADMIN_TOKEN)
        owner.goto("/dashboard/owner")
        owner.locator("#live.on").wait_for()
        owner.locator("#approvals-box tr[data-approval]").wait_for()
        _shoot(owner, "owner")
        browser.close()


if __name__ == "__main__":
    main()
