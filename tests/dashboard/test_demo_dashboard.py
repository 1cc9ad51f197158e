"""``vincent demo`` prints the dashboard's URL, and the demo can be watched there."""

from __future__ import annotations

import asyncio
import queue
import re
import threading

from tests.dashboard.conftest import CHROMIUM, UI_TIMEOUT_MS, _need_chromium
from vincent.demo import run_demo

URL_LINE = re.compile(r"dashboard: (\S+) \(sign in with the demo key (ssk_\w+)\)")
WATCH_S = 3.0


def test_the_demo_can_be_watched_on_the_dashboard() -> None:
    _need_chromium()
    from playwright.sync_api import sync_playwright

    lines: queue.Queue[str] = queue.Queue()
    result: dict[str, object] = {}

    def demo() -> None:
        result.update(asyncio.run(run_demo(lines.put, watch_s=WATCH_S)))

    runner = threading.Thread(target=demo, daemon=True)
    runner.start()
    while (found := URL_LINE.search(lines.get(timeout=60))) is None:
        pass
    url, key = found.groups()

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        page = browser.new_page()
        page.set_default_timeout(UI_TIMEOUT_MS)
        page.goto(f"{url}/login")
        page.fill("#credential", key)
        page.click("button[type=submit]")
        page.locator("#live.on").wait_for()
        page.locator("tr[data-status=TRIGGERED] .status").wait_for()
        page.locator("figure.chart g.fire").wait_for(state="attached")
        browser.close()
    runner.join(timeout=60)
    assert result["stop_status"] == "TRIGGERED"
