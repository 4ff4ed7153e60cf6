"""Drivers the cases share: SSE client processes, a byte-counting HTTP client, publishers.

`ClientPool` spreads SSE connections over `benchmarks.sse_clients` processes, so client CPU
never counts as server CPU. `RawHTTP` is a keep-alive HTTP/1.1 client on a plain socket that
counts every byte it sends and receives, headers included. `HubStream` and `PeerStream`
publish the same events to the hub and to the peer, with ``seq=N;t=MONOTONIC;`` in the text.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from typing import Any

import httpx

from .harness import HOST, ROOT, HubServer, PeerServer, Timeout

__all__ = ["ClientPool", "HubStream", "PeerStream", "RawHTTP", "paced", "stamp"]


def stamp(seq: int, pad: int = 0) -> str:
    """The text of event ``seq``: its publish time on CLOCK_MONOTONIC, and ``pad`` filler bytes."""
    return f"seq={seq};t={time.monotonic():.6f};" + "x" * pad


async def paced(count: int, rate: float, deadline: float):
    """Yield 0..count-1 on a fixed schedule of ``rate`` per second, stopping at ``deadline`` (monotonic)."""
    start = time.monotonic()
    for i in range(count):
        due = start + i / rate
        now = time.monotonic()
        if now > deadline:
            return
        if due > now:
            await asyncio.sleep(due - now)
        yield i


class ClientPool:
    """``n`` SSE connections to one URL spread over ``processes`` client processes."""

    def __init__(self, port: int, path: str, headers: dict[str, str], n: int, *, processes: int = 1,
                 expect: int = 0, frozen: int = 0, deadline: float = 60.0, connect_timeout: float = 30.0,
                 concurrency: int = 100):
        self.procs: list[asyncio.subprocess.Process] = []
        self.specs = []
        per = [n // processes + (1 if i < n % processes else 0) for i in range(processes)]
        for i, count in enumerate(per):
            if count == 0:
                continue
            self.specs.append({
                "host": HOST, "port": port, "path": path, "headers": headers, "n": count,
                "expect": expect, "frozen": frozen if i == 0 else 0, "deadline": deadline,
                "connect_timeout": connect_timeout, "concurrency": concurrency,
            })
        self.ready: list[dict] = []

    async def start(self, timeout: float = 120.0) -> dict:
        """Start the processes and wait until every connection has its first bytes."""
        for spec in self.specs:
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "benchmarks.sse_clients", json.dumps(spec), cwd=ROOT,
                stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, limit=2**28,
            )
            self.procs.append(proc)
        self.ready = [await self._line(p, "READY", timeout) for p in self.procs]
        return {
            "connected": sum(r["connected"] for r in self.ready),
            "failed": sum(r["failed"] for r in self.ready),
            "errors": [e for r in self.ready for e in r["errors"]][:5],
            "connect_ms": [x for r in self.ready for x in r["connect_ms"]],
        }

    async def result(self, timeout: float, stop: bool = False) -> dict:
        """Wait for every process's result (sending ``STOP`` first if asked) and merge them."""
        if stop:
            for p in self.procs:
                p.stdin.write(b"STOP\n")
                await p.stdin.drain()
        results = [await self._line(p, "RESULT", timeout) for p in self.procs]
        await self.close()
        merged: dict[str, Any] = {"latencies_ms": []}
        for r in results:
            for k, v in r.items():
                if isinstance(v, list):
                    merged.setdefault(k, []).extend(v)
                elif isinstance(v, (int, float)):
                    merged[k] = merged.get(k, 0) + v
        return merged

    async def close(self) -> None:
        for p in self.procs:
            if p.returncode is None:
                try:
                    p.stdin.close()
                except Exception:
                    pass
                try:
                    await asyncio.wait_for(p.wait(), 10)
                except asyncio.TimeoutError:
                    p.kill()
                    await p.wait()

    @staticmethod
    async def _line(proc: asyncio.subprocess.Process, tag: str, timeout: float) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                proc.kill()
                raise Timeout(f"client process gave no {tag} line within {timeout} s")
            try:
                line = await asyncio.wait_for(proc.stdout.readline(), left)
            except asyncio.TimeoutError:
                continue
            if not line:
                raise RuntimeError(f"client process exited ({await proc.wait()}) before {tag}")
            if line.startswith(tag.encode() + b" "):
                return json.loads(line[len(tag) + 1:])


class HubStream:
    """One hub task as an event stream: create it, publish log/progress events, end it."""

    kind = "hub"

    def __init__(self, server: HubServer, client: httpx.AsyncClient):
        self.server = server
        self.client = client
        self.task_id = ""

    async def open(self, name: str = "bench", total: float | None = None) -> str:
        r = await self.client.post(self.server.api + "/tasks", json={"name": name, "total": total},
                                   headers=self.server.headers)
        r.raise_for_status()
        self.task_id = r.json()["id"]
        await self.publish([{"type": "status", "data": {"status": "running"}}])
        return self.path

    @property
    def path(self) -> str:
        return f"/taskstream/api/tasks/{self.task_id}/events"

    async def publish(self, events: list[dict]) -> None:
        r = await self.client.post(f"{self.server.api}/tasks/{self.task_id}/events", json={"events": events},
                                   headers=self.server.headers)
        r.raise_for_status()

    async def log(self, text: str) -> None:
        await self.publish([{"type": "log", "data": {"stream": "stdout", "text": text}}])

    async def end(self) -> None:
        await self.publish([{"type": "status", "data": {"status": "completed"}}])


class PeerStream(HubStream):
    """The same stream on the sse-starlette peer."""

    kind = "peer"
    server: PeerServer  # type: ignore[assignment]

    async def open(self, name: str = "bench", total: float | None = None) -> str:
        return self.path

    @property
    def path(self) -> str:
        return "/events"

    async def publish(self, events: list[dict]) -> None:
        r = await self.client.post(self.server.base + "/publish", json={"events": events})
        r.raise_for_status()

    async def end(self) -> None:
        await self.publish([{"type": "status", "data": {"status": "completed"}}, {"type": "end", "data": {}}])


class RawHTTP:
    """A keep-alive HTTP/1.1 client on one socket that counts bytes on the wire (TCP/IP headers excluded)."""

    def __init__(self, port: int, headers: dict[str, str]):
        self.port = port
        self.headers = headers
        self.sent = 0
        self.received = 0
        self.requests = 0
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def connect(self) -> None:
        self.reader, self.writer = await asyncio.open_connection(HOST, self.port, limit=2**24)

    async def get(self, path: str, headers: dict[str, str] | None = None, timeout: float = 60.0):
        """``(status, headers, body, response_bytes)`` of one GET on the kept-alive socket."""
        if self.writer is None:
            await self.connect()
        lines = [f"GET {path} HTTP/1.1", f"Host: {HOST}:{self.port}"]
        lines += [f"{k}: {v}" for k, v in {**self.headers, **(headers or {})}.items()]
        request = ("\r\n".join(lines) + "\r\n\r\n").encode()
        self.writer.write(request)
        self.sent += len(request)
        self.requests += 1
        head = await asyncio.wait_for(self.reader.readuntil(b"\r\n\r\n"), timeout)
        status = int(head.split(b" ", 2)[1])
        resp_headers = {}
        for line in head.decode("latin-1").split("\r\n")[1:]:
            if ":" in line:
                k, v = line.split(":", 1)
                resp_headers[k.strip().lower()] = v.strip()
        body = b""
        size = len(head)
        if "content-length" in resp_headers:
            body = await self.reader.readexactly(int(resp_headers["content-length"]))
            size += len(body)
        elif resp_headers.get("transfer-encoding") == "chunked":
            while True:
                line = await self.reader.readuntil(b"\r\n")
                n = int(line.strip(), 16)
                chunk = await self.reader.readexactly(n + 2)
                size += len(line) + len(chunk)
                body += chunk[:-2]
                if n == 0:
                    break
        self.received += size
        return status, resp_headers, body, size

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            try:
                await self.writer.wait_closed()
            except OSError:
                pass
            self.writer = None
