"""tqdm and rich bars in a real kernel started by the test server, read back over REST and SSE.

What a cell receives is checked on the IOPub messages themselves: inside a task no tqdm or rich
widget and no bar text reach the cell; outside tasks a tqdm loop's messages are the same with
and without the extension.
"""

from __future__ import annotations

import re

import pytest

from ..conftest import read_sse, wait_for
from ..kernel_fixtures import kernel_session, shown_ended

pytestmark = pytest.mark.timeout(180)
API = "taskstream/api"
BAR_TEXT = re.compile(r"\d+%\||it/s|\x1b\[")


def ended(registry, task_id):
    return lambda: shown_ended(registry, task_id)


def shape(messages):
    """What a cell got, minus what varies run to run: types, widget model names, masked text."""
    out = []
    for m in messages:
        kind = m["msg_type"]
        if kind in ("status", "execute_input"):
            continue
        if kind == "comm_open":
            out.append((kind, m["content"]["data"]["state"].get("_model_name")))
        elif kind == "stream":
            out.append((kind, m["content"]["name"], bool(m["content"]["text"].strip())))
        else:
            out.append((kind,))
    return out


def widget_models(messages):
    return [m["content"]["data"]["state"].get("_model_name") for m in messages if m["msg_type"] == "comm_open"]


async def test_tqdm_and_rich_bars_inside_tasks_land_on_the_task(jp_serverapp, client, registry):
    async with kernel_session(client, jp_serverapp) as (kernel_id, k):
        # Outside any task, before the extension: what tqdm.auto and tqdm.notebook send.
        loop = (
            "for _ in tqdm_auto(range(3), mininterval=0): pass\n"
            "for _ in tqdm.notebook.tqdm(range(3), mininterval=0): pass\n"
        )
        await k.run("from tqdm.auto import tqdm as tqdm_auto\nimport tqdm.notebook")
        before = k.start(loop)
        await wait_for(lambda: k.idle(before), 30)
        await k.run("%load_ext jupyter_taskstream\nimport jupyter_taskstream as ts, time")
        after = k.start(loop)
        await wait_for(lambda: k.idle(after), 30)
        assert shape(k.of(before)) == shape(k.of(after)), "the extension changed tqdm outside tasks"
        assert "HBoxModel" in widget_models(k.of(after))  # tqdm's own widget, as without us

        # Inside %%taskstream: epochs x batches with tqdm.auto bound before the task.
        cell = k.start(
            "%%taskstream tqdm epochs --wait\n"
            "for epoch in tqdm_auto(range(3), desc='epoch'):\n"
            "    for batch in tqdm_auto(range(100), desc='batch', leave=False, miniters=1000):\n"
            "        pass\n"
            "    print('epoch', epoch, 'done')\n"
        )
        await wait_for(lambda: k.idle(cell), 60)
        async def named(name):
            tasks = (await client.get(f"{API}/tasks")).json()["tasks"]
            return [t for t in tasks if t["name"] == name]

        (task,) = await wait_for(lambda: named("tqdm epochs"), 20, message="the task in the hub")
        await wait_for(ended(registry, task["id"]), 20)
        record = (await client.get(f"{API}/tasks/{task['id']}")).json()
        assert record["status"] == "completed"
        assert (record["progress"]["current"], record["progress"]["total"]) == (3, 3)
        assert record["message"] == "epoch" and record["bars"] == []
        log = [e["data"]["text"] for e in (await client.get(f"{API}/tasks/{task['id']}/log")).json()["events"]]
        assert log == [f"epoch {i} done" for i in range(3)]
        # The SSE stream saw the child bar open, count and close.
        events = await read_sse(client, f"{API}/tasks/{task['id']}/events?last_event_id=0",
                                until=lambda ev: ev[-1][1] == "end")  # fmt: skip
        children = [b for _, kind, data in events if kind == "progress" for b in data.get("bars", [])]
        assert children and {b["desc"] for b in children} == {"batch"}
        assert any(b["closed"] and b["current"] == 100 for b in children)
        models = widget_models(k.of(cell))
        assert "HBoxModel" not in models and "FloatProgressModel" not in models, models
        streams = "".join(m["content"]["text"] for m in k.of(cell) if m["msg_type"] == "stream")
        assert not BAR_TEXT.search(streams), streams

        # Inside `with ts.task(...)`: plain tqdm (stderr text today), rich.track, thread_map.
        cell = k.start(
            "from tqdm import tqdm\nfrom tqdm.contrib.concurrent import thread_map\nfrom rich.progress import track\n"
            "with ts.task('mixed') as t:\n"
            "    for i in tqdm(range(4), desc='outer'):\n"
            "        thread_map(lambda x: x, range(10), max_workers=2, leave=True, desc=f'map {i}')\n"
            "        for _ in track(range(5), description='rich'):\n"
            "            pass\n"
            "print(t.id)\n"
        )
        await wait_for(lambda: k.idle(cell), 60)
        task_id = k.stdout(cell).strip().splitlines()[-1]
        await wait_for(ended(registry, task_id), 20)
        record = (await client.get(f"{API}/tasks/{task_id}")).json()
        assert (record["progress"]["current"], record["message"]) == (4, "outer")
        left = sorted(b["desc"] for b in record["bars"])
        assert left == ["map 0", "map 1", "map 2", "map 3", "rich"], left  # rich's bar reused per loop
        assert all(b["closed"] and b["current"] == b["total"] for b in record["bars"])
        messages = k.of(cell)
        foreign = {"HBoxModel", "FloatProgressModel", "IntProgressModel", "OutputModel", "HTMLModel"}
        assert not foreign & set(widget_models(messages)), widget_models(messages)  # only the task's own
        streams = "".join(m["content"]["text"] for m in messages if m["msg_type"] == "stream")
        assert not BAR_TEXT.search(streams) and "outer" not in streams, streams

        # Nested ts.progress: exactly one task and one widget.
        count = len((await client.get(f"{API}/tasks")).json()["tasks"])
        cell = k.start(
            "%%taskstream nested --wait\n"
            "for _ in ts.progress(range(30), desc='epoch'):\n"
            "    for _ in ts.progress(range(10), desc='batch'):\n"
            "        pass\n"
        )
        await wait_for(lambda: k.idle(cell), 60)
        (nested,) = await wait_for(lambda: named("nested"), 20)
        await wait_for(ended(registry, nested["id"]), 20)
        assert len((await client.get(f"{API}/tasks")).json()["tasks"]) == count + 1
        widgets = [m for m in k.of(cell) if m["msg_type"] == "display_data"]
        assert len(widgets) == 1, widgets
