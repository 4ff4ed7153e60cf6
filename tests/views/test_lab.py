"""The task widget in JupyterLab, in a real headless Chromium against a real server and kernel.

The test server serves JupyterLab (with the widget managers installed next to it) on a temp
copy of the tutorial notebook and a few notebooks written here; the browser runs cells the way
a user does, with the keyboard and the widget's own buttons. Every wait is a Playwright
expectation or a poll (of the hub, of the saved file) with a deadline; no bare sleeps.
"""

from __future__ import annotations

import json
import os
import pathlib
import re
import shutil
import sys

import nbformat
import pytest

# Imported fixtures, used by name (conftest is shared; these are the browser tests' own).
from ..browser import artifact, browser, chromium_path, page, page_events  # noqa: F401
from ..conftest import wait_for

expect = pytest.importorskip("playwright.async_api", reason="pip install playwright (the test extra)").expect

pytestmark = pytest.mark.timeout(90)

ROOT = pathlib.Path(__file__).resolve().parents[2]
NOTEBOOKS = ROOT / "notebooks"
#: The README's screenshot; rewritten only when TASKSTREAM_UPDATE_DOCS=1, so test runs leave git clean.
DOCS_SCREENSHOT = ROOT / "docs" / "widget.png"
XSS = "<img src=x onerror=alert(1)>"
WIDGET_MIME = "application/vnd.jupyter.widget-view+json"
#: JupyterLab starts slowly (and a kernel with it): its own deadline, longer than expect()'s.
LAB_TIMEOUT_MS = 45_000
PANEL = ".jp-NotebookPanel:not(.lm-mod-hidden)"
SETUP = "%load_ext jupyter_taskstream\nimport time\nimport jupyter_taskstream as ts"

#: Notebooks the tests write next to the tutorial copy: name -> code cells.
NOTEBOOK_CELLS = {
    "cancel.ipynb": [
        # A short grace period so the uncooperative loop's cancel finishes soon.
        SETUP + "\nts.config.cancel_grace_period = 1.5",
        "%%taskstream endless\nwhile True:\n    ts.current().update()\n    time.sleep(0.05)",
        "%%taskstream tight loop\nwhile True:\n    pass",
    ],
    "hostile.ipynb": [
        SETUP,
        f"%%taskstream {XSS}\n"
        f"XSS = {XSS!r}\n"
        "print(XSS)\n"
        "for i in ts.progress(range(60)):\n"
        "    ts.current().set(message=XSS)\n"
        "    time.sleep(0.05)",
    ],
    "bars.ipynb": [
        SETUP + "\nfrom tqdm.auto import tqdm",
        # An epoch loop with a transient inner tqdm bar, slow enough to watch each one live.
        "%%taskstream epochs\n"
        "for epoch in tqdm(range(3), desc='epoch'):\n"
        "    for batch in tqdm(range(30), desc='batch', leave=False):\n"
        "        time.sleep(0.05)\n"
        "    for step in ts.progress(range(2), desc='eval', leave=True):\n"
        "        time.sleep(0.05)",
    ],
    "saved.ipynb": [
        SETUP,
        "%%taskstream --wait checksums\n"
        "for i in ts.progress(range(5), unit='block'):\n"
        "    print(f'block {i} ok')",
    ],
}


@pytest.fixture
def lab_root(jp_root_dir) -> pathlib.Path:
    """The server's root: a copy of the quickstart tutorial and the notebooks above."""
    shutil.copy(NOTEBOOKS / "01-quickstart.ipynb", jp_root_dir)
    kernelspec = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}
    for name, cells in NOTEBOOK_CELLS.items():
        nb = nbformat.v4.new_notebook(metadata={"kernelspec": kernelspec})
        nb.cells = [nbformat.v4.new_code_cell(source) for source in cells]
        nbformat.write(nb, jp_root_dir / name)
    return jp_root_dir


@pytest.fixture
def lab_dirs(tmp_path) -> dict[str, str]:
    """JupyterLab's user settings (no news toast over the cells) and workspaces, for this test only."""
    settings = tmp_path / "lab-user-settings"
    notification = settings / "@jupyterlab" / "apputils-extension" / "notification.jupyterlab-settings"
    notification.parent.mkdir(parents=True)
    notification.write_text(json.dumps({"fetchNews": "false", "checkForUpdates": False}))
    # A workspace left by an earlier test would reopen its notebooks (and start their kernels).
    return {"user_settings_dir": str(settings), "workspaces_dir": str(tmp_path / "lab-workspaces")}


@pytest.fixture
def jp_server_config(taskstream_config, lab_root, lab_dirs):
    """conftest's server, serving JupyterLab on ``lab_root`` too."""
    return {
        "ServerApp": {
            "jpserver_extensions": {"jupyter_taskstream": True, "jupyterlab": True},
            "reraise_server_extension_failures": True,
        },
        "LabApp": {
            # pytest-jupyter points the Jupyter data path at a temp dir; the installed front-end
            # extensions (the widget managers: jupyterlab_widgets, anywidget) live here.
            "extra_labextensions_path": [str(pathlib.Path(sys.prefix, "share", "jupyter", "labextensions"))],
            **lab_dirs,
        },
        "TaskStreamApp": taskstream_config,
    }


@pytest.fixture
def lab_url(server_url, jp_serverapp):
    """URL of a notebook in JupyterLab, with the token: Jupyter logs the browser in by it."""
    token = jp_serverapp.identity_provider.token
    return lambda path: f"{server_url}lab/tree/{path}?token={token}"


async def open_notebook(page, url: str, kernel: bool = True):
    """Open a notebook in JupyterLab with the file browser folded away; wait for its kernel."""
    response = await page.goto(url)
    assert response is not None and response.status == 200
    notebook = page.locator(f"{PANEL} .jp-Notebook")
    await expect(notebook.locator(".jp-Cell").first).to_be_visible(timeout=LAB_TIMEOUT_MS)
    files = page.locator(".jp-SideBar.jp-mod-left .lm-TabBar-tab.lm-mod-current")
    if await files.count():
        await files.click()  # more room for the cells in screenshots
    if kernel:
        await expect(kernel_status(page)).to_have_attribute("data-status", "idle", timeout=LAB_TIMEOUT_MS)
    return notebook


def kernel_status(page):
    """The notebook toolbar's kernel status; its ``data-status`` is the kernel's execution state."""
    return page.locator(f"{PANEL} .jp-Notebook-ExecutionIndicator")


async def run_cells(notebook, first: int, count: int) -> None:
    """Select cell ``first`` (command mode) and press Shift+Enter ``count`` times, as a user would."""
    await notebook.locator(".jp-Cell").nth(first).locator(".jp-InputPrompt").click()
    for _ in range(count):
        await notebook.page.keyboard.press("Shift+Enter")


#: Whether the last line of a scrolling box's text is inside the box's visible area.
LAST_LINE_IN_VIEW = """box => {
    const text = box.querySelector("pre").firstChild;
    const range = document.createRange();
    range.setStart(text, text.data.lastIndexOf("\\n") + 1);
    range.setEnd(text, text.data.length);
    const line = range.getBoundingClientRect(), view = box.getBoundingClientRect();
    return line.height > 0 && line.top >= view.top - 1 && line.bottom <= view.bottom + 1;
}"""


def outputs(cell):
    return cell.locator(".jp-OutputArea-output")


async def test_quickstart_background_cell_in_lab(page, page_events, lab_url, registry):
    notebook = await open_notebook(page, lab_url("01-quickstart.ipynb"))
    cells = notebook.locator(".jp-Cell")
    squares, meanwhile = cells.nth(3), cells.nth(5)
    await expect(squares.locator(".jp-InputArea")).to_contain_text("%%taskstream slow squares")
    await expect(meanwhile.locator(".jp-InputArea")).to_contain_text("meanwhile")
    # The tutorial is saved with outputs: clear them, so every output below is this run's.
    await page.get_by_role("menuitem", name="Edit").click()
    await page.get_by_role("menuitem", name="Clear Outputs of All Cells").click()
    await expect(notebook.locator(".jp-OutputArea-output")).to_have_count(0)

    # Intro, setup, text, the background cell, text, the "meanwhile" cell, in one go.
    await run_cells(notebook, 0, 6)
    widget = squares.locator(".taskstream-widget")
    await expect(widget).to_have_attribute("data-status", "running")
    await expect(widget.locator(".ts-name")).to_have_text("slow squares")
    # The next cell ran and finished while the task was still running, and got none of its lines.
    await expect(outputs(meanwhile)).to_have_text(["meanwhile: 42\n"])
    await expect(widget).to_have_attribute("data-status", "running")

    # The task's printed lines arrive in its own widget as it goes.
    await expect(widget.locator(".ts-log")).to_contain_text("9 squared is 81")
    width = await widget.locator(".ts-bar").evaluate("bar => parseFloat(bar.style.width)")
    assert 0 < width < 100, width
    await page.mouse.move(0, 0)  # no hover highlight on the output in the picture
    await squares.screenshot(path=artifact("lab-widget-running.png"), animations="disabled")
    if os.environ.get("TASKSTREAM_UPDATE_DOCS") == "1":
        shutil.copyfile(artifact("lab-widget-running.png"), DOCS_SCREENSHOT)

    # At the end the widget gives way to the final state: full bar, completed, every line.
    final = squares.locator(".taskstream-static")
    await expect(final).to_contain_text("completed")
    await expect(final).to_contain_text("20/20")
    await expect(final.locator("pre")).to_have_text("\n".join(f"{i} squared is {i * i}" for i in range(20)))
    # The log box shows its latest line, as the live widget did, without scrolling.
    assert await final.locator(".taskstream-log").evaluate(LAST_LINE_IN_VIEW)
    bar = final.locator('div[style*="height: 8px"] > div')
    await expect(bar).to_have_attribute("style", re.compile(r"width: 100\.0%"))
    await expect(squares.locator(".taskstream-widget")).to_have_count(0)
    await expect(outputs(squares)).to_have_count(1)
    await squares.screenshot(path=artifact("lab-widget-completed.png"))
    # No line went anywhere else, late ones included.
    await expect(outputs(meanwhile)).to_have_text(["meanwhile: 42\n"])
    await expect(notebook.locator(".jp-OutputArea-output", has_text="squared")).to_have_count(1)
    (task,) = [t for t in registry.tasks() if t.name == "slow squares"]
    assert task.status == "completed"
    assert page_events.errors == []


async def test_cancel_button_stops_tasks_and_the_hub_agrees(page, page_events, lab_url, client):
    notebook = await open_notebook(page, lab_url("cancel.ipynb"))
    await run_cells(notebook, 0, 3)
    cells = notebook.locator(".jp-Cell")
    endless, tight = cells.nth(1), cells.nth(2)

    async def hub_status(task_id: str) -> str:
        r = await client.get(f"taskstream/api/tasks/{task_id}")
        assert r.status_code == 200, r.text
        return r.json()["status"]

    def hub_says_cancelled(task_id: str):
        async def condition() -> bool:
            return await hub_status(task_id) == "cancelled"

        return condition

    # A task that calls into the runtime stops at its next step.
    widget = endless.locator(".taskstream-widget")
    await expect(widget).to_have_attribute("data-status", "running")
    await expect(widget.locator(".ts-meter")).to_have_text(re.compile(r"^[1-9]\d* it"))
    endless_id = await widget.get_attribute("data-task-id")
    await widget.locator(".ts-cancel").click()
    await expect(endless.locator(".taskstream-static")).to_contain_text("cancelled")
    await expect(endless.locator(".taskstream-widget")).to_have_count(0)
    await wait_for(hub_says_cancelled(endless_id), message="the hub to say cancelled")

    # A loop that never calls the runtime is interrupted after the grace period; meanwhile
    # the widget says it is cancelling.
    widget = tight.locator(".taskstream-widget")
    await expect(widget).to_have_attribute("data-status", "running")
    tight_id = await widget.get_attribute("data-task-id")
    await widget.locator(".ts-cancel").click()
    await expect(widget).to_have_attribute("data-status", "cancelling")
    await expect(widget.locator(".ts-status")).to_have_text("cancelling")
    await expect(widget.locator(".ts-cancel")).to_be_disabled()
    await notebook.screenshot(path=artifact("lab-widget-cancelling.png"))
    assert await hub_status(tight_id) == "running"
    await expect(tight.locator(".taskstream-static")).to_contain_text("cancelled", timeout=15_000)
    await wait_for(hub_says_cancelled(tight_id), message="the hub to say cancelled")
    # The kernel is free again.
    await expect(kernel_status(page)).to_have_attribute("data-status", "idle")
    assert page_events.errors == []


async def test_hostile_task_strings_show_as_text_in_the_widget(page, page_events, lab_url):
    notebook = await open_notebook(page, lab_url("hostile.ipynb"))
    await run_cells(notebook, 0, 2)
    cell = notebook.locator(".jp-Cell").nth(1)
    widget = cell.locator(".taskstream-widget")
    await expect(widget.locator(".ts-name")).to_have_text(XSS)
    await expect(widget.locator(".ts-message")).to_have_text(XSS)
    await expect(widget.locator(".ts-log")).to_have_text(XSS)
    assert await notebook.locator("img").count() == 0

    final = cell.locator(".taskstream-static")
    await expect(final).to_contain_text("completed")
    await expect(final.locator("b")).to_have_text(XSS)
    await expect(final.locator("pre")).to_have_text(XSS)
    assert (await final.text_content()).count(XSS) == 3  # name, message, log line
    await cell.screenshot(path=artifact("lab-widget-hostile.png"))
    assert await notebook.locator("img").count() == 0
    assert await page.evaluate("[...document.images].filter(i => i.closest('.jp-Notebook')).length") == 0
    assert page_events.dialogs == []
    assert page_events.errors == []


async def test_child_bars_show_live_under_the_main_bar_and_transient_ones_go(page, page_events, lab_url, client):
    notebook = await open_notebook(page, lab_url("bars.ipynb"))
    await run_cells(notebook, 0, 2)
    cell = notebook.locator(".jp-Cell").nth(1)
    widget = cell.locator(".taskstream-widget")
    batch = widget.locator(".ts-child", has_text="batch")
    # The tqdm inner loop is a child bar of the task's widget, counting live (no tqdm widget).
    await expect(batch).to_have_count(1)
    await expect(batch.locator(".ts-child-meter")).to_have_text(re.compile(r"^[1-9]\d*/30 "))
    await cell.screenshot(path=artifact("lab-widget-child-bars.png"))
    assert await cell.locator(".widget-hprogress, .jupyter-widgets.widget-hbox").count() == 0
    # When an epoch's batch loop ends (leave=False) its bar goes; the eval bar (leave=True) stays.
    await expect(widget.locator(".ts-child", has_text="eval")).to_have_count(1)
    await expect(batch).to_have_count(0)
    final = cell.locator(".taskstream-static")
    await expect(final).to_contain_text("completed")
    await expect(final.locator(".taskstream-bar")).to_have_count(1)  # eval, left; batch gone
    await expect(final.locator(".taskstream-bar")).to_contain_text("eval")
    tasks = (await client.get("taskstream/api/tasks")).json()["tasks"]
    (task,) = [t for t in tasks if t["name"] == "epochs"]
    assert [(b["desc"], b["closed"]) for b in task["bars"]] == [("eval", True)]
    assert page_events.errors == []


async def test_saved_notebook_shows_the_final_state_without_a_kernel(
    browser, page, page_events, lab_url, lab_root, client
):
    notebook = await open_notebook(page, lab_url("saved.ipynb"))
    await run_cells(notebook, 0, 2)
    cell = notebook.locator(".jp-Cell").nth(1)
    await expect(cell.locator(".taskstream-static")).to_contain_text("completed")
    await expect(kernel_status(page)).to_have_attribute("data-status", "idle")
    await page.keyboard.press("Control+s")

    def saved_outputs():
        try:
            return nbformat.read(lab_root / "saved.ipynb", as_version=4).cells[1].outputs
        except nbformat.reader.NotJSONError:
            return None  # caught mid-save: jupyter_server writes the file in place

    outputs = await wait_for(saved_outputs, message="the notebook saved with its outputs")
    # On disk: the finished task as text/plain and text/html, and no widget view to go missing.
    (output,) = outputs
    assert output["output_type"] == "display_data" and WIDGET_MIME not in output["data"]
    assert "completed" in output["data"]["text/plain"] and "5/5" in output["data"]["text/plain"]
    html = output["data"]["text/html"]
    assert 'class="taskstream-static"' in html and "completed" in html and "block 4 ok" in html

    (session,) = (await client.get("api/sessions")).json()
    r = await client.delete(f"api/kernels/{session['kernel']['id']}")
    assert r.status_code == 204

    # Reopened where its kernel cannot start (the server reports no kernel specs, as when the
    # notebook travels to a server without Python), the user picks "No Kernel".
    context = await browser.new_context(viewport=page.viewport_size, color_scheme="light")
    try:
        reopened = await context.new_page()
        page_events.attach(reopened)

        async def no_kernel_specs(route):
            await route.fulfill(json={"default": "python3", "kernelspecs": {}})

        await reopened.route(re.compile(r"/api/kernelspecs(\?|$)"), no_kernel_specs)
        notebook = await open_notebook(reopened, lab_url("saved.ipynb"), kernel=False)
        await reopened.locator(".jp-Dialog").get_by_role("button", name="No Kernel").click()
        await expect(reopened.locator(".jp-Dialog")).to_have_count(0)
        cell = notebook.locator(".jp-Cell").nth(1)
        final = cell.locator(".taskstream-static")
        await expect(final).to_contain_text("checksums")
        await expect(final).to_contain_text("completed")
        await expect(final).to_contain_text("5/5")
        await expect(final.locator("pre")).to_have_text("\n".join(f"block {i} ok" for i in range(5)))
        bar = final.locator('div[style*="height: 8px"] > div')
        await expect(bar).to_have_attribute("style", re.compile(r"width: 100\.0%"))
        await expect(cell.locator(".jp-OutputArea-output")).not_to_contain_text("Error displaying widget")
        await cell.screenshot(path=artifact("lab-reopened-without-kernel.png"))
        assert (await client.get("api/kernels")).json() == []
    finally:
        await context.close()
    assert page_events.errors == []
