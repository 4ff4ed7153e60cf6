"""A live SSE stream leaves tornado after its first bytes: no handler held, yet events, heartbeats, end."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging

import pytest

from jupyter_taskstream.hub import detached, streams

from ..conftest import wait_for
from .test_handlers import API, create, log, publish
from .test_streams import _dechunk, _raw_get, _read_raw, no_subscribers


def live_handlers(registry) -> list:
    """The SSE handler objects of this server still in memory, after a full collection."""
    gc.collect()
    found = [o for o in gc.get_objects() if isinstance(o, streams.EventStreamHandler)]
    return [o for o in found if o.settings.get("taskstream_registry") is registry]


async def read_until(lines, predicate, timeout: float = 10.0) -> list[str]:
    """Lines of a stream up to the first one ``predicate`` accepts."""
    got: list[str] = []

    async def run():
        async for line in lines:
            got.append(line)
            if predicate(line):
                return

    await asyncio.wait_for(run(), timeout)
    return got


@pytest.mark.parametrize(("path", "ends"), [("tasks/{task}/events", True), ("events", False)],
                         ids=["task-stream", "all-tasks-stream"])  # fmt: skip
async def test_a_live_stream_holds_no_handler_yet_gets_events_heartbeats_and_its_end(client, registry, path, ends):
    task = await create(client)
    await no_subscribers(registry)
    async with client.stream("GET", f"{API}/{path.format(task=task['id'])}") as response:
        assert response.status_code == 200
        assert response.headers["connection"] == "close"  # the socket closes at the stream's end
        lines = response.aiter_lines()
        await read_until(lines, lambda line: line == "event: snapshot")
        await wait_for(lambda: registry.subscriber_count == 1, message="the stream to subscribe")
        # The handler, its request and tornado's connection are gone: one small object serves it.
        await wait_for(lambda: not live_handlers(registry), message="the stream's handler to be freed")
        await publish(client, task["id"], log("after the detach"))
        got = await read_until(lines, lambda line: "after the detach" in line)
        assert got[-1].startswith("data: ") and '"text":"after the detach"' in got[-1]
        assert (await read_until(lines, lambda line: line.startswith(":")))[-1] == ": heartbeat"
        await publish(client, task["id"], {"type": "status", "data": {"status": "completed"}})
        assert (await read_until(lines, lambda line: line.startswith("event: ")))[-1] == "event: status"
        assert (await read_until(lines, lambda line: line.startswith("event: ")))[-1] == "event: end"
        if ends:  # a task's stream ends by itself after `end`; the all-tasks stream goes on
            rest = await asyncio.wait_for(_rest(lines), 10)
            assert rest[0].startswith("data: ") and rest[1:] == [""]
    await wait_for(lambda: registry.subscriber_count == 0, message="the ended stream to be released")


async def test_heartbeats_sent_in_batches_reach_every_stream(client, registry, monkeypatch):
    monkeypatch.setattr(detached, "BEAT_BATCH", 1)  # one stream per turn of the loop
    task = await create(client)
    await no_subscribers(registry)
    url = f"{API}/tasks/{task['id']}/events"
    async with contextlib.AsyncExitStack() as stack:
        responses = [await stack.enter_async_context(client.stream("GET", url)) for _ in range(3)]
        await wait_for(lambda: registry.subscriber_count == 3, message="three streams")
        for response in responses:
            got = await read_until(response.aiter_lines(), lambda line: line.startswith(":"))
            assert got[-1] == ": heartbeat"


async def _rest(lines) -> list[str]:
    return [line async for line in lines]


async def test_a_client_that_goes_away_is_unsubscribed_and_its_socket_closed(client, registry):
    task = await create(client)
    await no_subscribers(registry)
    sock = await _raw_get(client, f"{API}/tasks/{task['id']}/events", rcvbuf=1 << 16)
    await wait_for(lambda: registry.subscriber_count == 1, message="the stream to subscribe")
    await wait_for(lambda: not live_handlers(registry), message="the stream's handler to be freed")
    sock.close()  # no word: the hub sees EOF on the detached socket
    await wait_for(lambda: registry.subscriber_count == 0, timeout=5, message="the subscription to be freed")
    await publish(client, task["id"], log("nobody reads this"))  # nothing left to write to


async def test_server_shutdown_ends_a_detached_stream_with_its_last_chunk(client, registry, jp_serverapp):
    task = await create(client)
    await no_subscribers(registry)
    sock = await _raw_get(client, f"{API}/tasks/{task['id']}/events", rcvbuf=1 << 16)
    await wait_for(lambda: registry.subscriber_count == 1, message="the stream to subscribe")
    await wait_for(lambda: not live_handlers(registry), message="the stream's handler to be freed")
    extension = jp_serverapp.extension_manager.extension_apps["jupyter_taskstream"]
    (app,) = extension
    await app.stop_extension()
    body, complete = _dechunk(await _read_raw(sock))
    assert complete, "no last chunk before the socket closed"
    assert b"event: snapshot" in body


class TestAStalledClient:
    @pytest.fixture
    def taskstream_config(self) -> dict:
        return {"heartbeat_interval": 0.5, "retry_ms": 100, "write_timeout": 0.5}

    async def test_is_dropped_after_write_timeout_and_logged(self, client, registry, caplog):
        task = await create(client)
        await no_subscribers(registry)
        sock = await _raw_get(client, f"{API}/tasks/{task['id']}/events", rcvbuf=4096)
        await wait_for(lambda: registry.subscriber_count == 1, message="the stream to subscribe")
        await wait_for(lambda: not live_handlers(registry), message="the stream's handler to be freed")
        with caplog.at_level(logging.WARNING):
            for start in range(0, 2000, 100):  # far more than the socket's buffers hold
                await publish(client, task["id"], *(log(f"{i:04d} {'x' * 2000}") for i in range(start, start + 100)))
                if any(s.paused for s in registry._subscriptions):
                    break
            await wait_for(lambda: registry.subscriber_count == 0, timeout=10, message="the stalled client dropped")
        assert any("stopped reading" in r.getMessage() for r in caplog.records)
        sock.close()
