"""Browser tests: one live stack and one headless Chromium per test module, per database.

Chromium is Debian's (``/usr/bin/chromium``), driven by Playwright for Python through its
``executable_path`` (Playwright's own browser downloads are never used). Without it the
browser tests skip with a message, except under ``CI=true`` where that is a failure
(``.ci/run`` installs it).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import IN_CI, empty_postgres
from tests.dashboard.stack import ADMIN_TOKEN, LiveStack
from tests.helpers import Tenant

CHROMIUM = os.environ.get("VINCENT_CHROMIUM", "/usr/bin/chromium")
UI_TIMEOUT_MS = 30_000  # a loaded CI machine: a wait on a condition, not a delay


def _need_chromium() -> None:
    if Path(CHROMIUM).exists():
        return
    message = f"Chromium not found at {CHROMIUM} (apt-get install -y chromium)"
    if IN_CI:
        pytest.fail(message + " (CI=true: the browser tests must run)", pytrace=False)
    pytest.skip(message)


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def module_database_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> str:
    """A migrated, empty database for the module: copied SQLite, or emptied PostgreSQL."""
    if request.param == "sqlite":
        template: Path = request.getfixturevalue("sqlite_template")
        path = tmp_path_factory.mktemp("dashboard") / "vincent.db"
        shutil.copyfile(template, path)
        return f"sqlite+aiosqlite:///{path}"
    url: str = request.getfixturevalue("postgres_url")
    empty_postgres(url)
    return url


@pytest.fixture(scope="module")
def stack(module_database_url: str) -> Iterator[LiveStack]:
    _need_chromium()
    live = LiveStack(module_database_url).start()
    yield live
    live.stop()


@pytest.fixture(scope="module")
def browser(module_database_url: str) -> Iterator[Any]:
    """One Chromium per module and database. Tied to the database so that it is closed before
    the next database is prepared: Playwright's sync API runs an event loop in this thread
    while it is open, and the PostgreSQL set-up needs ``asyncio.run``."""
    _need_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        yield chromium
        chromium.close()


def _page(stack: LiveStack, browser: Any, *, bypass_csp: bool) -> Iterator[Any]:
    context = browser.new_context(
        base_url=stack.base_url, viewport={"width": 1280, "height": 900}, bypass_csp=bypass_csp
    )
    context.set_default_timeout(UI_TIMEOUT_MS)
    new_page = context.new_page()
    errors: list[str] = []
    new_page.on("pageerror", lambda error: errors.append(str(error)))

    def console(message: Any) -> None:
        # A refused status (404, 409) a test asks for is expected; a script or a policy
        # violation (Content-Security-Policy) is not.
        if message.type == "error" and "Failed to load resource" not in message.text:
            errors.append(message.text)

    new_page.on("console", console)
    yield new_page
    context.close()
    assert not errors, f"JavaScript errors on the page: {errors}"


@pytest.fixture
def page(stack: LiveStack, browser: Any) -> Iterator[Any]:
    """A fresh browser context (no cookies) per test; the stack starts first (Playwright's
    sync API runs an event loop in this thread, where ``asyncio.run`` no longer works).
    The page's Content-Security-Policy is bypassed: ``wait_for_function`` evaluates strings."""
    yield from _page(stack, browser, bypass_csp=True)


@pytest.fixture
def strict_page(stack: LiveStack, browser: Any) -> Iterator[Any]:
    """A page under the dashboard's Content-Security-Policy (any violation fails the test)."""
    yield from _page(stack, browser, bypass_csp=False)


def sign_in(page: Any, credential: str) -> None:
    page.goto("/dashboard/login")
    page.fill("#credential", credential)
    page.click("button[type=submit]")
    page.wait_for_url("**/dashboard/rules")
    # Live updates are open before the test changes anything.
    page.locator("#live.on").wait_for()


def sign_in_agent(page: Any, tenant: Tenant) -> None:
    sign_in(page, tenant.api_key)


def sign_in_owner(page: Any) -> None:
    sign_in(page, ADMIN_TOKEN)
