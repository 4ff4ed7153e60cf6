"""Progress inside child processes of a task, in a real kernel started by the test server.

``ts.progress``, ``t.update()`` and tqdm in pool workers (each start method, the executor,
joblib's loky) and a Python script's own ``ts.task`` become child bars of the submitting
task, read back from the hub's REST record with their exact final counts; none of them is a
task of its own in the hub's list.
"""

from __future__ import annotations

import inspect
import re

import pytest

from ..conftest import wait_for
from ..kernel_fixtures import kernel_session
from . import workers

pytestmark = pytest.mark.timeout(300)
API = "taskstream/api"
TAGGED = re.compile(r"^\[pid (\d+)\] (.*)$")


def hub_status(registry, task_id):
    try:
        return registry.snapshot(task_id)["status"]
    except KeyError:
        return None


def worker_bars(record: dict) -> dict[str, dict]:
    """The record's bars under its main bar, by description less the ``[pid N] `` tag."""
    out = {}
    for bar in record["bars"]:
        if bar["parent"] == "main":
            m = TAGGED.match(bar["desc"])
            assert m, f"a worker's bar without its pid: {bar!r}"
            out[m.group(2)] = bar
    return out


async def test_worker_progress_becomes_child_bars(jp_serverapp, client, registry, tmp_path):
    (tmp_path / "ts_workers.py").write_text(inspect.getsource(workers))
    (tmp_path / "child_script.py").write_text(workers.CHILD_SCRIPT)
    async with kernel_session(client, jp_serverapp) as (kernel_id, k):
        await k.run(
            f"import sys; sys.path.insert(0, {str(tmp_path)!r})\n"
            "%load_ext jupyter_taskstream\n"
            "import jupyter_taskstream as ts, subprocess, multiprocessing as mp\n"
            "import concurrent.futures as cf, joblib, ts_workers\n"
        )

        async def run_task(body: str, name: str) -> dict:
            cell = k.start(f"%%taskstream {name} --no-widget\n{body}")
            await wait_for(lambda: k.idle(cell), 30, message=f"{name} to start")
            task_id = (await k.run("print(ts.last().id)")).strip()
            await wait_for(lambda: hub_status(registry, task_id) in ("completed", "failed"), 150, message=name)
            record = (await client.get(f"{API}/tasks/{task_id}")).json()
            assert record["status"] == "completed", record.get("error")
            return record

        def check(record: dict, expected: dict[str, int]) -> None:
            bars = worker_bars(record)
            assert {name: (b["current"], b["total"], b["closed"]) for name, b in bars.items()} == {
                name: (n, n, True) for name, n in expected.items()
            }, record["bars"]

        # -- each start method: ts.progress, tqdm, and a ts.task counted by update() -------------
        for method in ("fork", "spawn", "forkserver"):
            record = await run_task(
                f"with mp.get_context({method!r}).Pool(2) as pool:\n"
                "    pool.map(ts_workers.count, [100, 250])\n"
                "    pool.map(ts_workers.tqdm_count, [40])\n"
                "    pool.map(ts_workers.task_count, [7])\n",
                method,
            )
            check(record, {"count 100": 100, "count 250": 250, "tqdm 40": 40, "part 7": 7})
            part = worker_bars(record)["part 7"]
            nested = [b for b in record["bars"] if b["parent"] == part["id"]]
            assert [(b["desc"], b["current"], b["closed"]) for b in nested] == [("nested", 3, True)]
            log = (await client.get(f"{API}/tasks/{record['id']}/log")).json()["events"]
            said = [TAGGED.match(e["data"]["text"]) for e in log]
            assert [m.group(2) for m in said if m] == ["part 7 says hi"]

        # -- the executor and joblib's loky ---------------------------------------------------------
        record = await run_task(
            "with cf.ProcessPoolExecutor(2) as ex:\n"
            "    list(ex.map(ts_workers.count, [30, 60]))\n"
            "    list(ex.map(ts_workers.tqdm_count, [20]))\n",
            "executor",
        )
        check(record, {"count 30": 30, "count 60": 60, "tqdm 20": 20})
        record = await run_task(
            "joblib.Parallel(n_jobs=2)(joblib.delayed(ts_workers.count)(n) for n in (11, 12))\n"
            "joblib.Parallel(n_jobs=2)(joblib.delayed(ts_workers.tqdm_count)(n) for n in (13, 14))\n",
            "loky",
        )
        check(record, {"count 11": 11, "count 12": 12, "tqdm 13": 13, "tqdm 14": 14})

        # -- a Python script's own ts.task: a child of the task that ran it, not a task ------------
        script = str(tmp_path / "child_script.py")
        record = await run_task(f"subprocess.run([sys.executable, {script!r}], check=True)\n", "script")
        check(record, {"inner": 5})
        inner = worker_bars(record)["inner"]
        loop = [b for b in record["bars"] if b["parent"] == inner["id"]]
        assert loop == []  # its loop drove the inner task's own bar
        log = (await client.get(f"{API}/tasks/{record['id']}/log")).json()["events"]
        assert [TAGGED.match(e["data"]["text"]).group(2) for e in log] == ["inner says hi"]

        # ... and the same through !cmd in a %%taskstream cell
        record = await run_task(f"!{{sys.executable}} {script}\n", "bang")
        check(record, {"inner": 5})

        # -- the hub lists only the tasks the cells made ------------------------------------------
        listed = (await client.get(f"{API}/tasks")).json()["tasks"]
        assert sorted(t["name"] for t in listed) == sorted(
            ["fork", "spawn", "forkserver", "executor", "loky", "script", "bang"]
        ), [t["name"] for t in listed]
