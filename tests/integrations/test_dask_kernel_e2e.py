"""Dask in a real kernel started by the test server, reporting to the real hub (read over REST).

One kernel and one 2-process LocalCluster it starts, in the order a notebook user meets
things: a task that fans out, its count and every worker line over REST; ``ts.progress`` and
tqdm inside task functions as the task's child bars over REST; a cancel over REST
while the cluster is busy; Dask's own print forwarding for code outside tasks.
"""

from __future__ import annotations

import re
import time

import pytest

pytest.importorskip("distributed")

from ..conftest import wait_for  # noqa: E402
from ..kernel_fixtures import kernel_session  # noqa: E402

pytestmark = pytest.mark.timeout(180)
API = "taskstream/api"

SETUP = """
import time, logging
import jupyter_taskstream as ts
from dask.distributed import Client, LocalCluster, print as dask_print
cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0")
dclient = Client(cluster)

def shout(x):
    print(f"print {x}")
    logging.getLogger("user.code").warning("log %s", x)
    dask_print(f"dask-print {x}")
    return x

def slow(x):
    time.sleep(8)
    return x

def looping(x):
    for _ in ts.progress(range(25), desc=f"loop {x}", leave=True):
        time.sleep(0.002)
    return x

def tq(x):
    from tqdm.auto import tqdm
    for _ in tqdm(range(15), desc=f"tq {x}"):
        pass
    return x
"""


def ids(text: str) -> list[str]:
    return re.findall(r"ID (\S+)", text)


async def test_dask_in_a_real_kernel_over_rest(jp_serverapp, client, registry):
    async with kernel_session(client, jp_serverapp) as (kernel_id, k):
        await k.run(SETUP, timeout=90)

        async def snapshot(task_id):
            r = await client.get(f"{API}/tasks/{task_id}")
            assert r.status_code == 200, r.text
            return r.json()

        async def ended(task_id):
            try:
                return (await snapshot(task_id))["status"] in ("completed", "failed", "cancelled")
            except AssertionError:
                return False

        async def run_task(code):
            """Run a cell that prints its task's id; the id and the task's snapshot once it ended."""
            (task_id,) = ids(await k.run(code, timeout=60))
            await wait_for(lambda: ended(task_id), 20)
            return task_id, await snapshot(task_id)

        # -- a task that fans out: count and every worker line, over REST --------------------
        task_id, snap = await run_task(
            "with ts.task('fan out') as t:\n"
            "    assert dclient.gather(dclient.map(shout, range(10))) == list(range(10))\n"
            "print('ID', t.id)\n"
        )
        assert snap["status"] == "completed"
        assert (snap["progress"]["current"], snap["progress"]["total"]) == (10, 10)
        assert snap["message"] == "shout 10/10"
        log = (await client.get(f"{API}/tasks/{task_id}/log")).json()["events"]
        texts = [e["data"]["text"] for e in log]
        tagged = [re.match(r"^\[tcp://[^\]]+\] (.*)$", t) for t in texts]
        assert all(tagged), texts
        expected = [f"{kind} {x}" for x in range(10) for kind in ("print", "WARNING:user.code:log", "dask-print")]
        assert sorted(m.group(1) for m in tagged) == sorted(expected)

        # -- ts.progress and tqdm inside task functions: child bars, exact counts, over REST ----
        _, snap = await run_task(
            "with ts.task('worker bars') as t:\n"
            "    fs = [dclient.submit(looping, i, pure=False) for i in range(3)] + [dclient.submit(tq, 9, pure=False)]\n"
            "    assert dclient.gather(fs) == [0, 1, 2, 9]\n"
            "print('ID', t.id)\n"
        )
        assert snap["status"] == "completed" and snap["progress"]["current"] == 4
        shown = {}
        for bar in snap["bars"]:
            if bar["unit"] == "key":
                continue  # the per-key-prefix bars
            match = re.match(r"^\[tcp://[^\]]+\] (.*)$", bar["desc"])
            assert match, bar
            shown[match.group(1)] = (bar["current"], bar["total"], bar["closed"])
        assert shown == {"loop 0": (25, 25, True), "loop 1": (25, 25, True), "loop 2": (25, 25, True),
                         "tq 9": (15, 15, True)}  # fmt: skip

        # -- cancel over REST while the cluster is busy ----------------------------------------
        out = await k.run(
            "def busy():\n"
            "    dclient.gather(dclient.map(slow, range(4), pure=False))\n"
            "h = ts.run(busy, name='busy')\n"
            "print('ID', h.id)\n"
        )
        (busy_id,) = ids(out)
        await wait_for(lambda: registry.get(busy_id).total == 4, 20, message="the futures on the bar")
        started = time.monotonic()
        assert (await client.post(f"{API}/tasks/{busy_id}/cancel")).status_code == 202
        await wait_for(lambda: ended(busy_id), 5, message="the cancelled task to end within 5 s")
        assert time.monotonic() - started < 5
        assert (await snapshot(busy_id))["status"] == "cancelled"

        # -- outside tasks, Dask's own print forwarding still works ---------------------------
        cell = k.start(
            "dclient.submit(lambda: dask_print('outside marker'), pure=False).result()\n"
            "time.sleep(1)\n"
        )
        await wait_for(lambda: k.idle(cell), 30)
        streams = "".join(m["content"]["text"] for m in k.messages if m["msg_type"] == "stream")
        assert "outside marker" in streams
        await k.run("dclient.close(); cluster.close()", timeout=60)
