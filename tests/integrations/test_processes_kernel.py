"""Child processes of tasks in a real kernel started by the test server, read back over REST.

Logging is configured at DEBUG on the root logger first, as a notebook might: no record of
httpx, httpcore or the runtime may appear in any cell, and the cell that runs meanwhile
gets none of the children's lines.
"""

from __future__ import annotations

import inspect
import re

import pytest

from ..conftest import wait_for
from ..kernel_fixtures import kernel_session
from . import workers

pytestmark = pytest.mark.timeout(240)
API = "taskstream/api"
TAGGED = re.compile(r"^\[pid (\d+)\] (.*)$")
RUNTIME_WORDS = ("httpx", "httpcore", "HTTP Request", "jupyter_taskstream", "taskstream/api")


def hub_status(registry, task_id):
    try:
        return registry.snapshot(task_id)["status"]
    except KeyError:
        return None


async def task_log(client, task_id) -> list[tuple[str, str]]:
    events = (await client.get(f"{API}/tasks/{task_id}/log")).json()["events"]
    return [(e["data"]["stream"], e["data"]["text"]) for e in events]


def untagged(entries, stream):
    out = []
    for s, text in entries:
        if s == stream:
            m = TAGGED.match(text)
            assert m, f"an untagged worker line: {text!r}"
            out.append(m.group(2))
    return sorted(out)


async def test_children_of_tasks_in_a_real_kernel(jp_serverapp, client, registry, tmp_path):
    (tmp_path / "ts_workers.py").write_text(inspect.getsource(workers))
    async with kernel_session(client, jp_serverapp) as (kernel_id, k):
        await k.run(
            "import logging\nlogging.basicConfig(level=logging.DEBUG, force=True)\n"
            f"import sys; sys.path.insert(0, {str(tmp_path)!r})\n"
            "%load_ext jupyter_taskstream\n"
            "import jupyter_taskstream as ts, subprocess, os, time, multiprocessing as mp\n"
            "import concurrent.futures as cf, joblib, ts_workers\n"
        )

        async def run_task(body: str, name: str) -> str:
            cell = k.start(f"%%taskstream {name} --no-widget\n{body}")
            await wait_for(lambda: k.idle(cell), 30, message=f"{name} to start")
            meanwhile = k.start("time.sleep(0.5); print('meanwhile')")
            task_id = (await k.run("print(ts.last().id)")).strip()
            await wait_for(lambda: hub_status(registry, task_id) in ("completed", "failed"), 120, message=name)
            await wait_for(lambda: k.idle(meanwhile), 30)
            assert hub_status(registry, task_id) == "completed", registry.snapshot(task_id).get("error")
            assert k.stdout(meanwhile) == "meanwhile\n"
            return task_id

        # -- subprocess, os.system and !cmd: exact lines, streams apart, codes unchanged ------
        sub = await run_task(
            "r = subprocess.run(['sh', '-c', 'echo one; echo two >&2; exit 5'])\n"
            "print('code', r.returncode)\n"
            "print('out', subprocess.check_output([sys.executable, '-c', 'print(7)']).decode().strip())\n"
            "print('status', os.system('echo sys; exit 3'))\n"
            "subprocess.run([sys.executable, '-c', 'import sys; print(\"tty\", sys.stdout.isatty())'])\n"
            "!echo bang\n"
            "subprocess.run([sys.executable, '-c', 'print(\"py child\")'])\n",
            "sub",
        )
        log = await task_log(client, sub)
        assert [t for s, t in log if s == "stdout"] == [
            "one", "code 5", "out 7", "sys", "status 768", "tty False", "bang", "py child",
        ]  # fmt: skip
        assert [t for s, t in log if s == "stderr"] == ["two"]

        # -- pools with each start method, the executor and joblib: tagged lines, per task -------
        pools = await run_task(
            "for method in ('fork', 'spawn', 'forkserver'):\n"
            "    with mp.get_context(method).Pool(2) as pool:\n"
            "        assert pool.map(ts_workers.shout, [1, 2]) == [2, 4]\n"
            "with cf.ProcessPoolExecutor(2) as ex:\n"
            "    assert list(ex.map(ts_workers.shout, [3, 4])) == [6, 8]\n"
            "assert joblib.Parallel(n_jobs=2)(joblib.delayed(ts_workers.shout)(i) for i in (5, 6)) == [10, 12]\n",
            "pools",
        )
        log = await task_log(client, pools)
        expected = [1, 2] * 3 + [3, 4, 5, 6]
        assert untagged(log, "stdout") == sorted(f"out {i}" for i in expected)
        assert untagged(log, "stderr") == sorted(f"err {i}" for i in expected)

        # -- a pool made before the task, used inside: the submitting task gets the lines ---------
        await k.run("shared = mp.get_context('spawn').Pool(1); shared.map(ts_workers.pid, [0])")
        first = await run_task("shared.map(ts_workers.shout, [41])", "first")
        second = await run_task("shared.map(ts_workers.shout, [42])", "second")
        assert untagged(await task_log(client, first), "stdout") == ["out 41"]
        assert untagged(await task_log(client, second), "stdout") == ["out 42"]
        await k.run("shared.close(); shared.join()")

        # -- no cell got a child's line or a record of the runtime's HTTP client ------------------
        cells = "".join(m["content"]["text"] for m in k.messages if m["msg_type"] == "stream")
        for line in ("one", "two", "bang", "py child", "out 1", "err 1", "out 41", "out 42"):
            assert not re.search(rf"(^|\] ){re.escape(line)}$", cells, re.MULTILINE), (line, cells[-2000:])
        assert not [w for w in RUNTIME_WORDS if w in cells], cells[-2000:]
