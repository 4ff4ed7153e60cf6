"""Sending tasks to the hub: producers queue into an `Outbox`, one background thread sends.

Producers (task threads, the view pump) only append to the outbox (see `outbox`) and poke a
`queue.SimpleQueue` so an idle sender wakes at once; both are C-level operations. The
sender takes everything queued (up to a batch limit) per request, so at low rates each
event goes out at once and at high rates batches grow while a request is in flight. Every
batch says which protocol version it speaks (`protocol.PROTOCOL_VERSION`) and carries
``(publisher, seq)``; a retried batch keeps its ``seq``, so the hub drops a duplicate after
a lost reply.

Captured lines come in batches (`log_lines`). A task with output not yet split into lines
registers a drain (`output_waiting`) that the sender calls before it takes the next batch,
so lines printed while a request was in flight leave together with the next one. When the
hub is unreachable, batches are retried with capped exponential backoff while the outbox
keeps what matters within its bound (one warning when it drops lines).
"""

from __future__ import annotations

import contextvars
import json
import os
import queue
import secrets
import threading
import time
from typing import Any, Callable, Mapping

from ..protocol import ENV_SECRET, ENV_URL, PROTOCOL_VERSION, SECRET_HEADER, replace_lone_surrogates
from .diagnostics import quiet_thread, report_once
from .outbox import Outbox

__all__ = ["Publisher"]

_RETRY, _DONE = "retry", "done"
_JSON = {"Content-Type": "application/json"}


def _encode(batch: dict[str, Any]) -> bytes:
    """The batch as UTF-8 JSON; text that cannot be encoded (a lone surrogate, e.g. from a
    file name that is not valid UTF-8) is sent with U+FFFD in its place, never refused."""
    body = json.dumps(batch, ensure_ascii=False, allow_nan=False)
    try:
        return body.encode("utf-8")
    except UnicodeEncodeError:
        return json.dumps(replace_lone_surrogates(batch), ensure_ascii=False, allow_nan=False).encode("utf-8")


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
        self.url = url.rstrip("/")
        self.secret = secret
        self.kernel_id = kernel_id
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self.timeout = timeout
        #: What waits to be sent; bounded, see `Outbox`.
        self.outbox = Outbox(max_buffered, max_batch_events, max_batch_bytes)
        #: Random per process, so the hub can tell our batch numbers from another kernel's.
        self.publisher_id = secrets.token_hex(8)
        self.sent_batches = 0
        self.sent_events = 0
        #: ``on_problem(message)`` once per problem users must know of (the runtime shows it in
        #: its tasks); called on whichever thread met it, possibly under a task's lock.
        self.on_problem: Callable[[str], None] | None = None
        #: Drains of tasks with output not yet split into lines, called before the next batch.
        self._sources: set[Callable[[], None]] = set()
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

    @property
    def dropped_lines(self) -> int:
        """Log lines dropped because the hub did not keep up."""
        return self.outbox.dropped_lines

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
        self._queued(self.outbox.put(("spec", spec)))

    def event(self, task_id: str, etype: str, data: dict[str, Any]) -> None:
        """Queue one event of a task."""
        if task_id in self._skipped:
            return  # the hub said this task takes no more events
        self._queued(self.outbox.put(("event", {"task": task_id, "type": etype, "data": data})))

    def log_lines(self, task_id: str, stream: str, lines: list[str]) -> None:
        """Queue captured lines of one task and stream; the list must not change afterwards."""
        if task_id in self._skipped:
            return
        self._queued(self.outbox.put_lines(task_id, stream, lines))

    def output_waiting(self, drain: Callable[[], None]) -> None:
        """Have the sender call ``drain()`` (which queues a task's new lines) before its next batch."""
        self._sources.add(drain)
        self._poke()

    def _queued(self, shed: bool) -> None:
        if shed:
            report_once(
                ("dropped", self.publisher_id),
                f"the hub at {self.url} is not keeping up: dropping the oldest captured log lines "
                f"(more than {self.outbox.max_buffered} events buffered). Progress and statuses are kept; "
                "raise jupyter_taskstream.config.max_buffered_events to buffer more.",
                self.on_problem,
            )
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

    # ---- lifecycle ---------------------------------------------------------------------

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until everything queued so far was sent (or dropped); False on timeout."""
        deadline = time.monotonic() + timeout
        with self._drained:
            while self.outbox or self._in_flight or self._sources:
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
        # Outside the outbox's lock: a drain takes the task's lock, then the outbox's.
        while self._sources:
            try:
                drain = self._sources.pop()
            except KeyError:
                break
            try:
                drain()
            except Exception as e:  # one task's broken output must not stop the sender for all
                report_once(("drain", type(e)), f"could not split a task's output into lines: {e!r}")
        self._in_flight = 1  # busy before the outbox looks empty, so `flush` cannot return early
        taken = self.outbox.take()
        if taken is None:
            self._in_flight = 0
            return None
        specs, events, count = taken
        self._in_flight = len(specs) + count
        self._batch_events = count
        self._seq += 1
        return {
            "protocol": PROTOCOL_VERSION,
            "publisher": self.publisher_id,
            "seq": self._seq,
            "tasks": specs,
            "events": events,
        }

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
            report_once(
                ("unreachable", self.url),
                f"cannot reach the hub at {self.url} ({e!r}); retrying, output is buffered",
                self.on_problem,
            )
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
            report_once(
                ("rejected", status),
                f"the hub refused a batch of events ({status}: {message}); it was dropped",
                self.on_problem,
            )
        self.sent_batches += 1
        self.sent_events += self._batch_events
        return _DONE
