"""A Jupyter terminal gets no publish secret; a script there publishes with the user's token.

A real terminal of the test server (``POST /api/terminals``, then its websocket, as
JupyterLab drives it): the shell it runs is asked what it holds, then runs a script that
opts in to finding the server, whose task then shows on the hub like a kernel's.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time

import pytest
from tornado.websocket import websocket_connect

from jupyter_taskstream.protocol import ENV_DISCOVER

pytestmark = pytest.mark.timeout(120)

SCRIPT = """\
import jupyter_taskstream as ts
with ts.task("from a terminal", total=3) as t:
    for i in range(3):
        print(f"step {i}")
        t.update()
"""


class Terminal:
    """The websocket of a server's terminal: type lines, wait for what the shell prints."""

    def __init__(self, ws):
        self.ws = ws
        self.output = ""

    async def type(self, line: str) -> None:
        await self.ws.write_message(json.dumps(["stdin", line + "\r"]))

    async def wait_for(self, text: str, timeout: float = 60) -> str:
        deadline = time.monotonic() + timeout
        while text not in self.output:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(
                    f"the terminal never printed {text!r}; it showed:\n{self.output[-3000:]}"
                )
            message = await asyncio.wait_for(self.ws.read_message(), remaining)
            if message is None:
                raise AssertionError(f"the terminal closed; it showed:\n{self.output[-3000:]}")
            kind, *rest = json.loads(message)
            if kind == "stdout":
                self.output += rest[0]
        return self.output


async def test_a_terminal_holds_no_secret_and_its_script_publishes_with_a_token(
    client, server_url, token, runtime_file, tmp_path
):
    (tmp_path / "job.py").write_text(SCRIPT)
    r = await client.post("api/terminals", json={})
    assert r.status_code == 200, r.text
    name = r.json()["name"]
    ws_url = server_url.replace("http://", "ws://") + f"terminals/websocket/{name}?token={token}"
    ws = await websocket_connect(ws_url)
    term = Terminal(ws)
    try:
        # The sums are printed, not typed: the shell's echo of the command cannot match them.
        await term.type(
            f"{sys.executable} -c \"import os; print('HELD', sorted(k for k in os.environ "
            f"if k.startswith('JUPYTER_TASKSTREAM')), 6*7)\""
        )
        out = await term.wait_for("HELD [] 42")
        assert "JUPYTER_TASKSTREAM_SECRET" not in out.split("HELD [] 42")[-1]
        await term.type(f"cd {tmp_path} && {ENV_DISCOVER}=1 {sys.executable} job.py; echo FINISHED-$((40+2))")
        await term.wait_for("FINISHED-42")
    finally:
        ws.close()
        await client.delete(f"api/terminals/{name}")
    tasks = (await client.get("taskstream/api/tasks")).json()["tasks"]
    (task,) = [t for t in tasks if t["name"] == "from a terminal"]
    assert task["status"] == "completed" and task["progress"]["current"] == 3 and task["kernel_id"] is None
    log = (await client.get(f"taskstream/api/tasks/{task['id']}/log")).json()["events"]
    assert [e["data"]["text"] for e in log] == ["step 0", "step 1", "step 2"]
