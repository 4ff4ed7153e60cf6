"""SSE streams served on their bare sockets once tornado has written their first bytes.

Why it bypasses tornado: an idle stream left in tornado holds ~15 KiB (the handler, its
request and headers, the `IOStream`, `HTTP1Connection`, their coroutines, three asyncio
Tasks) for a connection that from then on only ever writes (issue 16 asks ≤ 8 KiB at
10,000 streams). So once auth has passed and the headers, ``retry`` and the snapshot or
replay are on the wire, `DetachedStreams.serve` leaves tornado the way websockets do
(`RequestHandler.detach`), takes the socket out of the `IOStream`, lets the handler return,
and one small `DetachedStream` per connection (slots; no Task, closure or timer while idle)
serves the rest of the response:

- each batch is framed once as an HTTP/1.1 chunk for every subscriber (`chunk_of`) and
  ``send()`` on the non-blocking socket; what the socket does not take waits in the stream
  while its subscription is paused (at most one delivery, as the backlog rule says) and goes
  out when the socket is writable, or the client is dropped after ``write_timeout``;
- a readable socket that gives EOF or an error is the client going: it is unsubscribed;
- one timer for all detached streams of a server sends the heartbeats;
- the end (the task's ``end``, the log closing at shutdown) writes the last chunk and closes
  the socket (the response says ``Connection: close``); a client dropped as too slow gets no
  last chunk, so it reconnects and resumes by id.

jupyter_server's request log line for a stream is written at the detach (status 200, the
time to its first bytes), not when it ends. TLS and HTTP/1.0 streams, bounded ones
(``?limit``, ``?timeout``) and any stream on a tornado without the internals `tornado_push`
checks stay in tornado (`streams`). Hand-written: no library serves the rest of an HTTP
response on a bare socket from a push callback.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import socket
from typing import Any, Callable

from tornado.ioloop import IOLoop

from . import sse, tornado_push
from .eventlog import Event
from .subscription import StreamClosed, SubscriberTooSlow, Subscription

__all__ = ["BEAT_BATCH", "DetachedStream", "DetachedStreams", "body", "chunk_of"]

_READ, _WRITE = IOLoop.READ, IOLoop.WRITE
_LAST_CHUNK = b"0\r\n\r\n"
_HEARTBEAT = tornado_push.chunk(sse.comment("heartbeat"))
#: heartbeats sent in one turn of the loop (~1-2 ms of sends)
BEAT_BATCH = 500


def _outside(fn: Callable, *args: Any) -> Any:
    """``fn(*args)`` in an empty context: what it registers on the loop keeps no request alive.

    The loop copies the current context into every callback it holds, and jupyter_server
    keeps the handler in a context variable (``CallContext``): a reader, timer or writer
    registered from a request would hold that handler, its request and its connection.
    """
    return contextvars.Context().run(fn, *args)


def body(encode: Callable[[Event], bytes], events: list[Event]) -> bytes:
    """``events`` framed as SSE, one after the other."""
    return encode(events[0]) if len(events) == 1 else b"".join(map(encode, events))


#: ``[encode, first event, last event, bytes]``: the last batch framed as an HTTP/1.1
#: chunk. Fan-out hands one batch (a run of one log) to every subscriber in a row, so this
#: encodes and frames each batch once, not once per subscriber (the hub's CPU under fan-out).
_framed: list = [None, None, None, b""]


def chunk_of(encode: Callable[[Event], bytes], events: list[Event]) -> bytes:
    """``events`` as one HTTP/1.1 chunk (the same bytes for every subscriber of a batch)."""
    cache = _framed
    if cache[0] is not encode or cache[1] is not events[0] or cache[2] is not events[-1]:
        cache[:] = encode, events[0], events[-1], tornado_push.chunk(body(encode, events))
    return cache[3]


class DetachedStreams:
    """Every detached stream of one server, and the one timer that sends their heartbeats."""

    def __init__(self, heartbeat_interval: float, write_timeout: float,
                 log: logging.Logger | logging.LoggerAdapter):  # fmt: skip
        self.heartbeat_interval = heartbeat_interval
        self.write_timeout = write_timeout
        self.log = log
        self.streams: set[DetachedStream] = set()
        self._timer: asyncio.TimerHandle | None = None

    def serve(self, handler: Any, sub: Subscription, encode: Callable[[Event], bytes], ends: bool) -> None:
        """Take ``handler``'s connection out of tornado and push ``sub``'s events on its socket.

        The handler is finished as far as tornado knows (its request log line is written
        now) and its coroutine should return at once; tornado frees it, its request and
        its connection. Call only when `tornado_push.direct_socket` gave the socket.
        """
        handler.application.log_request(handler)
        handler.on_finish()
        stream = handler.detach()
        handler.ui = None  # the cycle tornado's finish() breaks, so the handler is freed at once
        sock = stream.socket
        if sock is None or stream.closed():
            sub.close(StreamClosed())
            return
        io_loop = stream.io_loop
        io_loop.remove_handler(sock.fileno())  # the IOStream's; the stream object is dropped
        conn = DetachedStream(self, sock, io_loop, sub, encode, ends)
        _outside(io_loop.add_handler, conn.fd, conn.on_events, _READ)
        self.streams.add(conn)
        if self._timer is None:
            self._timer = _outside(asyncio.get_running_loop().call_later, self.heartbeat_interval, self.beat)
        sub.push(conn.deliver, conn.end)

    def beat(self) -> None:
        """A heartbeat comment on every idle detached stream; again in ``heartbeat_interval``."""
        self._timer = None
        if self.streams:
            loop = asyncio.get_running_loop()
            self._timer = _outside(loop.call_later, self.heartbeat_interval, self.beat)
            self.beat_some(list(self.streams), 0)

    def beat_some(self, conns: list[DetachedStream], start: int) -> None:
        """Heartbeats for ``BEAT_BATCH`` streams from ``start``, then the rest in the loop's next turns.

        Thousands of sends in one go would hold events back for tens of milliseconds; in
        batches, deliveries go out between them.
        """
        for conn in conns[start : start + BEAT_BATCH]:
            conn.beat()
        if start + BEAT_BATCH < len(conns):
            _outside(asyncio.get_running_loop().call_soon, self.beat_some, conns, start + BEAT_BATCH)

    def close(self) -> None:
        """Server shutdown: stop the heartbeats and close what the logs' end did not."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        for conn in list(self.streams):
            conn.gone()


class DetachedStream:
    """One detached SSE response: its socket, its subscription, and bytes the socket has not taken."""

    __slots__ = ("closing", "encode", "ends", "fd", "io_loop", "pending", "sock", "stall", "streams", "sub")

    def __init__(self, streams: DetachedStreams, sock: socket.socket, io_loop: IOLoop, sub: Subscription,
                 encode: Callable[[Event], bytes], ends: bool):  # fmt: skip
        self.streams = streams
        self.sock: socket.socket | None = sock
        self.fd = sock.fileno()
        self.io_loop = io_loop
        self.sub = sub
        self.encode = encode
        self.ends = ends
        #: what the socket has not taken yet (the subscription is paused meanwhile)
        self.pending: memoryview | None = None
        #: the last chunk is written: close once ``pending`` is out
        self.closing = False
        self.stall: asyncio.TimerHandle | None = None

    def deliver(self, events: list[Event]) -> bool:
        """Send ``events``; True while part of them waits for the socket. `StreamClosed` if the client went."""
        if self.ends and events[-1].type == "end":
            self.write(chunk_of(self.encode, events))
            self.sub.close()  # -> end(None): the last chunk, then the socket closes
            return False
        return self.write(chunk_of(self.encode, events))

    def write(self, data: bytes) -> bool:
        """Send ``data`` now or queue it behind what waits; True while something waits."""
        sock = self.sock
        if sock is None:
            raise StreamClosed()
        if self.pending is not None:
            self.pending = memoryview(bytes(self.pending) + data)
            return True
        try:
            sent = sock.send(data)
        except (BlockingIOError, InterruptedError):
            sent = 0
        except OSError:
            self.shut()
            raise StreamClosed() from None
        if sent == len(data):
            return False  # the socket took every byte: nothing to wait for
        self.pending = memoryview(data)[sent:]
        _outside(self.io_loop.update_handler, self.fd, _READ | _WRITE)
        self.stall = _outside(asyncio.get_running_loop().call_later, self.streams.write_timeout, self.stalled)
        return True

    def on_events(self, fd: int, events: int) -> None:
        """The socket is writable (send what waits) or readable (the client may have gone)."""
        if events & _WRITE and self.pending is not None:
            self.send_pending()
        if events & ~_WRITE and self.sock is not None:
            try:
                data = self.sock.recv(4096)  # a client sends nothing more on a stream: ignored
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                data = b""
            if not data:
                self.gone()

    def send_pending(self) -> None:
        try:
            sent = self.sock.send(self.pending)  # type: ignore[union-attr]
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self.gone()
            return
        if sent < len(self.pending):  # type: ignore[arg-type]
            self.pending = self.pending[sent:]  # type: ignore[index]
            return
        self.pending = None
        self.stall.cancel()  # type: ignore[union-attr]
        self.stall = None
        if self.closing:
            self.shut()
            return
        _outside(self.io_loop.update_handler, self.fd, _READ)
        self.sub.resume()

    def beat(self) -> None:
        """A heartbeat comment, unless the socket is still busy with events."""
        if self.sock is None or self.pending is not None or self.sub.paused:
            return
        try:
            self.write(_HEARTBEAT)
        except StreamClosed:
            self.sub.close(StreamClosed())

    def end(self, error: BaseException | None) -> None:
        """The subscription ended: ``error`` is None for a normal end (last chunk, then close)."""
        if self.sock is None:
            return
        if error is None:
            self.closing = True
            try:
                if self.write(_LAST_CHUNK):
                    return  # the socket closes once the rest is written
            except StreamClosed:
                return
        elif isinstance(error, SubscriberTooSlow):
            self.streams.log.warning("taskstream: subscriber fell too far behind, dropped; it resumes by id")
        self.shut()

    def stalled(self) -> None:
        """The client left its socket full for ``write_timeout``: disconnect it."""
        self.stall = None
        self.streams.log.warning("taskstream: dropping a subscriber that stopped reading (a detached stream)")
        self.gone()

    def gone(self) -> None:
        """The client went (or must go): close the socket and end the subscription."""
        self.shut()
        self.sub.close(StreamClosed())

    def shut(self) -> None:
        """Close the socket and forget it (no last chunk)."""
        sock, self.sock = self.sock, None
        if sock is None:
            return
        if self.stall is not None:
            self.stall.cancel()
            self.stall = None
        self.pending = None
        self.streams.streams.discard(self)
        self.io_loop.remove_handler(self.fd)
        sock.close()
