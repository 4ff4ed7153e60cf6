"""Tasks started over HTTP in a real kernel, and one task seen the same way by every view."""

from __future__ import annotations

import pytest

from ..conftest import read_sse, wait_for
from ..kernel_fixtures import kernel_session
from .test_magic import WIDGET_MIME, displays, hub_status, merged_state

pytestmark = pytest.mark.timeout(120)
API = "taskstream/api"

CODE = """\
import jupyter_taskstream as ts
for i in ts.progress(range(5), unit="rows"):
    print("http line", i)
x_from_http = 99
"""


async def test_code_started_over_http_waits_for_a_busy_kernel_then_runs(jp_serverapp, client, registry):
    async with kernel_session(client, jp_serverapp) as (kernel_id, k):
        busy = k.start("import time; time.sleep(1.5)")  # the runtime is not even imported yet
        r = await client.post(f"{API}/tasks", json={"kernel_id": kernel_id, "name": "from http", "code": CODE})
        assert r.status_code == 202, r.text
        task = r.json()
        assert task["status"] == "pending" and task["kernel_id"] == kernel_id
        assert r.headers["location"].endswith(f"/taskstream/api/tasks/{task['id']}")
        assert hub_status(registry, task["id"]) == "pending"  # the kernel is still busy
        await wait_for(lambda: k.idle(busy), 10, message="the busy cell")
        await wait_for(lambda: hub_status(registry, task["id"]) == "completed", 20, message="the started task")
        events = (await client.get(f"{API}/tasks/{task['id']}/log")).json()["events"]
        assert [e["data"]["text"] for e in events] == [f"http line {i}" for i in range(5)]
        snapshot = (await client.get(f"{API}/tasks/{task['id']}")).json()
        assert snapshot["progress"]["current"] == 5 and snapshot["progress"]["unit"] == "rows"
        assert (await k.run("print(x_from_http)")).strip() == "99"  # ran in the user namespace
        # A kernel that already runs the runtime takes the next one over its command stream.
        again = await client.post(f"{API}/tasks", json={"kernel_id": kernel_id, "name": "second", "code": "y = 1"})
        await wait_for(lambda: hub_status(registry, again.json()["id"]) == "completed", 20, message="second task")


async def test_widget_rest_and_sse_show_the_same_progress_and_lines(jp_serverapp, client, registry):
    async with kernel_session(client, jp_serverapp) as (kernel_id, k):
        cell = k.start(
            "import jupyter_taskstream as ts, time\n"
            "def work():\n"
            "    for i in ts.progress(range(8), desc='same'):\n"
            "        print('shared line', i)\n"
            "        time.sleep(0.02)\n"
            "h = ts.run(work, name='same')\n"
        )
        await wait_for(lambda: k.idle(cell), 10, message="run() to return")
        task_id = (await k.run("print(h.id)")).strip()
        model_id = displays(k, cell)[0]["content"]["data"][WIDGET_MIME]["model_id"]
        await wait_for(lambda: hub_status(registry, task_id) == "completed", 20, message="the task")
        await wait_for(lambda: merged_state(k, model_id).get("status") == "completed", 10, message="widget final")
        widget = merged_state(k, model_id)
        rest = (await client.get(f"{API}/tasks/{task_id}")).json()
        rest_lines = [e["data"]["text"] for e in (await client.get(f"{API}/tasks/{task_id}/log")).json()["events"]]
        sse = await read_sse(client, f"{API}/tasks/{task_id}/events", headers={"Last-Event-ID": "0"}, timeout=10)
        sse_lines = [data["text"] for _, kind, data in sse if kind == "log"]
        sse_end = sse[-1][2]
        expected = [f"shared line {i}" for i in range(8)]
        assert widget["log"] == rest_lines == sse_lines == expected
        assert widget["fraction"] == rest["progress"]["fraction"] == sse_end["progress"]["fraction"] == 1.0
        assert widget["meter"].startswith("8/8") and rest["progress"]["current"] == sse_end["progress"]["current"] == 8
