"""``jupyter taskstream`` subcommands in a real terminal (tmux) against the real test server.

The server runs on this test's event loop, so the terminal is polled with ``await``; its
base_url is ``/a%40b/`` (a character that needs escaping in URLs).
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import shutil
import socket
import subprocess
import sys
import uuid

import pytest

from jupyter_taskstream.client import AsyncClient
from jupyter_taskstream.client.cli import format_elapsed, format_progress, is_client_command

from ..conftest import wait_for

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CLI = [sys.executable, "-m", "jupyter_taskstream.client.cli"]

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="needs tmux for a real terminal")


class Terminal:
    """One command in a tmux pane of its own (private tmux server), read back as text."""

    def __init__(self, argv: list[str], env: dict[str, str] | None = None):
        self.socket = f"ts-test-{uuid.uuid4().hex[:8]}"
        full_env = {**os.environ, "PYTHONPATH": ROOT, "TERM": "xterm-256color", **(env or {})}
        command = " ".join(shlex.quote(a) for a in argv)
        # The shell traps (not ignores) SIGINT, so Ctrl-C reaches the command with its default
        # handling and the shell lives on to print the exit status.
        script = f"trap : INT; {command}; echo EXIT=$?; sleep 600"
        subprocess.run(
            ["tmux", "-L", self.socket, "-f", "/dev/null", "new-session", "-d", "-s", "t", "-x", "150", "-y", "45",
             "sh", "-c", script],
            check=True, env=full_env,
        )  # fmt: skip

    def screen(self) -> str:
        r = subprocess.run(["tmux", "-L", self.socket, "capture-pane", "-p", "-J", "-t", "t", "-S", "-200"],
                           capture_output=True, text=True, check=False)  # fmt: skip
        return r.stdout

    def keys(self, *keys: str) -> None:
        subprocess.run(["tmux", "-L", self.socket, "send-keys", "-t", "t", *keys], check=True)

    async def wait_text(self, text: str, timeout: float = 15.0) -> str:
        await wait_for(lambda: text in self.screen(), timeout, 0.05, message=f"{text!r} in:\n{self.screen()}")
        return self.screen()

    async def exit_status(self, timeout: float = 15.0) -> int:
        screen = await self.wait_text("EXIT=", timeout)
        return int(screen.split("EXIT=")[1].split()[0])

    def close(self) -> None:
        subprocess.run(["tmux", "-L", self.socket, "kill-server"], capture_output=True, check=False)
        tmpdir = os.environ.get("TMUX_TMPDIR", "/tmp")
        with contextlib.suppress(OSError):  # the server leaves its socket file behind
            os.unlink(os.path.join(tmpdir, f"tmux-{os.getuid()}", self.socket))


@pytest.fixture
def terminal():
    opened: list[Terminal] = []

    def open_terminal(*args: str, env: dict | None = None) -> Terminal:
        t = Terminal([*CLI, *args], env)
        opened.append(t)
        return t

    yield open_terminal
    for t in opened:
        t.close()


@pytest.fixture
def auth(server_url, jp_auth_header) -> list[str]:
    token = jp_auth_header["Authorization"].split(" ", 1)[1]
    return ["--url", server_url, "--token", token]


@pytest.fixture
def hub(server_url, jp_auth_header, jp_asyncio_loop):
    token = jp_auth_header["Authorization"].split(" ", 1)[1]
    c = AsyncClient(server_url, token)
    yield c
    jp_asyncio_loop.run_until_complete(c.aclose())


async def test_ls_table_and_json(terminal, auth, hub):
    done = await hub.create("first job", total=4)
    await done.set(4)
    await done.finish()
    running = await hub.create("second job", total=10, unit="file")
    await running.set(3)
    t = terminal("ls", *auth)
    assert await t.exit_status() == 0
    screen = t.screen()
    for word in ("ID", "NAME", "STATUS", "PROGRESS", "ELAPSED", "first job", "completed", "4/4 it 100%",
                 "second job", "running", "3/10 file 30%", running.id):  # fmt: skip
        assert word in screen, screen
    assert screen.index("second job") < screen.index("first job")  # newest first
    t = terminal("--json", "ls", "--status", "running", *auth)
    assert await t.exit_status() == 0
    listed = json.loads(t.screen().split("EXIT=")[0].replace("\n", ""))
    assert [task["id"] for task in listed] == [running.id]


async def test_watch_one_task_live_and_its_exit_status(terminal, auth, hub):
    task = await hub.create("training", total=5, unit="epoch")
    t = terminal("watch", task.id, *auth)
    await t.wait_text("training")
    await task.set(2, message="epoch 2")
    await task.log("loss 0.42")
    await t.wait_text("2/5 epoch 40%")
    await t.wait_text("loss 0.42")
    await task.set(3)
    await task.fail("diverged", "FloatingPointError")
    assert await t.exit_status() == 1  # the watched task failed
    assert "training: failed" in t.screen()
    assert "Traceback" not in t.screen()

    ok = await hub.create("quick")
    t = terminal("watch", ok.id, *auth)
    await t.wait_text("quick")
    await ok.finish()
    assert await t.exit_status() == 0


async def test_watch_ctrl_c_leaves_the_task_running(terminal, auth, hub):
    task = await hub.create("long one", total=100)
    await task.set(10)
    t = terminal("watch", *auth)  # every task
    await t.wait_text("10/100 it 10%")
    t.keys("C-c")
    assert await t.exit_status() == 130
    assert "keeps running" in t.screen() and "Traceback" not in t.screen()
    snapshot = await hub.get(task.id)
    assert snapshot["status"] == "running" and snapshot["cancel_requested"] is False


async def test_logs_tail_and_follow(terminal, auth, hub):
    task = await hub.create("printer")
    for i in range(1, 6):
        await task.log(f"line {i}")
    t = terminal("logs", task.id, "--tail", "2", *auth)
    assert await t.exit_status() == 0
    screen = t.screen()
    assert "line 4" in screen and "line 5" in screen and "line 3" not in screen
    t = terminal("logs", task.id, "-f", "--tail", "1", *auth)
    await t.wait_text("line 5")
    await task.log("line 6")
    await t.wait_text("line 6")
    await task.finish()
    assert await t.exit_status() == 0
    assert t.screen().count("line 5") == 1
    t = terminal("logs", task.id, "--json", *auth)
    assert await t.exit_status() == 0
    lines = [json.loads(x) for x in t.screen().split("EXIT=")[0].splitlines() if x.startswith("{")]
    assert [x["text"] for x in lines] == [f"line {i}" for i in range(1, 7)]


async def test_cancel_and_rm(terminal, auth, hub):
    task = await hub.create("to stop")
    await task.update()
    t = terminal("rm", task.id, *auth)
    assert await t.exit_status() == 1
    assert "still running" in t.screen() and "Traceback" not in t.screen()
    t = terminal("cancel", task.id, *auth)
    assert await t.exit_status() == 0
    assert f"asked 'to stop' ({task.id}) to stop" in t.screen()
    assert (await hub.get(task.id))["cancel_requested"] is True
    assert await task.cancel_requested()
    await task.cancelled("asked to")  # the script honours the request
    t = terminal("--json", "rm", task.id, *auth)
    assert await t.exit_status() == 0
    assert json.loads(t.screen().split("EXIT=")[0].strip()) == {"deleted": task.id}
    t = terminal("rm", task.id, *auth)
    assert await t.exit_status() == 1
    assert f"no task with id '{task.id}'" in t.screen()


async def test_open_hands_the_dashboard_to_the_browser(terminal, auth, hub, tmp_path, server_url):
    record = tmp_path / "opened"
    browser = tmp_path / "browser.sh"
    browser.write_text(f'#!/bin/sh\necho "$1" > {record}\n')
    browser.chmod(0o755)
    task = await hub.create("shown")
    t = terminal("open", task.id, *auth, env={"BROWSER": str(browser)})
    assert await t.exit_status() == 0
    await wait_for(record.exists, message="the browser was started")
    opened = record.read_text().strip()
    assert opened.startswith(server_url + "taskstream/?token=") and opened.endswith(f"#task={task.id}")
    assert "token" not in t.screen()  # printed without the token


async def test_errors_are_one_line(terminal, auth, server_url, tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    empty = {"JUPYTER_RUNTIME_DIR": str(tmp_path), "JUPYTER_TASKSTREAM_URL": "", "JUPYTER_TASKSTREAM_SECRET": ""}
    cases = [
        (["ls", "--url", f"http://127.0.0.1:{port}/"], "cannot reach the Jupyter server"),
        (["ls"], "no running Jupyter server found"),
        (["ls", "--url", server_url, "--token", "wrong"], "refused the credentials (HTTP 403)"),
        (["watch", "nope", *auth], "no task with id 'nope'"),
        (["ls", "--url", "not a url"], "not an http(s) URL"),
    ]
    terminals = [(terminal(*args, env=empty), expected) for args, expected in cases]
    for t, expected in terminals:
        assert await t.exit_status() == 1, t.screen()
        screen = t.screen()
        assert expected in screen, screen
        assert "Traceback" not in screen
        assert len(screen.split("EXIT=")[0].strip().splitlines()) == 1, screen


def test_dispatch_and_formatting():
    assert is_client_command(["ls"]) and is_client_command(["--url", "http://x/", "--json", "watch"])
    assert is_client_command(["--token=abc", "rm", "x"])
    assert not is_client_command([]) and not is_client_command(["--port", "9999"])
    assert not is_client_command(["--ServerApp.port=1"])
    task = {"progress": {"current": 3, "total": 10, "fraction": 0.3, "unit": "file"}}
    assert format_progress(task) == "3/10 file 30%"
    assert format_progress({"progress": {"current": 7, "total": None, "unit": "it"}}) == "7 it"
    assert format_elapsed({"started": None}) == "-"
    times = {"started": "2026-01-01T00:00:00.000000Z", "finished": "2026-01-01T00:03:05.000000Z"}
    assert format_elapsed(times) == "3m05s"


def test_entry_point_is_the_light_dispatcher():
    import tomllib

    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as f:
        scripts = tomllib.load(f)["project"]["scripts"]
    assert scripts["jupyter-taskstream"] == "jupyter_taskstream.command:main"
