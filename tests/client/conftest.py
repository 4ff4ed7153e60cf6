"""Fixtures for the client tests: a droppable proxy (the token and runtime file are in tests/conftest.py)."""

from __future__ import annotations

import asyncio

import pytest


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
