"""Cases 4-7: the hub alone, a real jupyter server, against the sse-starlette peer.

Every case starts its servers, does one warm-up run and ``cfg.runs`` measured runs, and
returns `Row`s. Server CPU and RSS are read from the server's pid; clients and publishers
run in other processes. Every loop is bounded by a count and a deadline.
"""

from __future__ import annotations

import asyncio
import json
import time

import httpx

from .drivers import ClientPool, HubStream, PeerStream, RawHTTP, paced, stamp
from .harness import BenchConfig, HubServer, PeerServer, Row, percentile

__all__ = ["case4", "case5", "case6", "case7"]


async def _fanout_run(server, stream_cls, *, subscribers: int, rate: float, duration: float, pad: int,
                      processes: int, frozen: int = 0) -> dict:
    """Subscribe, publish ``rate*duration`` events, end the stream, collect what clients saw."""
    async with httpx.AsyncClient(timeout=30) as client:
        stream = stream_cls(server, client)
        path = await stream.open()
        count = int(rate * duration)
        pool = ClientPool(server.port, path, server.headers, subscribers, processes=processes, expect=count,
                          frozen=frozen, deadline=duration + 60)
        try:
            ready = await pool.start()
            if ready["connected"] < subscribers:
                raise RuntimeError(f"only {ready['connected']}/{subscribers} connected: {ready['errors']}")
            rss0, cpu0 = server.probe.rss(), server.probe.cpu()
            t0 = time.monotonic()
            async for i in paced(count, rate, deadline=t0 + duration * 3 + 10):
                await stream.log(stamp(i, pad))
            await stream.end()
            rss_peak = server.probe.rss()
            result = await pool.result(timeout=60 + duration)
            cpu1, rss1 = server.probe.cpu(), server.probe.rss()
        finally:
            await pool.close()
    lat = result["latencies_ms"]
    return {
        "p50": percentile(lat, 50), "p95": percentile(lat, 95), "p99": percentile(lat, 99),
        "cpu": cpu1 - cpu0, "deliveries": result.get("deliveries", 0), "lost": result.get("lost", 0),
        "cpu_us_per_event": (cpu1 - cpu0) / max(1, result.get("deliveries", 0)) * 1e6,
        "rss_growth": max(rss_peak, rss1) - rss0, "ended": result.get("ended", 0),
        "frozen_dropped": result.get("frozen_dropped", 0), "connect_ms": ready["connect_ms"],
    }


async def _repeat(cfg: BenchConfig, fn, *args, **kwargs) -> list[dict]:
    """One warm-up run (discarded), then ``cfg.runs`` measured runs."""
    out = []
    for i in range(cfg.warmup + cfg.runs):
        r = await fn(*args, **kwargs)
        if i >= cfg.warmup:
            out.append(r)
    return out


async def case4(cfg: BenchConfig) -> list[Row]:
    """Fan-out: N SSE subscribers on one task, 20 events/s for D s."""
    n = cfg.pick(1000, 100, smoke=5)
    duration = cfg.pick(10.0, 0.5)
    rate = 20.0
    kw = dict(subscribers=n, rate=rate, duration=duration, pad=64, processes=cfg.pick(2, 1))
    with HubServer() as hub, PeerServer() as peer:
        ours = await _repeat(cfg, _fanout_run, hub, HubStream, **kw)
        theirs = await _repeat(cfg, _fanout_run, peer, PeerStream, **kw)
    size = f"{n} subscribers, {rate:g} events/s for {duration:g} s"
    peer_name = "sse-starlette on uvicorn"
    cpu = Row(4, "server CPU per delivered event", "µs", [r["cpu_us_per_event"] for r in ours], peer_name,
              [r["cpu_us_per_event"] for r in theirs], target="≤ 0.5× peer", check=lambda m, p: m <= 0.5 * p)
    if cfg.quick:  # a few tens of ms of CPU, read in 10 ms ticks: a ratio of two roundings
        cpu = cpu.unmeasured(f"{int(rate * duration)} events use a few 10 ms CPU ticks")
    return [
        Row(4, f"delivery latency p50 ({size})", "ms", [r["p50"] for r in ours], peer_name,
            [r["p50"] for r in theirs]),
        Row(4, "delivery latency p99", "ms", [r["p99"] for r in ours], peer_name, [r["p99"] for r in theirs],
            target="≤ 30 ms", check=lambda m, p: m <= 30),
        cpu,
        Row(4, "lost events (all subscribers)", "events", [r["lost"] for r in ours], peer_name,
            [r["lost"] for r in theirs], target="0", check=lambda m, p: m == 0),
    ]


async def _memory_run(server_cls, stream_cls, sizes: tuple[int, ...], events: int, rate: float,
                      settle: float = 1.0) -> dict:
    """Fresh server: RSS per idle connection at each size, then delivery latency at the largest."""
    out: dict = {}
    with server_cls() as server:
        async with httpx.AsyncClient(timeout=30) as client:
            stream = stream_cls(server, client)
            path = await stream.open()
            await asyncio.sleep(0.5)
            rss0 = server.probe.rss()
            pools, connected = [], 0
            try:
                for size in sizes:
                    add = size - connected
                    pool = ClientPool(server.port, path, server.headers, add,
                                      processes=max(1, (add + 2499) // 2500), expect=events, deadline=120)
                    pools.append(pool)
                    ready = await pool.start(timeout=180)
                    connected += ready["connected"]
                    if ready["connected"] < add:
                        raise RuntimeError(f"only {connected}/{size} connected: {ready['errors']}")
                    await asyncio.sleep(settle)  # let the server settle: no connection in flight
                    out[size] = (server.probe.rss() - rss0) / size
                    out.setdefault("connect_ms", []).extend(ready["connect_ms"])
                async for i in paced(events, rate, deadline=time.monotonic() + events / rate * 3 + 10):
                    await stream.log(stamp(i, 64))
                await stream.end()
                lat, lost = [], 0
                for pool in pools:
                    r = await pool.result(timeout=120)
                    lat += r["latencies_ms"]
                    lost += r.get("lost", 0)
                out["p95"], out["lost"] = percentile(lat, 95), lost
            finally:
                for pool in pools:
                    await pool.close()
    return out


async def case5(cfg: BenchConfig) -> list[Row]:
    """Memory per idle SSE connection, and delivery latency with the largest number connected."""
    # Issue 16's scale: 10,000 idle connections, then 2 events/s to all of them.
    sizes = cfg.pick((1000, 10000), (500,), smoke=(5, 10))
    settle = cfg.pick(1.0, 0.3)
    events, rate = cfg.pick((10, 2.0), (4, 10.0))
    # A fresh server per run, so no warm-up is needed (or possible); quick does one run.
    runs = cfg.pick(cfg.runs, 1)
    sub = BenchConfig(quick=cfg.quick, runs=runs, warmup=0)
    ours = await _repeat(sub, _memory_run, HubServer, HubStream, sizes, events, rate, settle)
    theirs = await _repeat(sub, _memory_run, PeerServer, PeerStream, sizes, events, rate, settle)
    peer_name = "sse-starlette on uvicorn"
    rows = [
        Row(5, f"RSS per idle SSE connection at {s}", "KiB", [r[s] / 1024 for r in ours], peer_name,
            [r[s] / 1024 for r in theirs], target=f"≤ {limit:g} KiB", check=lambda m, p, limit=limit: m <= limit)
        for s in sizes
        for limit in [8 if s >= 10000 else 20]  # issue 16: 8 KiB at 10,000; 20 KiB before it
    ]
    big = sizes[-1]
    rows += [
        Row(5, f"delivery latency p95 with {big} subscribers ({events} events at {rate:g}/s)", "ms",
            [r["p95"] for r in ours], peer_name, [r["p95"] for r in theirs], target="≤ 250 ms",
            check=lambda m, p: m <= 250),
        Row(5, f"time to first byte p95 while {big} connect", "ms",
            [percentile(r["connect_ms"], 95) for r in ours], peer_name,
            [percentile(r["connect_ms"], 95) for r in theirs]),
        Row(5, f"lost events with {big} subscribers", "events", [r["lost"] for r in ours], peer_name,
            [r["lost"] for r in theirs], target="0", check=lambda m, p: m == 0),
    ]
    for row in rows:
        row.note = f"{runs} runs, each on a fresh server (no warm-up: RSS deltas need a fresh heap)"
    return rows


async def case6(cfg: BenchConfig) -> list[Row]:
    """One frozen client among 99 normal ones: the others' p99 and the server's memory."""
    duration = cfg.pick(10.0, 0.5)
    rate, pad = 50.0, 8192
    kw = dict(rate=rate, duration=duration, pad=pad, processes=1)
    base, frozen = [], []
    with HubServer() as hub:
        for i in range(cfg.warmup + cfg.runs):
            # Alternate which goes first, so heap reuse from the previous run favours neither.
            pair = [("base", 100, 0), ("frozen", 100, 1)]
            if i % 2:
                pair.reverse()
            got = {}
            for label, subs, nfrozen in pair:
                got[label] = await _fanout_run(hub, HubStream, subscribers=subs, frozen=nfrozen, **kw)
            if i >= cfg.warmup:
                base.append(got["base"])
                frozen.append(got["frozen"])
    unread_mib = rate * duration * (pad + 40) / 2**20
    return [
        Row(6, "others' delivery latency p99, one frozen client among 100", "ms", [r["p99"] for r in frozen],
            "same run without the frozen client", [r["p99"] for r in base], target="≤ 1.2× without",
            check=lambda m, p: m <= 1.2 * p,
            note=f"{rate:g} events/s of {pad / 1024:g} KiB for {duration:g} s"),
        Row(6, f"server RSS growth over the run (frozen client left ~{unread_mib:.1f} MiB unread)", "MiB",
            [r["rss_growth"] / 2**20 for r in frozen], "same run without the frozen client",
            [r["rss_growth"] / 2**20 for r in base], target="bounded: < growth without + 1 MiB",
            check=lambda m, p: m < p + 1.0),
        Row(6, "lost events among the normal clients", "events", [r["lost"] for r in frozen], None, [],
            target="0", check=lambda m, p: m == 0),
    ]


async def _poll_run(hub: HubServer, mode: str, *, updates: int, scale: float) -> dict:
    """One task with ``updates`` progress updates at 10/s (compressed by ``scale``), watched one way."""
    rate = 10.0 * scale  # 10 updates/s (600 in 60 s), compressed by `scale`
    interval = 1.0 / scale  # "every 1 s", compressed the same way
    duration = updates / rate
    async with httpx.AsyncClient(timeout=30) as client:
        stream = HubStream(hub, client)
        await stream.open("watched", total=updates)
        task_url = f"/taskstream/api/tasks/{stream.task_id}"
        seen, bytes_, requests, nochange = 0, 0, 0, []
        watcher_done = asyncio.Event()

        async def publish():
            async for i in paced(updates, rate, deadline=time.monotonic() + duration * 3 + 10):
                await stream.publish([{"type": "progress", "data": {"current": i + 1}}])
            await stream.end()

        async def poll(etag: bool, long: bool):
            nonlocal seen, bytes_, requests
            http = RawHTTP(hub.port, hub.headers)
            last_current, tag, after = None, None, 0
            deadline = time.monotonic() + duration * 3 + 30
            try:
                while time.monotonic() < deadline:
                    t = time.monotonic()
                    headers = {"If-None-Match": tag} if etag and tag else None
                    path = f"{task_url}?wait=30&after={after}" if long else task_url
                    status, h, body, size = await http.get(path, headers)
                    if status == 304:
                        nochange.append((size, len(body)))
                    elif status == 200:
                        snap = json.loads(body)
                        tag = h.get("etag")
                        after = snap["last_event_id"]
                        cur = snap["progress"]["current"]
                        if cur != last_current:
                            seen += 1
                            last_current = cur
                        if snap["status"] in ("completed", "failed", "cancelled"):
                            break
                    if not long:
                        await asyncio.sleep(max(0.0, interval - (time.monotonic() - t)))
                if etag and tag:
                    # The task has ended: the next poll is the no-change case by construction.
                    status, h, body, size = await http.get(task_url, {"If-None-Match": tag})
                    if status == 304:
                        nochange.append((size, len(body)))
            finally:
                bytes_, requests = http.sent + http.received, http.requests
                await http.close()
                watcher_done.set()

        async def sse():
            nonlocal seen, bytes_, requests
            pool = ClientPool(hub.port, stream.path, hub.headers, 1, deadline=duration * 3 + 30)
            await pool.start()
            started.set()
            r = await pool.result(timeout=duration * 3 + 60)
            req = len(f"GET {stream.path} HTTP/1.1\r\nHost: 127.0.0.1:{hub.port}\r\n"
                      f"Accept: text/event-stream\r\nAuthorization: {hub.headers['Authorization']}\r\n\r\n")
            bytes_, requests = r["bytes"] + req, 1
            seen = r["events"] - 1 - 2  # minus the snapshot, the closing status and end
            watcher_done.set()

        started = asyncio.Event()
        watcher = None
        if mode == "sse":
            watcher = asyncio.ensure_future(sse())
            await asyncio.wait_for(started.wait(), 60)
        elif mode != "none":
            watcher = asyncio.ensure_future(poll(etag=mode == "poll_etag", long=mode == "long_poll"))
        cpu0 = hub.probe.cpu()
        await publish()
        if watcher is not None:
            await asyncio.wait_for(watcher, duration * 3 + 90)
        cpu = hub.probe.cpu() - cpu0
    return {"seen": seen, "bytes": bytes_, "requests": requests, "cpu": cpu, "nochange": nochange}


async def case7(cfg: BenchConfig) -> list[Row]:
    """Cost per delivered update of a 60 s task with 600 updates: polling, ETag, long-poll, SSE."""
    scale = cfg.pick(10.0, 40.0)
    updates = cfg.pick(600, 100)  # quick: a 10 s task, same rates
    # "none" (no watcher) is the CPU rows' baseline, which quick mode does not measure.
    modes = ("poll_1s", "poll_etag", "long_poll", "sse")
    if not cfg.quick:
        modes = ("none", *modes)
    res: dict[str, list[dict]] = {m: [] for m in ("none", *modes)}
    # The hub coalesces progress to progress_rate_hz: scaled with time so 10 updates/s stay 10 updates/s.
    with HubServer(progress_rate_hz=10.0 * scale) as hub:
        for i in range(cfg.warmup + cfg.runs):
            for mode in modes:
                r = await _poll_run(hub, mode, updates=updates, scale=scale)
                if i >= cfg.warmup:
                    res[mode].append(r)
    base_cpu = sorted(r["cpu"] for r in res["none"])[len(res["none"]) // 2] if res["none"] else 0.0
    labels = {"poll_1s": "polling every 1 s", "poll_etag": "polling every 1 s with ETag",
              "long_poll": "long-poll (wait=30&after=ID)", "sse": "SSE"}
    note = f"{updates / 10:g} s task compressed {scale:g}× (updates and poll interval scaled together)"
    rows = []
    per_update = {m: [r["bytes"] / max(1, r["seen"]) for r in res[m]] for m in labels}
    for mode, label in labels.items():
        rs = res[mode]
        rows.append(Row(7, f"{label}: bytes per delivered update", "B", per_update[mode], note=note))
        rows.append(Row(7, f"{label}: requests for the task", "requests", [r["requests"] for r in rs]))
        rows.append(Row(7, f"{label}: bytes on the wire for the task", "KiB", [r["bytes"] / 1024 for r in rs]))
        rows.append(Row(7, f"{label}: updates delivered (of {updates})", "updates", [r["seen"] for r in rs]))
        cpu = Row(7, f"{label}: server CPU per delivered update", "µs",
                  [max(0.0, r["cpu"] - base_cpu) / max(1, r["seen"]) * 1e6 for r in rs],
                  note="above a run with no watcher")
        # Quick: ~100 updates, a difference of two CPU readings in 10 ms ticks.
        rows.append(cpu.unmeasured(f"{updates} updates are a few 10 ms CPU ticks") if cfg.quick else cpu)
    rows.append(Row(7, "SSE bytes per delivered update vs 1 s polling", "B", per_update["sse"],
                    "polling every 1 s", per_update["poll_1s"], target="≥ 10× fewer",
                    check=lambda m, p: m * 10 <= p))
    nochange = [size for r in res["poll_etag"] for size, body in r["nochange"]]
    bodies = [body for r in res["poll_etag"] for size, body in r["nochange"]]
    if nochange:
        rows.append(Row(7, "no-change poll (304): response bytes, headers only", "B", nochange[:1000],
                        target="header-only, no body", check=lambda m, p, b=bodies: max(b) == 0,
                        note=f"{len(nochange)} no-change polls, body bytes max {max(bodies)}"))
    return rows
