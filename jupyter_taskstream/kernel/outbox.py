"""The publisher's bounded buffer: what waits to go to the hub, shed when full, cut into batches.

Producers (task threads, the view pump) only append to a `collections.deque`, which is
thread-safe for append/popleft in CPython: an asynchronous `TaskCancelled` landing in a task
thread cannot leave a lock held here. The buffer counts events as the hub counts them (one
per log line). Beyond ``max_buffered``, older progress of a task is replaced by its latest
value and the oldest log lines are dropped, keeping task specs and statuses; each run of
dropped lines of a task's stream leaves one marker event in its place (a ``log`` event with
``dropped``: N and the text ``… N lines dropped …``), so the hub counts them in
``log_dropped`` and readers see the gap where it is. `take` cuts
the next batch by event count and approximate size, merging consecutive lines of one task
and stream into one ``log`` event whose ``lines`` holds them.
"""

from __future__ import annotations

import threading
from collections import deque
from typing import Any

from ..protocol import JoinedLines, dropped_marker, joined, line_chars
from ..protocol.batchbody import Lines

__all__ = ["Outbox"]

#: Rough JSON overhead of one event besides its text, for sizing batches.
EVENT_OVERHEAD = 100
#: Rough JSON overhead of one more line in a log event's ``lines``.
LINE_OVERHEAD = 4

Item = tuple[str, Any]  # ("spec", spec) or ("event", {"task", "type", "data"})


def lines_bytes(lines: Lines) -> int:
    """Rough JSON size of a log event holding ``lines``."""
    return EVENT_OVERHEAD + line_chars(lines) + LINE_OVERHEAD * len(lines)


class Outbox:
    """Queued task specs and events, bounded to about ``max_buffered`` events."""

    def __init__(self, max_buffered: int = 1_000_000, max_batch_events: int = 50_000, max_batch_bytes: int = 2_000_000):
        if max_buffered < 1 or max_batch_events < 1:
            raise ValueError("max_buffered and max_batch_events must be at least 1")
        self.max_buffered = max_buffered
        self.max_batch_events = max_batch_events
        self.max_batch_bytes = max_batch_bytes
        #: Log lines dropped to stay within ``max_buffered``.
        self.dropped_lines = 0
        self._queue: deque[Item] = deque()
        #: Lines queued beyond one per queue item (what multi-line log items add to the count).
        self._extra_lines = 0
        self._lock = threading.Lock()  # taking a batch vs shedding: producers never take it per event

    def __len__(self) -> int:
        """Events queued, as the hub counts them (one per log line)."""
        return len(self._queue) + self._extra_lines

    def __bool__(self) -> bool:
        return bool(self._queue)

    def items(self) -> list[Item]:
        """A copy of what is queued, oldest first."""
        with self._lock:
            return list(self._queue)

    def put(self, item: Item) -> bool:
        """Queue a spec or one event; True if old lines had to be dropped to make room."""
        self._queue.append(item)
        return self._check_room()

    def put_lines(self, task_id: str, stream: str, lines: Lines) -> bool:
        """Queue lines of one task and stream as one item; True if old lines were dropped."""
        item = ("event", {"task": task_id, "type": "log", "data": {"stream": stream, "lines": lines}})
        with self._lock:  # once per batch of lines, so the count of queued lines stays exact
            self._queue.append(item)
            self._extra_lines += len(lines) - 1
        return self._check_room()

    def _check_room(self) -> bool:
        if len(self._queue) + self._extra_lines <= self.max_buffered:
            return False
        before = self.dropped_lines
        self._shed()
        return self.dropped_lines > before

    def _shed(self) -> None:
        """Make room: latest progress per task wins, then the oldest log lines go."""
        with self._lock:
            count = len(self._queue)
            if count + self._extra_lines <= self.max_buffered:
                return
            items = [self._queue.popleft() for _ in range(count)]
            latest: dict[str, int] = {}
            for i, (kind, payload) in enumerate(items):
                if kind == "event" and payload["type"] == "progress":
                    latest[payload["task"]] = i
            kept = [
                item for i, item in enumerate(items)
                if not (item[0] == "event" and item[1]["type"] == "progress" and latest[item[1]["task"]] != i)
            ]  # fmt: skip
            # Shed to three quarters, so the next shed is many events away.
            excess = len(kept) + self._extra_lines - self.max_buffered * 3 // 4
            out: list[Item] = []
            #: where in ``out`` the marker of the gap open in each task's stream is
            gaps: dict[tuple[str, str], int] = {}
            for item in kept:
                if item[0] == "event" and item[1]["type"] == "log":
                    data = item[1]["data"]
                    key = (item[1]["task"], data["stream"])
                    if "dropped" in data:  # a marker from an earlier shed
                        if key in gaps:
                            self._mark(out, gaps, key, data["dropped"])
                            continue
                        gaps[key] = len(out)
                    elif excess > 0:
                        lines = data.get("lines")
                        if lines is None or len(lines) <= excess:
                            n = 1 if lines is None else len(lines)
                            excess -= n
                            self.dropped_lines += n
                            self._mark(out, gaps, key, n)
                            continue
                        # Part of a batch of lines goes: its oldest.
                        self.dropped_lines += excess
                        self._mark(out, gaps, key, excess)
                        item = ("event", {**item[1], "data": {**data, "lines": _cut(lines, excess)[1]}})
                        excess = 0
                        gaps.pop(key, None)
                    else:
                        gaps.pop(key, None)  # a kept line closes the gap: a later one gets its own marker
                out.append(item)
            self._extra_lines = sum(
                len(p["data"]["lines"]) - 1 for kind, p in out if kind == "event" and "lines" in p["data"]
            )
            self._queue.extendleft(reversed(out))

    def mark_dropped(self, task_id: str, stream: str, count: int) -> None:
        """Queue a marker of ``count`` lines of a task's stream lost elsewhere (a refused batch)."""
        self.put(("event", {"task": task_id, "type": "log", "data": _marker(stream, count)}))

    @staticmethod
    def _mark(out: list[Item], gaps: dict[tuple[str, str], int], key: tuple[str, str], count: int) -> None:
        """Count ``count`` more dropped lines into the open gap's marker, or open one here."""
        at = gaps.get(key)
        if at is None:
            gaps[key] = len(out)
            out.append(("event", {"task": key[0], "type": "log", "data": _marker(key[1], count)}))
            return
        payload = out[at][1]
        out[at] = ("event", {**payload, "data": _marker(key[1], payload["data"]["dropped"] + count)})

    def take(self) -> tuple[list[dict], list[dict], int] | None:
        """The next batch as ``(specs, events, event_count)``, or None when nothing is queued."""
        with self._lock:
            if not self._queue:
                return None
            specs: list[dict] = []
            events: list[dict] = []
            count, size = 0, 0
            #: the log events' lines by index in ``events``, as queued: joined once at the end
            runs: dict[int, list[Lines]] = {}
            while self._queue and count < self.max_batch_events and size < self.max_batch_bytes:
                kind, payload = self._queue.popleft()
                if kind == "spec":
                    specs.append(payload)
                    size += EVENT_OVERHEAD
                    continue
                lines = payload["data"].get("lines")
                if lines is None:
                    events.append(payload)
                    count += 1
                    size += EVENT_OVERHEAD + len(payload["data"].get("text", ""))
                    continue
                self._extra_lines -= len(lines) - 1
                nbytes = lines_bytes(lines)
                count_room, byte_room = self.max_batch_events - count, self.max_batch_bytes - size
                if len(lines) > count_room or nbytes > byte_room:
                    taken = _fit(lines, count_room, byte_room, count > 0)
                else:
                    taken = len(lines)
                if taken == 0:  # a line too long for what is left: it leads the next batch
                    self._queue.appendleft((kind, payload))
                    self._extra_lines += len(lines) - 1
                    break
                if taken < len(lines):  # the rest leads the next batch
                    lines, rest = _cut(lines, taken)
                    self._queue.appendleft(("event", {**payload, "data": {**payload["data"], "lines": rest}}))
                    self._extra_lines += len(rest) - 1
                    nbytes = lines_bytes(lines)
                count += len(lines)
                size += nbytes
                last = len(events) - 1
                if (
                    last in runs and events[last]["task"] == payload["task"]
                    and events[last]["data"]["stream"] == payload["data"]["stream"]
                ):  # fmt: skip
                    runs[last].append(lines)  # consecutive lines of one task's stream: one event
                else:
                    runs[len(events)] = [lines]
                    events.append({**payload, "data": dict(payload["data"])})
            for at, pieces in runs.items():
                events[at]["data"]["lines"] = _concat(pieces)
        return specs, events, count


def _marker(stream: str, count: int) -> dict:
    return {"stream": stream, "text": dropped_marker(count), "dropped": count}


def _concat(pieces: list[Lines]) -> Lines:
    """One run of lines from consecutive pieces: a list if all are, else joined text (one join)."""
    if len(pieces) == 1:
        return pieces[0]
    if any(type(piece) is JoinedLines for piece in pieces):
        return JoinedLines("\n".join(map(joined, pieces)), sum(map(len, pieces)))
    return [line for piece in pieces for line in piece]


def _cut(lines: Lines, n: int) -> tuple[Lines, Lines]:
    """The first ``n`` of ``lines`` and the rest (``0 < n < len``), joined ones still joined."""
    if type(lines) is JoinedLines:
        return lines.cut(n)
    return lines[:n], lines[n:]


def _fit(lines: Lines, count_room: int, byte_room: int, started: bool) -> int:
    """How many of ``lines`` fit in the room a batch has left (one at least, unless ``started``)."""
    n = max(min(len(lines), count_room), 1)
    if type(lines) is JoinedLines:
        return _fit_joined(lines, n, byte_room, started)
    if lines_bytes(lines[:n]) <= byte_room:
        return n
    size = EVENT_OVERHEAD
    for i, line in enumerate(lines[:n]):  # long lines: cut where the bytes run out
        size += len(line) + LINE_OVERHEAD
        if size > byte_room:
            return i if i or started else 1
    return n


def _fit_joined(lines: JoinedLines, n: int, byte_room: int, started: bool) -> int:
    """`_fit` for joined lines, by positions in the text: no string per line.

    ``k`` lines ending at index ``end`` weigh ``EVENT_OVERHEAD + 1 + end + (LINE_OVERHEAD - 1) * k``
    (`lines_bytes`: ``end - k + 1`` characters). Cut by bytes, the text is searched up to
    what ``n`` lines' overhead leaves, so the lines found fit for sure (a few bytes early).
    """
    per_line = LINE_OVERHEAD - 1
    if EVENT_OVERHEAD + 1 + lines.end_of(n) + per_line * n <= byte_room:
        return n
    limit = byte_room - EVENT_OVERHEAD - 1 - per_line * n
    at = lines.text.rfind("\n", 0, limit + 1) if limit >= 0 else -1
    if at < 0:  # not even the first line
        return 0 if started else 1
    return lines.text.count("\n", 0, at) + 1
