"""Shared Playwright fixtures for browser tests: Debian's headless Chromium, driven async.

pytest-jupyter runs each async test on its own loop with the server in-process on that
same loop, so the browser must be driven with Playwright's *async* API on that loop (the
sync API would block it and freeze the server). pytest-jupyter has no async fixtures, so
the fixtures here run Playwright's coroutines on ``jp_asyncio_loop`` themselves, as
conftest's httpx clients do.

Use in a test module with ``from .browser import browser, chromium_path, page, page_events``.
"""

from __future__ import annotations

import os
import pathlib
from typing import Any, Iterator

import pytest

CHROMIUM = os.environ.get("TASKSTREAM_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ARTIFACTS = pathlib.Path(__file__).resolve().parent.parent / "test-artifacts"
VIEWPORT = {"width": 1000, "height": 600}
#: Playwright's expect() and wait_for_function() deadline, in ms.
TIMEOUT_MS = 20_000  # a deadline, not a timing: a loaded 2-core CI machine needs the room


def _on_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


@pytest.fixture
def chromium_path() -> str:
    """Path of the Chromium to drive; skips locally (fails on CI) when it is not installed."""
    if os.path.exists(CHROMIUM):
        return CHROMIUM
    message = (
        f"browser tests need Chromium at {CHROMIUM}: install it with `apt-get install chromium` "
        "(Debian/Ubuntu; CI installs it from .ci/apt-packages), or point TASKSTREAM_CHROMIUM at one. "
        "Do not use `playwright install`: the tests drive the system's Chromium."
    )
    if _on_ci():
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture
def browser(chromium_path, jp_asyncio_loop) -> Iterator[Any]:
    """A headless Chromium, on the loop the test and the server run on."""
    async_api = pytest.importorskip("playwright.async_api", reason="pip install playwright (the test extra)")

    run = jp_asyncio_loop.run_until_complete
    playwright = run(async_api.async_playwright().start())
    try:
        browser = run(playwright.chromium.launch(executable_path=chromium_path, args=CHROMIUM_ARGS))
    except BaseException:
        run(playwright.stop())
        raise
    async_api.expect.set_options(timeout=TIMEOUT_MS)
    yield browser
    run(browser.close())
    run(playwright.stop())


class PageEvents:
    """What a page did that a test may need to assert never happened."""

    def __init__(self) -> None:
        self.dialogs: list[str] = []
        #: uncaught exceptions in the page's scripts
        self.errors: list[str] = []
        #: console errors, including failed loads (an aborted stream logs one on purpose)
        self.console_errors: list[str] = []
        self.requests: list[str] = []

    def attach(self, page: Any) -> None:
        async def dismiss(dialog: Any) -> None:
            self.dialogs.append(f"{dialog.type}: {dialog.message}")
            await dialog.dismiss()

        page.on("dialog", dismiss)
        page.on("pageerror", lambda exc: self.errors.append(str(exc)))
        page.on("console", lambda msg: msg.type == "error" and self.console_errors.append(msg.text))
        page.on("request", lambda request: self.requests.append(request.url))


@pytest.fixture
def page_events() -> PageEvents:
    """Dialogs, JS errors and requests of the ``page`` fixture."""
    return PageEvents()


@pytest.fixture
def page(browser, page_events, jp_asyncio_loop) -> Iterator[Any]:
    """A fresh page (own context, light scheme, 1000x600) that records into ``page_events``."""
    run = jp_asyncio_loop.run_until_complete
    context = run(browser.new_context(viewport=VIEWPORT, color_scheme="light"))
    context.set_default_timeout(TIMEOUT_MS)
    page = run(context.new_page())
    page_events.attach(page)
    yield page
    run(context.close())


def artifact(name: str) -> pathlib.Path:
    """A path under the gitignored ``test-artifacts/`` for screenshots and the like."""
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS / name
