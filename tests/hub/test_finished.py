"""The finished-log budget: the oldest finished tasks' logs are cut, counted, and pruned on disk."""

from __future__ import annotations

import sqlite3

import pytest
from traitlets import TraitError

from jupyter_taskstream.hub.registry import TaskRegistry
from jupyter_taskstream.hub.store import SQLiteStore

from ..conftest import wait_for

pytestmark = pytest.mark.timeout(60)


async def finished(registry: TaskRegistry, name: str, lines: int) -> str:
    """A task that printed ``lines`` lines and completed; returns its id."""
    task = registry.create(name)
    registry.publish(task.id, [("log", {"stream": "stdout", "lines": [f"{name} {i}" for i in range(lines)]})])
    registry.publish(task.id, [("status", {"status": "completed"})])
    await registry.commit()
    return task.id


def kept_lines(registry: TaskRegistry, task_id: str) -> list[str]:
    return [e.data["text"] for e in registry.event_log(task_id).tail(10_000, "log")]


@pytest.mark.parametrize("durable", [False, True])
async def test_past_the_budget_the_oldest_finished_logs_keep_their_tail_and_count_the_rest(tmp_path, durable):
    store = SQLiteStore(path=str(tmp_path / "tasks.sqlite")) if durable else None
    registry = TaskRegistry(retention_finished_events=260, snapshot_log_lines=10, **({"store": store} if store else {}))
    if store:
        registry.load()
    # Each task's log holds its 100 lines, three statuses (pending, running, completed) and the end.
    first = await finished(registry, "first", 100)
    second = await finished(registry, "second", 100)
    assert len(registry.event_log(first)) == 104 and registry.snapshot(first)["log_dropped"] == 0
    third = await finished(registry, "third", 100)  # 312 events > 260: the oldest is cut to 10
    assert len(registry.event_log(first)) == 10
    assert kept_lines(registry, first) == [f"first {i}" for i in range(92, 100)]
    # Lines, not the statuses cut with them. A durable hub shows it once the record is stored:
    # a round of its own, after the one that stored the end.
    await wait_for(lambda: registry.snapshot(first)["log_dropped"] == 92, message="the trim shown")
    assert [len(registry.event_log(t)) for t in (second, third)] == [104, 104]
    assert registry.snapshot(second)["log_dropped"] == 0
    # A reader resuming from before the cut gets told, as for any trim.
    assert registry.event_log(first).trimmed_through > 0
    if store:
        registry.close()
        with sqlite3.connect(tmp_path / "tasks.sqlite") as db:
            (count,) = db.execute("SELECT sum(last - id + 1) FROM lines WHERE task = ?", (first,)).fetchone()
        assert count == 8  # the cut lines are gone from the disk too


async def test_a_restart_over_the_budget_trims_at_load_and_shows_it(tmp_path):
    """A store written with a larger budget (or by an older hub) is brought within it at start."""
    path = str(tmp_path / "tasks.sqlite")
    registry = TaskRegistry(store=SQLiteStore(path=path))
    registry.load()
    ids = [await finished(registry, name, 200) for name in ("a", "b", "c")]
    registry.close()

    again = TaskRegistry(store=SQLiteStore(path=path), retention_finished_events=300, snapshot_log_lines=5)
    again.load()
    try:
        assert [len(again.event_log(t)) for t in ids] == [5, 5, 204]  # 612 held: a and b cut
        assert kept_lines(again, ids[0]) == [f"a {i}" for i in range(197, 200)]
        assert [again.snapshot(t)["log_dropped"] for t in ids] == [197, 197, 0]
    finally:
        again.close()


def test_the_budget_is_a_documented_option_that_refuses_a_negative_value():
    from jupyter_taskstream.hub.app import TaskStreamApp

    assert "retention_finished_events" in TaskStreamApp.class_traits(config=True)
    assert "log_dropped" in TaskStreamApp.class_traits()["retention_finished_events"].help
    with pytest.raises(TraitError):
        TaskRegistry(retention_finished_events=-1)
