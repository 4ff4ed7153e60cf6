"""Fixtures for the client tests: the test server's token, a runtime file, a droppable proxy."""

from __future__ import annotations

import asyncio
import json
import os

import pytest

from jupyter_taskstream.protocol import ENV_SECRET, ENV_URL


@pytest.fixture
def token(jp_auth_header) -> str:
    return jp_auth_header["Authorization"].split(" ", 1)[1]


@pytest.fixture
def clean_env(monkeypatch):
    """No hub address from the environment (the test server puts its own there for kernels)."""
    for name in (ENV_URL, ENV_SECRET, "JUPYTER_TASKSTREAM_TOKEN"):
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


class DropProxy:
    """A TCP proxy in front of the test server whose connections the test can cut."""

    def __init__(self, port: int):
        self.target_port = port
        self.writers: list[asyncio.StreamWriter] = []
        self.connections = 0

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]

    async def _serve(self, reader, writer) -> None:
        self.connections += 1
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        self.writers += [writer, up_writer]

        async def pipe(src, dst):
            try:
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    def drop(self) -> None:
        """Cut every open connection, as a flaky network or proxy would."""
        for writer in self.writers:
            writer.transport.abort()
        self.writers.clear()

    def close(self) -> None:
        self.drop()
        self.server.close()


@pytest.fixture
def proxy(jp_http_port, jp_asyncio_loop, http_server_client):
    p = DropProxy(jp_http_port)
    jp_asyncio_loop.run_until_complete(p.start())
    yield p
    p.close()
