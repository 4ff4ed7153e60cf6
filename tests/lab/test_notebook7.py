"""The JupyterLab extension in Notebook 7: a real ``jupyter notebook`` server (the notebook
server extension beside the hub) in a real headless Chromium.

Notebook 7 has no ILabShell and no status bar: the Tasks panel lives in the right sidebar,
the status item at the right of the menu bar, and "Open log" in the right sidebar too.
A notebook's kernel runs a task that the test ends through a file, so "running" and the
end are both seen for certain, whatever the machine's speed.
"""

from __future__ import annotations

import json
import pathlib
import sys

import nbformat
import pytest

from ..browser import artifact, browser, chromium_path, page, page_events  # noqa: F401
from .conftest import LAB_TIMEOUT_MS, SETUP

expect = pytest.importorskip("playwright.async_api", reason="pip install playwright (the test extra)").expect
pytest.importorskip("notebook", minversion="7", reason="pip install 'notebook>=7' (the test extra)")

pytestmark = [pytest.mark.slow, pytest.mark.timeout(150)]

PANEL = "#jp-right-stack #jupyter-taskstream-panel"
ITEM = "#menu-panel .jp-TaskStream-statusItem"
EXTENSION_SCRIPT = "/lab/extensions/jupyter-taskstream/"


@pytest.fixture
def jp_server_config(jp_server_config, labextensions, lab_dirs):
    """tests/lab's server with Notebook 7 loaded too, finding this checkout's build first."""
    extra = [str(labextensions), str(pathlib.Path(sys.prefix, "share", "jupyter", "labextensions"))]
    config = json.loads(json.dumps(jp_server_config))
    config["ServerApp"]["jpserver_extensions"]["notebook"] = True
    config["JupyterNotebookApp"] = {"extra_labextensions_path": extra, **lab_dirs}
    return config


@pytest.fixture
def stop_file(lab_root) -> pathlib.Path:
    """The task in ``nb7.ipynb`` runs until this file exists."""
    path = lab_root / "stop-nb7-task"
    nb = nbformat.v4.new_notebook(
        metadata={"kernelspec": {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}}
    )
    nb.cells = [
        nbformat.v4.new_code_cell(SETUP + "\nimport os"),
        nbformat.v4.new_code_cell(
            "%%taskstream notebook seven\n"
            "for i in ts.progress(range(100000), unit='step'):\n"
            f"    if os.path.exists({str(path)!r}):\n        break\n"
            "    if i % 20 == 0:\n        print(f'step {i}')\n"
            "    time.sleep(0.05)"
        ),
    ]
    nbformat.write(nb, lab_root / "nb7.ipynb")
    return path


def our_errors(page_events) -> list[str]:
    """Uncaught page errors thrown from this extension's scripts.

    Notebook 7 beside JupyterLab in one server throws one of its own at load (a settings
    schema it misses, with or without this extension), so errors are told apart by origin.
    """
    return [e for e in page_events.stack_errors if EXTENSION_SCRIPT in e]


@pytest.fixture
def nb7_page(page, page_events):
    """The ``page`` fixture, also keeping each uncaught error's stack (to tell whose it is)."""
    page_events.stack_errors = []
    page.on("pageerror", lambda exc: page_events.stack_errors.append(f"{exc}\n{exc.stack or ''}"))
    return page


async def palette_command(page, label: str) -> None:
    """Run a command from View > Activate Command Palette (Notebook 7's modal palette)."""
    await page.get_by_role("menuitem", name="View", exact=True).click()
    await page.locator(".lm-Menu-item", has_text="Activate Command Palette").click()
    palette = page.locator(".jp-ModalCommandPalette")
    await expect(palette).to_be_visible()
    await palette.locator("input").fill(label)
    await palette.locator(".lm-CommandPalette-item", has_text=label).first.click()


async def run_all(page) -> None:
    """Run > Run All Cells; again if the first did not start (a kernel still connecting)."""
    first_prompt = page.locator(".jp-Cell").first.locator(".jp-InputPrompt")
    for attempt in range(3):
        await page.get_by_role("menuitem", name="Run", exact=True).click()
        await page.get_by_role("menuitem", name="Run All Cells", exact=True).click()
        try:
            await expect(first_prompt).to_contain_text("[1]", timeout=8000)
            return
        except AssertionError:
            if attempt == 2:
                raise


async def test_notebook7_panel_in_the_right_sidebar_follows_a_task_to_its_end(nb7_page, page_events, lab_url, stop_file):
    page = nb7_page
    response = await page.goto(lab_url("notebooks/nb7.ipynb"))
    assert response is not None and response.status == 200
    # No status bar in Notebook 7: the item is at the right of the menu bar.
    item = page.locator(ITEM)
    await expect(item).to_be_visible(timeout=LAB_TIMEOUT_MS)
    await expect(item).to_have_text("Tasks")
    await expect(page.locator(".jp-Cell").first).to_be_visible(timeout=LAB_TIMEOUT_MS)
    await expect(page.locator(".jp-Notebook-ExecutionIndicator")).to_have_attribute(
        "data-status", "idle", timeout=LAB_TIMEOUT_MS
    )

    # The palette's "Show Tasks Panel" opens it in the right sidebar.
    await palette_command(page, "Show Tasks Panel")
    panel = page.locator(PANEL)
    await expect(panel).to_be_visible()
    await expect(panel.locator(".jp-TaskStream-empty")).to_contain_text("No tasks yet")

    await run_all(page)
    widget = page.locator(".jp-Cell").nth(1).locator(".taskstream-widget")
    await expect(widget).to_have_attribute("data-status", "running", timeout=LAB_TIMEOUT_MS)
    task = await widget.get_attribute("data-task-id")
    row = panel.locator(f'.jp-TaskStream-row[data-task-id="{task}"]')
    await expect(row.locator(".ts-name")).to_have_text("notebook seven")
    await expect(row).to_have_attribute("data-status", "running")
    # Live: the count moves while we watch, and the item counts the task.
    first = await row.locator(".ts-count").text_content()
    await expect(row.locator(".ts-count")).not_to_have_text(first)
    await expect(item).to_contain_text("1 running")
    await expect(row.locator(".ts-last")).to_contain_text("step")

    # Open log: the log replaces the list in the right sidebar (the main area holds the
    # notebook), and the status item brings the list back.
    await row.locator(".ts-name").click()
    await row.locator(".jp-TaskStream-openLog").click()
    log = page.locator(f'#jp-right-stack .jp-TaskStream-logView[data-task-id="{task}"]')
    await expect(log.locator(".jp-TaskStream-logLine").first).to_contain_text("step 0")
    await expect(panel).to_be_hidden()
    await expect(page.locator(".jp-NotebookPanel")).to_be_visible()
    await item.click()
    await expect(panel).to_be_visible()

    # The end: the task completes, the panel and the item say so.
    stop_file.touch()
    await expect(row).to_have_attribute("data-status", "completed", timeout=LAB_TIMEOUT_MS)
    await expect(item).to_have_text("Tasks")
    await page.screenshot(path=artifact("notebook7-panel.png"))
    assert our_errors(page_events) == [], page_events.stack_errors


async def test_notebook7_tree_page_has_the_item_and_the_panel(nb7_page, page_events, lab_url, hub):
    page = nb7_page
    task = await hub.create("from the file browser", total=4, unit="file")
    await hub.publish(task, ("status", {"status": "running"}), ("progress", {"current": 1}))
    response = await page.goto(lab_url("tree"))
    assert response is not None and response.status == 200
    item = page.locator(ITEM)
    await expect(item).to_contain_text("1 running", timeout=LAB_TIMEOUT_MS)
    await item.click()
    panel = page.locator(PANEL)
    await expect(panel).to_be_visible()
    row = panel.locator(f'.jp-TaskStream-row[data-task-id="{task}"]')
    await expect(row.locator(".ts-count")).to_contain_text("1 / 4 file")
    await hub.publish(task, ("progress", {"current": 3}))
    await expect(row.locator(".ts-count")).to_contain_text("3 / 4 file")
    await hub.publish(task, ("status", {"status": "completed"}))
    await expect(row).to_have_attribute("data-status", "completed")
    await expect(item).to_have_text("Tasks")
    # Closed, it opens again from View > Right Sidebar, where Notebook 7 lists side panels.
    await page.locator("#jp-right-stack .jp-SidePanel-collapse").click()
    await expect(panel).to_be_hidden()
    await page.get_by_role("menuitem", name="View", exact=True).click()
    await page.locator(".lm-Menu-item", has_text="Right Sidebar").hover()
    await page.locator(".lm-Menu-item", has_text="Show Tasks").click()
    await expect(panel).to_be_visible()
    assert our_errors(page_events) == [], page_events.stack_errors
