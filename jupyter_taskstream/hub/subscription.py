"""One reader of one event log: a cursor, a bounded backlog, push delivery, and its end.

SSE streams and long-polls read a task's log (or the all-tasks log, or a kernel's command
log) through a `Subscription`. No per-reader queue: the reader's cursor points into the
shared log, and the backlog bounds how far behind it may fall before it is dropped (it
then reconnects and resumes by id).

What the log already held when the reader came (the replay of a resume) is not "falling
behind": it goes out in chunks of at most ``backlog`` events, each after the previous one
was written, so a resume from any retained id always makes progress (a replay larger than
the backlog once dropped the reader before its first byte, and it reconnected forever).
"""

from __future__ import annotations

import logging
from typing import Callable

from .eventlog import Event, EventLog, Gap

__all__ = ["StreamClosed", "SubscriberTooSlow", "Subscription"]


class SubscriberTooSlow(Exception):
    """A subscriber fell further behind than its backlog allows; drop it, it resumes by id."""


class StreamClosed(Exception):
    """The reader's connection is gone: how a push reader's delivery says its client left."""


class Subscription:
    """One reader of one log: a cursor, a bounded backlog, and a way to be closed.

    Give it a ``deliver`` callback with `push`: the log then hands it each batch of new
    events from its append loop (one call per wake-up, however many events it holds).
    """

    __slots__ = ("log", "cursor", "backlog", "replay_through", "closed", "paused", "_deliver", "_on_end", "_forget",
                 "_logger")  # fmt: skip

    def __init__(
        self,
        log: EventLog,
        cursor: int,
        backlog: int,
        *,
        forget: Callable[[Subscription], None],
        logger: logging.Logger | logging.LoggerAdapter,
    ):
        self.log = log
        self.cursor = cursor
        self.backlog = backlog
        #: the newest event when the reader came: up to it, the replay goes out in chunks
        self.replay_through = log.last_id
        self.closed = False
        #: a push reader whose last delivery is still being written: it catches up later
        self.paused = False
        self._deliver: Callable[[list[Event]], bool] | None = None
        self._on_end: Callable[[BaseException | None], None] | None = None
        #: tells the owner (the registry) this reader is gone, so it is not counted any more
        self._forget = forget
        self._logger = logger

    def take(self) -> list[Event]:
        """The events after the cursor (maybe none, at most ``backlog``), moving the cursor past them.

        Raises `SubscriberTooSlow` when more events appended since the reader came wait than
        the backlog allows, or some were trimmed before being read. A longer replay of what
        the log held when it came is returned a chunk at a time instead.
        """
        try:
            events = self.log.after(self.cursor)
        except Gap as e:
            raise SubscriberTooSlow(self.cursor) from e
        if len(events) > self.backlog:
            if events[-self.backlog - 1].id > self.replay_through:
                raise SubscriberTooSlow(len(events))  # more than a backlog of live events waits
            events = events[: self.backlog]
        if events:
            self.cursor = events[-1].id
        return events

    def push(self, deliver: Callable[[list[Event]], bool], on_end: Callable[[BaseException | None], None]) -> None:
        """Hand every event to ``deliver(events)`` as it is appended, starting with the backlog.

        ``deliver`` returns True while it is still writing (the reader is then paused until
        `resume`) and raises `StreamClosed` when its client is gone; ``on_end(error)`` is
        called once when the log closes or the reader fails.
        """
        self._deliver, self._on_end = deliver, on_end
        self.log.push_to(self)
        self.on_append()
        if self.log.closed:
            self.on_close()

    def resume(self) -> None:
        """The last delivery was written: catch up with what was appended meanwhile."""
        self.paused = False
        self.on_append()

    def on_append(self) -> None:
        """The log grew: deliver what this reader has not had yet (called by the log)."""
        if self.closed or self.paused or self._deliver is None:
            return
        try:
            # Chunk after chunk while the socket takes them at once; a chunk still being
            # written pauses the reader, and `resume` comes back here for the next one.
            while not self.closed and not self.paused:
                events = self.take()
                if not events:
                    break
                self.paused = bool(self._deliver(events))
        except (SubscriberTooSlow, StreamClosed) as e:
            self.close(e)  # too slow, or its client went away: this reader ends, no one else
        except Exception as e:
            # Anything else is a fault in delivery, not the client: it ends this reader too (the
            # others must go on), but loudly, or it would look exactly like a slow client.
            self._logger.error("taskstream: delivering events to a subscriber failed; it is disconnected", exc_info=True)
            self.close(e)

    def on_close(self) -> None:
        """The log closed (task deleted, server stopping): end the reader (called by the log)."""
        self.close()

    def fail(self, error: BaseException) -> None:
        """The reader cannot go on (its client went away): end it with ``error``."""
        self.close(error)

    def close(self, error: BaseException | None = None) -> None:
        """Stop reading; frees the owner's reference at once and tells a push reader."""
        if self.closed:
            return
        self.closed = True
        self._forget(self)
        self.log.stop_pushing_to(self)
        on_end, self._on_end = self._on_end, None
        if on_end is not None:
            on_end(error)
