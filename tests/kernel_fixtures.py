"""Helpers shared by the kernel-side runtime tests: a private runtime and deadline waits."""

from __future__ import annotations

import time
from typing import Any, Callable

import pytest

from jupyter_taskstream.runtime import Runtime
from jupyter_taskstream.settings import RuntimeConfig


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


def lines(task, stream: str | None = None) -> list[str]:
    """Text of the lines a task kept locally, optionally of one stream."""
    return [e["text"] for e in task.snapshot()["log"] if stream is None or e["stream"] == stream]


@pytest.fixture
def rt():
    """A runtime of its own, not talking to any hub, with a short cancel grace period."""
    runtime = Runtime(RuntimeConfig(cancel_grace_period=0.2, log_lines=1000), publisher=None, kernel_id=None)
    yield runtime
    runtime.close(2)
