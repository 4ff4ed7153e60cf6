"""The runtime in a real kernel started by the test server, reporting to the real hub.

One kernel for the whole scenario (kernels take seconds to start): each section checks one
promise the runtime makes to users, in the order a user would meet them.
"""

from __future__ import annotations

import asyncio
import os
import re

import psutil
import pytest

from jupyter_taskstream.protocol import ENV_SECRET, ENV_URL

from ..conftest import read_sse, wait_for
from ..kernel_fixtures import KernelSession, kernel_session, shown_ended

pytestmark = pytest.mark.timeout(180)
API = "taskstream/api"


def ids(text: str) -> list[str]:
    return re.findall(r"ID (\S+)", text)


async def test_tasks_in_a_real_kernel(jp_serverapp, client, api_url, registry):
    r = await client.post("api/kernels", json={"name": "python3"})
    assert r.status_code == 201, r.text
    kernel_id = r.json()["id"]
    manager = jp_serverapp.kernel_manager.get_kernel(kernel_id)
    kc = manager.client()
    kc.start_channels()
    await kc.wait_for_ready(timeout=60)
    k = KernelSession(kc)
    try:
        # The extension hands the kernel the hub's address and secret in its environment.
        out = await k.run(f"import os; print(os.environ[{ENV_URL!r}], len(os.environ[{ENV_SECRET!r}]))")
        assert out.split() == [api_url, str(len(jp_serverapp.web_app.settings["taskstream_secret"]))]
        await _scenario(k, client, registry, kernel_id, manager)
    finally:
        await k.close()
        await client.delete(f"api/kernels/{kernel_id}")


async def _scenario(k: KernelSession, client, registry, kernel_id, manager) -> None:
    def hub(task_id):
        return registry.get(task_id)

    def ended(task_id):
        return lambda: shown_ended(registry, task_id)

    # -- a background task keeps the kernel free; its output stays out of every cell ----------
    out = await k.run(
        "import time, jupyter_taskstream as ts\n"
        "def slow():\n"
        "    for i in ts.progress(range(30), desc='slow'):\n"
        "        print(f'slow {i}')\n"
        "        time.sleep(0.03)\n"
        "h = ts.run(slow)\n"
        "print('ID', h.id)\n"
    )
    (slow_id,) = ids(out)
    second = await k.run("time.sleep(0.3); print('cell two')")
    assert second == "cell two\n"
    assert hub(slow_id).status == "running", "the second cell finished while the task ran"
    await wait_for(ended(slow_id), 20)
    assert hub(slow_id).status == "completed" and hub(slow_id).kernel_id == kernel_id
    assert hub(slow_id).current == 30 and hub(slow_id).total == 30
    log = (await client.get(f"{API}/tasks/{slow_id}/log")).json()["events"]
    assert [e["data"]["text"] for e in log] == [f"slow {i}" for i in range(30)]
    streams = [m["content"]["text"] for m in k.messages if m["msg_type"] == "stream"]
    assert not any("slow " in text for text in streams), "task output leaked into a cell"

    # -- the runtime's own HTTP logging never reaches a cell, even at DEBUG on the root -------
    out = await k.run(
        "import logging\n"
        "logging.basicConfig(level=logging.DEBUG, force=True)\n"
        "def chatty():\n"
        "    for i in ts.progress(range(20), desc='chatty'):\n"
        "        print(f'chatty {i}')\n"
        "        if i == 3: print('file \\udcff name')\n"
        "        time.sleep(0.05)\n"
        "print('ID', ts.run(chatty).id)\n"
    )
    (chatty_id,) = ids(out)
    meanwhile = k.start("time.sleep(0.8); print('meanwhile')")
    await wait_for(ended(chatty_id), 20)
    await wait_for(lambda: k.idle(meanwhile), 20)
    log = [e["data"]["text"] for e in (await client.get(f"{API}/tasks/{chatty_id}/log")).json()["events"]]
    assert "file \ufffd name" in log and "chatty 19" in log  # an unencodable line is cleaned, not refused
    assert not [line for line in log if "httpx" in line or "httpcore" in line or "HTTP Request" in line]
    cells = "".join(m["content"]["text"] for m in k.messages if m["msg_type"] == "stream")
    assert "meanwhile" in cells
    assert not any(word in cells for word in ("httpx", "httpcore", "HTTP Request")), cells[-2000:]
    # The filter is the runtime's threads only: the user's own httpx requests still log as configured.
    own = await k.run(
        "import httpx, sys\nlogging.getLogger().handlers[0].stream = sys.stdout\n"
        "httpx.get(os.environ['JUPYTER_TASKSTREAM_URL'] + '/nothing')\nlogging.basicConfig(level=logging.WARNING, force=True)"
    )
    assert "HTTP Request: GET" in own

    # -- a failing task shows failed with its traceback --------------------------------------
    (boom_id,) = ids(await k.run("def boom():\n    return 1 / 0\nprint('ID', ts.run(boom).id)"))
    await wait_for(ended(boom_id), 20)
    error = hub(boom_id).error
    assert hub(boom_id).status == "failed" and error["type"] == "ZeroDivisionError"
    assert "in boom" in error["traceback"]

    # -- a task's widget waits for no IOPub round trip, yet text printed before it stays before it
    cell = k.start(
        "import sys\n"
        "outstream = sys.stdout.target\n"
        "flushes = []\n"
        "real_flush = outstream.flush\n"
        "outstream.flush = lambda: (flushes.append(1), real_flush())[1]\n"
        "deadline = time.monotonic() + 10\n"
        "while outstream._flush_pending and time.monotonic() < deadline:  # earlier output has gone\n"
        "    time.sleep(0.01)\n"
        "with ts.task('quiet start'): pass\n"
        "quiet = len(flushes)\n"
        "print('printed before')\n"
        "with ts.task('after a print'): pass\n"
        "outstream.flush = real_flush\n"
        "print('flushes', quiet, len(flushes))\n"
    )
    await wait_for(lambda: k.idle(cell), 20)
    assert not [m for m in k.of(cell) if m["msg_type"] == "error"]
    assert re.search(r"flushes 0 [12]\b", k.stdout(cell)), k.stdout(cell)
    kinds = [m["msg_type"] for m in k.of(cell) if m["msg_type"] in ("stream", "display_data")]
    assert kinds[:3] == ["display_data", "stream", "display_data"], kinds

    # -- a task that ends in the cell shows its final state before the cell ends (nbclient and
    # papermill save what arrived by the cell's reply), even when a view takes its time -------
    out = await k.run(
        "seen = []\n"
        "def slow_final(snapshot):\n"
        "    if snapshot['status'] == 'completed':\n"
        "        time.sleep(0.3)\n"
        "        seen.append(snapshot['status'])\n"
        "def report(result):  # after the runtime's own post_run_cell hook, registered long before\n"
        "    get_ipython().events.unregister('post_run_cell', report)\n"
        "    print('final calls when the cell ended:', len(seen))\n"
        "get_ipython().events.register('post_run_cell', report)\n"
        "with ts.task('slow view') as t:\n"
        "    t.watch(slow_final)\n"
    )
    assert "final calls when the cell ended: 1" in out, out

    # -- REST cancel while the shell is busy: cooperative and tight loops ----------------------
    out = await k.run(
        "ts.config.cancel_grace_period = 0.5\n"
        "def coop():\n"
        "    for _ in ts.progress(iter(int, 1)):\n"
        "        time.sleep(0.001)\n"
        "def tight():\n"
        "    while True:\n"
        "        pass\n"
        "print('ID', ts.run(coop).id)\n"
        "print('ID', ts.run(tight).id)\n"
    )
    coop_id, tight_id = ids(out)
    busy = k.start("time.sleep(60)")
    await wait_for(lambda: any(m["msg_type"] == "execute_input" for m in k.of(busy)))
    for task_id in (coop_id, tight_id):
        await wait_for(lambda task_id=task_id: hub(task_id).status == "running")
        assert (await client.post(f"{API}/tasks/{task_id}/cancel")).status_code == 202
    for task_id in (coop_id, tight_id):
        await wait_for(ended(task_id), 15, message="cancel learned over the command stream")
        assert hub(task_id).status == "cancelled" and hub(task_id).cancel_requested
    assert not k.idle(busy), "the cancels arrived while the shell was still busy"
    assert (await client.post(f"api/kernels/{kernel_id}/interrupt")).status_code == 204
    await wait_for(lambda: k.idle(busy), 20)

    # -- 100 tasks at once ----------------------------------------------------------------------
    out = await k.run(
        "many = [ts.run(lambda: sum(ts.progress(range(1000))), name=f'many {i}') for i in range(100)]\n"
        "print(' '.join('ID ' + h.id for h in many))\n"
    )
    many = ids(out)
    assert len(many) == 100
    await wait_for(lambda: all(ended(i)() for i in many), 30, message="100 tasks end")
    assert {(hub(i).status, hub(i).current) for i in many} == {("completed", 1000)}

    # -- a million lines: the hub's tail is right, memory stays bounded -----------------------
    (big_id,) = ids(await k.run("def big():\n    for i in range(1_000_000):\n        print(f'line {i}')\nprint('ID', ts.run(big).id)"))
    await wait_for(ended(big_id), 120, interval=0.2, message="a million lines")
    assert hub(big_id).status == "completed"
    tail = registry.event_log(big_id).tail(1, "log")
    assert tail[0].data["text"] == "line 999999"
    assert len(registry.event_log(big_id)) <= registry.retention_events * 9 // 8 + 100
    rss = psutil.Process(manager.provisioner.process.pid).memory_info().rss
    assert rss < 500 * 2**20, f"kernel RSS {rss / 2**20:.0f} MB"
    still = await k.run("print(sum(1 for t in ts.tasks() if t.status != 'completed'))")
    assert int(still) == 3  # boom failed, coop and tight cancelled, none left running


async def test_killing_the_kernel_mid_task_fails_its_tasks_and_ends_their_streams(jp_serverapp, client, registry):
    async with kernel_session(client, jp_serverapp) as (kernel_id, k):
        await k.run("import jupyter_taskstream as ts, time\nh = ts.run(lambda: time.sleep(600), name='long')")
        task_id = (await k.run("print(h.id)")).strip()

        def status():
            try:
                return registry.get(task_id).status
            except KeyError:
                return None

        await wait_for(lambda: status() == "running", 10, message="the task in the hub")
        stream = asyncio.ensure_future(
            read_sse(client, f"{API}/tasks/{task_id}/events", until=lambda ev: ev[-1][1] == "end", timeout=30)
        )
        await wait_for(lambda: registry.subscriber_count >= 1, message="the stream")
        km = jp_serverapp.kernel_manager.get_kernel(kernel_id)
        # Without the restarter nothing revives it: the hub's own liveness check must notice.
        km.stop_restarter()
        os.kill(km.provisioner.process.pid, 9)
        events = await stream
        assert events[-1][1] == "end" and events[-1][2]["status"] == "failed"
        assert events[-1][2]["error"]["type"] == "KernelDied" and "died" in events[-1][2]["error"]["message"]
