"""Case 2's floor rows and flood: what the log pipe's parts cost on their own, and a flood.

The floor is measured in the benchmark process on the same batches a kernel's publisher
sends (`batches`: ``lines_per_batch`` lines of one task per ``POST``): SQLite in WAL mode
taking them as one row per line in one transaction per batch (`sqlite_floor`), and the
batches' JSON bodies POSTed over loopback by an ``httpx.Client`` to a tornado server that
answers 204 without reading them (`http_floor`). The pipe cannot beat either; the table
shows how close it is. `flood` prints 1,000,000 lines in a fresh kernel of a fresh hub at
default settings and reports what was lost before the hub and how much memory each side grew.
"""

from __future__ import annotations

import json
import os
import sqlite3
import sys
import tempfile
import textwrap
import threading
import time

import httpx

from .harness import HubServer, _Server

__all__ = ["SinkServer", "batches", "flood", "http_floor", "sqlite_floor"]


class SinkServer(_Server):
    """`benchmarks.peers.post_sink`: POST → 204, the transport alone."""

    name = "sink"

    def command(self) -> list[str]:
        return [sys.executable, "-m", "benchmarks.peers.post_sink", str(self.port)]

    def ready_path(self) -> str:
        return "/status"


def batches(n: int, lines_per_batch: int) -> list[list[str]]:
    """The lines case 2 prints, cut the way the publisher cuts them."""
    lines = [f"line {i} of the benchmark output" for i in range(n)]
    return [lines[i : i + lines_per_batch] for i in range(0, n, lines_per_batch)]


def sqlite_floor(parts: list[list[str]]) -> float:
    """Seconds to insert the batches into a WAL database, one row per line, a transaction per batch."""
    with tempfile.TemporaryDirectory(prefix="tsbench-floor-") as tmp:
        db = sqlite3.connect(os.path.join(tmp, "floor.sqlite"), isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute("CREATE TABLE events (id INTEGER PRIMARY KEY, task TEXT NOT NULL, type TEXT NOT NULL, "
                   "data TEXT NOT NULL)")  # fmt: skip
        db.execute("CREATE INDEX events_by_task ON events (task, id)")
        rows, next_id = [], 1
        for part in parts:
            rows.append([(next_id + i, "task", "log", json.dumps({"stream": "stdout", "text": line}))
                         for i, line in enumerate(part)])  # fmt: skip
            next_id += len(part)
        t = time.perf_counter()
        for batch in rows:
            db.execute("BEGIN")
            db.executemany("INSERT INTO events (id, task, type, data) VALUES (?, ?, ?, ?)", batch)
            db.execute("COMMIT")
        took = time.perf_counter() - t
        db.close()
    return took


def http_floor(sink: SinkServer, parts: list[list[str]]) -> float:
    """Seconds to POST the batches' bodies one after the other, as the publisher does."""
    bodies = [
        json.dumps({"protocol": 3, "publisher": "floor", "seq": seq, "tasks": [], "events": [
            {"task": "task", "type": "log", "data": {"stream": "stdout", "lines": part}}]}).encode()
        for seq, part in enumerate(parts, 1)
    ]  # fmt: skip
    with httpx.Client(base_url=sink.base) as client:
        client.post("/sink", content=b"{}")  # the connection is open before the clock starts
        t = time.perf_counter()
        for body in bodies:
            client.post("/sink", content=body, headers={"Content-Type": "application/json"}).raise_for_status()
        return time.perf_counter() - t


def _flood_code(prelude: str, n: int) -> str:
    return prelude + textwrap.dedent(f"""
        import resource
        from jupyter_taskstream.kernel.context import default_runtime
        with ts.task("bench: warm-up"):
            print("warm")
        rt = default_runtime()
        rt.publisher.flush(60)
        rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        dropped0 = rt.publisher.dropped_lines
        t = time.perf_counter()
        with ts.task("bench: flood") as task:
            for i in range({n}):
                print("line", i, "of the benchmark output")
        printed = time.perf_counter() - t
        flushed = rt.publisher.flush(600)
        _report(id=task.id, printed=printed, sent=time.perf_counter() - t, flushed=flushed,
                dropped=rt.publisher.dropped_lines - dropped0,
                grew_kib=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss0)
    """)


def flood(kernel_cls: type, prelude: str, n: int) -> dict:
    """Print ``n`` lines in one task of a fresh kernel on a fresh hub at default settings."""
    with HubServer() as hub:
        kernel = kernel_cls(hub).start()
        try:
            peak = [hub.probe.rss()]
            stop = threading.Event()

            def sample() -> None:  # the server's peak RSS while the flood passes through it
                while not stop.wait(0.02):
                    peak.append(hub.probe.rss())

            sampler = threading.Thread(target=sample, daemon=True)
            sampler.start()
            try:
                res = kernel.execute(_flood_code(prelude, n), 900)
            finally:
                stop.set()
                sampler.join(5)
            snap = httpx.get(f"{hub.api}/tasks/{res['id']}", headers=hub.headers, timeout=30).json()
            log = httpx.get(f"{hub.api}/tasks/{res['id']}/log", params={"after": 0, "limit": 100_000},
                            headers=hub.headers, timeout=30).json()  # fmt: skip
        finally:
            kernel.stop()
    res["server_grew_mb"] = (max(peak) - peak[0]) / 1e6
    res["kernel_grew_mb"] = res["grew_kib"] * 1024 / 1e6
    # Every line the kernel printed is held by the hub or counted (trimmed by retention, or a marker).
    held = sum(1 for e in log["events"] if e["type"] == "log" and "dropped" not in e["data"])
    res["accounted"] = snap["log_dropped"] + held
    return res
