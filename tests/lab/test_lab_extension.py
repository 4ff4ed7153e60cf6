"""The JupyterLab extension in a real headless Chromium against a real JupyterLab and hub.

Tasks come from two producers: a notebook's kernel (``%%taskstream``, for Cancel and "Go to
cell") and the hub's REST API (externally driven tasks, for exact progress, failures and a
thousand rows). Every wait is a Playwright expectation or a poll with a deadline.
"""

from __future__ import annotations

import os
import re
import shutil
import time

import nbformat
import pytest

from ..browser import CHROMIUM_ARGS, VIEWPORT, artifact, browser, chromium_path, page, page_events  # noqa: F401
from ..conftest import wait_for
from .conftest import LAB_TIMEOUT_MS, ROOT

expect = pytest.importorskip("playwright.async_api", reason="pip install playwright (the test extra)").expect

pytestmark = [pytest.mark.slow, pytest.mark.timeout(150)]

PANEL = "#jupyter-taskstream-panel"
NOTEBOOK = ".jp-NotebookPanel:not(.lm-mod-hidden)"
DOCS_SCREENSHOT = ROOT / "docs" / "lab-tasks-panel-dark.png"
XSS = "<img src=x onerror=alert(1)>"


@pytest.fixture
def lab_settings():
    """A short notification threshold, so the toast test takes seconds (every test here)."""
    return {"jupyter-taskstream/plugin": {"notifyAfterSeconds": 1}}


def row(page, task_id: str):
    return page.locator(f'{PANEL} .jp-TaskStream-row[data-task-id="{task_id}"]')


async def open_lab(page, url: str):
    """Open JupyterLab and wait until the extension's status item is there."""
    response = await page.goto(url)
    assert response is not None and response.status == 200
    await expect(page.locator(".jp-TaskStream-statusItem")).to_be_visible(timeout=LAB_TIMEOUT_MS)


async def open_panel(page):
    """Open the Tasks panel from its sidebar tab (found by its tooltip)."""
    tab = page.locator('.jp-SideBar .lm-TabBar-tab[title="Tasks"]')
    await expect(tab).to_be_visible()
    if "lm-mod-current" not in (await tab.get_attribute("class") or ""):
        await tab.click()
    panel = page.locator(PANEL)
    await expect(panel).to_be_visible()
    return panel


async def open_notebook(page, url: str):
    await open_lab(page, url)
    notebook = page.locator(f"{NOTEBOOK} .jp-Notebook")
    await expect(notebook.locator(".jp-Cell").first).to_be_visible(timeout=LAB_TIMEOUT_MS)
    await expect(page.locator(f"{NOTEBOOK} .jp-Notebook-ExecutionIndicator")).to_have_attribute(
        "data-status", "idle", timeout=LAB_TIMEOUT_MS
    )
    return notebook


async def run_all(page, notebook) -> None:
    """Run > Run All Cells; again if the first did not start (a kernel still connecting)."""
    for attempt in range(3):
        await page.get_by_role("menuitem", name="Run", exact=True).click()
        await page.get_by_role("menuitem", name="Run All Cells", exact=True).click()
        try:
            await expect(notebook.locator(".jp-Cell").first.locator(".jp-InputPrompt")).to_contain_text("[1]", timeout=8000)
            return
        except AssertionError:
            if attempt == 2:
                raise


async def test_panel_follows_a_task_live_and_shows_text_as_text(page, page_events, lab_url, hub):
    await open_lab(page, lab_url())
    panel = await open_panel(page)
    await expect(panel.locator(".jp-TaskStream-empty")).to_contain_text("No tasks yet")

    task = await hub.create(XSS, total=10, unit="file")
    r = row(page, task)
    await expect(r.locator(".ts-name")).to_have_text(XSS)
    await hub.publish(task, ("status", {"status": "running"}), ("progress", {"current": 3, "message": XSS}))
    await expect(r).to_have_attribute("data-status", "running")
    await expect(r.locator(".ts-count")).to_contain_text("3 / 10 file")
    await expect(r.locator(".ts-rowline .ts-bar")).to_have_attribute("style", re.compile(r"width: 30%"))
    await hub.publish(task, ("progress", {"current": 7}), ("log", {"stream": "stderr", "text": "disk nearly full"}))
    await expect(r.locator(".ts-count")).to_contain_text("7 / 10 file")

    # The status bar counts it, with the overall bar; it opens the panel when clicked.
    item = page.locator(".jp-TaskStream-statusItem")
    await expect(item).to_contain_text("1 running")
    await expect(item.locator(".jp-TaskStream-bar")).to_have_attribute("style", re.compile(r"width: 70%"))

    # Unfolded: the message, the log (stderr red) and the actions.
    await r.locator(".ts-name").click()
    await expect(r.locator(".ts-message")).to_have_text(XSS)
    line = r.locator(".ts-log .ts-line")
    await expect(line).to_have_text("disk nearly full")
    await expect(line).to_have_class(re.compile("ts-stderr"))
    assert await panel.locator("img").count() == 0

    # A running task goes above a finished one, whatever their ages.
    done = await hub.create("finished earlier")
    await hub.publish(done, ("status", {"status": "completed"}))
    await expect(row(page, done)).to_have_attribute("data-status", "completed")
    order = await panel.locator(".jp-TaskStream-row").evaluate_all(
        "rows => rows.sort((a, b) => parseFloat(a.style.top) - parseFloat(b.style.top)).map(r => r.dataset.taskId)"
    )
    assert order == [task, done], order

    # Filter by status.
    await panel.locator(".jp-TaskStream-filter").select_option("completed")
    await expect(panel.locator(".jp-TaskStream-row")).to_have_count(1)
    await expect(row(page, done)).to_be_visible()
    await panel.locator(".jp-TaskStream-filter").select_option("all")
    await expect(panel.locator(".jp-TaskStream-row")).to_have_count(2)

    # Delete a finished task from the panel: the hub forgets it and the row goes.
    await row(page, done).locator(".ts-rowline .ts-delete").click()
    await expect(row(page, done)).to_have_count(0)

    # Open log: the whole log in a main-area tab that follows it live.
    await r.locator(".jp-TaskStream-openLog").click()
    log = page.locator(f'.jp-TaskStream-logView[data-task-id="{task}"]')
    await expect(log.locator(".jp-TaskStream-logLine")).to_have_text(["disk nearly full"])
    await hub.publish(task, ("log", {"text": "next line"}))
    await expect(log.locator(".jp-TaskStream-logLine")).to_have_text(["disk nearly full", "next line"])
    assert page_events.dialogs == [] and page_events.errors == []


async def test_a_thousand_tasks_cost_a_screenful(page, page_events, lab_url, hub):
    tasks = [{"id": f"t{i:04d}", "name": f"job {i}", "total": 100} for i in range(1000)]
    events = [{"task": t["id"], "type": "progress", "data": {"current": i % 100}} for i, t in enumerate(tasks)]
    await hub.batch({"tasks": tasks, "events": events})
    await open_lab(page, lab_url())
    panel = await open_panel(page)
    await expect(panel.locator(".jp-TaskStream-counts")).to_have_text("1000 running · 1000 in all")
    rows = await panel.locator(".jp-TaskStream-row").count()
    assert 5 < rows < 40, rows
    # Scrolling to the end renders the last rows, still only a screenful.
    await panel.locator(".jp-TaskStream-scroller").evaluate("s => { s.scrollTop = s.scrollHeight; }")
    last_row_bottom = """p => {
        const tops = [...p.querySelectorAll('.jp-TaskStream-row')].map(r => parseFloat(r.style.top) + r.offsetHeight);
        return Math.max(...tops) === p.querySelector('.jp-TaskStream-sizer').offsetHeight;
    }"""
    await page.wait_for_function(f"({last_row_bottom})(document.querySelector('{PANEL}'))")
    assert await panel.locator(".jp-TaskStream-row").count() < 40
    assert page_events.errors == []


async def test_log_tab_opens_on_the_tail_and_pages_back_to_the_first_line(page, page_events, lab_url, hub):
    task = await hub.create("long log")
    await hub.publish(task, ("status", {"status": "running"}))
    for start in range(0, 2000, 500):
        await hub.publish(task, *(("log", {"text": f"line {i}"}) for i in range(start, start + 500)))
    await open_lab(page, lab_url())
    await open_panel(page)
    await row(page, task).locator(".ts-name").click()
    await row(page, task).locator(".jp-TaskStream-openLog").click()
    log = page.locator(f'.jp-TaskStream-logView[data-task-id="{task}"]')
    lines = log.locator(".jp-TaskStream-logLine")
    # The tail first: the newest line, not the whole log.
    await expect(lines.last).to_have_text("line 1999")
    shown = await lines.count()
    assert 0 < shown < 2000, shown
    await expect(log).to_have_attribute("data-start", "false")
    # Scrolling up fetches older pages until the first line is there.
    box = log.locator(".jp-TaskStream-logBox")
    view = await log.element_handle()
    for _ in range(20):
        if await log.get_attribute("data-start") == "true":
            break
        before = await lines.count()
        await box.evaluate("b => { b.scrollTop = 0; }")
        await page.wait_for_function(
            "([view, n]) => view.querySelectorAll('.jp-TaskStream-logLine').length > n || view.dataset.start === 'true'",
            arg=[view, before],
        )
    await expect(log).to_have_attribute("data-start", "true")
    await expect(lines.first).to_have_text("line 0")
    texts = await lines.all_text_contents()
    assert texts == [f"line {i}" for i in range(2000)]
    # Still live at the end.
    await hub.publish(task, ("log", {"text": "line 2000"}))
    await expect(lines.last).to_have_text("line 2000")
    assert page_events.errors == []


async def test_cancel_from_the_panel_and_go_to_cell(page, page_events, lab_url, hub):
    notebook = await open_notebook(page, lab_url("lab/tree/tasks.ipynb"))
    await run_all(page, notebook)
    widget = notebook.locator(".jp-Cell").nth(1).locator(".taskstream-widget")
    try:
        await expect(widget).to_have_attribute("data-status", "running", timeout=LAB_TIMEOUT_MS)
    except AssertionError:
        await page.screenshot(path=artifact("debug-cancel.png"))
        raise
    task = await widget.get_attribute("data-task-id")

    panel = await open_panel(page)
    r = row(page, task)
    await expect(r.locator(".ts-name")).to_have_text("endless")
    await expect(r).to_have_attribute("data-status", "running")
    # Live: the count moves while we watch.
    first = await r.locator(".ts-count").text_content()
    await expect(r.locator(".ts-count")).not_to_have_text(first)
    await expect(r.locator(".ts-last")).to_contain_text("step")

    # Go to cell: the cell that started the task becomes the active one.
    await r.locator(".ts-name").click()
    await notebook.locator(".jp-Cell").nth(4).locator(".jp-InputPrompt").click()
    await r.locator(".jp-TaskStream-goToCell").click()
    await expect(notebook.locator(".jp-Cell").nth(1)).to_have_class(re.compile(r"\bjp-mod-active\b"))

    await r.locator(".ts-rowline .ts-cancel").click()
    await expect(r).to_have_attribute("data-status", "cancelled", timeout=15_000)
    await wait_for(lambda: _is(hub.status(task), "cancelled"), message="the hub to say cancelled")
    await expect(widget).to_have_count(0)  # the cell's widget gave way to its final state

    # The palette's "Cancel All Running Tasks of the Current Kernel" stops the other one.
    second = notebook.locator(".jp-Cell").nth(2).locator(".taskstream-widget")
    second_id = await second.get_attribute("data-task-id")
    await expect(row(page, second_id)).to_have_attribute("data-status", "running")
    await page.keyboard.press("Control+Shift+c")
    await page.keyboard.type("Cancel All Running Tasks of the Current Kernel")
    await page.keyboard.press("Enter")
    await expect(row(page, second_id)).to_have_attribute("data-status", "cancelled", timeout=15_000)
    await expect(page.locator(".Toastify__toast", has_text="Asked 1 task to stop")).to_be_visible()
    await panel.screenshot(path=artifact("lab-panel-cancelled.png"))
    assert page_events.errors == []


async def _is(status_coro, expected: str) -> bool:
    return await status_coro == expected


async def test_toast_when_a_long_task_fails_and_its_actions(page, page_events, lab_url, hub):
    await open_lab(page, lab_url())
    quick = await hub.create("quick one")
    await hub.publish(quick, ("status", {"status": "running"}), ("status", {"status": "failed"}))
    slow = await hub.create("nightly import")
    await hub.publish(slow, ("status", {"status": "running"}))
    panel = page.locator(PANEL)
    await expect(page.locator(".jp-TaskStream-statusItem")).to_contain_text("1 running")
    started = time.monotonic()
    await wait_for(lambda: time.monotonic() - started > 1.3, message="the task to run past the threshold")
    await hub.publish(slow, ("log", {"text": "row 17 is malformed"}))
    error = {"type": "ValueError", "message": "bad row", "traceback": "Traceback (most recent call last):\nValueError: bad row"}
    await hub.publish(slow, ("status", {"status": "failed", "error": error}))

    toast = page.locator(".Toastify__toast", has_text='Task "nightly import" failed')
    await expect(toast).to_be_visible()
    # The quick task ended under the threshold: no toast for it.
    await expect(page.locator(".Toastify__toast", has_text="quick one")).to_have_count(0)
    await toast.screenshot(path=artifact("lab-toast-failed.png"))

    await toast.get_by_role("button", name="Show").click()
    await expect(panel).to_be_visible()
    r = row(page, slow)
    await expect(r).to_have_class(re.compile("ts-expanded"))
    await expect(r.locator(".ts-error")).to_contain_text("ValueError: bad row")
    await expect(r.locator(".ts-last")).to_have_text("ValueError: bad row")
    assert page_events.errors == []


async def test_reload_restores_the_panel(page, page_events, lab_url, hub, client):
    await open_lab(page, lab_url())
    await open_panel(page)

    async def workspace_has_panel() -> bool:
        r = await client.get("lab/api/workspaces")
        values = r.json()["workspaces"]["values"]
        return any(
            (w["data"].get("layout-restorer:data") or {}).get("left", {}).get("current") == "jupyter-taskstream-panel"
            for w in values
        )

    await wait_for(workspace_has_panel, message="JupyterLab to save the layout with the panel")
    task = await hub.create("after reload")
    await page.reload()
    await expect(page.locator(PANEL)).to_be_visible(timeout=LAB_TIMEOUT_MS)
    await expect(row(page, task)).to_be_visible()
    assert page_events.errors == []


async def test_dark_theme_screenshot(browser, lab_url, hub, lab_dirs, tmp_path):
    # The theme is a user setting: written before the page loads.
    themes = tmp_path / "lab-user-settings" / "@jupyterlab" / "apputils-extension" / "themes.jupyterlab-settings"
    themes.parent.mkdir(parents=True, exist_ok=True)
    themes.write_text('{"theme": "JupyterLab Dark"}')

    running = await hub.create("train resnet", total=30, unit="epoch")
    await hub.publish(
        running,
        ("status", {"status": "running"}),
        ("progress", {"current": 12, "message": "epoch 12: loss 0.412"}),
        ("log", {"text": "epoch 11: loss 0.431"}),
    )
    download = await hub.create("download shards", total=64, unit="shard")
    await hub.publish(download, ("status", {"status": "running"}), ("progress", {"current": 51}))
    indexing = await hub.create("build index")
    await hub.publish(indexing, ("status", {"status": "running"}), ("log", {"stream": "stderr", "text": "warning: 3 files skipped"}))
    done = await hub.create("checksums", total=5, unit="block")
    await hub.publish(done, ("status", {"status": "running"}), ("progress", {"current": 5}), ("status", {"status": "completed"}))
    failed = await hub.create("import orders")
    error = {
        "type": "KeyError",
        "message": "'customer_id'",
        "traceback": 'Traceback (most recent call last):\n  File "import.py", line 12, in load\n'
        "    row['customer_id']\nKeyError: 'customer_id'",
    }
    await hub.publish(failed, ("status", {"status": "running"}), ("log", {"text": "read 1,204 rows"}), ("status", {"status": "failed", "error": error}))

    context = await browser.new_context(viewport={"width": 1100, "height": 640}, color_scheme="dark")
    try:
        page = await context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        await open_lab(page, lab_url("lab/tree/plain.ipynb"))
        await expect(page.locator("body")).to_have_attribute("data-jp-theme-light", "false", timeout=LAB_TIMEOUT_MS)
        await expect(page.locator(f"{NOTEBOOK} .jp-Cell").first).to_be_visible(timeout=LAB_TIMEOUT_MS)
        panel = await open_panel(page)
        await row(page, failed).locator(".ts-name").click()
        await expect(row(page, failed).locator(".ts-error")).to_be_visible()
        await page.mouse.move(600, 400)
        await page.screenshot(path=artifact("lab-tasks-panel-dark.png"), animations="disabled")
        if os.environ.get("TASKSTREAM_UPDATE_DOCS") == "1":
            shutil.copyfile(artifact("lab-tasks-panel-dark.png"), DOCS_SCREENSHOT)
        bg = await panel.evaluate("p => getComputedStyle(p).backgroundColor")
        assert bg != "rgb(255, 255, 255)", bg
        assert errors == []
    finally:
        await context.close()


async def test_four_tabs_share_one_stream_and_lab_still_saves(browser, lab_url, lab_root, hub):
    context = await browser.new_context(viewport=VIEWPORT, color_scheme="light")
    streams: list[str] = []
    errors: list[str] = []
    try:
        pages = []
        for i in range(4):
            page = await context.new_page()
            page.on("request", lambda req: "taskstream/api/events" in req.url and streams.append(req.url))
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            await open_lab(page, lab_url("lab/tree/plain.ipynb" if i == 3 else "lab"))
            pages.append(page)
        task = await hub.create("seen by every tab", total=4)
        await hub.publish(task, ("status", {"status": "running"}), ("progress", {"current": 2}))
        for page in pages:
            await expect(page.locator(".jp-TaskStream-statusItem")).to_contain_text("1 running")
        # One stream for the four tabs: the first tab leads, the others follow over the channel.
        assert len(streams) == 1, streams
        # The status item opens the panel.
        await pages[2].locator(".jp-TaskStream-statusItem").click()
        panel = pages[2].locator(PANEL)
        await expect(panel).to_be_visible()
        await expect(row(pages[2], task).locator(".ts-count")).to_contain_text("2 / 4")
        assert await panel.get_attribute("data-role") == "follower"

        # Lab's own requests still go through at once: a save lands on disk within seconds.
        page = pages[3]
        notebook = page.locator(f"{NOTEBOOK} .jp-Notebook")
        await expect(notebook.locator(".jp-Cell").first).to_be_visible(timeout=LAB_TIMEOUT_MS)
        await notebook.locator(".jp-Cell").first.locator(".cm-content").click()
        await page.keyboard.press("End")
        await page.keyboard.type("  # saved while four tabs are open")
        started = time.monotonic()
        await page.keyboard.press("Control+s")

        def saved() -> bool:
            try:
                nb = nbformat.read(lab_root / "plain.ipynb", as_version=4)
            except Exception:
                return False  # caught mid-write
            return "four tabs" in nb.cells[0].source

        await wait_for(saved, timeout=5, message="the notebook to be saved")
        assert time.monotonic() - started < 5

        # The leader tab closes: another takes over the stream and every tab stays live.
        await pages[0].close()
        await hub.publish(task, ("progress", {"current": 3}))
        for page in pages[1:]:
            await page.locator('.jp-SideBar .lm-TabBar-tab[title="Tasks"]').click() if not await page.locator(PANEL).is_visible() else None
            await expect(row(page, task).locator(".ts-count")).to_contain_text("3 / 4")
        assert len(streams) == 2, streams
        assert errors == []
    finally:
        await context.close()


async def test_polls_while_the_stream_is_refused(page, page_events, lab_url, hub):
    # A proxy that refuses the stream: after a few failed opens the panel polls the REST API.
    async def refuse(route):
        await route.fulfill(status=503, body="no streams here")

    await page.route(re.compile(r"/taskstream/api/events(\?|$)"), refuse)
    task = await hub.create("seen by polling", total=8)
    await hub.publish(task, ("status", {"status": "running"}), ("progress", {"current": 2}))
    await open_lab(page, lab_url())
    panel = await open_panel(page)
    await expect(panel.locator(".jp-TaskStream-conn")).to_have_attribute("data-connection", "polling", timeout=20_000)
    await expect(row(page, task).locator(".ts-count")).to_contain_text("2 / 8")
    await hub.publish(task, ("progress", {"current": 5}))
    await expect(row(page, task).locator(".ts-count")).to_contain_text("5 / 8")
    assert page_events.errors == []
