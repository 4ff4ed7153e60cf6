"""A plain Python script (no kernel) publishes its tasks with a user's token, as a kernel does.

The script runs in a real subprocess against the real test server (base_url ``/a%40b/``);
what it published is read back over REST. A wrong token costs the script one line on
stderr and nothing else; with or without a hub the script's prints still reach its stdout.
"""

from __future__ import annotations

import asyncio
import os
import socket
import sys

import pytest

from jupyter_taskstream.protocol import ENV_DISCOVER, ENV_SECRET, ENV_TOKEN, ENV_URL

pytestmark = pytest.mark.timeout(120)
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

SCRIPT = r"""
import sys
import jupyter_taskstream as ts

with ts.task("script-import", total=5, unit="file") as t:
    for i in range(5):
        print(f"loaded file {i}")
        t.update()
    print("a warning", file=sys.stderr)

for x in ts.progress(range(7), desc="script-loop"):
    pass

try:
    with ts.task("script-broken"):
        print("about to fail")
        raise ValueError("bad row 3")
except ValueError:
    pass
print("script finished", 6 * 7)
"""


def script_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in (ENV_URL, ENV_SECRET, ENV_TOKEN, ENV_DISCOVER)}
    return {**env, "PYTHONPATH": ROOT, "PYTHONUNBUFFERED": "1", **extra}


async def run_script(tmp_path, env: dict[str, str]) -> tuple[int, str, str]:
    path = tmp_path / "job.py"
    path.write_text(SCRIPT)
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        str(path),
        env=env,
        cwd=tmp_path,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 90)
    return proc.returncode, out.decode(), err.decode()


async def tasks_by_name(client) -> dict[str, dict]:
    r = await client.get("taskstream/api/tasks")
    assert r.status_code == 200, r.text
    return {t["name"]: t for t in r.json()["tasks"]}


async def log_lines(client, task_id: str) -> list[tuple[str, str]]:
    r = await client.get(f"taskstream/api/tasks/{task_id}/log")
    assert r.status_code == 200, r.text
    return [(e["data"]["stream"], e["data"]["text"]) for e in r.json()["events"] if e["type"] == "log"]


def assert_script_ran(code: int, out: str) -> None:
    assert code == 0
    # What a task prints is the task's (its log) and, outside a kernel, still the script's own
    # output too (``RuntimeConfig.echo``), in order: nothing is lost when no hub listens.
    assert out.splitlines() == [*(f"loaded file {i}" for i in range(5)), "about to fail", "script finished 42"]


def assert_runtime_silent(err: str) -> None:
    """Only the script's own stderr line: nothing of the runtime's."""
    assert err.splitlines() == ["a warning"], err


async def test_a_script_with_a_token_publishes_like_a_kernel(client, server_url, jp_auth_header, tmp_path):
    token = jp_auth_header["Authorization"].split(" ", 1)[1]
    # The URL as `jupyter server list` prints it, base_url with its escaped '@' included.
    code, out, err = await run_script(tmp_path, script_env(**{ENV_URL: server_url, ENV_TOKEN: token}))
    assert_script_ran(code, out)
    assert_runtime_silent(err)  # nothing of the runtime's own
    tasks = await tasks_by_name(client)
    assert set(tasks) == {"script-import", "script-loop", "script-broken"}, tasks
    imp = tasks["script-import"]
    assert imp["status"] == "completed" and imp["kernel_id"] is None
    assert (imp["progress"]["current"], imp["progress"]["total"], imp["progress"]["unit"]) == (5, 5, "file")
    assert await log_lines(client, imp["id"]) == [
        *(("stdout", f"loaded file {i}") for i in range(5)),
        ("stderr", "a warning"),
    ]
    loop = tasks["script-loop"]
    assert (
        loop["status"] == "completed" and loop["progress"]["current"] == 7 and loop["progress"]["total"] == 7
    )
    broken = tasks["script-broken"]
    assert (
        broken["status"] == "failed"
        and broken["error"]["type"] == "ValueError"
        and broken["error"]["message"] == "bad row 3"
    ), broken
    assert ("stdout", "about to fail") in await log_lines(client, broken["id"])


async def test_a_script_finds_the_running_server_when_asked(client, runtime_file, tmp_path):
    # No URL, no token: the jpserver-*.json of the running server gives both, when opted in.
    code, out, err = await run_script(tmp_path, script_env(**{ENV_DISCOVER: "1"}))
    assert_script_ran(code, out)
    assert_runtime_silent(err)
    tasks = await tasks_by_name(client)
    assert tasks["script-import"]["status"] == "completed"
    assert tasks["script-import"]["progress"]["current"] == 5


async def test_without_opting_in_a_script_publishes_nothing(client, runtime_file, tmp_path):
    code, out, err = await run_script(tmp_path, script_env())
    assert_script_ran(code, out)
    assert_runtime_silent(err)
    assert await tasks_by_name(client) == {}


async def test_a_wrong_token_is_one_clear_line_and_the_script_runs_on(client, server_url, tmp_path):
    code, out, err = await run_script(
        tmp_path, script_env(**{ENV_URL: server_url, ENV_TOKEN: "not-the-token"})
    )
    assert_script_ran(code, out)
    lines = err.splitlines()
    ours = [line for line in lines if "jupyter_taskstream" in line]
    assert len(ours) == 1, err
    assert "refused the token" in ours[0] and ENV_TOKEN in ours[0] and "not-the-token" not in err, ours
    assert "Traceback" not in err
    assert await tasks_by_name(client) == {}


async def test_an_unreachable_url_is_one_line_and_the_script_ends(tmp_path):
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{s.getsockname()[1]}/"
    env = script_env(**{ENV_URL: url, ENV_TOKEN: "t"})
    code, out, err = await run_script(tmp_path, env)
    assert_script_ran(code, out)
    ours = [line for line in err.splitlines() if "jupyter_taskstream" in line]
    assert len(ours) == 1 and "cannot reach" in ours[0], err
