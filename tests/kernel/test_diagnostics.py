"""The runtime's own problems: once in the quiet ``jupyter_taskstream`` logger and once in each running task."""

from __future__ import annotations

import logging
import socket
import threading

import pytest

from jupyter_taskstream.kernel.config import RuntimeConfig
from jupyter_taskstream.kernel.diagnostics import HTTP_LOGGERS, logger, quiet_thread
from jupyter_taskstream.kernel.publisher import Publisher
from jupyter_taskstream.kernel.runtime import Runtime

from ..kernel_fixtures import lines, wait_until

pytestmark = pytest.mark.timeout(60)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def records():
    """Records of the runtime's logger (which neither propagates nor prints by default)."""
    got: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record):
            got.append(record)

    handler = Keep()
    logger.addHandler(handler)
    yield got
    logger.removeHandler(handler)


@pytest.fixture
def root_records():
    """What a handler the user puts on the root logger at DEBUG receives (pytest's own capture
    also hooks non-propagating loggers, so it cannot tell)."""
    got: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record):
            got.append(record)

    root = logging.getLogger()
    handler, level = Keep(), root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    yield got
    root.removeHandler(handler)
    root.setLevel(level)


def test_an_unreachable_hub_shows_once_in_the_running_task_and_the_quiet_logger(records, root_records):
    url = f"http://127.0.0.1:{free_port()}/taskstream/api"  # nothing listens there
    publisher = Publisher(url, "secret", backoff_initial=0.01, backoff_max=0.05, timeout=1)
    runtime = Runtime(RuntimeConfig(log_lines=100), publisher=publisher, kernel_id=None)
    try:
        with runtime.task("offline") as t:
            for i in range(3):
                print(f"line {i}")
                wait_until(lambda i=i: len(lines(t)) >= i + 1, 10)
            wait_until(lambda: any("cannot reach the hub" in line for line in lines(t, "stderr")), 10)
            print("after")
        shown = [line for line in lines(t, "stderr") if line.startswith("[jupyter_taskstream]")]
        assert len(shown) == 1 and url in shown[0] and "retrying" in shown[0]
        assert lines(t, "stdout") == ["line 0", "line 1", "line 2", "after"]
        assert [r.getMessage() for r in records if "cannot reach" in r.getMessage()] == [shown[0].split("] ", 1)[1]]
        # Quiet: nothing of the runtime reached the root logger's handlers.
        assert not [r for r in root_records if r.name.startswith(("jupyter_taskstream", "httpx", "httpcore"))]
    finally:
        publisher.close(0.2)
        runtime.close(0.5)


def test_the_http_libraries_records_are_dropped_on_the_runtimes_threads_only(root_records):
    def emit_all():
        for name in HTTP_LOGGERS:
            logging.getLogger(name).error("from %s", name)

    def runtime_thread():
        quiet_thread()
        emit_all()

    thread = threading.Thread(target=runtime_thread)
    thread.start()
    thread.join(10)
    assert not [r for r in root_records if r.name in HTTP_LOGGERS]
    assert "websocket" in HTTP_LOGGERS  # the publish socket's library (kernel/hubpost.py)
    emit_all()  # the user's own use of the same libraries logs as before
    assert sorted(r.name for r in root_records) == sorted(HTTP_LOGGERS)
