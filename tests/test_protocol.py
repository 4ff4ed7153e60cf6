"""The shared task model: validation that names fields, and the snapshot shape."""

from __future__ import annotations

import json
import random
import re

import pytest

from jupyter_taskstream.errors import TaskFinished, ValidationError
from jupyter_taskstream.protocol import (
    TEXT_BATCH_TYPE, JoinedLines, TaskState, decode_text_batch, encode_batch, iso_time, joined, line_chars, new_task_id,
    validate_event, validate_task_spec,
)  # fmt: skip

SNAPSHOT_KEYS = {
    "id", "name", "status", "progress", "message", "kernel_id", "created", "started",
    "finished", "error", "cancel_requested", "display_status", "last_event_id", "log_dropped", "bars",
}  # fmt: skip


def test_new_task_id_is_short_url_safe_and_random():
    ids = {new_task_id() for _ in range(1000)}
    assert len(ids) == 1000
    assert all(re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_-]{7,15}", i) for i in ids)  # never a leading '-'


def test_iso_time_is_utc_with_z():
    assert iso_time(0) == "1970-01-01T00:00:00.000000Z"
    assert iso_time(None) is None


@pytest.mark.parametrize(
    ("etype", "data", "field"),
    [
        ("nope", {}, "events[0].type"),
        ("progress", [], "events[0].data"),
        ("progress", {}, "events[0].data.current"),
        ("progress", {"current": "3"}, "events[0].data.current"),
        ("progress", {"current": True}, "events[0].data.current"),
        ("progress", {"current": -1}, "events[0].data.current"),
        ("progress", {"current": 1, "total": "x"}, "events[0].data.total"),
        ("progress", {"current": 1, "rate": float("inf")}, "events[0].data.rate"),
        ("progress", {"current": 1, "bogus": 1}, "events[0].data.bogus"),
        ("log", {"text": 3}, "events[0].data.text"),
        ("log", {"text": "x", "stream": "stdin"}, "events[0].data.stream"),
        ("log", {"lines": "a\nb"}, "events[0].data.lines"),
        ("log", {"lines": []}, "events[0].data.lines"),
        ("log", {"lines": ["a", 2]}, "events[0].data.lines[1]"),
        ("log", {"lines": ["a"], "text": "b"}, "events[0].data.lines"),
        ("log", {"lines": ["a"], "stream": "stdin"}, "events[0].data.stream"),
        ("status", {"status": "done"}, "events[0].data.status"),
        ("status", {"status": "failed", "error": "boom"}, "events[0].data.error"),
        ("status", {"status": "failed", "error": {"type": 1}}, "events[0].data.error.type"),
    ],
)
def test_validate_event_names_the_field(etype, data, field):
    with pytest.raises(ValidationError) as info:
        validate_event(etype, data, "events[0]")
    assert info.value.field == field
    assert str(info.value).startswith(field)


def test_validate_event_normalizes():
    assert validate_event("log", {"text": "hi"}) == ("log", {"stream": "stdout", "text": "hi"})
    assert validate_event("log", {"lines": ["a", ""]}) == ("log", {"stream": "stdout", "lines": ["a", ""]})
    assert validate_event("progress", {"current": 2, "total": None}) == ("progress", {"current": 2, "total": None})
    _, data = validate_event("status", {"status": "failed", "error": {"message": "x"}})
    assert data["error"] == {"type": "Error", "message": "x", "traceback": ""}


def test_validate_task_spec():
    assert validate_task_spec({"name": "a", "total": 3}, "", require_id=False) == {
        "name": "a", "total": 3, "unit": "it",
    }  # fmt: skip
    for body, field in [
        ({}, "name"),
        ({"name": ""}, "name"),
        ({"name": "x" * 201}, "name"),
        ({"name": "a", "total": -2}, "total"),
        ({"name": "a", "extra": 1}, "extra"),
        ({"name": "a", "id": "no spaces"}, "id"),
        ([], "body"),
    ]:
        with pytest.raises(ValidationError) as info:
            validate_task_spec(body, "", require_id=False)
        assert info.value.field == field


def test_snapshot_shape_and_progress_math():
    task = TaskState("t1", "job", now=100.0, total=10)
    snap = task.snapshot()
    assert set(snap) == SNAPSHOT_KEYS
    assert snap["status"] == "pending" and snap["started"] is None
    assert snap["progress"] == {"current": 0, "total": 10, "fraction": 0.0, "unit": "it", "rate": None, "eta": None}
    task.apply("progress", {"current": 2}, 101.0)
    assert task.status == "running" and task.started == 101.0
    task.apply("progress", {"current": 4}, 102.0)  # 2 items in 1 s
    p = task.progress()
    assert p["fraction"] == pytest.approx(0.4)
    assert p["rate"] == pytest.approx(2.0)
    assert p["eta"] == pytest.approx(3.0)
    task.apply("progress", {"current": 5, "rate": 10.0}, 103.0)  # the publisher's rate wins
    assert task.progress()["rate"] == 10.0 and task.progress()["eta"] == pytest.approx(0.5)


def test_terminal_status_is_final():
    task = TaskState("t1", "job", now=0.0)
    task.apply("status", {"status": "failed", "error": {"type": "E", "message": "m", "traceback": "tb"}}, 5.0)
    assert task.terminal and task.finished == 5.0
    assert task.snapshot()["error"]["traceback"] == "tb"
    with pytest.raises(TaskFinished, match="already finished"):
        task.apply("log", {"stream": "stdout", "text": "late"}, 6.0)


def test_zero_total_and_unknown_total_fraction():
    task = TaskState("t", "n", now=0.0, total=0)
    assert task.progress()["fraction"] == 0.0
    task.apply("status", {"status": "completed"}, 1.0)
    assert task.progress()["fraction"] == 1.0
    assert TaskState("u", "n", now=0.0).progress()["fraction"] is None


def test_status_events_can_carry_a_cancel_request_and_never_go_backwards():
    _, data = validate_event("status", {"status": "running", "cancel_requested": True})
    with pytest.raises(ValidationError) as info:
        validate_event("status", {"status": "running", "cancel_requested": False}, "e")
    assert info.value.field == "e.data.cancel_requested"
    task = TaskState("t", "n", now=0.0)
    task.apply("status", data, 1.0)
    assert task.cancel_requested and task.status == "running"
    task.apply("status", {"status": "pending"}, 2.0)
    assert task.status == "running"


def test_unknown_fields_are_one_check_strict_or_counted():
    from jupyter_taskstream.protocol import check_fields

    with pytest.raises(ValidationError) as info:
        check_fields({"a": 1, "zz": 2, "b": 3}, ("a",), "events[0].data")
    assert info.value.field == "events[0].data.b"  # the first, by name
    ignored: list[str] = []
    check_fields({"a": 1, "zz": 2, "b": 3}, ("a",), "", ignored)
    assert ignored == ["b", "zz"]
    ignored = []
    assert validate_event("log", {"text": "x", "at": 1}, "events[3]", ignored) == ("log", {"stream": "stdout", "text": "x"})
    assert ignored == ["events[3].data.at"]
    spec = validate_task_spec({"name": "a", "colour": "red"}, "tasks[0]", require_id=False, ignored=ignored)
    assert spec == {"name": "a", "total": None, "unit": "it"} and ignored[-1] == "tasks[0].colour"


def test_task_spec_unit_and_kernel_id_rules():
    for unit in ("", "u" * 51, 3):
        with pytest.raises(ValidationError) as info:
            validate_task_spec({"name": "a", "unit": unit}, "", require_id=False)
        assert info.value.field == "unit"
    with pytest.raises(ValidationError) as info:
        validate_task_spec({"name": "a", "kernel_id": "k"}, "", require_id=False)
    assert info.value.field == "kernel_id"  # a user may not claim a kernel's task...
    assert validate_task_spec({"name": "a", "kernel_id": "k"}, "", require_id=False, from_kernel=True)["kernel_id"] == "k"
    ran = validate_task_spec({"name": "a", "kernel_id": "k", "code": "1"}, "", require_id=False, can_run_code=True)
    assert ran["code"] == "1"  # ...only name the kernel to run code in (POST tasks)
    with pytest.raises(ValidationError) as info:
        validate_task_spec({"name": "a", "kernel_id": "k", "code": "1"}, "t", require_id=False)
    assert info.value.field == "t.code"


def test_extreme_counts_never_make_a_snapshot_unencodable():
    """Found by schemathesis: finite inputs whose rate or ETA overflow made every listing a 500."""
    import json

    from jupyter_taskstream.protocol import TaskState
    from jupyter_taskstream.protocol.validate import MAX_COUNT

    fast = TaskState("a", "n", now=0.0, total=1e308)
    fast.apply("progress", {"current": 0}, 0.0)
    fast.apply("progress", {"current": 1.7e308}, 1e-3)
    slow = TaskState("b", "n", now=0.0, total=1e308)
    slow.apply("progress", {"current": 0, "rate": 5e-324}, 0.0)
    # Found by schemathesis in CI: the largest float rounded to 4 digits overflows to inf.
    largest = TaskState("c", "n", now=0.0, total=1)
    largest.apply("progress", {"current": 2.0, "rate": 1.7976931348623157e308}, 1.0)
    # Found by schemathesis in CI: 1e308 counted in 0.915 s is a finite rate past the contract's 1e308.
    past = TaskState("d", "n", now=0.0, total=1e308)
    past.apply("progress", {"current": 0}, 0.0)
    past.apply("progress", {"current": 1e308}, 0.915)
    edge = TaskState("e", "n", now=0.0, total=1)
    edge.apply("progress", {"current": 2.0, "rate": 9.99999e307}, 1.0)
    for task in (fast, slow, largest, past, edge):
        json.dumps(task.snapshot(), allow_nan=False)
        for key in ("rate", "eta"):
            value = task.progress()[key]
            assert value is None or 0 <= value <= MAX_COUNT, (task.id, key, value)
    assert largest.progress()["rate"] is None and past.progress()["rate"] is None
    assert fast.progress()["rate"] is None and slow.progress()["eta"] is None
    assert edge.progress()["rate"] == MAX_COUNT  # rounded to 4 digits, not past the range


@pytest.mark.parametrize(
    "lines",
    [["one"], ["", ""], ["é ✓ 𝄞", "tab\there", "cr\rkept"], [f"n={i}" for i in range(1000)], ["lone \ud800 surrogate"]],
)
def test_a_text_batch_decodes_to_the_json_batch_it_stands_for(lines):
    batch = {
        "protocol": 4, "seq": 3,
        "events": [
            {"task": "t", "type": "log", "data": {"stream": "stdout", "lines": lines}},
            {"task": "t", "type": "log", "data": {"stream": "stdout", "text": "one line"}},
            {"task": "t", "type": "log", "data": {"stream": "stderr", "lines": ["after"]}},
        ],
    }  # fmt: skip
    body, content_type = encode_batch(batch, text=True)
    assert content_type == TEXT_BATCH_TYPE
    expected = json.loads(encode_batch(batch)[0])  # what the JSON form carries (U+FFFD for a lone surrogate)
    assert decode_text_batch(body) == expected


def _line_sets() -> list[list[str]]:
    """Even, uneven and skewed line lengths (long lines first, then many short ones), empty lines."""
    rng = random.Random(16)
    return [
        ["only"], [""], ["", "", ""],
        [f"line {i} of the output" for i in range(5000)],
        ["x" * rng.randrange(0, 300) for _ in range(3000)],
        ["y" * 2000] * 200 + ["z"] * 20000,
        ["a"] * 20000 + ["b" * 5000] * 10,
    ]  # fmt: skip


@pytest.mark.parametrize("lines", _line_sets(), ids=lambda lines: f"{len(lines)}-lines")
def test_joined_lines_read_as_the_list_they_hold(lines):
    joined_lines = JoinedLines("\n".join(lines), len(lines))
    assert len(joined_lines) == len(lines) and joined_lines == lines and list(joined_lines) == lines
    assert joined(joined_lines) == "\n".join(lines) and line_chars(joined_lines) == sum(map(len, lines))
    for k in {1, 2, 20, len(lines) - 1, len(lines), len(lines) + 5}:
        assert joined_lines[-k:] == lines[-k:]  # the views' tail
    rng = random.Random(len(lines))
    for n in {1, len(lines), *(rng.randrange(1, len(lines) + 1) for _ in range(20))}:
        end = joined_lines.end_of(n)
        assert joined_lines.text[:end] == "\n".join(lines[:n])
        if n < len(lines):
            head, rest = joined_lines.cut(n)
            assert (head, rest) == (lines[:n], lines[n:]) and isinstance(rest, JoinedLines)


def test_joined_lines_refuse_what_they_cannot_hold():
    with pytest.raises(ValueError, match="at least one line"):
        JoinedLines("", 0)
    with pytest.raises(IndexError, match="between 1 and the 2 lines"):
        JoinedLines("a\nb", 2).end_of(3)


@pytest.mark.parametrize("text", [False, True])
def test_a_batch_of_joined_lines_is_the_body_of_its_list(text):
    lines = ["é ✓ 𝄞", "", "lone \ud800 surrogate", *(f"n={i}" for i in range(100))]

    def batch(held):
        return {"protocol": 4, "seq": 1, "events": [
            {"task": "t", "type": "log", "data": {"stream": "stdout", "lines": held}},
            {"task": "t", "type": "status", "data": {"status": "completed"}},
        ]}  # fmt: skip

    assert encode_batch(batch(JoinedLines("\n".join(lines), len(lines))), text) == encode_batch(batch(lines), text)
