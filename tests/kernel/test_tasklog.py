"""A task's log: what its sink gets for print()'s lines, long lines and both streams, and the tail."""

from __future__ import annotations

import threading

from jupyter_taskstream.kernel.lines import MAX_PARTIAL_CHARS
from jupyter_taskstream.kernel.tasklog import TaskLog
from jupyter_taskstream.protocol import JoinedLines


def _log(keep: int = 100) -> tuple[TaskLog, list]:
    got: list = []
    log = TaskLog(threading.Lock(), lambda: None, lambda stream, lines: got.append((stream, lines)))
    log.keep = keep
    return log, got


def _print(log: TaskLog, *args: str, stderr: bool = False) -> None:
    """What print() writes, as the capture appends it (stderr chunks are 1-tuples)."""
    pieces = [piece for arg in args for piece in (arg, " ")][:-1] + ["\n"]  # one write per argument and separator
    for piece in pieces:
        log.pending.chunks.append((piece,) if stderr else piece)


def test_print_lines_reach_the_sink_joined_and_the_tail_is_right():
    log, got = _log(keep=5)
    for i in range(1000):
        _print(log, "line", str(i), "of", "output")
    log.split()
    assert [(stream, type(lines)) for stream, lines in got] == [("stdout", JoinedLines)]
    assert got[0][1] == [f"line {i} of output" for i in range(1000)] and log.count == 1000
    assert [line["text"] for line in log.tail_dicts()] == [f"line {i} of output" for i in range(995, 1000)]


def test_both_streams_keep_their_order_and_a_long_line_is_cut():
    log, got = _log()
    _print(log, "out", "1")
    _print(log, "err", "1", stderr=True)
    _print(log, "x" * (MAX_PARTIAL_CHARS + 10))
    _print(log, "out", "2")
    log.split()
    flat = [(stream, line) for stream, lines in got for line in lines]
    assert flat == [("stdout", "out 1"), ("stderr", "err 1"), ("stdout", "x" * MAX_PARTIAL_CHARS),
                    ("stdout", "x" * 10), ("stdout", "out 2")]  # fmt: skip
    assert log.count == 5 and [line["text"] for line in log.tail_dicts()][-1] == "out 2"
