"""The bounded event log and its cursors."""

from __future__ import annotations

import asyncio
import gc

import pytest

from jupyter_taskstream.hub.eventlog import (
    Event,
    EventLog,
    Gap,
    LineEvent,
    append_by_task,
    count_lines,
    line_events,
)


def fill(log: EventLog, ids) -> None:
    for i in ids:
        log.append(Event(i, "t", "log", {"stream": "stdout", "text": str(i)}))


def test_after_returns_events_past_the_cursor_in_order():
    log = EventLog(100)
    fill(log, [2, 5, 9])
    assert [e.id for e in log.after(0)] == [2, 5, 9]
    assert [e.id for e in log.after(5)] == [9]
    assert [e.id for e in log.after(6)] == [9]
    assert log.after(9) == []


def test_ids_must_increase():
    log = EventLog(10)
    fill(log, [3])
    with pytest.raises(ValueError, match="not above"):
        fill(log, [3])


def test_retention_trims_oldest_and_reports_a_gap():
    log = EventLog(100)
    fill(log, range(1, 1001))
    assert 100 <= len(log) <= 100 + 16 + 100 // 8
    assert log.last_id == 1000
    assert log.trimmed_through == log.after(log.trimmed_through)[0].id - 1
    with pytest.raises(Gap):
        log.after(5)


def test_tail_filters_by_type():
    log = EventLog(100)
    fill(log, [1, 2])
    log.append(Event(3, "t", "progress", {"current": 1}))
    assert [e.id for e in log.tail(5, "log")] == [1, 2]
    assert [e.id for e in log.tail(1)] == [3]


def test_before_pages_back_by_type_above_a_floor():
    log = EventLog(100)
    fill(log, [1, 2, 4, 7, 8])
    log.append(Event(9, "t", "progress", {"current": 1}))
    fill(log, [10])
    assert [e.id for e in log.before(10, 2, "log")] == [7, 8]
    assert [e.id for e in log.before(11, 2, "log")] == [8, 10]  # the progress event does not count
    assert [e.id for e in log.before(7, 10, "log")] == [1, 2, 4]
    assert [e.id for e in log.before(8, 10, "log", floor=2)] == [4, 7]
    assert log.before(1, 10, "log") == [] and log.before(99, 0, "log") == []


def test_sse_bytes_are_encoded_once_and_carry_task_on_the_all_stream():
    event = Event(4, "abc", "log", {"stream": "stdout", "text": "hi"})
    assert event.sse() is event.sse()
    assert event.sse() == b'id: 4\nevent: log\ndata: {"stream":"stdout","text":"hi"}\n\n'
    assert event.sse_all() == b'id: 4\nevent: log\ndata: {"stream":"stdout","text":"hi","task":"abc"}\n\n'


async def test_wait_wakes_on_append_and_times_out():
    log = EventLog(10)
    assert await log.wait(0, 0.01) is False
    waiter = asyncio.ensure_future(log.wait(0, 5))
    await asyncio.sleep(0)
    assert not waiter.done()
    fill(log, [1])
    assert await asyncio.wait_for(waiter, 1) is True
    assert await log.wait(0, 0) is True  # already newer: returns at once


async def test_close_wakes_waiters():
    log = EventLog(10)
    waiter = asyncio.ensure_future(log.wait(0, 5))
    await asyncio.sleep(0)
    log.close()
    assert await asyncio.wait_for(waiter, 1) is True


def test_a_batch_of_lines_is_one_event_per_line_in_one_pass():
    data = {"stream": "stderr", "lines": ["a", "é" * 10, "b"]}
    events = line_events(7, "t", data, limit=16)  # the second line is 20 bytes: split, never cut
    assert [(e.id, e.type, e.data) for e in events] == [
        (7, "log", {"stream": "stderr", "text": "a"}),
        (8, "log", {"stream": "stderr", "text": "é" * 8}),
        (9, "log", {"stream": "stderr", "text": "éé"}),
        (10, "log", {"stream": "stderr", "text": "b"}),
    ]
    assert all(isinstance(e, LineEvent) for e in events)
    assert events[0].sse_all() == b'id: 7\nevent: log\ndata: {"stream":"stderr","text":"a","task":"t"}\n\n'
    marker = Event(11, "t", "log", {"stream": "stderr", "text": "… 2 lines dropped …", "dropped": 2})
    assert count_lines([*events, marker, Event(12, "t", "status", {"status": "running"})]) == 4


def test_a_large_batch_is_made_with_the_collector_paused_and_leaves_it_as_it_was():
    collections = []
    callback = lambda phase, info: collections.append(phase)  # noqa: E731
    gc.callbacks.append(callback)
    try:
        events = line_events(1, "t", {"stream": "stdout", "lines": [f"n={i}" for i in range(50_000)]}, 0)
    finally:
        gc.callbacks.remove(callback)
    assert [e.text for e in events[:2]] == ["n=0", "n=1"] and events[-1].id == 50_000
    # 50,000 tracked objects would start ~70 young collections; paused, none ran meanwhile.
    assert collections == [] and gc.isenabled()
    gc.disable()
    try:
        line_events(1, "t", {"stream": "stdout", "lines": ["x"] * 5_000}, 0)
        assert not gc.isenabled()  # a caller's own pause is left alone
    finally:
        gc.enable()


def test_extend_trims_like_append_and_runs_go_to_their_tasks_logs():
    logs = {"a": EventLog(5), "b": EventLog(5)}
    events = [*line_events(1, "a", {"stream": "stdout", "lines": list("abcdefghijklmnopqrstuvwx")}, 0),
              *line_events(25, "b", {"stream": "stdout", "text": "y"}, 0),
              Event(26, "a", "deleted", {}), Event(27, "gone", "log", {"stream": "stdout", "text": "z"})]
    woken = append_by_task(events, logs)
    assert set(woken) == {"a", "b"}
    assert [e.id for e in logs["a"].after(19)] == [20, 21, 22, 23, 24]  # the newest 5 of 24
    assert logs["a"].trimmed_through == 19 and logs["b"].last_id == 25
    with pytest.raises(Gap):
        logs["a"].after(3)
    with pytest.raises(ValueError):
        logs["a"].extend(line_events(24, "a", {"stream": "stdout", "text": "again"}, 0))
