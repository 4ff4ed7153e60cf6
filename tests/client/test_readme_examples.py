"""The README's 30-second examples ("From code", "From the terminal") run as printed.

Each block marked ``<!-- example: NAME -->`` is taken from the README and run for real
against the test server: the script and the client example as Python subprocesses, the
terminal example line by line in a shell with the real ``jupyter`` command.
"""

from __future__ import annotations

import asyncio
import json
import os
import pathlib
import re
import signal
import sys

import pytest

from jupyter_taskstream.protocol import ENV_DISCOVER, ENV_SECRET, ENV_TOKEN, ENV_URL

from ..conftest import wait_for

pytestmark = pytest.mark.timeout(180)
ROOT = pathlib.Path(__file__).resolve().parent.parent.parent
README = (ROOT / "README.md").read_text()


def example(name: str) -> str:
    """The code of the README block marked ``<!-- example: name -->``."""
    match = re.search(rf"<!-- example: {name} -->\n```\w+\n(.*?)```", README, re.DOTALL)
    assert match, f"the README has no example {name!r}"
    return match.group(1)


def environment(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in (ENV_URL, ENV_SECRET, ENV_TOKEN, ENV_DISCOVER)}
    # `python` and `jupyter` are this venv's, as in an activated environment.
    path = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
    return {**env, "PATH": path, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1", **extra}


async def run(argv: list[str], env: dict[str, str], cwd, timeout: float = 90) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        *argv, env=env, cwd=cwd, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout)
    return proc.returncode, out.decode(), err.decode()


async def tasks_by_name(client) -> dict[str, dict]:
    return {t["name"]: t for t in (await client.get("taskstream/api/tasks")).json()["tasks"]}


async def test_the_plain_script_example(client, server_url, token, tmp_path):
    (tmp_path / "job.py").write_text(example("script"))
    env = environment(**{ENV_URL: server_url, ENV_TOKEN: token})
    code, out, err = await run([sys.executable, "job.py"], env, tmp_path)
    # The task's prints go to its log and, outside a kernel, to the script's stdout too.
    assert (code, out, err) == (0, "loaded a.csv\nloaded b.csv\nloaded c.csv\n", "")
    tasks = await tasks_by_name(client)
    job, rows = tasks["nightly import"], tasks["rows"]
    assert (
        job["status"] == "completed" and job["progress"]["current"] == 3 and job["progress"]["unit"] == "file"
    )
    log = (await client.get(f"taskstream/api/tasks/{job['id']}/log")).json()["events"]
    assert [e["data"]["text"] for e in log] == ["loaded a.csv", "loaded b.csv", "loaded c.csv"]
    assert rows["status"] == "completed" and rows["progress"]["current"] == 50


async def test_the_client_example(client, server_url, token, tmp_path):
    (tmp_path / "example.py").write_text(example("client"))
    env = environment(**{ENV_URL: server_url, ENV_TOKEN: token})
    code, out, err = await run([sys.executable, "example.py"], env, tmp_path)
    assert code == 0 and err == "", err
    assert out.splitlines()[:2] == ["completed", "['uploaded b.csv', 'uploaded c.csv']"]
    assert (await tasks_by_name(client))["upload"]["progress"]["current"] == 3


async def test_the_terminal_example(client, registry, runtime_file, tmp_path):
    (tmp_path / "job.py").write_text(example("script"))
    lines = [
        line[2:].split("  #")[0].strip() for line in example("terminal").splitlines() if line.startswith("$ ")
    ]
    background, ls, watch, ls_json = lines
    assert background.endswith("&") and watch == "jupyter taskstream watch"
    env = environment()
    job = await asyncio.create_subprocess_shell(background[:-1], env=env, cwd=tmp_path)
    code, out, err = await run(["sh", "-c", ls], env, tmp_path)
    assert code == 0 and "Traceback" not in err, err
    watcher = await asyncio.create_subprocess_exec(
        "sh",
        "-c",
        "exec " + watch,
        env=env,
        cwd=tmp_path,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    shown = bytearray()

    async def read() -> None:
        while chunk := await watcher.stdout.read(4096):
            shown.extend(chunk)

    reader = asyncio.get_running_loop().create_task(read())
    assert await asyncio.wait_for(job.wait(), 60) == 0
    # Not a terminal here: rich draws watch's board once, when it stops; it must be following.
    await wait_for(lambda: registry.subscriber_count > 0, 30, message="watch to follow the tasks")
    watcher.send_signal(signal.SIGINT)  # Ctrl-C: leaves, cancels nothing
    await asyncio.wait_for(watcher.wait(), 30)
    await reader
    w_err = (await watcher.stderr.read()).decode()
    assert b"nightly import" in shown and "Traceback" not in w_err, (bytes(shown), w_err)
    code, out, err = await run(["sh", "-c", ls_json], env, tmp_path)
    assert code == 0, err
    assert {t["name"] for t in json.loads(out)} == {"nightly import", "rows"}
