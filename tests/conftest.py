"""Shared fixtures: a real jupyter server with the extension loaded, and HTTP clients for it."""

from __future__ import annotations

import asyncio
import json
import os
import time
from typing import Any, Iterator

import httpx
import pytest
from httpx_sse import aconnect_sse

pytest_plugins = ["pytest_jupyter.jupyter_server"]


@pytest.fixture
def taskstream_config() -> dict:
    """Per-test overrides of ``c.TaskStreamApp``; a module or test may override this fixture."""
    return {"heartbeat_interval": 0.5, "retry_ms": 100}


@pytest.fixture
def jp_server_config(taskstream_config):
    return {
        "ServerApp": {
            "jpserver_extensions": {"jupyter_taskstream": True},
            "reraise_server_extension_failures": True,
        },
        "TaskStreamApp": taskstream_config,
    }


@pytest.fixture
def token(jp_auth_header) -> str:
    return jp_auth_header["Authorization"].split(" ", 1)[1]


@pytest.fixture
def clean_env(monkeypatch):
    """No hub address or credential from the environment."""
    for name in ("JUPYTER_TASKSTREAM_URL", "JUPYTER_TASKSTREAM_SECRET", "JUPYTER_TASKSTREAM_TOKEN"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def runtime_file(server_url, token, clean_env):
    """A ``jpserver-*.json`` for the test server, as a running server writes it."""
    from jupyter_core.paths import jupyter_runtime_dir

    runtime = jupyter_runtime_dir()
    os.makedirs(runtime, exist_ok=True)
    path = os.path.join(runtime, "jpserver-taskstream-test.json")  # beside the server's own
    port = int(server_url.split(":")[2].split("/")[0])
    info = {"url": server_url, "token": token, "pid": os.getpid(), "port": port, "base_url": "/a%40b/"}
    with open(path, "w") as f:
        json.dump(info, f)
    yield path
    os.remove(path)


@pytest.fixture
def registry(jp_serverapp):
    """The hub's live registry inside the test server."""
    return jp_serverapp.web_app.settings["taskstream_registry"]


@pytest.fixture
def server_url(http_server_client, jp_http_port, jp_base_url) -> str:
    """Root URL of the running test server, base_url included."""
    return f"http://127.0.0.1:{jp_http_port}{jp_base_url}"


@pytest.fixture
def api_url(server_url) -> str:
    return server_url + "taskstream/api"


def _client(jp_asyncio_loop, **kwargs) -> Iterator[httpx.AsyncClient]:
    # pytest-jupyter runs async tests on its own loop and has no async fixtures,
    # so clients are made here and closed on that loop.
    c = httpx.AsyncClient(timeout=10, **kwargs)
    yield c
    jp_asyncio_loop.run_until_complete(c.aclose())


@pytest.fixture
def client(server_url, jp_auth_header, jp_asyncio_loop) -> Iterator[httpx.AsyncClient]:
    """An httpx client holding the user's token."""
    yield from _client(jp_asyncio_loop, base_url=server_url, headers=jp_auth_header)


@pytest.fixture
def anon(server_url, jp_asyncio_loop) -> Iterator[httpx.AsyncClient]:
    """An httpx client with no credentials at all."""
    yield from _client(jp_asyncio_loop, base_url=server_url)


@pytest.fixture
def publisher(server_url, jp_serverapp, jp_asyncio_loop) -> Iterator[httpx.AsyncClient]:
    """An httpx client holding only the publish secret, as a kernel has."""
    secret = jp_serverapp.web_app.settings["taskstream_secret"]
    yield from _client(jp_asyncio_loop, base_url=server_url, headers={"X-TaskStream-Secret": secret})


async def wait_for(condition, timeout: float = 10.0, interval: float = 0.02, message: str = "") -> Any:
    """Poll ``condition()`` (sync or async) until truthy; fail with ``message`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {message or condition}")
        await asyncio.sleep(interval)


async def read_sse(client: httpx.AsyncClient, url: str, *, until=None, count=None, timeout=10.0, headers=None):
    """Read SSE events from ``url`` into a list of ``(id, event, data)`` until a condition, with a deadline."""
    received: list[tuple[str, str, Any]] = []

    async def run():
        async with aconnect_sse(client, "GET", url, headers=headers or {}) as source:
            assert source.response.status_code == 200, source.response.status_code
            async for sse in source.aiter_sse():
                received.append((sse.id, sse.event, json.loads(sse.data) if sse.data else None))
                if until is not None and until(received):
                    return
                if count is not None and len(received) >= count:
                    return

    await asyncio.wait_for(run(), timeout)
    return received


def pytest_collection_modifyitems(config, items):
    """Run the JupyterLab extension's browser tests (tests/lab) last.

    JupyterLab keeps the federated extensions its first server in a process found. tests/lab
    serves this checkout's build from a temporary labextensions folder; a Lab test of the
    widget served after it (tests/views/test_lab.py, which uses the environment's folder) lists
    the extension but cannot load it, and the page fails ("reading 'get'" in Lab's loader).
    The other order works: the later servers add no extension the first did not have.
    """
    items.sort(key=lambda item: "tests/lab/" in item.nodeid.replace("\\", "/"))
