"""Helpers shared by the kernel-side runtime tests: a private runtime and deadline waits."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import tempfile
import time
from typing import Any, Callable

import pytest

from jupyter_taskstream.kernel.runtime import Runtime
from jupyter_taskstream.protocol import TERMINAL_STATUSES
from jupyter_taskstream.kernel.config import RuntimeConfig

from .conftest import wait_for


def wait_until(condition: Callable[[], Any], timeout: float = 5.0, message: str = "") -> Any:
    """Poll ``condition()`` until truthy (blocking; for tests without a server loop)."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {message or condition}")
        time.sleep(0.005)


def shown_ended(registry, task_id) -> bool:
    """The task has ended as the hub's readers see it: stored and shown, its log complete."""
    try:
        return registry.snapshot(task_id)["status"] in TERMINAL_STATUSES
    except KeyError:
        return False


def lines(task, stream: str | None = None) -> list[str]:
    """Text of the lines a task kept locally, optionally of one stream."""
    return [e["text"] for e in task.snapshot()["log"] if stream is None or e["stream"] == stream]


@pytest.fixture
def rt():
    """A runtime of its own, not talking to any hub, with a short cancel grace period."""
    runtime = Runtime(RuntimeConfig(cancel_grace_period=0.2, log_lines=1000), publisher=None, kernel_id=None)
    yield runtime
    runtime.close(2)


class KernelSession:
    """A kernel client that records every IOPub message, and runs cells by msg_id."""

    def __init__(self, kc, pid: int | None = None, stacks: str | None = None):
        self.kc = kc
        self.pid = pid
        #: The file the kernel writes its threads' stacks to on SIGUSR1 (see `dump_threads`).
        self.stacks = stacks
        self.messages: list[dict] = []
        self._reader = asyncio.get_running_loop().create_task(self._read())

    async def _read(self) -> None:
        while True:
            try:
                self.messages.append(await self.kc.get_iopub_msg(timeout=1))
            except asyncio.CancelledError:
                raise
            except Exception:  # queue.Empty on a quiet second
                continue

    def of(self, msg_id: str) -> list[dict]:
        return [m for m in self.messages if m["parent_header"].get("msg_id") == msg_id]

    def idle(self, msg_id: str) -> bool:
        return any(m["msg_type"] == "status" and m["content"]["execution_state"] == "idle" for m in self.of(msg_id))

    def stdout(self, msg_id: str) -> str:
        return "".join(m["content"]["text"] for m in self.of(msg_id) if m["msg_type"] == "stream")

    def start(self, code: str) -> str:
        return self.kc.execute(code)

    async def run(self, code: str, timeout: float = 30) -> str:
        msg_id = self.start(code)
        await wait_for(lambda: self.idle(msg_id), timeout, message=f"cell to finish: {code[:40]!r}")
        errors = [m["content"] for m in self.of(msg_id) if m["msg_type"] == "error"]
        assert not errors, errors
        return self.stdout(msg_id)

    async def dump_threads(self) -> None:
        """Have the kernel write every thread's stack, and print them to the test's stderr (its
        captured output), so a cell that never finished in CI says where it stood."""
        if self.pid is None or self.stacks is None:
            return

        def dumped() -> str:
            # faulthandler writes the signal-handling (main) thread last, "Current thread".
            with open(self.stacks) as f:
                text = f.read()
            return text if "  File" in text.partition("Current thread")[2] and text.endswith("\n") else ""

        with contextlib.suppress(OSError, AssertionError):
            os.kill(self.pid, signal.SIGUSR1)
            print(f"the kernel's threads:\n{await wait_for(dumped, 5)}", file=sys.stderr)

    async def close(self) -> None:
        self._reader.cancel()
        self.kc.stop_channels()
        if self.stacks is not None:
            with contextlib.suppress(OSError):
                os.unlink(self.stacks)


@contextlib.asynccontextmanager
async def kernel_session(client, jp_serverapp):
    """``(kernel_id, session)`` of a kernel started through the REST API, shut down afterwards."""
    kernel_id, session = await start_kernel_session(client, jp_serverapp)
    try:
        yield kernel_id, session
    except BaseException:
        await session.dump_threads()
        raise
    finally:
        await session.close()
        await client.delete(f"api/kernels/{kernel_id}")


async def start_kernel_session(client, jp_serverapp) -> tuple[str, KernelSession]:
    """A kernel started through the server's REST API (so it gets the hub hand-off), with a client."""
    r = await client.post("api/kernels", json={"name": "python3"})
    assert r.status_code == 201, r.text
    kernel_id = r.json()["id"]
    kc = jp_serverapp.kernel_manager.get_kernel(kernel_id).client()
    kc.start_channels()
    await kc.wait_for_ready(timeout=60)
    # SIGUSR1 writes all threads' stacks to a file (see `dump_threads`).
    fd, stacks = tempfile.mkstemp(prefix="kernel-stacks-", suffix=".txt")
    os.close(fd)
    kc.execute("import faulthandler, signal\n"
               f"faulthandler.register(signal.SIGUSR1, file=open({stacks!r}, 'w'), all_threads=True)\n"
               "del faulthandler, signal", silent=True, store_history=False)  # fmt: skip
    pid = getattr(jp_serverapp.kernel_manager.get_kernel(kernel_id).provisioner, "pid", None)
    return kernel_id, KernelSession(kc, pid, stacks)
