"""The hub's registry, driven directly without a server."""

from __future__ import annotations

import asyncio

import pytest

from jupyter_taskstream.errors import TaskExists, TaskFinished, TaskNotFound, TaskRunning
from jupyter_taskstream.hub.registry import SubscriberTooSlow, TaskRegistry


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def make(**kwargs) -> tuple[TaskRegistry, Clock]:
    clock = Clock()
    return TaskRegistry(clock=clock, **kwargs), clock


def types(registry: TaskRegistry, task_id: str) -> list[str]:
    return [e.type for e in registry.event_log(task_id).after(0)]


async def test_progress_is_coalesced_latest_wins_and_flushed_later():
    registry, clock = make(progress_rate_hz=10)
    task = registry.create("job", total=100)
    for i in range(1, 51):
        clock.now += 0.001
        registry.publish(task.id, [("progress", {"current": i})])
        assert task.snapshot()["progress"]["current"] == i  # the snapshot is always current
    progress = [e for e in registry.event_log(task.id).after(0) if e.type == "progress"]
    assert [e.data["current"] for e in progress] == [1]
    log = registry.event_log(task.id)
    cursor = log.last_id
    assert await log.wait(cursor, 2.0), "the coalesced progress was never flushed"
    flushed = log.after(cursor)
    assert [(e.type, e.data["current"]) for e in flushed] == [("progress", 50)]
    assert flushed[0].data["fraction"] == 0.5


async def test_terminal_status_sends_the_last_progress_first_then_end():
    registry, clock = make(progress_rate_hz=1)
    task = registry.create("job", total=10)
    registry.publish(task.id, [("progress", {"current": 1})])
    clock.now += 0.01
    registry.publish(task.id, [("progress", {"current": 10}), ("status", {"status": "completed"})])
    events = registry.event_log(task.id).after(0)
    assert [e.type for e in events] == ["status", "status", "progress", "progress", "status", "end"]
    assert [e.data["status"] for e in events[:2]] == ["pending", "running"]  # the first progress starts it
    assert events[3].data["current"] == 10
    end = events[-1]
    assert end.data["status"] == "completed" and end.data["last_event_id"] == end.id
    with pytest.raises(TaskFinished):
        registry.publish(task.id, [("log", {"stream": "stdout", "text": "late"})])


async def test_log_lines_are_kept_in_order_and_long_text_split_not_cut():
    registry, _ = make(max_log_event_bytes=10)
    task = registry.create("job")
    text = "\u00e9" * 12  # 24 bytes: three pieces, none splitting a character
    registry.publish(task.id, [("log", {"stream": "stderr", "text": text}), ("log", {"stream": "stdout", "text": "x"})])
    logs = [e.data for e in registry.event_log(task.id).after(0) if e.type == "log"]
    assert "".join(d["text"] for d in logs[:-1]) == text
    assert all(len(d["text"].encode()) <= 10 for d in logs)
    assert logs[-1] == {"stream": "stdout", "text": "x"}
    assert task.status == "running"


async def test_a_batch_of_lines_becomes_one_event_per_line_each_with_its_id():
    registry, _ = make(max_log_event_bytes=10)
    task = registry.create("job")
    long = "\u00e9" * 6  # 12 bytes: two events, as a long single-line event would be
    registry.publish(task.id, [("log", {"stream": "stderr", "lines": ["a", "", long, "b"]})])
    logs = [e for e in registry.event_log(task.id).after(0) if e.type == "log"]
    assert [e.data for e in logs] == [
        {"stream": "stderr", "text": "a"},
        {"stream": "stderr", "text": ""},
        {"stream": "stderr", "text": "\u00e9" * 5},
        {"stream": "stderr", "text": "\u00e9"},
        {"stream": "stderr", "text": "b"},
    ]
    ids = [e.id for e in logs]
    assert ids == sorted(set(ids)) and [e.id for e in registry.all_events.after(0)][-5:] == ids


async def test_event_ids_are_server_wide_and_strictly_increasing():
    registry, _ = make()
    a, b = registry.create("a"), registry.create("b")
    for i in range(5):
        registry.publish(a.id, [("log", {"stream": "stdout", "text": str(i)})])
        registry.publish(b.id, [("log", {"stream": "stdout", "text": str(i)})])
    ids = [e.id for e in registry.all_events.after(0)]
    assert ids == sorted(set(ids))
    assert {e.task for e in registry.all_events.after(0)} == {a.id, b.id}


async def test_finished_tasks_beyond_max_tasks_are_removed_oldest_first():
    registry, _ = make(max_tasks=2)
    ids = []
    for i in range(4):
        t = registry.create(f"t{i}")
        registry.publish(t.id, [("status", {"status": "completed"})])
        ids.append(t.id)
    running = registry.create("running")
    assert [t.id for t in registry.tasks()] == [running.id, ids[3], ids[2]]
    with pytest.raises(TaskNotFound):
        registry.get(ids[0])
    assert [t.id for t in registry.tasks("running")] == []  # pending until it reports
    assert registry.running_count() == 1


async def test_cancel_delete_and_kernel_failure():
    registry, _ = make()
    external = registry.create("ext")
    registry.request_cancel(external.id)
    assert external.status == "cancelled"  # nobody had started it
    kernel_task = registry.create("k", kernel_id="K1", task_id="abc")
    registry.publish("abc", [("progress", {"current": 1})])
    with pytest.raises(TaskRunning):
        registry.delete("abc")
    registry.request_cancel("abc")
    assert kernel_task.cancel_requested and kernel_task.status == "running"
    commands = registry.commands("K1").after(0)
    assert [(c.type, c.data) for c in commands] == [("cancel", {"task": "abc"})]
    with pytest.raises(TaskExists):
        registry.create("dup", task_id="abc")
    assert registry.fail_kernel_tasks("K1", "kernel K1 died") == ["abc"]
    assert kernel_task.status == "failed" and kernel_task.error["type"] == "KernelDied"
    with pytest.raises(TaskFinished):
        registry.request_cancel("abc")
    registry.delete("abc")
    with pytest.raises(TaskNotFound):
        registry.get("abc")
    assert registry.all_events.tail(1)[0].type == "deleted"


async def test_two_subscribers_each_get_every_event():
    registry, _ = make()
    task = registry.create("job")
    log = registry.event_log(task.id)
    got: list[list] = [[], []]
    subs = [registry.subscribe(log, log.last_id) for _ in range(2)]
    for sub, seen in zip(subs, got):

        def deliver(events, seen=seen) -> bool:
            seen.extend(events)
            return False  # written at once: never paused

        sub.push(deliver, lambda error: None)
    for i in range(20):
        registry.publish(task.id, [("log", {"stream": "stdout", "text": str(i)})])
    for seen in got:
        assert [e.data["text"] for e in seen if e.type == "log"] == [str(i) for i in range(20)]
        assert [e.type for e in seen].count("status") == 1  # pending -> running
    assert registry.subscriber_count == 2
    for sub in subs:
        sub.close()
    assert registry.subscriber_count == 0


async def test_slow_subscriber_is_dropped_and_close_ends_a_reader_at_once():
    registry, _ = make(subscriber_backlog=5)
    task = registry.create("job")
    log = registry.event_log(task.id)
    slow = registry.subscribe(log, log.last_id)
    for i in range(6):
        registry.publish(task.id, [("log", {"stream": "stdout", "text": str(i)})])
    with pytest.raises(SubscriberTooSlow):
        slow.take()
    idle = registry.subscribe(log, log.last_id)
    ends = []
    idle.push(lambda events: False, ends.append)
    idle.close()
    assert ends == [None] and registry.subscriber_count == 1  # the slow one is still registered


async def test_resume_point_refuses_unknown_and_trimmed_ids():
    registry, _ = make(retention_events=10)
    task = registry.create("job")
    for i in range(100):
        registry.publish(task.id, [("log", {"stream": "stdout", "text": str(i)})])
    log = registry.event_log(task.id)
    assert registry.resume_point(log, None) is None
    assert registry.resume_point(log, registry.last_event_id + 1) is None  # from the future
    assert registry.resume_point(log, 3) is None  # trimmed away: a snapshot instead
    assert registry.resume_point(log, log.last_id - 2) == log.last_id - 2


async def test_progress_events_carry_unit_and_message_only_when_they_change():
    registry, clock = make(progress_rate_hz=1000)
    task = registry.create("job", total=10, unit="rows")
    for current, message in [(1, ""), (2, ""), (3, "halfway"), (4, "halfway")]:
        clock.now += 1
        registry.publish(task.id, [("progress", {"current": current, "message": message})])
    progress = [e.data for e in registry.event_log(task.id).after(0) if e.type == "progress"]
    assert [("unit" in d, d.get("message")) for d in progress] == [(True, ""), (False, None), (False, "halfway"), (False, None)]
    assert progress[0]["unit"] == "rows" and all(d["total"] == 10 for d in progress)


async def test_push_readers_get_events_from_the_append_loop_pause_and_catch_up():
    registry, _ = make(subscriber_backlog=50)
    task = registry.create("job")
    log = registry.event_log(task.id)
    sub = registry.subscribe(log, 0)
    got, ends, busy = [], [], [False]

    def deliver(events):
        got.append([e.type for e in events])
        return busy[0]

    sub.push(deliver, ends.append)
    assert got == [["status"]]  # the backlog at once
    busy[0] = True
    # The first line starts the task: its status:running goes out, then the reader is paused.
    registry.publish(task.id, [("log", {"stream": "stdout", "text": "a"})])
    registry.publish(task.id, [("log", {"stream": "stdout", "text": "b"})])  # waits: still writing
    assert got == [["status"], ["status"]] and sub.paused
    busy[0] = False
    sub.resume()  # the write finished: what came meanwhile goes out in one delivery
    assert got[-1] == ["log", "log"] and not sub.paused
    registry.publish(task.id, [("status", {"status": "completed"})])
    assert got[-2:] == [["status"], ["end"]]  # each appended event goes out as it comes
    registry.delete(task.id)  # the log closes: the reader is told, once
    assert ends == [None] and sub.closed and registry.subscriber_count == 0


async def test_a_push_reader_too_far_behind_is_ended_with_the_reason():
    registry, _ = make(subscriber_backlog=3)
    task = registry.create("job")
    sub = registry.subscribe(registry.event_log(task.id), 0)
    ends = []
    sub.push(lambda events: True, ends.append)  # its socket never drains
    for i in range(5):
        registry.publish(task.id, [("log", {"stream": "stdout", "text": str(i)})])
    sub.resume()
    assert len(ends) == 1 and isinstance(ends[0], SubscriberTooSlow)


async def test_events_committed_together_reach_a_push_reader_in_one_delivery(tmp_path):
    # Durable store: events emitted while a commit is on disk are shown together when it
    # lands; a subscriber gets them as one batch (one socket write), in order.
    from jupyter_taskstream.hub.store import SQLiteStore

    registry = TaskRegistry(store=SQLiteStore(path=str(tmp_path / "t.sqlite")))
    registry.load()
    task = registry.create("job")
    await asyncio.wait_for(registry.commit(), 10)
    sub = registry.subscribe(registry.event_log(task.id), registry.event_log(task.id).last_id)
    got: list[list[str]] = []
    sub.push(lambda events: got.append([e.data.get("text") for e in events]) and False, lambda error: None)
    registry.publish(task.id, [("log", {"stream": "stdout", "text": str(i)}) for i in range(5)])
    registry.publish(task.id, [("log", {"stream": "stdout", "text": "5"})])
    assert got == []  # nothing is shown before it is stored
    await asyncio.wait_for(registry.commit(), 10)
    texts = [t for batch in got for t in batch if t is not None]
    assert texts == [str(i) for i in range(6)]
    assert len(got) == 1, got  # status:running and six lines, one delivery
    sub.close()
    registry.close()


async def test_a_fault_in_delivery_is_logged_with_its_traceback_not_taken_for_a_slow_client(caplog):
    from jupyter_taskstream.hub.subscription import StreamClosed

    registry, _ = make()
    task = registry.create("job")
    log = registry.event_log(task.id)

    def broken(events):
        raise ValueError("a bug in delivery")

    def gone(events):
        raise StreamClosed()

    ends = {}
    for name, deliver in (("broken", broken), ("gone", gone)):
        sub = registry.subscribe(log, 0)
        with caplog.at_level("ERROR"):
            sub.push(deliver, lambda error, name=name: ends.__setitem__(name, error))
        assert sub.closed and registry.subscriber_count == 0
    assert isinstance(ends["broken"], ValueError) and isinstance(ends["gone"], StreamClosed)
    errors = [r for r in caplog.records if r.levelname == "ERROR"]
    assert len(errors) == 1, errors  # the bug, not the client that left
    assert "delivering events to a subscriber failed" in errors[0].getMessage()
    assert errors[0].exc_info and errors[0].exc_info[0] is ValueError  # with its traceback


async def test_a_replay_longer_than_the_backlog_goes_out_in_chunks_under_flow_control():
    registry, _ = make(subscriber_backlog=5)
    task = registry.create("job")
    for i in range(23):
        registry.publish(task.id, [("log", {"stream": "stdout", "text": str(i)})])
    sub = registry.subscribe(registry.event_log(task.id), 0)
    got, ends = [], []
    sub.push(lambda events: got.append(len(events)) or True, ends.append)  # each chunk is still writing
    assert got == [5] and sub.paused and not ends
    while sub.paused:
        sub.resume()
    assert got == [5, 5, 5, 5, 5] and not ends  # 25 events: pending, running, 23 lines
    for i in range(6):  # past the backlog of live events: that is falling behind
        registry.publish(task.id, [("log", {"stream": "stdout", "text": str(i)})])
    assert got == [5, 5, 5, 5, 5, 1]
    sub.paused = True
    for i in range(6):
        registry.publish(task.id, [("log", {"stream": "stdout", "text": str(i)})])
    sub.resume()
    assert len(ends) == 1 and isinstance(ends[0], SubscriberTooSlow)


async def test_an_event_the_store_cannot_write_fails_only_its_own_request_at_once(tmp_path, caplog):
    # Issue 15, defect 7: text SQLite cannot encode (a lone surrogate that got past the checks)
    # failed the whole group commit, and with it every request committed alongside.
    from jupyter_taskstream.hub.store import SQLiteStore, StoreError

    registry = TaskRegistry(store=SQLiteStore(path=str(tmp_path / "t.sqlite")))
    registry.load()
    try:
        good, bad = registry.create("good"), registry.create("bad")
        await registry.commit()
        registry.publish(good.id, [("log", {"stream": "stdout", "text": "kept"})])
        ok = asyncio.ensure_future(registry.commit())
        registry.publish(bad.id, [("log", {"stream": "stdout", "text": "bad \ud800 text"})])
        refused = asyncio.ensure_future(registry.commit())
        registry.publish(good.id, [("log", {"stream": "stdout", "text": "kept too"})])
        later = asyncio.ensure_future(registry.commit())
        await asyncio.wait_for(asyncio.wait([ok, refused, later]), 5)
        assert ok.exception() is None and later.exception() is None
        assert isinstance(refused.exception(), StoreError)
        texts = [e.data["text"] for e in registry.event_log(good.id).after(0) if e.type == "log"]
        assert texts == ["kept", "kept too"]
        assert [e.type for e in registry.event_log(bad.id).after(0)] == ["status", "status"]  # pending, running
        assert "could not be stored" in caplog.text and "surrogate" in caplog.text
    finally:
        registry.close()
