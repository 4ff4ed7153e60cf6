"""The hub's SSE streams over real HTTP: framing, replay, resume, fan-out, clean-up."""

from __future__ import annotations

import asyncio
import json
import socket

import pytest

from jupyter_taskstream.hub import tornado_push

from ..conftest import read_sse, wait_for
from .test_handlers import API, create, log, publish


def texts(events) -> list[str]:
    return [data["text"] for _, kind, data in events if kind == "log"]


def ended(events) -> bool:
    return bool(events) and events[-1][1] == "end"


async def no_subscribers(registry) -> None:
    """Wait until earlier streams of the test are gone, so a count of 1 means the new one."""
    await wait_for(lambda: registry.subscriber_count == 0, message="earlier subscribers to go")


async def test_stream_headers_first_bytes_snapshot_live_events_and_end(client, registry):
    task = await create(client, total=3)
    await publish(client, task["id"], log("before 1"), log("before 2"))
    url = f"{API}/tasks/{task['id']}/events"
    async with client.stream("GET", url) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        assert response.headers["cache-control"] == "no-cache"
        assert response.headers["x-accel-buffering"] == "no"
        assert "content-encoding" not in response.headers
        lines = response.aiter_lines()
        first = await asyncio.wait_for(lines.__anext__(), 5)
        assert first.startswith("retry: ")
        assert 100 <= int(first.split()[1]) <= 200  # retry_ms=100 plus up to 100 % jitter
        snapshot = [await asyncio.wait_for(lines.__anext__(), 5) for _ in range(3)]
        assert snapshot[0] == f"id: {registry.get(task['id']).last_event_id}"
        assert snapshot[1] == "event: snapshot"
        assert '"log":[{"id":' in snapshot[2] and '"text":"before 2"' in snapshot[2]

    await no_subscribers(registry)
    seen = asyncio.ensure_future(read_sse(client, url, until=ended))
    await wait_for(lambda: registry.subscriber_count == 1, message="the stream to subscribe")
    await publish(client, task["id"], {"type": "progress", "data": {"current": 3}}, log("a\nb"))
    await publish(client, task["id"], {"type": "status", "data": {"status": "completed"}})
    events = await asyncio.wait_for(seen, 10)
    kinds = [kind for _, kind, _ in events]
    assert kinds == ["snapshot", "progress", "log", "status", "end"]
    assert events[2][2] == {"stream": "stdout", "text": "a\nb"}
    assert events[-1][2]["status"] == "completed" and events[-1][2]["progress"]["fraction"] == 1.0
    ids = [int(i) for i, _, _ in events]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    await wait_for(lambda: registry.subscriber_count == 0, message="the finished stream to be released")


async def test_resume_with_last_event_id_while_events_flow_loses_and_repeats_nothing(client):
    task = await create(client)
    url = f"{API}/tasks/{task['id']}/events"
    total = 300

    async def produce():
        for i in range(total):
            await publish(client, task["id"], log(f"line {i}"))
            if i % 10 == 0:
                await asyncio.sleep(0.005)  # let readers interleave with the producer
        await publish(client, task["id"], {"type": "status", "data": {"status": "completed"}})

    producer = asyncio.ensure_future(produce())
    received = []
    last_id = None
    for round_ in range(50):
        headers = {"Last-Event-ID": last_id} if last_id else {}
        # Read a few events, then drop the connection mid-stream, as a flaky network would.
        part = await read_sse(client, url, headers=headers, until=lambda ev: ended(ev) or len(ev) >= 40)
        if last_id is not None:
            assert part[0][1] != "snapshot", "a resume within retention must replay, not snapshot"
        for event_id, kind, data in part:
            if kind == "snapshot":  # only on the first connection: its tail is what came before
                received.extend((line["id"], "log", line) for line in data["log"])
            else:
                received.append((event_id, kind, data))
        last_id = part[-1][0]
        if ended(part):
            break
    await producer
    assert texts(received) == [f"line {i}" for i in range(total)]
    ids = [int(i) for i, _, _ in received]
    assert len(ids) == len(set(ids))


async def test_resume_by_query_parameter_and_from_unknown_ids(client):
    task = await create(client)
    await publish(client, task["id"], log("one"), log("two"))
    url = f"{API}/tasks/{task['id']}/events"
    first = await read_sse(client, url, count=1)
    snapshot_id = first[0][0]
    await publish(client, task["id"], log("three"))
    replay = await read_sse(client, f"{url}?last_event_id={snapshot_id}", count=1)
    assert replay[0][1] == "log" and replay[0][2]["text"] == "three"
    for unknown in ("999999999", "garbage", "-4"):
        fresh = await read_sse(client, url, headers={"Last-Event-ID": unknown}, count=1)
        assert fresh[0][1] == "snapshot"  # never a stall on an id the hub cannot place
        assert [line["text"] for line in fresh[0][2]["log"]] == ["one", "two", "three"]


async def test_reconnect_to_a_finished_task_gets_what_it_missed_and_end_at_once(client):
    task = await create(client)
    await publish(client, task["id"], log("early"))
    snap = await read_sse(client, f"{API}/tasks/{task['id']}/events", count=1)
    await publish(client, task["id"], log("late"), {"type": "status", "data": {"status": "failed"}})
    missed = await read_sse(client, f"{API}/tasks/{task['id']}/events", headers={"Last-Event-ID": snap[0][0]}, timeout=5)
    assert [k for _, k, _ in missed] == ["log", "status", "end"]  # the stream closed by itself
    again = await read_sse(client, f"{API}/tasks/{task['id']}/events", headers={"Last-Event-ID": missed[-1][0]}, timeout=5)
    assert [k for _, k, _ in again] == ["end"]
    fresh = await read_sse(client, f"{API}/tasks/{task['id']}/events", timeout=5)
    assert [k for _, k, _ in fresh] == ["snapshot", "end"]
    assert fresh[0][2]["status"] == "failed"


async def test_two_subscribers_each_receive_every_event(client, registry):
    task = await create(client)
    url = f"{API}/tasks/{task['id']}/events"
    readers = [asyncio.ensure_future(read_sse(client, url, until=ended)) for _ in range(2)]
    await wait_for(lambda: registry.subscriber_count == 2, message="two subscribers")
    for i in range(50):
        await publish(client, task["id"], log(str(i)))
    await publish(client, task["id"], {"type": "status", "data": {"status": "completed"}})
    for reader in readers:
        assert texts(await asyncio.wait_for(reader, 10)) == [str(i) for i in range(50)]


async def test_a_disconnected_subscriber_is_reaped_at_once(client, registry):
    task = await create(client)
    url = f"{API}/tasks/{task['id']}/events"
    reader = asyncio.ensure_future(read_sse(client, url, count=10_000, timeout=60))
    await wait_for(lambda: registry.subscriber_count == 1, message="the subscriber")
    reader.cancel()  # the client goes away without a word
    await wait_for(lambda: registry.subscriber_count == 0, timeout=5, message="the subscription to be freed")


async def test_heartbeat_comments_keep_an_idle_stream_alive(client):
    task = await create(client)
    async with client.stream("GET", f"{API}/tasks/{task['id']}/events") as response:

        async def first_heartbeat():
            async for line in response.aiter_lines():
                if line.startswith(":"):
                    return line

        assert await asyncio.wait_for(first_heartbeat(), 5) == ": heartbeat"


async def test_all_tasks_stream_carries_task_ids_and_resumes(client, registry):
    old = await create(client, "old")
    url = f"{API}/events"
    first = await read_sse(client, url, count=1)
    assert first[0][1] == "snapshot" and [t["id"] for t in first[0][2]["tasks"]] == [old["id"]]
    await no_subscribers(registry)
    reader = asyncio.ensure_future(read_sse(client, url, until=lambda ev: ev[-1][1] == "end"))
    await wait_for(lambda: registry.subscriber_count == 1, message="the all-tasks subscriber")
    new = await create(client, "new")
    await publish(client, new["id"], log("hi"), {"type": "status", "data": {"status": "completed"}})
    events = await asyncio.wait_for(reader, 10)
    live = events[1:]
    assert [(k, d["task"]) for _, k, d in live] == [
        ("status", new["id"]), ("status", new["id"]), ("log", new["id"]), ("status", new["id"]), ("end", new["id"]),
    ]  # fmt: skip
    assert [d["status"] for _, k, d in live if k == "status"] == ["pending", "running", "completed"]
    assert live[0][2]["name"] == "new"
    # Resume the all-tasks stream from the snapshot: exactly the same events come back.
    replay = await read_sse(client, url, headers={"Last-Event-ID": first[0][0]}, count=len(live))
    assert replay == live


async def _raw_get(client, path: str, rcvbuf: int) -> socket.socket:
    """A GET on a bare socket with a tiny receive buffer, so the test decides when to read."""
    loop = asyncio.get_running_loop()
    url = client.base_url.join(path)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.setblocking(False)
    await loop.sock_connect(sock, (url.host, url.port))
    headers = "".join(f"{k}: {v}\r\n" for k, v in client.headers.items() if k.lower() == "authorization")
    request = f"GET {url.raw_path.decode()} HTTP/1.1\r\nHost: {url.host}:{url.port}\r\n{headers}\r\n"
    await loop.sock_sendall(sock, request.encode())
    return sock


async def _read_raw(sock, *, until_last_chunk: bool = False, timeout: float = 30) -> bytes:
    """What the server sends on ``sock`` until it closes it (or, with ``until_last_chunk``,
    until the response's last chunk); the socket is closed afterwards."""
    loop = asyncio.get_running_loop()
    raw, deadline = bytearray(), loop.time() + timeout
    while loop.time() < deadline and not (until_last_chunk and raw.endswith(b"\r\n0\r\n\r\n")):
        data = await asyncio.wait_for(loop.sock_recv(sock, 1 << 20), 10)
        if not data:
            break
        raw += data
    sock.close()
    return bytes(raw)


def _dechunk(raw: bytes) -> tuple[bytes, bool]:
    """The body of a chunked response read so far, and whether its last chunk came."""
    head, _, rest = raw.partition(b"\r\n\r\n")
    assert b"transfer-encoding: chunked" in head.lower(), head
    body = bytearray()
    while rest:
        size_line, sep, after = rest.partition(b"\r\n")
        if not sep:
            break
        size = int(size_line, 16)
        if len(after) < size + 2:
            break
        assert after[size : size + 2] == b"\r\n", "chunk not terminated by CRLF"
        if size == 0:
            return bytes(body), True
        body += after[:size]
        rest = after[size + 2 :]
    return bytes(body), False


@pytest.mark.parametrize("fast_path", [True, False], ids=["fast-path", "plain-write-flush"])
async def test_a_subscriber_whose_socket_fills_catches_up_with_every_event_in_order(
    client, registry, monkeypatch, fast_path
):
    # A client that stops reading fills its socket: the hub's direct send() writes part of a
    # chunk, hands the rest to tornado, pauses that subscriber and resumes it once written.
    # The client must then get every event exactly once, in order, in well-formed chunks,
    # and a normal subscriber alongside must not be held up. Without the fast path (a tornado
    # whose internals changed) the same must hold through plain write()/flush().
    if not fast_path:
        monkeypatch.setattr(tornado_push, "enabled", False)
    task = await create(client)
    url = f"{API}/tasks/{task['id']}/events"
    await no_subscribers(registry)
    sock = await _raw_get(client, url, rcvbuf=4096)
    await wait_for(lambda: registry.subscriber_count == 1, message="the slow subscriber")
    normal = asyncio.ensure_future(read_sse(client, url, until=ended, timeout=60))
    await wait_for(lambda: registry.subscriber_count == 2, message="the normal subscriber")
    n, line = 3000, "x" * 2000
    for start in range(0, n, 100):
        await publish(client, task["id"], *(log(f"{i:04d} {line}") for i in range(start, start + 100)))
    await wait_for(lambda: any(s.paused for s in registry._subscriptions), message="the slow subscriber paused")
    await publish(client, task["id"], {"type": "status", "data": {"status": "completed"}})
    assert texts(await normal)[-1].startswith(f"{n - 1:04d} ")  # not held up by the slow one

    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)  # now read it all, quickly
    body, complete = _dechunk(await _read_raw(sock, until_last_chunk=True))
    assert complete, "the stream did not finish"
    events = []  # (id, event, data) of every block that has an id
    for block in body.decode().split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.split("\n") if ": " in line)
        if "id" in fields:
            events.append((int(fields["id"]), fields["event"], json.loads(fields["data"])))
    assert events[0][1] == "snapshot" and events[-1][1] == "end"
    assert [d["text"][:4] for _, kind, d in events if kind == "log"] == [f"{i:04d}" for i in range(n)]
    ids = [i for i, _, _ in events]
    assert ids == sorted(set(ids))


async def test_a_resume_whose_replay_exceeds_the_backlog_replays_in_chunks_to_the_end(client, registry):
    # Issue 15, defect 1: 8,000 retained lines, resumed from the first, with a backlog of
    # 5,000: the replay used to end the stream before its first event, on every reconnect.
    assert registry.subscriber_backlog < 8_000 <= registry.retention_events
    task = await create(client)
    for start in range(0, 8_000, 1_000):
        await publish(client, task["id"], *(log(f"line {i}") for i in range(start, start + 1_000)))
    await publish(client, task["id"], {"type": "status", "data": {"status": "completed"}})
    polled = (await client.get(f"{API}/tasks/{task['id']}/log", params={"limit": 1})).json()["events"]
    first = polled[0]["id"]
    url = f"{API}/tasks/{task['id']}/events"
    events = await read_sse(client, url, until=ended, headers={"Last-Event-ID": str(first)}, timeout=30)
    assert texts(events) == [f"line {i}" for i in range(1, 8_000)]
    assert [kind for _, kind, _ in events[-2:]] == ["status", "end"]
    await wait_for(lambda: registry.subscriber_count == 0, message="the finished stream to be released")
