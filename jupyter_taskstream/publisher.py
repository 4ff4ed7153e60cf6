"""Sending tasks to the hub: a bounded buffer drained by one background thread.

Producers (task threads, the pump) only append to a `collections.deque`, which is
thread-safe for append/popleft in CPython, and poke a `queue.SimpleQueue` so an idle
sender wakes at once. Both are C-level operations: an asynchronous `TaskCancelled` landing
in a task thread cannot leave a lock held here. The sender takes everything queued (up to
a batch limit) per request, so at low rates each event goes out at once and at high rates
batches grow while a request is in flight. Batches carry ``(publisher, seq)`` and a retried
batch keeps its ``seq``, so the hub drops a duplicate after a lost reply.

When the hub is unreachable, batches are retried with capped exponential backoff and the
buffer holds at most ``max_buffered`` items; beyond that, older progress of a task is
replaced by its latest value and the oldest log lines are dropped (one warning), keeping
task specs and statuses.
"""

from __future__ import annotations

import contextvars
import os
import queue
import secrets
import threading
import time
from collections import deque
from typing import Any, Mapping

from .pump import report_once

__all__ = ["ENV_SECRET", "ENV_URL", "SECRET_HEADER", "Publisher"]

#: Must match `jupyter_taskstream.app.ENV_URL`/`ENV_SECRET` and `handlers.SECRET_HEADER`;
#: repeated here because the kernel side never imports the server side (tornado).
ENV_URL = "JUPYTER_TASKSTREAM_URL"
ENV_SECRET = "JUPYTER_TASKSTREAM_SECRET"
SECRET_HEADER = "X-TaskStream-Secret"

_RETRY, _DONE = "retry", "done"
#: Rough JSON overhead of one event besides its text, for sizing batches.
_EVENT_OVERHEAD = 100


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
        Items buffered while the hub is slow or down before old log lines are dropped.
    max_batch_events : int
        Events per request at most.
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
        max_buffered: int = 100_000,
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
        self._lock = threading.Lock()  # taking a batch vs shedding: producers never take it per event
        self._wake: queue.SimpleQueue[None] = queue.SimpleQueue()
        self._wake_pending = False
        self._stop = threading.Event()
        self._drained = threading.Condition()
        self._in_flight = 0
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

    def _put(self, item: tuple[str, Any]) -> None:
        self._queue.append(item)
        if len(self._queue) > self.max_buffered:
            self._shed()
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
            if count <= self.max_buffered:
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
            excess = len(kept) - self.max_buffered * 3 // 4
            out = []
            for item in kept:
                if excess > 0 and item[0] == "event" and item[1]["type"] == "log":
                    excess -= 1
                    self.dropped_lines += 1
                    continue
                out.append(item)
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
            while self._queue or self._in_flight:
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
        with self._lock:
            if not self._queue:
                return None
            specs, events, size = [], [], 0
            while self._queue and len(events) < self.max_batch_events and size < self.max_batch_bytes:
                kind, payload = self._queue.popleft()
                if kind == "spec":
                    specs.append(payload)
                    size += _EVENT_OVERHEAD
                else:
                    events.append(payload)
                    size += _EVENT_OVERHEAD + len(payload["data"].get("text", ""))
            self._in_flight = len(specs) + len(events)
        self._seq += 1
        return {"publisher": self.publisher_id, "seq": self._seq, "tasks": specs, "events": events}

    def _run(self) -> None:
        import httpx  # only a kernel that publishes pays for importing httpx

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
            response = client.post("events", json=batch)
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
        self.sent_events += len(batch["events"])
        return _DONE
