"""Events as the SQLite store's rows and runs."""

from __future__ import annotations

from jupyter_taskstream.hub.eventlog import Event, LineEvent
from jupyter_taskstream.hub.storerows import rows_and_runs, without_trimmed


def test_lines_of_one_stream_are_runs_and_everything_else_rows():
    events = [LineEvent(1, "a", "stdout", "x"), LineEvent(2, "a", "stdout", "y"), LineEvent(3, "a", "stderr", "z"),
              Event(4, "a", "status", {"status": "running"}), Event(5, "a", "log", {"stream": "stdout", "text": "w"})]
    rows, runs = rows_and_runs(events)
    assert rows == [(4, "a", "status", '{"status": "running"}')]
    assert runs == [[1, 2, "a", "stdout", ["x", "y"]], [3, 3, "a", "stderr", ["z"]], [5, 5, "a", "stdout", ["w"]]]


def test_runs_lose_exactly_the_lines_their_tasks_trimmed():
    runs = [[1, 10, "a", "stdout", list("abcdefghij")], [11, 12, "a", "stderr", ["k", "l"]], [13, 15, "b", "stdout", ["m", "n", "o"]]]
    assert without_trimmed(runs, {}) is runs
    assert without_trimmed(runs, {"a": 11, "b": 13}) == [[12, 12, "a", "stderr", ["l"]], [14, 15, "b", "stdout", ["n", "o"]]]
    assert without_trimmed(runs, {"a": 3}) == [[4, 10, "a", "stdout", list("defghij")], *runs[1:]]
