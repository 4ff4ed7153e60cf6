"""``?limit=N`` and ``?timeout=S`` end a stream early: for scripts and fuzzers that read to the end."""

from __future__ import annotations

import asyncio
import time

from ..conftest import read_sse, wait_for

API = "taskstream/api"


async def _ends(client, url, headers=None, timeout=5.0):
    """The events of a stream that must end by itself within ``timeout``."""
    return await read_sse(client, url, headers=headers, timeout=timeout)


async def test_limit_ends_the_all_tasks_stream(client, registry):
    assert [e[1] for e in await _ends(client, f"{API}/events?limit=1")] == ["snapshot"]
    cursor = registry.last_event_id
    task = (await client.post(f"{API}/tasks", json={"name": "a"})).json()
    await client.post(f"{API}/tasks/{task['id']}/events", json={"events": [{"type": "log", "data": {"text": "x"}}]})
    received = await _ends(client, f"{API}/events?limit=2", headers={"Last-Event-ID": str(cursor)})
    assert [e[1] for e in received] == ["status", "status"]  # pending, running: then the stream ends
    # Live events count too: the stream waits for them, then ends.
    await wait_for(lambda: registry.subscriber_count == 0, message="the ended streams to be released")
    reader = asyncio.ensure_future(_ends(client, f"{API}/events?limit=3"))
    await wait_for(lambda: registry.subscriber_count == 1, message="the stream to subscribe")
    await client.post(f"{API}/tasks/{task['id']}/events",
                      json={"events": [{"type": "log", "data": {"text": f"{i}"}} for i in range(5)]})  # fmt: skip
    assert [e[1] for e in await reader] == ["snapshot", "log", "log"]


async def test_timeout_ends_a_quiet_stream(client):
    task = (await client.post(f"{API}/tasks", json={"name": "quiet"})).json()
    started = time.monotonic()
    received = await _ends(client, f"{API}/tasks/{task['id']}/events?timeout=0.3")
    assert [e[1] for e in received] == ["snapshot"] and 0.25 < time.monotonic() - started < 3
    assert [e[1] for e in await _ends(client, f"{API}/tasks/{task['id']}/events?limit=1")] == ["snapshot"]
    # A finished task's stream still ends with `end` (the limit counts it).
    await client.post(f"{API}/tasks/{task['id']}/cancel")
    assert [e[1] for e in await _ends(client, f"{API}/tasks/{task['id']}/events?limit=5")] == ["snapshot", "end"]


async def test_commands_stream_takes_the_bounds(publisher):
    started = time.monotonic()
    received = await _ends(publisher, f"{API}/kernels/k1/commands?timeout=0.2")
    assert received == [] and time.monotonic() - started < 3


async def test_bad_bounds_are_refused(client):
    for query in ("limit=0", "limit=x", "timeout=-1", "timeout=1e3", "limit=%06"):
        r = await client.get(f"{API}/events?{query}")
        assert r.status_code == 400, query
        assert r.headers["content-type"].startswith("application/json")
