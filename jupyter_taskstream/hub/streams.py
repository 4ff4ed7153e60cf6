"""The hub's Server-Sent Events GET handlers: one task, all tasks, and a kernel's commands.

Headers and first bytes go out at once, then a snapshot or the replay after Last-Event-ID,
live events pushed through a subscription's cursor, heartbeat comments, and ``end``. The
POSTs that publish to the same URLs are in `ingest`; `rest` joins both into one handler per
URL. The tornado internals of the fast push path are behind `tornado_push`.
"""

from __future__ import annotations

import asyncio
import functools
import random
from typing import Any, Callable

from jupyter_server.auth.decorator import authorized
from tornado import web
from tornado.iostream import StreamClosedError

from . import sse, tornado_push
from .base import MAX_WAIT_SECONDS, TaskStreamHandler
from .detached import body
from .eventlog import Event, EventLog
from .subscription import StreamClosed, SubscriberTooSlow

__all__ = ["AllEventsStream", "EventStreamHandler", "KernelCommandsHandler", "TaskEventsStream"]


class EventStreamHandler(TaskStreamHandler):
    """Shared SSE machinery: headers, first byte at once, replay, heartbeats, clean up."""

    _pusher: _Pusher | None = None
    _stall_timer = None
    _detach = False

    def initialize(self, *args: Any, **kwargs: Any) -> None:
        super().initialize(*args, **kwargs)
        self._closed = False

    def compute_etag(self) -> None:
        return None  # a stream has no etag, and tornado must not buffer it to compute one

    def last_event_id(self) -> int | None:
        """The resume point: ``Last-Event-ID`` header, else ``?last_event_id=``."""
        raw = self.request.headers.get("Last-Event-ID") or self.get_query_argument("last_event_id", None)
        if raw is None or raw.strip() == "":
            return None
        try:
            value = int(raw)
        except ValueError:
            return -1  # unparseable: treated as unknown, so the client gets a fresh snapshot
        return value

    def start_stream(self, *, detach: bool = False) -> None:
        """Headers and ``retry``; ``detach``: the stream will leave tornado after its first bytes."""
        self.set_header("Content-Type", "text/event-stream; charset=utf-8")
        self.set_header("Cache-Control", "no-cache")
        self.set_header("X-Accel-Buffering", "no")
        self._detach = detach and tornado_push.detachable(self)
        if self._detach:
            # A detached stream closes its socket at its end: no client reuses the connection.
            self.set_header("Connection", "close")
        # Randomized so that many clients dropped at once do not reconnect at once.
        base = self.settings["taskstream_retry_ms"]
        self.write(sse.retry(base + random.randint(0, base)))

    async def send(self, chunk: bytes) -> None:
        """Write and flush; a client that does not drain its socket in time is disconnected."""
        self.write(chunk)
        flushed = self.flush()
        if not self.request.connection.stream.writing():
            return  # the socket took every byte: no need to wait for `flushed`
        loop = asyncio.get_running_loop()
        self._stall_timer = loop.call_later(self.settings["taskstream_write_timeout"], self.stalled)
        try:
            await flushed
        finally:
            self._stall_timer.cancel()

    def stalled(self) -> None:
        """The client left its socket full for ``write_timeout``: disconnect it."""
        self.log.warning("taskstream: dropping a subscriber that stopped reading (%s)", self.request.path)
        self.request.connection.close()

    async def pump(self, log: EventLog, cursor: int, encode: Callable[[Event], bytes], *, ends: bool) -> None:
        """Send events after ``cursor`` until the log closes, the task ends or the client goes.

        Events are pushed from the log's append loop straight into this connection (see
        `Subscription.push`). A plain-TCP HTTP/1.1 stream leaves tornado here and is served
        by `detached` (the handler returns at once); any other waits for the end, fed by a
        `_Pusher`. A connection whose socket is full is paused and catches up once its bytes
        are written.
        """
        if tornado_push.direct_socket(self) is not None and self._detach and not self._closed:
            self.settings["taskstream_streams"].serve(self, self.registry.subscribe(log, cursor), encode, ends)
            return
        # The headers are on the wire: tornado's copies of them are ~2 KiB per idle stream.
        tornado_push.release_headers(self)
        loop = asyncio.get_running_loop()
        pusher = self._pusher = _Pusher(self, self.registry.subscribe(log, cursor), encode, ends, loop)
        pusher.start()
        try:
            error = await pusher.done
        finally:
            pusher.stop()
        if isinstance(error, SubscriberTooSlow):
            self.log.warning("taskstream: subscriber fell too far behind, dropped; it resumes by id")
            self.request.connection.close()
            return
        if error is None and not self._closed:
            self.finish()

    def stream_bounds(self) -> tuple[int | None, float | None]:
        """``?limit=N`` (events, the snapshot included) and ``?timeout=S``: when a stream ends early.

        For scripts and fuzzers that read a stream to its end; browsers never send them.
        """
        limit = self.query_number("limit", default=None, minimum=1, integer=True)
        timeout = self.query_number("timeout", default=None, maximum=MAX_WAIT_SECONDS)
        return limit, timeout

    async def pump_bounded(self, log: EventLog, cursor: int, encode: Callable[[Event], bytes], *,
                           ends: bool, limit: int | None, timeout: float | None, sent: int) -> None:  # fmt: skip
        """`pump` for a stream that ends after ``limit`` events or ``timeout`` seconds.

        A plain read loop rather than push delivery: bounded streams are rare and short, so
        they stay off the fan-out hot path that `_Pusher` is built for.
        """
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        beat = self.settings["taskstream_heartbeat_interval"]
        sub = self.registry.subscribe(log, cursor)
        try:
            while not self._closed and (limit is None or sent < limit):
                try:
                    events = sub.take()
                except SubscriberTooSlow:
                    self.request.connection.close()
                    return
                if limit is not None:
                    events = events[: limit - sent]
                if events:
                    sent += len(events)
                    await self.send(body(encode, events))
                    if ends and events[-1].type == "end":
                        break
                    continue
                if log.closed:
                    break
                left = None if deadline is None else deadline - loop.time()
                if left is not None and left <= 0:
                    break
                if not await log.wait(sub.cursor, beat if left is None else min(beat, left)):
                    await self.send(sse.comment("heartbeat"))
        except StreamClosedError:
            return
        finally:
            sub.close()
        if not self._closed:
            self.finish()

    def on_connection_close(self) -> None:
        self._closed = True
        if self._pusher is not None:
            self._pusher.sub.close()
            self._pusher.end(StreamClosed())


class _Pusher:
    """One tornado-served SSE connection's side of push delivery: what the log calls for new events.

    Streams that stay in tornado (TLS, HTTP/1.0, a tornado whose internals changed) use it;
    the others are served by `detached` once their first bytes are out.
    """

    __slots__ = ("beat_timer", "done", "encode", "ends", "handler", "loop", "stream", "sub")

    def __init__(self, handler: EventStreamHandler, sub: Any, encode: Callable[[Event], bytes], ends: bool,
                 loop: asyncio.AbstractEventLoop):  # fmt: skip
        self.handler, self.sub, self.encode, self.ends, self.loop = handler, sub, encode, ends, loop
        self.done: asyncio.Future = loop.create_future()
        self.stream = handler.request.connection.stream
        self.beat_timer: asyncio.TimerHandle | None = None

    def start(self) -> None:
        self.beat_timer = self.loop.call_later(self.handler.settings["taskstream_heartbeat_interval"], self.beat)
        self.sub.push(self.deliver, self.end)

    def stop(self) -> None:
        if self.beat_timer is not None:
            self.beat_timer.cancel()
        self.sub.close()

    def end(self, error: BaseException | None) -> None:
        """The stream is over: ``error`` is None for a normal end."""
        if not self.done.done():
            self.done.set_result(error)

    def deliver(self, events: list[Event]) -> bool:
        """Write ``events``; True while the bytes are still being written (the reader pauses).

        Raises `StreamClosed` when the client is gone.
        """
        handler = self.handler
        try:
            handler.write(body(self.encode, events))
            flushed = handler.flush()
            if self.ends and events[-1].type == "end":
                self.sub.close()
                self.end(None)
                return False
            if not self.stream.writing():
                return False
        except StreamClosedError as e:
            raise StreamClosed() from e
        timer = self.loop.call_later(handler.settings["taskstream_write_timeout"], handler.stalled)
        flushed.add_done_callback(functools.partial(self.written, timer))
        return True

    def written(self, timer: asyncio.TimerHandle, fut: asyncio.Future) -> None:
        """A paused delivery's bytes are out (or the socket failed): resume or end the reader."""
        timer.cancel()
        error = None if fut.cancelled() else fut.exception()
        if fut.cancelled() or error is not None:
            self.sub.fail(error or StreamClosed())
        else:
            self.sub.resume()

    def beat(self) -> None:
        """A heartbeat comment, unless the socket is still busy with events."""
        if self.done.done():
            return
        if not self.sub.paused:
            try:
                self.handler.write(sse.comment("heartbeat"))
                self.handler.flush()
            except StreamClosedError as e:
                self.end(e)
                return
        self.beat_timer = self.loop.call_later(self.handler.settings["taskstream_heartbeat_interval"], self.beat)


class TaskEventsStream(EventStreamHandler):
    """``GET /taskstream/api/tasks/{id}/events``: SSE of one task."""

    @web.authenticated
    @authorized
    async def get(self, task_id: str) -> None:
        """Stream a task: ``retry``, a snapshot or the replay after Last-Event-ID, live events, ``end``."""
        registry = self.registry
        task = registry.get(task_id)
        log = registry.event_log(task_id)
        limit, timeout = self.stream_bounds()
        cursor = registry.resume_point(log, self.last_event_id())
        # A finished task's stream ends at once: only a live, unbounded one leaves tornado.
        self.start_stream(detach=limit is None and timeout is None and not task.terminal)
        sent = 0
        if cursor is None:
            cursor, data = registry.snapshot_event(task_id)
            self.write(sse.encode_json(data, event="snapshot", id=cursor))
            sent = 1
            del data  # this frame lives as long as the stream
        if task.terminal and log.last_id <= cursor and limit != sent:
            # The client saw everything already: repeat `end` so it knows to stop reconnecting.
            self.write(log.tail(1)[0].sse())
        try:
            # Headers and first bytes now: proxies and EventSource wait for them before
            # they pass the stream on, and APIHandler.finish would otherwise relabel an unflushed stream as JSON.
            await self.send(b"")
        except StreamClosedError:
            return
        if (task.terminal and log.last_id <= cursor) or limit == sent:
            self.finish()
            return
        if limit is not None or timeout is not None:
            await self.pump_bounded(log, cursor, Event.sse, ends=True, limit=limit, timeout=timeout, sent=sent)
            return
        await self.pump(log, cursor, Event.sse, ends=True)


class AllEventsStream(EventStreamHandler):
    """``GET /taskstream/api/events``: one SSE stream of every task."""

    @web.authenticated
    @authorized
    async def get(self) -> None:
        """Stream every task's events (payloads carry ``task``), resumable by Last-Event-ID."""
        registry = self.registry
        log = registry.all_events
        limit, timeout = self.stream_bounds()
        cursor = registry.resume_point(log, self.last_event_id())
        self.start_stream(detach=limit is None and timeout is None)
        sent = 0
        if cursor is None:
            cursor, data = registry.all_snapshot_event()
            self.write(sse.encode_json(data, event="snapshot", id=cursor))
            sent = 1
            del data  # this frame lives as long as the stream
        try:
            await self.send(b"")
        except StreamClosedError:
            return
        if limit is not None or timeout is not None:
            if limit == sent:
                self.finish()
                return
            await self.pump_bounded(log, cursor, Event.sse_all, ends=False, limit=limit, timeout=timeout, sent=sent)
            return
        await self.pump(log, cursor, Event.sse_all, ends=False)


class KernelCommandsHandler(EventStreamHandler):
    """``/taskstream/api/kernels/{kernel_id}/commands``: SSE of cancel/start commands for a kernel."""

    publisher_verbs = frozenset({"GET"})

    @web.authenticated
    async def get(self, kernel_id: str) -> None:
        """The kernel runtime's control channel; only the publish secret may read it."""
        if not self.publisher:
            raise web.HTTPError(403, "only a kernel's runtime reads its commands")
        log = self.registry.commands(kernel_id)
        limit, timeout = self.stream_bounds()
        last = self.last_event_id()
        known = last is not None and log.trimmed_through <= last <= self.registry.last_event_id
        cursor = last if known else log.trimmed_through
        self.start_stream(detach=limit is None and timeout is None)
        try:
            await self.send(b"")
        except StreamClosedError:
            return
        if limit is not None or timeout is not None:
            await self.pump_bounded(log, cursor, Event.sse, ends=False, limit=limit, timeout=timeout, sent=0)
            return
        await self.pump(log, cursor, Event.sse, ends=False)
