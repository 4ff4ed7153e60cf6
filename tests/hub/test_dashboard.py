"""The live dashboard at /taskstream/ in a real headless Chromium against a real server.

Tasks are driven through the hub's HTTP API as an external producer would, and one from a
real kernel as a notebook would. Every wait is a Playwright expectation or wait_for_function
with a deadline; there are no bare sleeps.
"""

from __future__ import annotations

import asyncio
import json
import os
import pathlib
import re
import shutil
import time

import pytest

from jupyter_taskstream.protocol import STATUSES, TERMINAL_STATUSES

# Imported fixtures, used by name (conftest is shared; these are the browser tests' own).
from ..browser import artifact, browser, chromium_path, page, page_events  # noqa: F401
from ..conftest import wait_for
from ..kernel_fixtures import kernel_session

expect = pytest.importorskip("playwright.async_api", reason="pip install playwright (the test extra)").expect

API = "taskstream/api"
XSS = "<img src=x onerror=alert(1)>"
EVENTS_URL = re.compile(r"/taskstream/api/events(\?|$)")
#: The README's screenshot; rewritten only when TASKSTREAM_UPDATE_DOCS=1, so test runs leave git clean.
DOCS_SCREENSHOT = pathlib.Path(__file__).resolve().parents[2] / "docs" / "dashboard.png"


async def create(client, name: str, **spec) -> dict:
    r = await client.post(f"{API}/tasks", json={"name": name, **spec})
    assert r.status_code == 201, r.text
    return r.json()


async def publish(client, task_id: str, *events: dict) -> None:
    r = await client.post(f"{API}/tasks/{task_id}/events", json={"events": list(events)})
    assert r.status_code == 204, r.text


def progress(current, **data) -> dict:
    return {"type": "progress", "data": {"current": current, **data}}


def line(text: str, stream: str = "stdout") -> dict:
    return {"type": "log", "data": {"stream": stream, "text": text}}


def status(value: str, **data) -> dict:
    return {"type": "status", "data": {"status": value, **data}}


@pytest.fixture
def dashboard_url(server_url, jp_serverapp) -> str:
    """The dashboard with the token in its URL: Jupyter logs the browser in and sets its cookie."""
    return f"{server_url}taskstream/?token={jp_serverapp.identity_provider.token}"


async def open_dashboard(page, dashboard_url: str, fragment: str = "", mode: str = "live"):
    """Open the dashboard and wait until it gets its data the way ``mode`` says."""
    response = await page.goto(dashboard_url + fragment)
    assert response is not None and response.status == 200
    await expect(page.locator("#ts-conn")).to_have_attribute("data-mode", mode)


def card(page, task_id: str):
    """A task's row; its card (log, traceback, Cancel/Delete) is inside once expanded."""
    return page.locator(f'.ts-task[data-task-id="{task_id}"]')


async def expand(page, task_id: str):
    """Open a task's card (rows are compact by default) and return the row."""
    view = card(page, task_id)
    toggle = view.locator(".ts-toggle")
    if await toggle.get_attribute("aria-expanded") != "true":
        await toggle.click()
    await expect(toggle).to_have_attribute("aria-expanded", "true")
    return view


async def log_lines(page, task_id: str) -> list[str]:
    return await card(page, task_id).locator(".ts-line").all_text_contents()


async def test_page_carries_its_config_as_json_and_loads_static_files(client):
    r = await client.get("taskstream/")
    assert r.status_code == 200
    block = re.search(r'<script type="application/json" id="taskstream-config">(.*?)</script>', r.text, re.S)
    config = json.loads(block.group(1))
    assert config["baseUrl"] == "/a%40b/" and config["apiUrl"] == "/a%40b/taskstream/api/"
    assert config["xsrfToken"] and isinstance(config["serverTime"], float)
    # The script's statuses are the protocol's, not a copy.
    assert set(config["terminalStatuses"]) == set(TERMINAL_STATUSES)
    assert config["displayStatuses"] == [*STATUSES, "cancelling"]
    assert config["viewsUrl"].startswith("/a%40b/static/jupyter_taskstream/taskview.js?v=")
    assert "script-src 'self'" in r.headers["content-security-policy"]
    assert '<script type="module"' in r.text
    assets = (("dashboard.js", "javascript"), ("taskview.js", "javascript"), ("dashboard.css", "text/css"),
              ("taskview.css", "text/css"))  # fmt: skip
    for asset, kind in assets:
        src = re.search(rf'"(/a%40b/static/jupyter_taskstream/{asset}\?v=\w+)"', r.text).group(1)
        served = await client.get(src.removeprefix("/a%40b/"))
        assert served.status_code == 200 and kind in served.headers["content-type"]


async def test_dashboard_follows_a_task_live_to_completed(page, page_events, client, dashboard_url):
    first = await create(client, "train model", total=10, unit="batch")
    other = await create(client, "still running", total=4)
    await publish(client, other["id"], progress(1))
    await open_dashboard(page, dashboard_url)
    task = card(page, first["id"])
    await expect(task.locator(".ts-name")).to_have_text("train model")
    await expect(task.locator(".ts-status")).to_have_text("pending")
    await expand(page, first["id"])

    await publish(
        client, first["id"], progress(3, message="epoch 1"), line("loss 0.9"), line("loss 0.7", "stderr")
    )
    await expect(task.locator(".ts-status")).to_have_text("running")
    await expect(task.locator(".ts-bar")).to_have_attribute("style", re.compile(r"width: 30%"))
    await expect(task.locator(".ts-count")).to_have_text("3 / 10 batch")
    await expect(task.locator(".ts-message")).to_have_text("epoch 1")
    await expect(task.locator(".ts-line")).to_have_text(["loss 0.9", "loss 0.7"])
    await expect(task.locator(".ts-line.ts-stderr")).to_have_text(["loss 0.7"])
    await expect(task.locator(".ts-elapsed")).to_have_text(re.compile(r"^elapsed \d\d:\d\d$"))

    await publish(client, first["id"], progress(10), line("saved"), status("completed", message="done"))
    await expect(task.locator(".ts-status")).to_have_text("completed")
    await expect(task.locator(".ts-bar")).to_have_attribute("style", re.compile(r"width: 100%"))
    await expect(task.locator(".ts-line")).to_have_text(["loss 0.9", "loss 0.7", "saved"])
    await expect(task.locator(".ts-cancel")).to_be_hidden()
    await expect(task.locator(".ts-delete")).to_be_visible()
    # Finished tasks go below running ones.
    await expect(page.locator(".ts-task").first).to_have_attribute("data-task-id", other["id"])
    running_box = await card(page, other["id"]).bounding_box()
    finished_box = await task.bounding_box()
    assert running_box["y"] < finished_box["y"]

    # All of it came over one stream, with no polling: one list for the first paint, no log fetches.
    streams = [u for u in page_events.requests if EVENTS_URL.search(u)]
    assert len(streams) == 1, streams
    lists = [u for u in page_events.requests if "/taskstream/api/tasks" in u]
    assert [u.rsplit("/a%40b/", 1)[1] for u in lists] == ["taskstream/api/tasks"]
    assert page_events.errors == [] and page_events.console_errors == []


async def test_reload_mid_task_loses_no_log_lines(page, page_events, client, dashboard_url):
    task = await create(client, "long job")
    tid = task["id"]
    await publish(client, tid, *[line(f"line {i}") for i in range(10)])
    # The #task= link opens its card, and a reload keeps it open.
    await open_dashboard(page, dashboard_url, fragment=f"#task={tid}")
    await publish(client, tid, *[line(f"line {i}") for i in range(10, 15)])
    await expect(card(page, tid).locator(".ts-line")).to_have_count(15)

    async def publish_during_reload():
        for i in range(15, 20):
            await publish(client, tid, line(f"line {i}"))

    await asyncio.gather(page.reload(), publish_during_reload())
    await expect(page.locator("#ts-conn")).to_have_attribute("data-mode", "live")
    await publish(client, tid, *[line(f"line {i}") for i in range(20, 25)])
    expected = [f"line {i}" for i in range(25)]
    await expect(card(page, tid).locator(".ts-line")).to_have_text(expected)
    assert page_events.errors == []


async def test_falls_back_to_polling_when_the_stream_dies(page, page_events, client, dashboard_url, registry):
    task = await create(client, "import", total=4)
    tid = task["id"]
    await publish(client, tid, progress(1), line("a.csv"))
    await open_dashboard(page, dashboard_url)
    await expand(page, tid)
    await expect(card(page, tid).locator(".ts-line")).to_have_text(["a.csv"])

    # The stream becomes unavailable (a proxy that drops it, say): the server ends the open
    # one, and every reconnect fails.
    await page.route(EVENTS_URL, lambda route: route.abort())
    for sub in list(registry._subscriptions):
        sub.close()
    await expect(page.locator("#ts-conn")).to_have_attribute("data-mode", "polling")

    await publish(client, tid, progress(3, message="b and c"), line("b.csv"), line("c.csv", "stderr"))
    new = await create(client, "arrives while polling")
    view = card(page, tid)
    await expect(view.locator(".ts-bar")).to_have_attribute("style", re.compile(r"width: 75%"))
    await expect(view.locator(".ts-message")).to_have_text("b and c")
    await expect(view.locator(".ts-line")).to_have_text(["a.csv", "b.csv", "c.csv"])
    await expect(card(page, new["id"]).locator(".ts-name")).to_have_text("arrives while polling")
    assert any(f"/taskstream/api/tasks/{tid}/log?after=" in u for u in page_events.requests)

    # Once the stream is back, the page returns to it, and misses and repeats nothing.
    await page.unroute(EVENTS_URL)
    await expect(page.locator("#ts-conn")).to_have_attribute("data-mode", "live", timeout=15_000)
    await publish(client, tid, line("d.csv"), progress(4), status("completed"))
    await expect(view.locator(".ts-status")).to_have_text("completed")
    await expect(view.locator(".ts-line")).to_have_text(["a.csv", "b.csv", "c.csv", "d.csv"])
    assert page_events.errors == []


async def test_page_polls_when_the_stream_never_opens(page, page_events, client, dashboard_url):
    await page.route(EVENTS_URL, lambda route: route.fulfill(status=503, body="proxy says no"))
    task = await create(client, "behind a proxy", total=2)
    await open_dashboard(page, dashboard_url, mode="polling")
    view = card(page, task["id"])
    await expect(view.locator(".ts-status")).to_have_text("pending")
    await expand(page, task["id"])
    await publish(client, task["id"], progress(1), line("half"))
    await expect(view.locator(".ts-bar")).to_have_attribute("style", re.compile(r"width: 50%"))
    await expect(view.locator(".ts-line")).to_have_text(["half"])
    assert page_events.errors == []


async def test_task_strings_are_shown_as_text_and_never_run(page, page_events, client, dashboard_url):
    error = {"type": XSS, "message": XSS, "traceback": f"Traceback (most recent call last):\n  {XSS}\n{XSS}"}

    async def hostile_task():
        task = await create(client, XSS, total=2, unit=XSS)
        await publish(client, task["id"], progress(1, message=XSS), line(XSS), line(XSS, "stderr"))
        await publish(client, task["id"], status("failed", message=XSS, error=error))
        return task["id"]

    before = await hostile_task()  # arrives in the stream's first snapshot
    await open_dashboard(page, dashboard_url)
    after = await hostile_task()  # arrives as live events
    for tid in (before, after):
        view = card(page, tid)
        await expect(view.locator(".ts-status")).to_have_text("failed")
        await expand(page, tid)
        await expect(view.locator(".ts-name")).to_have_text(XSS)
        await expect(view.locator(".ts-message")).to_have_text(XSS)
        await expect(view.locator(".ts-count")).to_have_text(f"1 / 2 {XSS}")
        await expect(view.locator(".ts-line")).to_have_text([XSS, XSS])
        await expect(view.locator(".ts-error")).to_contain_text(f"  {XSS}\n{XSS}")
    # The search box takes the same string as text, and finds the tasks by it.
    await page.locator("#ts-search").fill(XSS)
    await expect(page.locator(".ts-task")).to_have_count(2)
    assert await page.locator("img").count() == 0
    assert await page.evaluate("document.images.length") == 0
    assert page_events.dialogs == []
    assert page_events.errors == []


async def test_cancel_button_requests_cancel_and_shows_cancelling(page, page_events, client, dashboard_url):
    task = await create(client, "slow", total=100)
    tid = task["id"]
    await publish(client, tid, progress(5))
    await open_dashboard(page, dashboard_url)
    view = card(page, tid)
    await expect(view.locator(".ts-status")).to_have_text("running")
    await expand(page, tid)
    await view.locator(".ts-cancel").click()
    await expect(view.locator(".ts-status")).to_have_text("cancelling")
    await expect(view.locator(".ts-cancel")).to_be_disabled()
    snapshot = (await client.get(f"{API}/tasks/{tid}")).json()
    assert snapshot["cancel_requested"] is True and snapshot["status"] == "running"

    # It stays "cancelling" until the producer ends the task.
    await publish(client, tid, progress(6))
    await expect(view.locator(".ts-count")).to_have_text("6 / 100 it")
    await expect(view.locator(".ts-status")).to_have_text("cancelling")
    await publish(client, tid, status("cancelled", message="stopped at 6"))
    await expect(view.locator(".ts-status")).to_have_text("cancelled")
    await expect(view.locator(".ts-cancel")).to_be_hidden()
    assert page_events.errors == []


async def test_task_link_fragment_scrolls_to_and_highlights_the_task(page, client, dashboard_url):
    tasks = [await create(client, f"task {i}", total=10) for i in range(12)]
    target = tasks[0]  # the oldest: last in the list, below the fold
    await open_dashboard(page, dashboard_url, fragment=f"#task={target['id']}")
    view = card(page, target["id"])
    await expect(view).to_have_class(re.compile(r"\bts-focused\b"))
    await expect(view).to_be_in_viewport()
    assert await page.locator(".ts-task.ts-focused").count() == 1

    await expect(view.locator(".ts-card")).to_be_visible()  # opened, too

    # The id links on each card change the highlight without reloading.
    await expand(page, tasks[5]["id"])
    await card(page, tasks[5]["id"]).locator(".ts-id").click()
    await expect(card(page, tasks[5]["id"])).to_have_class(re.compile(r"\bts-focused\b"))
    await expect(view).not_to_have_class(re.compile(r"\bts-focused\b"))


async def test_page_without_javascript_lists_tasks(browser, client, dashboard_url):
    task = await create(client, XSS)
    context = await browser.new_context(java_script_enabled=False)
    try:
        page = await context.new_page()
        await page.goto(dashboard_url)
        row = page.locator("table.ts-table tbody tr")
        await expect(row).to_have_count(1)
        await expect(row.locator("td").nth(0)).to_have_text(task["id"])
        await expect(row.locator("td").nth(1)).to_have_text(XSS)
        assert await page.locator("img").count() == 0
    finally:
        await context.close()


#: Finished runs of a sweep, so the screenshot shows the compact rows a long list is made of.
FILLER = [f"sweep lr={lr:g} seed={seed}" for lr in (1e-3, 3e-4) for seed in range(4)]


async def populate(client, registry) -> None:
    """A dashboard with a task in each state, started minutes ago on the hub's clock."""
    now = time.time()

    def minutes_ago(minutes: float) -> None:
        registry.clock = lambda: now - minutes * 60

    minutes_ago(41)
    done = await create(client, "download dataset", total=120, unit="MB")
    await publish(client, done["id"], progress(40, rate=0.4))
    minutes_ago(36)
    await publish(client, done["id"], progress(120), line("saved to data/raw.parquet"), status("completed"))
    minutes_ago(34)
    failed = await create(client, "validate schema", total=50, unit="file")
    await publish(client, failed["id"], progress(10))
    minutes_ago(31.5)
    tb = (
        "Traceback (most recent call last):\n"
        '  File "validate.py", line 12, in check\n'
        "    raise ValueError(f\"column {name!r} has nulls\")\n"
        "ValueError: column 'price' has nulls"
    )
    error = {"type": "ValueError", "message": "column 'price' has nulls", "traceback": tb}
    await publish(
        client,
        failed["id"],
        progress(17),
        line("checked 17 files"),
        status("failed", message="column 'price' has nulls", error=error),
    )
    for i, name in enumerate(FILLER):
        minutes_ago(30 - i * 1.5)
        run = await create(client, name, total=40, unit="epoch")
        await publish(client, run["id"], progress(1))
        minutes_ago(30 - i * 1.5 - (8 + i % 3))
        await publish(client, run["id"], progress(40, rate=0.05 + i * 0.004), status("completed"))
    minutes_ago(12.3)
    train = await create(client, "train resnet50", total=200, unit="batch")
    await publish(
        client,
        train["id"],
        progress(132, rate=0.18, eta=377, message="epoch 4/6 \u00b7 loss 0.412"),
        *[line(f"batch {i:3d}  loss {1.9 - i * 0.011:.3f}") for i in range(128, 133)],
        line("warning: learning rate schedule clipped at 1e-5", "stderr"),
    )
    minutes_ago(3.1)
    stream = await create(client, "tail service logs", unit="req")
    await publish(client, stream["id"], progress(1873, rate=10.2), line("GET /health 200"), line("GET / 200"))
    minutes_ago(0)
    await create(client, "export report")
    registry.clock = time.time


async def test_light_and_dark_screenshots(page, page_events, client, dashboard_url, registry):
    await populate(client, registry)
    await page.emulate_media(reduced_motion="reduce")  # still bars, so screenshots are stable
    await page.set_viewport_size({"width": 1200, "height": 760})
    await open_dashboard(page, dashboard_url)
    await expect(page.locator(".ts-task")).to_have_count(5 + len(FILLER))
    train = page.locator(".ts-task", has_text="train resnet50")
    await train.locator(".ts-toggle").click()
    await expect(train.locator(".ts-line")).to_have_count(6)
    failed = page.locator(".ts-task", has_text="validate schema")
    await failed.locator(".ts-toggle").click()
    await expect(failed.locator(".ts-error")).to_be_visible()
    await page.locator("#ts-search").focus()  # no focus ring on a row in the picture
    light_bg = await page.evaluate("getComputedStyle(document.body).backgroundColor")
    await page.screenshot(path=artifact("dashboard-light.png"))
    await page.screenshot(path=artifact("dashboard-light-full.png"), full_page=True)
    if os.environ.get("TASKSTREAM_UPDATE_DOCS") == "1":
        DOCS_SCREENSHOT.parent.mkdir(exist_ok=True)
        shutil.copyfile(artifact("dashboard-light-full.png"), DOCS_SCREENSHOT)

    await page.emulate_media(color_scheme="dark")
    await page.wait_for_function("getComputedStyle(document.body).backgroundColor === 'rgb(17, 17, 17)'")
    dark_bg = await page.evaluate("getComputedStyle(document.body).backgroundColor")
    name_color = await page.locator(".ts-name").first.evaluate("n => getComputedStyle(n).color")
    assert light_bg == "rgb(238, 238, 238)" and dark_bg != light_bg
    assert name_color.startswith("rgba(255, 255, 255")  # text flips to light on dark
    await page.screenshot(path=artifact("dashboard-dark.png"))
    await page.screenshot(path=artifact("dashboard-dark-full.png"), full_page=True)
    assert page_events.errors == []


async def test_dashboard_follows_a_task_started_in_a_notebook_kernel(page, client, jp_serverapp, dashboard_url):
    """The issue's case: a task started from a kernel, followed live on the dashboard to completed."""
    async with kernel_session(client, jp_serverapp) as (_kernel_id, k):
        await open_dashboard(page, dashboard_url)
        cell = k.start(
            "import time, jupyter_taskstream as ts\n"
            "def work():\n"
            "    for i in ts.progress(range(30), desc='from a notebook'):\n"
            "        print('notebook line', i)\n"
            "        time.sleep(0.05)\n"
            "h = ts.run(work, name='from a notebook')\n"
            "print(h.id)\n"
        )
        await wait_for(lambda: k.idle(cell), 20, message="run() to return")
        task_id = k.stdout(cell).strip()
        task = await expand(page, task_id)
        # Seen while it runs: the live status, a partial bar, lines arriving.
        await expect(task.locator(".ts-status")).to_have_text("running")
        await expect(task.locator(".ts-name")).to_have_text("from a notebook")
        await expect(task.locator(".ts-line").first).to_have_text("notebook line 0")
        # ... and followed to the end without a reload.
        await expect(task.locator(".ts-status")).to_have_text("completed", timeout=20_000)
        await expect(task.locator(".ts-bar")).to_have_attribute("style", re.compile(r"width: 100%"))
        await expect(task.locator(".ts-line").last).to_have_text("notebook line 29")
