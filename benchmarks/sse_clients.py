"""A client process holding many SSE connections: ``python -m benchmarks.sse_clients SPEC_JSON``.

Raw asyncio protocols, no HTTP library, so one process can hold thousands of streams and
its parsing stays cheap. Publishers put ``seq=N;t=MONOTONIC;`` in every event's text; a
connection records ``now - t`` (CLOCK_MONOTONIC is one clock for every process on Linux)
and which ``seq`` it saw. Talks to its parent over lines on stdin/stdout:

- prints ``READY {json}`` once every connection has its first bytes (or gave up);
- then waits until every normal connection has seen ``event: end``, the parent writes
  ``STOP``, or ``deadline`` seconds pass, and prints ``RESULT {json}``.

Spec keys: host, port, path, headers {k: v}, n, concurrency, connect_timeout, deadline,
expect (seqs 0..expect-1 each connection should get), frozen (connections that stop
reading after their first bytes, with a small receive buffer), rcvbuf.
"""

from __future__ import annotations

import asyncio
import json
import re
import socket
import sys
import threading
import time

_SEQ = re.compile(rb"seq=(\d+);t=([0-9.]+);")


class Stream(asyncio.Protocol):
    """One SSE connection: dechunking is unnecessary, events are found by their blank line."""

    def __init__(self, request: bytes, frozen: bool, record: bool):
        self.request = request
        self.frozen = frozen
        self.record = record
        self.transport: asyncio.Transport | None = None
        self.headers_done = False
        self.status = 0
        self.buf = b""
        self.bytes = 0
        self.events = 0
        self.types: dict[bytes, int] = {}
        self.latencies: list[float] = []
        self.seqs: set[int] = set()
        self.first = asyncio.get_running_loop().create_future()
        self.ended = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.Transport) -> None:
        self.transport = transport
        transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        now = time.monotonic()
        self.bytes += len(data)
        buf = self.buf + data
        if not self.headers_done:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                self.buf = buf
                return
            head, buf = buf[:end], buf[end + 4:]
            self.status = int(head.split(b" ", 2)[1])
            self.headers_done = True
            if self.status != 200:
                self._finish(f"HTTP {self.status}")
                return
        if not self.first.done() and buf:
            self.first.set_result(now)
            if self.frozen:
                # Stop reading: the server sees a full socket, as with a stalled browser tab.
                self.transport.pause_reading()
        cut = buf.rfind(b"\n\n")
        if cut < 0:
            self.buf = buf
            return
        done, self.buf = buf[:cut], buf[cut + 2:]
        for block in done.split(b"\n\n"):
            at = block.find(b"event: ")
            if at < 0:
                continue
            self.events += 1
            etype = block[at + 7:block.find(b"\n", at)]
            self.types[etype] = self.types.get(etype, 0) + 1
            if b"event: snapshot" in block:
                continue  # its log tail is history, not a delivery
            if self.record:
                for m in _SEQ.finditer(block):
                    self.seqs.add(int(m.group(1)))
                    self.latencies.append(now - float(m.group(2)))
            if b"event: end" in block:
                self._finish(None)
                return

    def _finish(self, error: str | None) -> None:
        if not self.ended.done():
            self.ended.set_result(error)
        if not self.first.done():
            self.first.set_result(None)
        if self.transport is not None:
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.ended.done():
            self.ended.set_result(f"closed: {exc}" if exc else "closed by server")
        if not self.first.done():
            self.first.set_result(None)


async def open_stream(spec: dict, frozen: bool) -> tuple[Stream | None, float | None, str | None]:
    loop = asyncio.get_running_loop()
    headers = "".join(f"{k}: {v}\r\n" for k, v in spec.get("headers", {}).items())
    request = (
        f"GET {spec['path']} HTTP/1.1\r\nHost: {spec['host']}:{spec['port']}\r\n"
        f"Accept: text/event-stream\r\n{headers}\r\n"
    ).encode()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setblocking(False)
    if frozen:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, spec.get("rcvbuf", 4096))
    t0 = time.monotonic()
    try:
        await asyncio.wait_for(loop.sock_connect(sock, (spec["host"], spec["port"])), spec["connect_timeout"])
        _, proto = await loop.create_connection(lambda: Stream(request, frozen, not frozen), sock=sock)
        first = await asyncio.wait_for(asyncio.shield(proto.first), spec["connect_timeout"])
    except (OSError, asyncio.TimeoutError) as e:
        sock.close()
        return None, None, f"{type(e).__name__}: {e}"
    if first is None:
        return None, None, proto.ended.result() if proto.ended.done() else "no first byte"
    return proto, first - t0, None


async def main(spec: dict) -> None:
    n, frozen = spec["n"], spec.get("frozen", 0)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()

    def read_stdin() -> None:
        for line in sys.stdin:
            if line.strip() == "STOP":
                break
        try:
            loop.call_soon_threadsafe(stop.set)
        except RuntimeError:
            pass  # every stream ended first and the loop is closed: nothing to stop

    threading.Thread(target=read_stdin, daemon=True).start()
    gate = asyncio.Semaphore(spec.get("concurrency", 100))

    async def one(i: int):
        async with gate:
            return await open_stream(spec, i < frozen)

    results = await asyncio.gather(*(one(i) for i in range(n)))
    streams = [r[0] for r in results if r[0] is not None]
    errors = [r[2] for r in results if r[2] is not None]
    connect_ms = [r[1] * 1000 for r in results if r[1] is not None]
    print("READY " + json.dumps({"connected": len(streams), "failed": len(errors), "errors": errors[:5],
                                 "connect_ms": connect_ms}), flush=True)
    normal = [s for s in streams if not s.frozen]
    waiting = asyncio.gather(*(s.ended for s in normal))
    stopper = asyncio.ensure_future(stop.wait())
    await asyncio.wait([waiting, stopper], timeout=spec["deadline"], return_when=asyncio.FIRST_COMPLETED)
    expect = spec.get("expect", 0)
    latencies, lost, ended, errors_end = [], 0, 0, []
    for s in normal:
        latencies.extend(round(x * 1000, 3) for x in s.latencies)
        if expect:
            lost += sum(1 for seq in range(expect) if seq not in s.seqs)
        if s.ended.done():
            err = s.ended.result()
            if err is None:
                ended += 1
            else:
                errors_end.append(err)
    frozen_streams = [s for s in streams if s.frozen]
    result = {
        "connected": len(streams),
        "ended": ended,
        "end_errors": errors_end[:5],
        "events": sum(s.events for s in normal),
        "deliveries": sum(len(s.seqs) for s in normal),
        "lost": lost,
        "bytes": sum(s.bytes for s in normal),
        "latencies_ms": latencies,
        "frozen_dropped": sum(1 for s in frozen_streams if s.ended.done()),
    }
    for s in streams:
        if s.transport is not None:
            s.transport.abort()
    print("RESULT " + json.dumps(result), flush=True)
    stopper.cancel()
    waiting.cancel()


if __name__ == "__main__":
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard if hard != resource.RLIM_INFINITY else 65536, hard))
    spec = json.loads(sys.argv[1])
    try:  # the cheapest loop there is, so the clients take as little CPU from the servers as they can
        import uvloop
    except ImportError:
        asyncio.run(main(spec))
    else:
        uvloop.run(main(spec))
