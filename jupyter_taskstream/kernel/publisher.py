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

A kernel the server launched sends the publish secret, any other process a user's token (see
`hubenv`); credentials refused (401/403) stop the sending: one line says so, work goes on.

A batch the hub refuses (400) never takes its good lines with it: when the answer names an
event (``events[12].data.stream ...``) that event is replaced by a marker of the lines it
held and the rest is sent again; when it names a task spec, that spec goes; a batch too
large (413) is split in halves. What is finally refused counts in `dropped_lines` and,
unless the hub refused the batch as a whole, reaches it as a ``dropped`` marker at the gap.
"""

from __future__ import annotations

import atexit
import contextvars
import os
import queue
import re
import secrets
import threading
import time
from typing import Any, Callable, Mapping

from ..protocol import ENV_TOKEN, LOG_STREAMS, PROTOCOL_VERSION, SECRET_HEADER, JoinedLines, dropped_marker
from ..protocol.batchbody import Lines
from .diagnostics import quiet_thread, report_once
from .hubenv import hub_from_environment
from .outbox import Outbox

__all__ = ["Publisher"]

_RETRY, _DONE = "retry", "done"


class Publisher:
    """Sends task specs and events to the hub's ``POST {url}/events``, never blocking the caller.

    Parameters
    ----------
    url : str
        The hub's API root, e.g. ``http://127.0.0.1:8888/taskstream/api``.
    secret : str, optional
        The publish secret, sent as ``X-TaskStream-Secret`` (a kernel the server launched).
    kernel_id : str, optional
        The kernel's id, stamped on every task so the hub can fail them if the kernel dies.
    token : str, optional
        Instead of ``secret``: a user's Jupyter token (``Authorization: token ...``). Its task
        specs carry no ``kernel_id``: only a kernel's runtime may claim a kernel.
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
    exit_timeout : float
        Seconds the interpreter's exit waits for what is queued to reach the hub: a script,
        papermill or nbclient run would otherwise lose its last lines and final status
        (the sender is a daemon thread), and a hub that is down must not hang the exit.
    flush_at_exit : bool
        Register that flush with `atexit`; a runtime that owns the publisher registers its
        own (its last captured lines must be queued before the publisher closes).
    """

    def __init__(
        self,
        url: str,
        secret: str | None = None,
        kernel_id: str | None = None,
        *,
        token: str | None = None,
        max_buffered: int = 1_000_000,
        max_batch_events: int = 50_000,
        max_batch_bytes: int = 2_000_000,
        backoff_initial: float = 0.05,
        backoff_max: float = 5.0,
        timeout: float = 10.0,
        exit_timeout: float = 5.0,
        flush_at_exit: bool = True,
    ):
        if not url or not isinstance(url, str):
            raise ValueError("url must be the hub's API URL, e.g. http://127.0.0.1:8888/taskstream/api")
        if (secret is None) == (token is None):
            raise ValueError("give one credential: secret (a server-launched kernel's) or token (a user's)")
        if not isinstance(secret or token, str) or not (secret or token):
            raise ValueError("the secret or token must be a non-empty string")
        self.url = url.rstrip("/")
        self.secret = secret
        self.token = token
        self.auth_headers = {SECRET_HEADER: secret} if secret else {"Authorization": f"token {token}"}
        #: The hub refused the credentials: nothing more is sent (see `_send`).
        self.refused = False
        self.kernel_id = kernel_id
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self.timeout = timeout
        self.exit_timeout = exit_timeout
        self._flush_at_exit_registered = not flush_at_exit
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
        #: halves of a refused batch still to send, before anything newly queued
        self._parts: list[dict[str, Any]] = []
        #: log lines of events the hub refused (counted in `dropped_lines`)
        self.refused_lines = 0
        self._skipped: set[str] = set()
        self._thread: threading.Thread | None = None
        #: The sender's connection to the hub (`hubpost`), once it started.
        self.client: Any = None
        self._start_lock = threading.Lock()
        self._closing = False
        self._give_up_at = float("inf")

    @property
    def dropped_lines(self) -> int:
        """Log lines dropped: shed because the hub did not keep up, or refused by it."""
        return self.outbox.dropped_lines + self.refused_lines

    @classmethod
    def from_environment(
        cls, kernel_id: str | None = None, environ: Mapping[str, str] | None = None, **kwargs: Any
    ) -> Publisher | None:
        """A publisher for the hub the environment names (see `hubenv`), or None when it names none."""
        found = hub_from_environment(os.environ if environ is None else environ)
        if found is None:
            return None
        url, secret, token = found
        return cls(url, secret, kernel_id if secret else None, token=token, **kwargs)

    # ---- producers ---------------------------------------------------------------------

    def task_spec(self, spec: dict[str, Any]) -> None:
        """Queue a task's spec (id, name, total, unit, kernel_id); it precedes the task's events."""
        if self.refused:
            return
        if self.token is not None and spec.get("kernel_id") is not None:
            spec = {**spec, "kernel_id": None}  # the hub refuses a kernel claimed with a user's token
        self._queued(self.outbox.put(("spec", spec)))

    def event(self, task_id: str, etype: str, data: dict[str, Any]) -> None:
        """Queue one event of a task."""
        if task_id in self._skipped or self.refused:
            return  # the hub said this task (or this process) takes no more events
        self._queued(self.outbox.put(("event", {"task": task_id, "type": etype, "data": data})))

    def log_lines(self, task_id: str, stream: str, lines: Lines) -> None:
        """Queue captured lines of one task and stream; a list must not change afterwards."""
        if task_id in self._skipped or self.refused:
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
                if not self._flush_at_exit_registered:
                    self._flush_at_exit_registered = True
                    atexit.register(self.flush_at_exit)

    # ---- lifecycle ---------------------------------------------------------------------

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until everything queued so far was sent (or dropped); False on timeout."""
        deadline = time.monotonic() + timeout
        with self._drained:
            while self.outbox or self._in_flight or self._sources or self._parts:
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

    def flush_at_exit(self) -> None:
        """At interpreter exit: send what is queued, for at most ``exit_timeout`` seconds."""
        if not self._closing:
            self.close(self.exit_timeout)

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
        from .hubpost import open_client  # only a process that publishes pays for http.client and ssl

        quiet_thread()
        client = self.client = open_client(self.url, self.auth_headers, self.timeout)
        backoff = self.backoff_initial
        batch = None
        try:
            while True:
                if batch is None and self._parts:
                    self._seq += 1  # numbered when sent: the hub takes a lower number for a retry
                    batch = {**self._parts.pop(0), "seq": self._seq}
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
                result = self._send(client, batch)
                if result == _RETRY:
                    if self._closing and time.monotonic() >= self._give_up_at:
                        return
                    self._stop.wait(backoff)
                    backoff = min(backoff * 2, self.backoff_max)
                    continue
                if isinstance(result, dict):  # what is left of a refused batch: at once
                    batch = result
                    continue
                backoff = self.backoff_initial
                batch = None
                with self._drained:
                    self._in_flight = 0
                    self._drained.notify_all()
        finally:
            client.close()

    def _without_refused(self, batch: dict[str, Any], message: str, status: int) -> dict[str, Any] | None:
        """What to send instead of a refused batch, or None when nothing of it is left."""
        events, specs = batch["events"], batch["tasks"]
        named = re.search(r"\bevents\[(\d+)\]", message)
        if named and int(named.group(1)) < len(events):
            i = int(named.group(1))
            report_once(("refused-event", message[:80]), f"the hub refused an event ({message}); sent the rest")
            events = [*events[:i], *self._lost(events[i]), *events[i + 1 :]]
        elif (named := re.search(r"\btasks\[(\d+)\]", message)) and int(named.group(1)) < len(specs):
            i = int(named.group(1))
            report_once(("refused-task", message[:80]), f"the hub refused a task ({message}); sent the rest")
            specs = [*specs[:i], *specs[i + 1 :]]
        elif status != 413:
            # Refused as a whole (its protocol version, say): no part of it would pass, so it
            # goes, but its lines are counted (the hub cannot be told; the kernel can).
            for event in events:
                self._lost(event)
            return None
        elif len(events) > 1:  # too large: halves, until what is left passes
            half = len(events) // 2
            self._parts.insert(0, {**batch, "tasks": [], "events": events[half:]})
            events = events[:half]
        elif events:
            report_once(("refused-event", message[:80]), f"the hub refused an event ({message})")
            events = self._lost(events[0])
        else:
            return None
        if not events and not specs:
            return None
        self._seq += 1  # a new body: the hub must not take it for a retry of the refused one
        return {**batch, "seq": self._seq, "tasks": specs, "events": events}

    def _lost(self, event: dict[str, Any]) -> list[dict[str, Any]]:
        """A refused event's replacement: a marker of the lines it held (none for others)."""
        data = event.get("data") if isinstance(event, dict) else None
        if event.get("type") != "log" or not isinstance(data, dict) or "dropped" in data:
            return []  # progress and statuses are superseded by later ones; a marker counted already
        lines = data.get("lines")
        count = len(lines) if isinstance(lines, (list, JoinedLines)) else 1
        self.refused_lines += count
        stream = data.get("stream") if data.get("stream") in LOG_STREAMS else "stdout"
        marker = {"stream": stream, "text": dropped_marker(count), "dropped": count}
        return [{"task": event.get("task"), "type": "log", "data": marker}]

    def _send(self, client: Any, batch: dict[str, Any]) -> str | dict[str, Any]:
        from .hubpost import HubUnreachable

        if self.refused:
            return _DONE  # what was queued before the refusal goes without a request
        try:
            response = client.post_batch(batch)
        except HubUnreachable as e:
            report_once(
                ("unreachable", self.url),
                f"cannot reach the hub at {self.url} ({e!r}); retrying, output is buffered",
                self.on_problem,
            )
            return _RETRY
        status = response.status_code
        if status >= 500 or status in (408, 429):
            return _RETRY
        if status in (401, 403) and not self.refused:
            self._refuse(status)
        if self.refused:
            return _DONE
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
            if status in (400, 413, 422):
                rest = self._without_refused(batch, str(message), status)
                if rest is not None:
                    return rest
            report_once(
                ("rejected", status),
                f"the hub refused a batch of events ({status}: {message}); it was dropped",
                self.on_problem,
            )
        self.sent_batches += 1
        self.sent_events += self._batch_events
        return _DONE

    def _refuse(self, status: int) -> None:
        """The hub refused our credentials: say so once, in words, and send nothing more."""
        self.refused = True
        what = f"the token (check {ENV_TOKEN})" if self.token is not None else "the kernel's publish secret"
        report_once(
            ("credentials", self.url),
            f"the Jupyter server at {self.url} refused {what} (HTTP {status}): this process's tasks "
            "are not published (they run as before)",
            self.on_problem,
        )
