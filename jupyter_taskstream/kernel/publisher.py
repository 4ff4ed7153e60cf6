"""Sending tasks to the hub: a bounded buffer drained by one background thread.

Producers (task threads, the pump) only append to a `collections.deque`, which is
thread-safe for append/popleft in CPython, and poke a `queue.SimpleQueue` so an idle
sender wakes at once. Both are C-level operations: an asynchronous `TaskCancelled` landing
in a task thread cannot leave a lock held here. The sender takes everything queued (up to
a batch limit) per request, so at low rates each event goes out at once and at high rates
batches grow while a request is in flight. Batches carry ``(publisher, seq)`` and a retried
batch keeps its ``seq``, so the hub drops a duplicate after a lost reply.

Captured lines come in batches (`log_lines`) and go out as log events whose ``lines`` holds
several lines of one task and stream; the hub stores and streams one event per line. A task
with output not yet split into lines registers a drain (`output_waiting`) that the sender
calls before it takes the next batch, so lines printed while a request was in flight leave
together with the next one.

When the hub is unreachable, batches are retried with capped exponential backoff and the
buffer holds at most ``max_buffered`` events as the hub counts them (one per line); beyond
that, older progress of a task is replaced by its latest value and the oldest log lines are
dropped (one warning), keeping task specs and statuses.
"""

from __future__ import annotations

import contextvars
import json
import os
import queue
import secrets
import threading
import time
from collections import deque
from typing import Any, Callable, Mapping

from .diagnostics import quiet_thread, report_once
from ..protocol import replace_lone_surrogates

__all__ = ["ENV_SECRET", "ENV_URL", "SECRET_HEADER", "Publisher"]

#: Must match `jupyter_taskstream.app.ENV_URL`/`ENV_SECRET` and `handlers.SECRET_HEADER`;
#: repeated here because the kernel side never imports the server side (tornado).
ENV_URL = "JUPYTER_TASKSTREAM_URL"
ENV_SECRET = "JUPYTER_TASKSTREAM_SECRET"
SECRET_HEADER = "X-TaskStream-Secret"

_RETRY, _DONE = "retry", "done"
#: Rough JSON overhead of one event besides its text, for sizing batches.
_EVENT_OVERHEAD = 100
#: Rough JSON overhead of one more line in a log event's ``lines``.
_LINE_OVERHEAD = 4


_JSON = {"Content-Type": "application/json"}


def _encode(batch: dict[str, Any]) -> bytes:
    """The batch as UTF-8 JSON; text that cannot be encoded (a lone surrogate, e.g. from a
    file name that is not valid UTF-8) is sent with U+FFFD in its place, never refused."""
    body = json.dumps(batch, ensure_ascii=False, allow_nan=False)
    try:
        return body.encode("utf-8")
    except UnicodeEncodeError:
        return json.dumps(replace_lone_surrogates(batch), ensure_ascii=False, allow_nan=False).encode("utf-8")


def _lines_bytes(lines: list[str]) -> int:
    """Rough JSON size of a log event holding ``lines``."""
    return _EVENT_OVERHEAD + sum(map(len, lines)) + _LINE_OVERHEAD * len(lines)


class Publisher:
    """Sends task specs and events to the hub's ``POST {url}/events``, never blocking the caller.

    Parameters
    ----------
    url : str
        The hub's API root, e.g. ``http://127.0.0.1:8888/taskstream/api``.
    secret : str
        The publish secret, sent as ``X-TaskStream-Secret``.
    kernel_id : str, optional
        The kernel's id, stamped on every task so the hub can fail them if the kernel dies.
    max_buffered : int
        Events (one per log line) buffered while the hub is slow or down before old log
        lines are dropped.
    max_batch_events : int
        Events per request at most, counting one per log line.
    max_batch_bytes : int
        Approximate request size at most (the hub refuses bodies over 4 MB by default).
    backoff_initial, backoff_max : float
        First and longest wait between retries, in seconds.
    timeout : float
        Seconds one request may take.
    """

    def __init__(
        self,
        url: str,
        secret: str,
        kernel_id: str | None = None,
        *,
        max_buffered: int = 500_000,
        max_batch_events: int = 5000,
        max_batch_bytes: int = 1_000_000,
        backoff_initial: float = 0.05,
        backoff_max: float = 5.0,
        timeout: float = 10.0,
    ):
        if not url or not isinstance(url, str):
            raise ValueError("url must be the hub's API URL, e.g. http://127.0.0.1:8888/taskstream/api")
        if not secret or not isinstance(secret, str):
            raise ValueError("secret must be the hub's publish secret (a non-empty string)")
        if max_buffered < 1 or max_batch_events < 1:
            raise ValueError("max_buffered and max_batch_events must be at least 1")
        self.url = url.rstrip("/")
        self.secret = secret
        self.kernel_id = kernel_id
        self.max_buffered = max_buffered
        self.max_batch_events = max_batch_events
        self.max_batch_bytes = max_batch_bytes
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self.timeout = timeout
        #: Random per process, so the hub can tell our batch numbers from another kernel's.
        self.publisher_id = secrets.token_hex(8)
        self.sent_batches = 0
        self.sent_events = 0
        self.dropped_lines = 0
        self._queue: deque[tuple[str, Any]] = deque()
        #: Lines queued beyond one per queue item (what multi-line log items add to the count).
        self._extra_lines = 0
        #: Drains of tasks with output not yet split into lines, called before the next batch.
        self._sources: set[Callable[[], None]] = set()
        self._lock = threading.Lock()  # taking a batch vs shedding: producers never take it per event
        self._wake: queue.SimpleQueue[None] = queue.SimpleQueue()
        self._wake_pending = False
        self._stop = threading.Event()
        self._drained = threading.Condition()
        self._in_flight = 0
        self._batch_events = 0
        self._seq = 0
        self._skipped: set[str] = set()
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self._closing = False
        self._give_up_at = float("inf")

    @classmethod
    def from_environment(
        cls, kernel_id: str | None = None, environ: Mapping[str, str] | None = None, **kwargs: Any
    ) -> Publisher | None:
        """A publisher for the hub named by ``JUPYTER_TASKSTREAM_URL``/``_SECRET``, or None without them."""
        env = os.environ if environ is None else environ
        url, secret = env.get(ENV_URL), env.get(ENV_SECRET)
        if not url or not secret:
            return None
        return cls(url, secret, kernel_id, **kwargs)

    # ---- producers ---------------------------------------------------------------------

    def task_spec(self, spec: dict[str, Any]) -> None:
        """Queue a task's spec (id, name, total, unit, kernel_id); it precedes the task's events."""
        self._put(("spec", spec))

    def event(self, task_id: str, etype: str, data: dict[str, Any]) -> None:
        """Queue one event of a task."""
        if task_id in self._skipped:
            return  # the hub said this task takes no more events
        self._put(("event", {"task": task_id, "type": etype, "data": data}))

    def log_lines(self, task_id: str, stream: str, lines: list[str]) -> None:
        """Queue captured lines of one task and stream; the list must not change afterwards."""
        if task_id in self._skipped:
            return
        item = ("event", {"task": task_id, "type": "log", "data": {"stream": stream, "lines": lines}})
        with self._lock:  # once per batch of lines, so the count of queued lines stays exact
            self._queue.append(item)
            self._extra_lines += len(lines) - 1
        self._queued()

    def output_waiting(self, drain: Callable[[], None]) -> None:
        """Have the sender call ``drain()`` (which queues a task's new lines) before its next batch."""
        self._sources.add(drain)
        self._poke()

    def _put(self, item: tuple[str, Any]) -> None:
        self._queue.append(item)
        self._queued()

    def _queued(self) -> None:
        if len(self._queue) + self._extra_lines > self.max_buffered:
            self._shed()
        self._poke()

    def _poke(self) -> None:
        if not self._wake_pending:
            self._wake_pending = True
            self._wake.put(None)
        if self._thread is None:
            self._start()

    def _start(self) -> None:
        with self._start_lock:
            if self._thread is None:
                thread = threading.Thread(target=self._run, name="taskstream-publisher", daemon=True)
                # An empty context: the sender is never part of the task that first published.
                contextvars.Context().run(thread.start)
                self._thread = thread

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
            out = []
            for item in kept:
                if excess > 0 and item[0] == "event" and item[1]["type"] == "log":
                    data = item[1]["data"]
                    lines = data.get("lines")
                    if lines is None or len(lines) <= excess:
                        n = 1 if lines is None else len(lines)
                        excess -= n
                        self.dropped_lines += n
                        continue
                    # Part of a batch of lines goes: its oldest.
                    self.dropped_lines += excess
                    item = ("event", {**item[1], "data": {**data, "lines": lines[excess:]}})
                    excess = 0
                out.append(item)
            self._extra_lines = sum(
                len(p["data"]["lines"]) - 1 for kind, p in out if kind == "event" and "lines" in p["data"]
            )
            self._queue.extendleft(reversed(out))
        if self.dropped_lines:
            report_once(
                ("dropped", self.publisher_id),
                f"the hub at {self.url} is not keeping up: dropping the oldest captured log lines "
                f"(more than {self.max_buffered} events buffered). Progress and statuses are kept; "
                "raise jupyter_taskstream.config.max_buffered_events to buffer more.",
            )

    # ---- lifecycle ---------------------------------------------------------------------

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until everything queued so far was sent (or dropped); False on timeout."""
        deadline = time.monotonic() + timeout
        with self._drained:
            while self._queue or self._in_flight or self._sources:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._drained.wait(min(remaining, 0.5))
        return True

    def close(self, timeout: float = 5.0) -> None:
        """Send what is queued (for up to ``timeout`` seconds), then stop the sender."""
        self._give_up_at = time.monotonic() + timeout
        if self._thread is not None:
            self.flush(timeout)
        self._closing = True
        self._stop.set()
        self._wake.put(None)
        if self._thread is not None:
            self._thread.join(timeout)

    # ---- the sender thread -------------------------------------------------------------

    def _take(self) -> dict[str, Any] | None:
        # Outside our lock: a drain takes the task's lock, then ours (in log_lines).
        while self._sources:
            try:
                drain = self._sources.pop()
            except KeyError:
                break
            try:
                drain()
            except Exception as e:  # one task's broken output must not stop the sender for all
                report_once(("drain", type(e)), f"could not split a task's output into lines: {e!r}")
        with self._lock:
            if not self._queue:
                return None
            specs, events, count, size = [], [], 0, 0
            while self._queue and count < self.max_batch_events and size < self.max_batch_bytes:
                kind, payload = self._queue.popleft()
                if kind == "spec":
                    specs.append(payload)
                    size += _EVENT_OVERHEAD
                    continue
                lines = payload["data"].get("lines")
                if lines is None:
                    events.append(payload)
                    count += 1
                    size += _EVENT_OVERHEAD + len(payload["data"].get("text", ""))
                    continue
                self._extra_lines -= len(lines) - 1
                nbytes = _lines_bytes(lines)
                count_room, byte_room = self.max_batch_events - count, self.max_batch_bytes - size
                if len(lines) > count_room or nbytes > byte_room:
                    taken = self._fit(lines, count_room, byte_room, count > 0)
                else:
                    taken = len(lines)
                if taken == 0:  # a line too long for what is left: it leads the next batch
                    self._queue.appendleft((kind, payload))
                    self._extra_lines += len(lines) - 1
                    break
                if taken < len(lines):  # the rest leads the next batch
                    rest = lines[taken:]
                    self._queue.appendleft(("event", {**payload, "data": {**payload["data"], "lines": rest}}))
                    self._extra_lines += len(rest) - 1
                    lines = lines[:taken]
                    nbytes = _lines_bytes(lines)
                count += len(lines)
                size += nbytes
                last = events[-1] if events else None
                if (
                    last is not None and last["task"] == payload["task"] and "lines" in last["data"]
                    and last["data"]["stream"] == payload["data"]["stream"]
                ):  # fmt: skip
                    last["data"]["lines"] += lines  # consecutive lines of one stream: one event
                else:
                    events.append({**payload, "data": {**payload["data"], "lines": list(lines)}})
            self._in_flight = len(specs) + count
            self._batch_events = count
        self._seq += 1
        return {"publisher": self.publisher_id, "seq": self._seq, "tasks": specs, "events": events}

    @staticmethod
    def _fit(lines: list[str], count_room: int, byte_room: int, started: bool) -> int:
        """How many of ``lines`` fit in the room a batch has left (one at least, unless ``started``)."""
        n = max(min(len(lines), count_room), 1)
        if _lines_bytes(lines[:n]) <= byte_room:
            return n
        size = _EVENT_OVERHEAD
        for i, line in enumerate(lines[:n]):  # long lines: cut where the bytes run out
            size += len(line) + _LINE_OVERHEAD
            if size > byte_room:
                return i if i or started else 1
        return n

    def _run(self) -> None:
        import httpx  # only a kernel that publishes pays for importing httpx

        quiet_thread()
        client = httpx.Client(base_url=self.url + "/", headers={SECRET_HEADER: self.secret}, timeout=self.timeout)
        backoff = self.backoff_initial
        batch = None
        try:
            while True:
                if batch is None:
                    self._wake_pending = False
                    batch = self._take()
                    if batch is None:
                        with self._drained:
                            self._drained.notify_all()
                        if self._closing:
                            return
                        try:
                            self._wake.get(timeout=1.0)  # the timeout only backs up a lost poke
                        except queue.Empty:
                            pass
                        continue
                if self._send(client, batch) == _RETRY:
                    if self._closing and time.monotonic() >= self._give_up_at:
                        return
                    self._stop.wait(backoff)
                    backoff = min(backoff * 2, self.backoff_max)
                    continue
                backoff = self.backoff_initial
                batch = None
                with self._drained:
                    self._in_flight = 0
                    self._drained.notify_all()
        finally:
            client.close()

    def _send(self, client: Any, batch: dict[str, Any]) -> str:
        import httpx

        try:
            response = client.post("events", content=_encode(batch), headers=_JSON)
        except httpx.HTTPError as e:
            report_once(("unreachable", self.url), f"cannot reach the hub at {self.url} ({e!r}); retrying, output is buffered")
            return _RETRY
        status = response.status_code
        if status >= 500 or status in (408, 429):
            return _RETRY
        if status == 200:
            try:
                skipped = response.json().get("skipped", {})
            except ValueError:
                skipped = {}
            self._skipped.update(skipped)
        elif status != 204:
            try:
                message = response.json().get("message", response.text)
            except ValueError:
                message = response.text
            report_once(("rejected", status), f"the hub refused a batch of events ({status}: {message}); it was dropped")
        self.sent_batches += 1
        self.sent_events += self._batch_events
        return _DONE
