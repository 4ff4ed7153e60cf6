"""Issue 15 in a real kernel reporting to the real test server: what is dropped is counted.

A flood of prints through a tiny outbox: whatever the kernel sheds is counted in the hub's
``log_dropped`` and marked at the gap, so retained lines + ``log_dropped`` = lines printed.
"""

from __future__ import annotations

import re

import pytest

from ..conftest import wait_for
from ..kernel_fixtures import kernel_session

pytestmark = pytest.mark.timeout(180)
API = "taskstream/api"


async def all_log_events(client, task_id: str) -> list[dict]:
    """Every retained log event of a task, paging through ``/log``."""
    events: list[dict] = []
    after = 0
    while True:
        page = (await client.get(f"{API}/tasks/{task_id}/log", params={"after": after})).json()
        events += page["events"]
        if not page["events"] or page["last_event_id"] == after:
            return events
        after = page["last_event_id"]


async def test_a_print_flood_through_a_full_outbox_is_counted_line_for_line(jp_serverapp, client, registry):
    printed = 60_000
    async with kernel_session(client, jp_serverapp) as (_kernel_id, k):
        out = await k.run(
            "import jupyter_taskstream as ts\n"
            "ts.config.max_buffered_events = 500\n"
            "def flood():\n"
            f"    for i in range({printed}):\n"
            "        print(f'line {i}')\n"
            "print('ID', ts.run(flood).id)\n"
        )
        (task_id,) = re.findall(r"ID (\S+)", out)

        def shown_terminal():
            try:
                return registry.snapshot(task_id)["status"] == "completed"
            except KeyError:
                return False

        await wait_for(shown_terminal, 60, message="the flood to end")
        snap = (await client.get(f"{API}/tasks/{task_id}")).json()
        events = await all_log_events(client, task_id)
        notices = [e for e in events if e["data"]["text"].startswith("[jupyter_taskstream]")]
        lines = [e["data"]["text"] for e in events if "dropped" not in e["data"] and e not in notices]
        markers = [e["data"] for e in events if "dropped" in e["data"]]
        assert markers, "a 500-event outbox did not shed anything: the test proves nothing"
        assert all(m["text"] == f"… {m['dropped']} lines dropped …" for m in markers if m["dropped"] > 1)
        # The runtime may also tell the task, in one line of its log, that the hub is not keeping
        # up ("[jupyter_taskstream] ...", from a timer, so only while the task still runs): that
        # line is counted like any other, kept or shed.
        total = len(lines) + len(notices) + snap["log_dropped"]
        assert total in (printed, printed + 1), (len(lines), len(notices), snap["log_dropped"])
        # Order kept: what is retained is increasing, and ends with the last line printed.
        numbers = [int(text.split()[1]) for text in lines]
        assert numbers == sorted(numbers) and numbers[-1] == printed - 1


async def test_a_refused_batch_keeps_its_good_lines_and_counts_the_refused_ones(jp_serverapp, api_url, client):
    # Issue 15, defect 7: the publisher threw a whole refused batch away (up to 5,000 events)
    # for one bad event. Now the event the 400 names becomes a marker, the rest is resent.
    import asyncio

    from jupyter_taskstream.kernel.publisher import Publisher

    secret = jp_serverapp.web_app.settings["taskstream_secret"]
    pub = Publisher(api_url, secret, None)
    box = pub.outbox  # queued before the sender starts, so it is one batch
    box.put(("spec", {"id": "refusal1", "name": "refused", "total": None, "unit": "it", "kernel_id": None}))
    box.put_lines("refusal1", "stdout", ["a", "b"])
    box.put(("event", {"task": "refusal1", "type": "log", "data": {"stream": "bogus", "lines": ["x", "y", "z"]}}))
    box.put_lines("refusal1", "stdout", ["c"])
    pub._poke()
    try:
        assert await asyncio.to_thread(pub.flush, 10)
    finally:
        await asyncio.to_thread(pub.close, 5)
    events = await all_log_events(client, "refusal1")
    # The hub's own notice of the refusal aside, every good line, in order, and the marker.
    texts = [e["data"]["text"] for e in events if not e["data"]["text"].startswith("[taskstream]")]
    assert texts == ["a", "b", "… 3 lines dropped …", "c"]
    assert [e["data"].get("dropped") for e in events if "dropped" in e["data"]] == [3]
    snap = (await client.get(f"{API}/tasks/refusal1")).json()
    assert snap["log_dropped"] == 3 and pub.dropped_lines == 3


HEADLESS = """
import jupyter_taskstream as ts
with ts.task("headless", total=300) as task:
    for i in range(300):
        print(f"line {i}")
        task.update(1)
"""


async def test_a_headless_script_flushes_its_ending_at_exit(jp_serverapp, api_url, registry, tmp_path):
    # Issue 15, defect 12: the sender is a daemon thread; nothing flushed it at exit, so a
    # script lost its last lines and its final status.
    import asyncio
    import os
    import sys
    import time

    from jupyter_taskstream.protocol import ENV_SECRET, ENV_URL

    script = tmp_path / "headless.py"
    script.write_text(HEADLESS)
    env = {**os.environ, ENV_URL: api_url, ENV_SECRET: jp_serverapp.web_app.settings["taskstream_secret"],
           "PYTHONPATH": os.pathsep.join(sys.path)}
    started = time.monotonic()
    proc = await asyncio.create_subprocess_exec(sys.executable, str(script), env=env)
    assert await asyncio.wait_for(proc.wait(), 60) == 0
    assert time.monotonic() - started < 30
    (task,) = [t for t in registry.tasks() if t.name == "headless"]
    await wait_for(lambda: registry.snapshot(task.id)["status"] == "completed", 5)
    assert task.current == task.total == 300
    texts = [e.data["text"] for e in registry.event_log(task.id).after(0) if e.type == "log"]
    assert texts == [f"line {i}" for i in range(300)]


async def test_a_notebook_run_by_nbclient_ends_completed_in_the_hub_and_in_its_saved_output(
    jp_serverapp, api_url, registry
):
    # Issue 15, defect 12, the notebook form: the kernel shuts down right after the last
    # cell; the hub must hold the final status and every line, the saved output the end.
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell(
            "import jupyter_taskstream as ts\n"
            "with ts.task('notebook run', total=40) as task:\n"
            "    for i in range(40):\n"
            "        print(f'nb line {i}')\n"
            "        task.update(1)\n"
        )
    ]
    client = NotebookClient(nb, timeout=60, kernel_name="python3")
    import os

    from jupyter_taskstream.protocol import ENV_SECRET, ENV_URL

    # As papermill or jupyter-scheduler would run it: a kernel of its own, told where the hub is.
    secret = jp_serverapp.web_app.settings["taskstream_secret"]
    await client.async_execute(env={**os.environ, ENV_URL: api_url, ENV_SECRET: secret})
    (task,) = [t for t in registry.tasks() if t.name == "notebook run"]
    await wait_for(lambda: registry.snapshot(task.id)["status"] == "completed", 10)
    assert task.current == task.total == 40
    texts = [e.data["text"] for e in registry.event_log(task.id).after(0) if e.type == "log"]
    assert texts == [f"nb line {i}" for i in range(40)]
    saved = nbformat.writes(nb)
    outputs = nb.cells[0].outputs
    plain = " ".join(str(o.get("data", {}).get("text/plain", "")) for o in outputs)
    assert "completed" in plain and "100%" in plain.replace(" %", "%"), saved[-2000:]
