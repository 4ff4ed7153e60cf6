"""Case 9: the durable SQLite store against the in-memory store, in the same run.

Publish throughput (events acknowledged per second, each acknowledged only once stored) and
the latency from print() in a kernel to an SSE client, with each store. Targets (issue 7):
latency p50 within +1 ms of in-memory, throughput at least 0.5x in-memory.
"""

from __future__ import annotations

import asyncio
import time

import httpx

from .harness import BenchConfig, HubServer, Row, percentile
from .kernel_cases import HubListener, Kernel, _prelude

__all__ = ["case9"]

MEMORY = "jupyter_taskstream.hub.store.MemoryStore"


async def _throughput(hub: HubServer, publishers: int, duration: float) -> float:
    """Events per second that ``publishers`` concurrent clients get acknowledged, one per request."""
    async with httpx.AsyncClient(headers=hub.headers, timeout=30) as client:
        task = (await client.post(f"{hub.api}/tasks", json={"name": "bench: throughput"})).json()
        url = f"{hub.api}/tasks/{task['id']}/events"
        acknowledged = 0
        deadline = time.monotonic() + duration

        async def publish(worker: int) -> None:
            nonlocal acknowledged
            i = 0
            while time.monotonic() < deadline and i < 1_000_000:
                body = {"events": [{"type": "log", "data": {"stream": "stdout", "text": f"w{worker} {i}"}}]}
                r = await client.post(url, json=body)
                if r.status_code == 204:
                    acknowledged += 1
                i += 1

        t0 = time.monotonic()
        await asyncio.gather(*(publish(w) for w in range(publishers)))
        elapsed = time.monotonic() - t0
        await client.post(url, json={"events": [{"type": "status", "data": {"status": "completed"}}]})
    return acknowledged / elapsed


async def _latency(hub: HubServer, kernel: Kernel, n: int, gap: float) -> float:
    code = _prelude() + f"""
with ts.task("bench: store latency"):
    for i in range({n}):
        print(f"seq={{i}};t={{time.monotonic():.6f}};")
        time.sleep({gap})
_report(done=True)
"""
    with HubListener(hub) as listener:
        await asyncio.to_thread(kernel.execute, code, 120)
        deadline = time.monotonic() + 10
        while len(listener.latencies) < n and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
    return percentile([x * 1000 for x in listener.latencies.values()], 50)


async def case9(cfg: BenchConfig) -> list[Row]:
    """SQLite store vs in-memory store: publish throughput and kernel→SSE latency."""
    # Quick: 0.5 s of 4 publishers is still ~1,000 acknowledged requests per store and run.
    publishers, duration = cfg.pick(8, 4, smoke=2), cfg.pick(5.0, 0.5, smoke=0.3)
    n, gap = cfg.pick(500, 60, smoke=10), 0.003
    results: dict[str, dict[str, list[float]]] = {}
    for label, options in (("sqlite", {}), ("memory", {"store": MEMORY})):
        tput, lat = [], []
        with HubServer(**options) as hub:
            kernel = Kernel(hub).start()
            try:
                for i in range(cfg.warmup + cfg.runs):
                    t = await _throughput(hub, publishers, duration)
                    p50 = await _latency(hub, kernel, n, gap)
                    if i >= cfg.warmup:
                        tput.append(t)
                        lat.append(p50)
            finally:
                kernel.stop()
        results[label] = {"throughput": tput, "latency": lat}
    peer = "in-memory store (MemoryStore)"
    size = f"{publishers} publishers, 1 event per request, {duration:g} s"
    return [
        Row(9, f"publish throughput, SQLite store ({size})", "events/s", results["sqlite"]["throughput"], peer,
            results["memory"]["throughput"], target="≥ 0.5× in-memory", check=lambda m, p: m >= 0.5 * p),
        Row(9, "print() → SSE latency p50, SQLite store", "ms", results["sqlite"]["latency"], peer,
            results["memory"]["latency"], target="≤ in-memory + 1 ms", check=lambda m, p: m <= p + 1,
            note=f"{n} lines per run, {gap * 1000:g} ms apart"),
    ]
