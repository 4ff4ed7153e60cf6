"""The durable hub: SQLite store on its own, then real server processes restarted and killed."""

from __future__ import annotations

import asyncio
import gc
import os
import signal
import sqlite3

import httpx
import pytest

from jupyter_taskstream.hub.eventlog import Event, LineEvent
from jupyter_taskstream.hub.registry import TaskRegistry
from jupyter_taskstream.hub.store import WAL_CHECKPOINT_BYTES, SQLiteStore, StoreError

from ..conftest import wait_for
from ..nbval_hub import start_hub

pytestmark = pytest.mark.timeout(120)


def log(text: str) -> dict:
    return {"type": "log", "data": {"stream": "stdout", "text": text}}


# ---- the store alone ----------------------------------------------------------------------


def stored_ids(path) -> list[int]:
    """Every event id the file holds: ``events`` rows and each id of the ``lines`` runs."""
    db = sqlite3.connect(path)
    ids = [row[0] for row in db.execute("SELECT id FROM events")]
    for first, last in db.execute("SELECT id, last FROM lines"):
        ids.extend(range(first, last + 1))
    db.close()
    return sorted(ids)


async def test_store_round_trip_group_commit_and_pruning(tmp_path):
    path = str(tmp_path / "db" / "tasks.sqlite")
    store = SQLiteStore(path=path)
    assert store.open().tasks == []
    record = {"id": "t1", "name": "job", "created": 1.0, "status": "running"}
    # Many writes queued at once land in few transactions, in order.
    writes = [store.write([Event(i, "t1", "log", {"stream": "stdout", "text": str(i)})], [record], i) for i in range(1, 301)]
    await asyncio.gather(*writes)
    # A batch of lines (consecutive ids, one stream) is one row, a marker among them its own.
    batch = [Event(i, "t1", "log", {"stream": "stdout", "text": str(i)}) for i in range(301, 501)]
    batch[100] = Event(401, "t1", "log", {"stream": "stdout", "text": "… 3 lines dropped …", "dropped": 3})
    batch[150] = Event(451, "t1", "log", {"stream": "stderr", "text": "451"})
    await store.write(batch, [record], 500)
    # The registry's log trimmed through 250: the record says so, the store deletes exactly those.
    await store.write([], [{**record, "trimmed_through": 250, "log_dropped": 250}], 500)
    assert stored_ids(path) == list(range(251, 501))  # the newest kept, the trimmed ones deleted
    # A trim through the middle of a run shortens it: exactly the ids after it stay.
    await store.write([], [{**record, "trimmed_through": 333, "log_dropped": 333}], 500)
    store.close()
    assert stored_ids(path) == list(range(334, 501))
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT COUNT(*) FROM lines WHERE id > 300").fetchone()[0] == 4  # 334-400, 402-450, 451, 452-500
    again = SQLiteStore(path=path)
    state = again.open()
    assert state.last_event_id == 500
    assert [t["id"] for t in state.tasks] == ["t1"]
    assert [e.id for e in state.events["t1"]] == list(range(334, 501))
    # Handed back as the hub holds them: plain lines as `LineEvent`s, the marker as an `Event`.
    assert {type(e) for e in state.events["t1"] if e.id != 401} == {LineEvent} and type(state.events["t1"][401 - 334]) is Event
    by_id = {e.id: e.data for e in state.events["t1"]}
    assert by_id[401] == {"stream": "stdout", "text": "… 3 lines dropped …", "dropped": 3}
    assert by_id[451] == {"stream": "stderr", "text": "451"}
    assert by_id[500] == {"stream": "stdout", "text": "500"}
    assert [data["text"] for i, data in by_id.items() if i not in (401, 451)] == [
        str(i) for i in range(334, 501) if i not in (401, 451)
    ]
    again.delete("t1")
    await again.write([], [], 500)  # the delete is applied before this write resolves
    again.close()
    assert stored_ids(path) == []
    third = SQLiteStore(path=path)
    state = third.open()
    third.close()
    assert state.tasks == [] and state.events == {} and state.last_event_id == 500  # ids stay used


async def test_a_burst_longer_than_the_retention_is_stored_cut_and_loads_exactly(tmp_path):
    """A group whose record trims inside the run it writes (a burst > retention): cut before it is written."""
    path = str(tmp_path / "tasks.sqlite")
    store = SQLiteStore(path=path)
    store.open()
    record = {"id": "b1", "name": "burst", "created": 1.0, "status": "running"}
    await store.write([Event(i, "b1", "log", {"stream": "stdout", "text": str(i)}) for i in range(1, 101)], [record], 100)
    burst = [LineEvent(i, "b1", "stdout", str(i)) for i in range(101, 5101)]
    await store.write(burst, [{**record, "trimmed_through": 4000, "log_dropped": 4000}], 5100)
    with sqlite3.connect(path) as db:
        # One row, holding only what is kept.
        assert db.execute("SELECT id, last, length(texts) < 10000 FROM lines").fetchall() == [(4001, 5100, 1)]
    store.close()
    again = SQLiteStore(path=path)
    state = again.open()
    again.close()
    assert [(e.id, e.data["text"]) for e in state.events["b1"]] == [(i, str(i)) for i in range(4001, 5101)]


async def test_a_restart_loads_plain_lines_compactly_with_the_collector_paused(tmp_path):
    """A full store at the default retention is millions of lines: each is loaded as the
    compact `LineEvent` a live line is, and no collection walks the heap while they are made
    (79 s against 28 s for 9.3 million lines)."""
    path = str(tmp_path / "tasks.sqlite")
    store = SQLiteStore(path=path)
    store.open()
    record = {"id": "r1", "name": "restart", "created": 1.0, "status": "completed"}
    lines = [LineEvent(i, "r1", "stdout", f"line {i}") for i in range(1, 30_001)]
    marker = Event(30_001, "r1", "log", {"stream": "stdout", "text": "… 5 lines dropped …", "dropped": 5})
    await store.write([*lines, marker], [record], 30_001)
    store.close()
    registry = TaskRegistry(store=SQLiteStore(path=path), retention_events=40_000)
    collections = []
    callback = lambda phase, info: collections.append(phase)  # noqa: E731
    gc.callbacks.append(callback)
    try:
        registry.load()
    finally:
        gc.callbacks.remove(callback)
        registry.store.close()
    assert collections == [] and gc.isenabled()
    events = registry.event_log("r1").tail(30_001)
    assert [type(e) for e in events[:2]] == [LineEvent, LineEvent] and events[0].data == {"stream": "stdout", "text": "line 1"}
    assert type(events[-1]) is Event and events[-1].data["dropped"] == 5 and len(events) == 30_001


@pytest.mark.parametrize("on_the_loop", [True, False])
async def test_the_wal_is_checkpointed_by_the_writer_whether_commits_run_on_the_loop_or_not(tmp_path, on_the_loop):
    """SQLite's auto-checkpoint is off (it would fsync on the loop): the writer thread keeps the WAL bounded."""
    path = str(tmp_path / "tasks.sqlite")
    store = SQLiteStore(path=path)
    store.open()
    record = {"id": "w1", "name": "wal", "created": 1.0, "status": "running"}
    size = 1 if on_the_loop else 100  # one line commits on the loop; a hundred go to the writer
    for n in range(0, 200_000 if not on_the_loop else 2_000, size):
        await store.write([LineEvent(i, "w1", "stdout", "x" * 80) for i in range(n + 1, n + 1 + size)], [record], n + size)
    # Without checkpoints the WAL would hold every commit's pages: ~32 MB on the loop, ~50 MB off it.
    assert os.path.getsize(path + "-wal") < 3 * WAL_CHECKPOINT_BYTES
    store.close()


async def test_small_groups_commit_on_the_loop_and_never_overtake_queued_work(tmp_path):
    path = str(tmp_path / "tasks.sqlite")
    store = SQLiteStore(path=path)
    store.open()
    record = {"id": "t1", "name": "job", "created": 1.0, "status": "running"}
    line = lambda i: Event(i, "t1", "log", {"stream": "stdout", "text": str(i)})
    # A one-line group is committed before write() returns to the loop: no writer round trip.
    write = store.write([line(1)], [record], 1)
    with pytest.raises(StopIteration):
        write.send(None)
    assert stored_ids(path) == [1]
    # A large group goes to the writer thread, and a small one queued behind it waits its turn.
    big = asyncio.ensure_future(store.write([line(i) for i in range(2, 202)], [record], 201))
    await asyncio.sleep(0)
    store.delete("t1")
    await asyncio.gather(big, store.write([line(202)], [record], 202))
    store.close()
    # The delete went after the big group, the line written after the delete after it: had the
    # small write overtaken the queue, the delete would have removed line 202 too.
    assert stored_ids(path) == [202]


def test_corrupt_database_is_moved_aside(tmp_path, caplog):
    path = tmp_path / "tasks.sqlite"
    path.write_bytes(b"this is not a database" * 100)
    store = SQLiteStore(path=str(path))
    state = store.open()
    store.close()
    assert state.tasks == [] and state.last_event_id == 0
    aside = [p for p in tmp_path.iterdir() if ".corrupt-" in p.name]
    assert len(aside) == 1 and aside[0].read_bytes().startswith(b"this is not a database")
    assert "unreadable" in caplog.text and str(aside[0]) in caplog.text


def test_unwritable_location_names_the_option_to_change():
    store = SQLiteStore(path="/proc/taskstream-cannot-be-here/tasks.sqlite")
    with pytest.raises(StoreError, match=r"c\.TaskStreamApp\.db_path"):
        store.open()


# ---- real servers --------------------------------------------------------------------------


class Hub:
    """A jupyter server process with the extension and a given database file."""

    def __init__(self, tmp_path, db_path, *extra):
        args = (f"--TaskStreamApp.db_path={db_path}", "--TaskStreamApp.restart_grace_period=1", *extra)
        self.process, env, self.token = start_hub(str(tmp_path), extra_args=args)
        self.api = env["JUPYTER_TASKSTREAM_URL"]
        self.log_path = os.path.join(env["JUPYTER_RUNTIME_DIR"], "server.log")
        self.client = httpx.AsyncClient(headers={"Authorization": f"token {self.token}"}, timeout=10)

    async def stop(self, sig=signal.SIGTERM) -> None:
        await self.client.aclose()
        self.process.send_signal(sig)
        await asyncio.to_thread(self.process.wait, 20)

    def server_log(self) -> str:
        with open(self.log_path, encoding="utf-8", errors="replace") as f:
            return f.read()


async def hub_log(hub: Hub, task_id: str) -> list[str]:
    r = await hub.client.get(f"{hub.api}/tasks/{task_id}/log")
    return [e["data"]["text"] for e in r.json()["events"]]


async def test_finished_tasks_and_logs_survive_a_restart_and_ids_are_never_reused(tmp_path):
    db = tmp_path / "tasks.sqlite"
    hub = Hub(tmp_path, db)
    r = await hub.client.post(f"{hub.api}/tasks", json={"name": "before", "total": 3})
    task = r.json()
    await hub.client.post(f"{hub.api}/tasks/{task['id']}/events", json={"events": [log("one"), log("two\nlines")]})
    await hub.client.post(
        f"{hub.api}/tasks/{task['id']}/events",
        json={"events": [{"type": "progress", "data": {"current": 3}}, {"type": "status", "data": {"status": "completed"}}]},
    )
    before = (await hub.client.get(f"{hub.api}/tasks/{task['id']}")).json()
    await hub.stop()

    hub = Hub(tmp_path, db)
    try:
        after = (await hub.client.get(f"{hub.api}/tasks/{task['id']}")).json()
        assert after == before
        assert await hub_log(hub, task["id"]) == ["one", "two\nlines"]
        listed = (await hub.client.get(f"{hub.api}/tasks")).json()["tasks"]
        assert [t["id"] for t in listed] == [task["id"]]
        fresh = (await hub.client.post(f"{hub.api}/tasks", json={"name": "after"})).json()
        assert fresh["last_event_id"] > before["last_event_id"]  # the counter went on
        # A reconnect from before the restart gets what it missed, then end, at once.
        async with hub.client.stream(
            "GET", f"{hub.api}/tasks/{task['id']}/events", headers={"Last-Event-ID": str(before["last_event_id"] - 3)}
        ) as response:
            text = (await asyncio.wait_for(response.aread(), 10)).decode()
        kinds = [line.split(": ", 1)[1] for line in text.splitlines() if line.startswith("event: ")]
        assert kinds == ["progress", "status", "end"]
    finally:
        await hub.stop()


async def test_acknowledged_events_survive_kill_9(tmp_path):
    db = tmp_path / "tasks.sqlite"
    hub = Hub(tmp_path, db)
    task = (await hub.client.post(f"{hub.api}/tasks", json={"name": "flood"})).json()
    acknowledged: list[str] = []
    seen_ids: list[int] = []

    async def produce():
        for i in range(100_000):
            try:
                r = await hub.client.post(f"{hub.api}/tasks/{task['id']}/events", json={"events": [log(f"line {i}")]})
            except httpx.HTTPError:
                return
            if r.status_code != 204:
                return
            acknowledged.append(f"line {i}")

    async def watch():
        try:
            async with hub.client.stream("GET", f"{hub.api}/tasks/{task['id']}/events") as response:
                event_id = None
                async for line in response.aiter_lines():
                    if line.startswith("id: "):
                        event_id = int(line[4:])
                    elif line == "event: log":
                        seen_ids.append(event_id)
        except httpx.HTTPError:
            return

    producer, watcher = asyncio.ensure_future(produce()), asyncio.ensure_future(watch())
    await wait_for(lambda: len(acknowledged) >= 300, 30, message="a flood under way")
    os.kill(hub.process.pid, signal.SIGKILL)  # no shutdown, no flush: only what was committed
    await asyncio.wait_for(asyncio.gather(producer, watcher), 20)
    await hub.client.aclose()
    hub.process.wait(10)

    hub = Hub(tmp_path, db)
    try:
        stored = await hub_log(hub, task["id"])
        assert stored[: len(acknowledged)] == acknowledged  # every acknowledged line, in order
        assert len(stored) - len(acknowledged) <= 1  # at most the one whose answer was cut off
        log_ids = {e["id"] for e in (await hub.client.get(f"{hub.api}/tasks/{task['id']}/log")).json()["events"]}
        # Nothing a subscriber saw was forgotten.
        assert seen_ids and set(seen_ids) <= log_ids
    finally:
        await hub.stop()


async def test_running_tasks_fail_after_a_restart_unless_their_publisher_continues(tmp_path):
    db = tmp_path / "tasks.sqlite"
    hub = Hub(tmp_path, db)
    abandoned = (await hub.client.post(f"{hub.api}/tasks", json={"name": "abandoned"})).json()
    continued = (await hub.client.post(f"{hub.api}/tasks", json={"name": "continued"})).json()
    for task in (abandoned, continued):
        await hub.client.post(f"{hub.api}/tasks/{task['id']}/events", json={"events": [log("started")]})
    await hub.stop()

    hub = Hub(tmp_path, db)
    try:
        r = await hub.client.post(f"{hub.api}/tasks/{continued['id']}/events", json={"events": [log("still here")]})
        assert r.status_code == 204

        async def status(task_id):
            return (await hub.client.get(f"{hub.api}/tasks/{task_id}")).json()["status"]

        assert await _eventually(lambda: status(abandoned["id"]), "failed", 15)
        snap = (await hub.client.get(f"{hub.api}/tasks/{abandoned['id']}")).json()
        assert snap["error"]["type"] == "ServerStopped" and "server stopped" in snap["error"]["message"]
        assert await status(continued["id"]) == "running"
        assert await hub_log(hub, continued["id"]) == ["started", "still here"]
    finally:
        await hub.stop()


async def _eventually(get, expected, timeout) -> bool:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        if await get() == expected:
            return True
        await asyncio.sleep(0.1)
    return False


async def test_the_file_stays_bounded_under_a_task_that_prints_forever(tmp_path):
    db = tmp_path / "tasks.sqlite"
    hub = Hub(tmp_path, db, "--TaskStreamApp.retention_events=200")
    try:
        task = (await hub.client.post(f"{hub.api}/tasks", json={"name": "chatty"})).json()
        url = f"{hub.api}/tasks/{task['id']}/events"

        async def flood(start, count):
            for i in range(start, start + count, 100):
                await hub.client.post(url, json={"events": [log(f"line {j} " + "x" * 200) for j in range(i, i + 100)]})

        await flood(0, 5_000)
        size_early = os.path.getsize(db) + os.path.getsize(f"{db}-wal")
        await flood(5_000, 20_000)
        size_late = os.path.getsize(db) + os.path.getsize(f"{db}-wal")
        rows = len(stored_ids(db))
        # What the log keeps (retention plus its trimming slack), plus at most the last batch
        # whose trim is stored by the commit after it, plus the task's status events.
        assert rows <= 200 + 25 + 100 + 2
        assert size_late < 2 * size_early, (size_early, size_late)  # pages are reused, not added
        snap = (await hub.client.get(f"{hub.api}/tasks/{task['id']}")).json()
        lines = await hub_log(hub, task["id"])
        assert snap["log_dropped"] + len(lines) == 25_000  # every line kept or counted
        assert lines[-1].startswith("line 24999 ")
    finally:
        await hub.stop()


async def test_a_corrupt_database_does_not_stop_the_server(tmp_path):
    db = tmp_path / "tasks.sqlite"
    db.write_bytes(b"\x00garbage" * 1000)
    hub = Hub(tmp_path, db)
    try:
        r = await hub.client.post(f"{hub.api}/tasks", json={"name": "works"})
        assert r.status_code == 201
        assert "unreadable" in hub.server_log()
        assert any(".corrupt-" in p.name for p in tmp_path.iterdir())
    finally:
        await hub.stop()


async def test_a_second_server_on_the_same_file_keeps_its_tasks_in_memory(tmp_path):
    db = tmp_path / "tasks.sqlite"
    first = Hub(tmp_path, db)
    second = Hub(tmp_path, db)
    try:
        assert "another server uses the task database" in second.server_log()
        r = await second.client.post(f"{second.api}/tasks", json={"name": "second's"})
        assert r.status_code == 201
        assert (await first.client.get(f"{first.api}/tasks")).json() == {"tasks": []}
    finally:
        await second.stop()
        await first.stop()


def test_store_choice_is_a_documented_type_trait():
    from jupyter_taskstream.hub.app import TaskStreamApp
    from jupyter_taskstream.hub.store import TaskStore

    trait = TaskStreamApp.class_traits()["store"]
    assert trait.klass is TaskStore and "MemoryStore" in trait.help
    assert "Jupyter data directory" in TaskStreamApp.class_traits()["db_path"].help
    assert TaskStreamApp.restart_grace_period.default_value == 30


def stored_record(db, task_id: str) -> dict:
    import json

    with sqlite3.connect(db) as conn:
        row = conn.execute("SELECT record FROM tasks WHERE id = ?", (task_id,)).fetchone()
    return json.loads(row[0]) if row else {}


async def _sse_kinds(hub: Hub, task_id: str, last_event_id: int) -> list[str]:
    async with hub.client.stream(
        "GET", f"{hub.api}/tasks/{task_id}/events", headers={"Last-Event-ID": str(last_event_id)}
    ) as response:
        text = (await asyncio.wait_for(response.aread(), 20)).decode()
    return [line.split(": ", 1)[1] for line in text.splitlines() if line.startswith("event: ")]


async def test_truncation_and_log_dropped_are_exact_across_kill_9(tmp_path):
    # Issue 15, defects 2 and 3: one batch of 1,130 lines (retention 1,000), finished, then
    # SIGKILL: the restarted hub says truncated, counts exactly what is gone, keeps the same
    # log, and answers a resume from a trimmed id with a snapshot, not a replay across the gap.
    db = tmp_path / "tasks.sqlite"
    hub = Hub(tmp_path, db, "--TaskStreamApp.retention_events=1000")
    lines = 1_130
    task = (await hub.client.post(f"{hub.api}/tasks", json={"name": "trimmed"})).json()
    url = f"{hub.api}/tasks/{task['id']}/events"
    r = await hub.client.post(url, json={"events": [*(log(f"line {i}") for i in range(lines)),
                                                    {"type": "status", "data": {"status": "completed"}}]})
    assert r.status_code == 204, r.text
    before = (await hub.client.get(f"{hub.api}/tasks/{task['id']}")).json()
    polled = (await hub.client.get(f"{hub.api}/tasks/{task['id']}/log", params={"after": 0})).json()
    kept = [e["data"]["text"] for e in polled["events"]]
    assert polled["truncated"] is True
    # Defect 3: the snapshot counts what the trim during this very batch's fan-out cut.
    assert before["log_dropped"] > 0 and before["log_dropped"] + len(kept) == lines
    assert kept[-1] == f"line {lines - 1}"
    first_kept = polled["events"][0]["id"]
    # The record the trim touched is written by the commit after the events' own.
    await wait_for(lambda: stored_record(db, task["id"]).get("log_dropped") == before["log_dropped"], 10)
    os.kill(hub.process.pid, signal.SIGKILL)
    await hub.client.aclose()
    hub.process.wait(10)

    hub = Hub(tmp_path, db, "--TaskStreamApp.retention_events=1000")
    try:
        after = (await hub.client.get(f"{hub.api}/tasks/{task['id']}")).json()
        assert after == before  # log_dropped included
        polled = (await hub.client.get(f"{hub.api}/tasks/{task['id']}/log", params={"after": 0})).json()
        assert polled["truncated"] is True
        assert [e["data"]["text"] for e in polled["events"]] == kept  # the log did not shrink
        # A resume from a trimmed id: a fresh snapshot; from a kept one: the replay.
        assert await _sse_kinds(hub, task["id"], first_kept - 5) == ["snapshot", "end"]
        kinds = await _sse_kinds(hub, task["id"], first_kept)
        assert kinds[0] == "log" and kinds.count("log") == len(kept) - 1 and kinds[-2:] == ["status", "end"]
    finally:
        await hub.stop()
