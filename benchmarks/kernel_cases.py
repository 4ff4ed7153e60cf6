"""Cases 1, 2, 3 and 8: the kernel runtime in real kernels started by a real hub server.

Kernels are started through the server's REST API (``POST /api/kernels``), so they
inherit the hub's URL and publish secret exactly as a user's kernels do. Loops are timed
inside the kernel (``time.perf_counter_ns``) and reported back as one JSON line; latency
cases stamp ``seq=N;t=MONOTONIC;`` into printed lines and the listeners (an SSE client on
the hub's all-tasks stream, a jupyter_client on IOPub, a browser-like websocket client on
``/api/kernels/{id}/channels``) subtract that from their arrival time.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import socket
import textwrap
import threading
import time
import uuid
from datetime import datetime, timezone

import httpx

from . import pipe_floor
from .harness import HOST, BenchConfig, HubServer, Row, Timeout, percentile

__all__ = ["case1", "case2", "case3", "case8"]

_SEQ = re.compile(rb"seq=(\d+);t=([0-9.]+);")
_END = re.compile(rb'event: end\ndata: \{"id":"([^"]+)"')
_RESULT = "TSBENCH_RESULT "


class Kernel:
    """A kernel started through the hub server's REST API, driven by a jupyter_client."""

    def __init__(self, hub: HubServer):
        self.hub = hub

    def start(self, timeout: float = 60.0) -> Kernel:
        from jupyter_client import BlockingKernelClient

        r = httpx.post(self.hub.base + "/api/kernels", json={"name": "python3"}, headers=self.hub.headers,
                       timeout=timeout)
        r.raise_for_status()
        self.id = r.json()["id"]
        path = self.hub.tmp / "runtime" / f"kernel-{self.id}.json"
        deadline = time.monotonic() + timeout
        while not path.exists():
            if time.monotonic() > deadline:
                raise Timeout(f"no connection file for kernel {self.id}")
            time.sleep(0.05)
        self.client = BlockingKernelClient()
        self.client.load_connection_file(str(path))
        self.client.start_channels()
        while True:
            try:
                self.client.wait_for_ready(timeout=max(1.0, deadline - time.monotonic()))
                return self
            except RuntimeError:
                # "Kernel died": on a loaded machine a heartbeat can miss; the server owns the
                # kernel, so ask again until the deadline rather than fail the case.
                if time.monotonic() > deadline:
                    raise

    def execute(self, code: str, timeout: float = 300.0, on_stream=None) -> dict:
        """Run code; return the JSON the code printed after ``TSBENCH_RESULT`` (stdout, outside tasks)."""
        msg_id = self.client.execute(code, store_history=False)
        deadline = time.monotonic() + timeout
        out, result, error = [], None, None
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise Timeout(f"kernel code did not finish in {timeout} s")
            try:
                msg = self.client.get_iopub_msg(timeout=min(left, 5))
            except Exception:  # queue.Empty
                continue
            now = time.monotonic()
            if msg["parent_header"].get("msg_id") != msg_id:
                continue
            mtype, content = msg["msg_type"], msg["content"]
            if mtype == "stream":
                if on_stream is not None:
                    on_stream(now, content["text"])
                out.append(content["text"])
            elif mtype == "error":
                error = "\n".join(content["traceback"])
            elif mtype == "status" and content["execution_state"] == "idle":
                break
        if error:
            raise RuntimeError(f"kernel code failed:\n{error[-3000:]}")
        for line in "".join(out).splitlines():
            if line.startswith(_RESULT):
                result = json.loads(line[len(_RESULT):])
        if result is None:
            raise RuntimeError(f"kernel code printed no result: {''.join(out)[-2000:]}")
        return result

    def stop(self) -> None:
        try:
            self.client.stop_channels()
        finally:
            httpx.delete(f"{self.hub.base}/api/kernels/{self.id}", headers=self.hub.headers, timeout=30)


class HubListener(threading.Thread):
    """A raw SSE client on the hub's all-tasks stream: arrival times of stamped lines and of ``end``."""

    def __init__(self, hub: HubServer):
        super().__init__(daemon=True)
        self.hub = hub
        self.latencies: dict[int, float] = {}
        self.ends: dict[str, float] = {}
        self.ready = threading.Event()
        self.stopped = False

    def run(self) -> None:
        self.sock = sock = socket.create_connection((HOST, self.hub.port))
        sock.settimeout(0.5)
        sock.sendall(f"GET /taskstream/api/events HTTP/1.1\r\nHost: {HOST}:{self.hub.port}\r\n"
                     f"Authorization: {self.hub.headers['Authorization']}\r\n\r\n".encode())
        buf = b""
        while not self.stopped:
            try:
                data = sock.recv(1 << 20)
            except socket.timeout:
                continue
            if not data:
                break
            now = time.monotonic()
            self.ready.set()
            buf += data
            cut = buf.rfind(b"\n\n")
            if cut < 0:
                continue
            done, buf = buf[:cut], buf[cut + 2:]
            for block in done.split(b"\n\n"):
                if b"event: snapshot" in block:
                    continue  # earlier tasks' log tails: history, not deliveries
                for m in _SEQ.finditer(block):
                    self.latencies.setdefault(int(m.group(1)), now - float(m.group(2)))
                for m in _END.finditer(block):
                    self.ends[m.group(1).decode()] = now
        sock.close()

    def __enter__(self) -> HubListener:
        self.start()
        if not self.ready.wait(30):
            raise Timeout("the hub's event stream sent nothing")
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopped = True
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)  # recv returns now, not at its next 0.5 s timeout
        self.join(5)


def _prelude() -> str:
    return textwrap.dedent(f"""
        import json, os, time, gc
        import jupyter_taskstream as ts
        def _report(**kw):
            print({_RESULT!r} + json.dumps(kw), flush=True)
    """)


async def case1(cfg: BenchConfig) -> list[Row]:
    """Per-iteration overhead of ts.progress() in a task vs tqdm, rich.progress.track, a bare generator."""
    n = cfg.pick(10**6, 10**6)
    code = _prelude() + textwrap.dedent(f"""
        from tqdm import tqdm
        from rich.console import Console
        from rich.progress import track
        N = {n}
        devnull = open(os.devnull, "w")
        def _gen(it):
            for x in it:
                yield x
        def bare():
            t = time.perf_counter_ns()
            for x in range(N):
                pass
            return time.perf_counter_ns() - t
        def generator():
            t = time.perf_counter_ns()
            for x in _gen(range(N)):
                pass
            return time.perf_counter_ns() - t
        def with_tqdm():
            t = time.perf_counter_ns()
            for x in tqdm(range(N), file=devnull):
                pass
            return time.perf_counter_ns() - t
        def with_rich():
            console = Console(file=devnull, force_jupyter=False, force_terminal=False)
            t = time.perf_counter_ns()
            for x in track(range(N), console=console):
                pass
            return time.perf_counter_ns() - t
        def with_ts():
            with ts.task("bench: progress overhead"):
                t = time.perf_counter_ns()
                for x in ts.progress(range(N)):
                    pass
                return time.perf_counter_ns() - t
        fns = dict(bare=bare, generator=generator, tqdm=with_tqdm, rich=with_rich, ts=with_ts)
        res = {{k: [] for k in fns}}
        gc.disable()
        deadline = time.monotonic() + 240
        for i in range({cfg.warmup + cfg.runs}):
            for k, fn in fns.items():   # interleaved, so drift hits every contender alike
                dt = fn()
                if i >= {cfg.warmup}:
                    res[k].append(dt)
            if time.monotonic() > deadline:
                break
        gc.enable()
        _report(**res)
    """)
    with HubServer() as hub:
        kernel = Kernel(hub).start()
        try:
            res = await asyncio.to_thread(kernel.execute, code, 300)
        finally:
            kernel.stop()
    runs = len(res["bare"])
    over = {k: [(res[k][i] - res["bare"][i]) / n for i in range(runs)] for k in ("generator", "tqdm", "rich", "ts")}
    note = f"{n:,} iterations, ns per iteration above a bare `for` loop, timed in the kernel"
    return [
        Row(1, "ts.progress() in a task: overhead per iteration vs tqdm", "ns", over["ts"], "tqdm(file=devnull)",
            over["tqdm"], target="≤ 0.5× tqdm", check=lambda m, p: m <= 0.5 * p, note=note),
        Row(1, "ts.progress() vs rich.progress.track", "ns", over["ts"], "rich.progress.track", over["rich"]),
        Row(1, "ts.progress() vs a bare generator", "ns", over["ts"], "bare generator", over["generator"],
            target="≤ 1.5× the generator", check=lambda m, p: m <= 1.5 * p),
        Row(1, "bare loop, per iteration (reference)", "ns", [b / n for b in res["bare"]]),
    ]


async def case2(cfg: BenchConfig) -> list[Row]:
    """100,000 print() lines inside a task (captured and published) vs the same prints to a file."""
    # Quick too: at 20,000 lines the task's fixed start and end (~20 ms) weigh against a ~20 ms file.
    n = cfg.pick(100_000, 100_000)
    # Three pairs per run asked for (two in quick mode, which must stay under 2 minutes): a
    # 100 ms loop on a shared 2-core VM moves by ±20 % from one run to the next, and a ratio
    # held to 1.2× needs more than 5 of them (~1.3 s a pair).
    pairs = cfg.pick(3, 2) * cfg.runs
    code = _prelude() + textwrap.dedent(f"""
        import tempfile
        N = {n}
        path = os.path.join(tempfile.mkdtemp(), "prints.txt")
        def to_file():
            t, c = time.perf_counter_ns(), time.thread_time_ns()
            with open(path, "w") as f:
                for i in range(N):
                    print("line", i, "of the benchmark output", file=f)
            return time.perf_counter_ns() - t, time.thread_time_ns() - c, None
        def in_task():
            t0 = time.time()
            t, c = time.perf_counter_ns(), time.thread_time_ns()
            with ts.task("bench: prints") as task:
                for i in range(N):
                    print("line", i, "of the benchmark output")
            return time.perf_counter_ns() - t, time.thread_time_ns() - c, (task.id, t0)
        def sent_batches():
            from jupyter_taskstream.kernel.context import default_runtime
            return default_runtime().publisher.sent_batches
        res = {{"file": [], "task": [], "file_cpu": [], "task_cpu": [], "ids": [], "t0": [], "batches": []}}
        deadline = time.monotonic() + 240
        for i in range({cfg.warmup + pairs}):
            # Each timed loop starts after the same pause: the file's after the previous
            # task's drain, the task's after this one (an idle core clocks and caches alike).
            f, fc, _ = to_file()
            time.sleep(0.5)
            b0 = sent_batches() if i else 0  # the first task makes the runtime
            d, dc, (tid, t0) = in_task()
            time.sleep(0.5)  # let the publisher drain before the next run is timed
            if i >= {cfg.warmup}:
                res["file"].append(f); res["task"].append(d); res["ids"].append(tid); res["t0"].append(t0)
                res["file_cpu"].append(fc); res["task_cpu"].append(dc)
                res["batches"].append(sent_batches() - b0)
            if time.monotonic() > deadline:
                break
        _report(**res)
    """)
    # Retention above the line count, so the log endpoint can prove every line arrived.
    with HubServer(retention_events=4 * n, retention_all_events=(cfg.warmup + cfg.runs + 1) * 2 * n,
                   retention_finished_events=(cfg.warmup + pairs + 1) * 2 * n) as hub:
        kernel = Kernel(hub).start()
        try:
            res = await asyncio.to_thread(kernel.execute, code, 400)
            published, lines = await hub_arrivals(hub, res["ids"], res["t0"], n)
        finally:
            kernel.stop()
    ms = lambda xs: [x / 1e6 for x in xs]  # noqa: E731
    # The floor, in the same run: the same lines in the publisher's default batches, into
    # SQLite (WAL) and over loopback HTTP, each alone; then the flood at default settings.
    per_batch = -(-n // max(1, round(sum(res["batches"]) / len(res["batches"]))))  # as the runs' batches
    parts = pipe_floor.batches(n, per_batch)
    with pipe_floor.SinkServer() as sink:
        http = [await asyncio.to_thread(pipe_floor.http_floor, sink, parts) * 1000 for _ in range(cfg.runs)]
    sqlite = [await asyncio.to_thread(pipe_floor.sqlite_floor, parts) * 1000 for _ in range(cfg.runs)]
    flood_n = 1_000_000
    flood = None if cfg.quick else await asyncio.to_thread(pipe_floor.flood, Kernel, _prelude(), flood_n)
    file_ms = ms(res["file"])
    rows = [
        Row(2, f"{n:,} print() lines in a task, time in the kernel", "ms", ms(res["task"]), "the same prints to a file",
            file_ms, target="≤ 1.2× the file", check=lambda m, p: m <= 1.2 * p),
        Row(2, "the same, each run against the file run just before it (median of the ratios)", "×",
            [t / f for t, f in zip(res["task"], res["file"])], target="≤ 1.2×", check=lambda m, p: m <= 1.2,
            note="paired: this VM's speed moves by a third within seconds, for both loops alike; "
                 "a run and its file run ~1 s apart share it, medians of each side apart do not"),
        Row(2, "the same, CPU time of the printing thread (what the capture itself costs)", "ms",
            ms(res["task_cpu"]), "the same prints to a file", ms(res["file_cpu"]),
            note="thread time: what the wall-clock row adds beyond it is waiting for a core or the GIL "
                 "(the hub, on the same 2 cores, ingests the lines meanwhile)"),
        Row(2, "until the hub has every line (task start to the hub's `finished`)", "ms", published,
            "the same prints to a file", file_ms, target="≤ 5× the file", check=lambda m, p: m <= 5 * p),
        Row(2, f"floor: the same lines as SQLite WAL inserts, {per_batch:,} rows per transaction", "ms", sqlite,
            note="one row per line, rows built before the clock starts; the publisher sent "
                 f"{len(parts)} batches per run, the floors use as many"),
        Row(2, "floor: the same batches POSTed over loopback (httpx → tornado, 204)", "ms", http,
            note="bodies encoded before the clock starts; the server does not parse them"),
        Row(2, "lines the hub holds per task", "lines", lines, target=f"{n:,}", check=lambda m, p: m == n),
    ]
    f = flood or {"dropped": None, "kernel_grew_mb": None, "server_grew_mb": None}
    flood_rows = [
        Row(2, f"{flood_n:,}-line flood at default settings: lines lost before the hub", "lines",
            [f["dropped"]], target="0", check=lambda m, p: m == 0,
            note=flood and f"every line held or counted by the hub: {f['accounted']:,} of {flood_n:,}; "
                           f"printed in {f['printed']:.2f} s, all at the hub after {f['sent']:.2f} s"),
        Row(2, "flood: kernel memory growth (peak RSS)", "MB", [f["kernel_grew_mb"]], target="< 150 MB",
            check=lambda m, p: m < 150),
        Row(2, "flood: server memory growth (peak RSS, sampled every 20 ms)", "MB", [f["server_grew_mb"]],
            target="< 150 MB", check=lambda m, p: m < 150),
    ]
    if flood is None:  # the claim is about a million lines at default settings; smaller proves nothing
        flood_rows = [r.unmeasured("a million-line flood takes ~20 s") for r in flood_rows]
    return rows + flood_rows


async def case3(cfg: BenchConfig) -> list[Row]:
    """Latency from print() in a kernel to an SSE client, vs the same print seen on IOPub."""
    n = cfg.pick(1000, 300)  # a p99 needs a few samples above it: 300 at least
    gap = 0.003
    code = lambda in_task: _prelude() + textwrap.dedent(f"""
        import contextlib
        with (ts.task("bench: latency") if {in_task} else contextlib.nullcontext()):
            for i in range({n}):
                print(f"seq={{i}};t={{time.monotonic():.6f}};")
                time.sleep({gap})
        _report(done=True)
    """)
    sse_p50, sse_p99, io_p50, io_p99, sse_lost = [], [], [], [], []
    with HubServer() as hub:
        kernel = Kernel(hub).start()
        try:
            for i in range(cfg.warmup + cfg.runs):
                with HubListener(hub) as listener:
                    await asyncio.to_thread(kernel.execute, code(True), 120)
                    deadline = time.monotonic() + 10
                    while len(listener.latencies) < n and time.monotonic() < deadline:
                        await asyncio.sleep(0.05)
                iopub = {}

                def on_stream(now, text):
                    for m in _SEQ.finditer(text.encode()):
                        iopub.setdefault(int(m.group(1)), now - float(m.group(2)))

                await asyncio.to_thread(kernel.execute, code(False), 120, on_stream)
                if i < cfg.warmup:
                    continue
                lat = [x * 1000 for x in listener.latencies.values()]
                io = [x * 1000 for x in iopub.values()]
                sse_p50.append(percentile(lat, 50))
                sse_p99.append(percentile(lat, 99))
                io_p50.append(percentile(io, 50))
                io_p99.append(percentile(io, 99))
                sse_lost.append(n - len(lat))
        finally:
            kernel.stop()
    peer = "IOPub (jupyter_client)"
    note = f"{n} lines per run, {gap * 1000:g} ms apart; SSE: captured in a task, all-tasks stream"
    return [
        # Issue 16's targets (the first round's were 5 ms and 25 ms).
        Row(3, "print() → SSE client latency p50", "ms", sse_p50, peer, io_p50, target="≤ 1 ms and < IOPub",
            check=lambda m, p: m <= 1 and m < p, note=note),
        Row(3, "print() → SSE client latency p99", "ms", sse_p99, peer, io_p99, target="≤ 5 ms",
            check=lambda m, p: m <= 5),
        Row(3, "lines not seen on the SSE stream", "lines", sse_lost, target="0", check=lambda m, p: m == 0),
    ]


async def _ws_run(hub: HubServer, kernel_id: str, code: str, timeout: float) -> dict:
    """Execute over the server's websocket (what a browser does); count IOPub messages per second."""
    from tornado.httpclient import HTTPRequest
    from tornado.websocket import websocket_connect

    url = f"ws://{HOST}:{hub.port}/api/kernels/{kernel_id}/channels?session_id={uuid.uuid4().hex}"
    conn = await websocket_connect(HTTPRequest(url, headers=hub.headers), max_message_size=2**28)
    msg_id = uuid.uuid4().hex
    conn.write_message(json.dumps({
        "header": {"msg_id": msg_id, "username": "bench", "session": uuid.uuid4().hex, "msg_type": "execute_request",
                   "version": "5.3", "date": ""},
        "parent_header": {}, "metadata": {}, "channel": "shell", "buffers": [],
        "content": {"code": code, "silent": False, "store_history": False, "user_expressions": {},
                    "allow_stdin": False, "stop_on_error": True},
    }))
    counts: dict[str, int] = {}
    comm_times: list[float] = []
    rate_exceeded = False
    busy_at = idle_at = None
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            raw = await asyncio.wait_for(conn.read_message(), deadline - time.monotonic())
            if raw is None:
                break
            now = time.monotonic()
            if isinstance(raw, bytes):  # a message with binary buffers: JSON follows the offset table
                nbufs = int.from_bytes(raw[:4], "big")
                first = int.from_bytes(raw[4:8], "big")
                end = int.from_bytes(raw[8:12], "big") if nbufs > 1 else len(raw)
                raw = raw[first:end].decode()
            msg = json.loads(raw)
            if msg.get("channel") != "iopub" or msg["parent_header"].get("msg_id") != msg_id:
                continue
            mtype = msg["msg_type"]
            counts[mtype] = counts.get(mtype, 0) + 1
            if mtype == "comm_msg":
                comm_times.append(now)
            elif mtype == "stream" and "IOPub message rate exceeded" in msg["content"].get("text", ""):
                rate_exceeded = True
            elif mtype == "status":
                state = msg["content"]["execution_state"]
                if state == "busy":
                    busy_at = now
                elif state == "idle":
                    idle_at = now
                    break
    finally:
        conn.close()
    span = (idle_at or time.monotonic()) - (busy_at or deadline - timeout)
    peak = 0
    j = 0
    for i, t in enumerate(comm_times):  # most comm messages in any 1 s window
        while comm_times[j] < t - 1.0:
            j += 1
        peak = max(peak, i - j + 1)
    return {"counts": counts, "per_s": len(comm_times) / span if span > 0 else 0.0, "peak_1s": peak,
            "rate_exceeded": rate_exceeded, "seconds": span}


async def case8(cfg: BenchConfig) -> list[Row]:
    """Kernel-to-browser widget messages per second for a tight loop, vs tqdm.notebook."""
    n = cfg.pick(10**7, 5 * 10**5)
    # The tight loop ends in about a second; the same count with a little work per item
    # (a few hundred ns) runs long enough to show a steady message rate.
    m = cfg.pick(10**7, 5 * 10**5)
    work = "for x in {wrap}(range({n})):\n    {body}\n"
    variants = {
        "tight": (n, "pass"),
        "busy": (m, "_work(x)"),
    }
    prelude = "def _work(x):\n    return sum(divmod(x, 7)) + abs(x) + len(str(x & 15))\n"
    codes = {}
    for key, (count, body) in variants.items():
        codes[key] = (
            "import jupyter_taskstream as ts\n" + prelude + work.format(wrap="ts.progress", n=count, body=body),
            "from tqdm.notebook import tqdm\n" + prelude + work.format(wrap="tqdm", n=count, body=body),
        )
    res = {(k, who): [] for k in variants for who in ("ours", "peer")}
    with HubServer() as hub:
        kernel = Kernel(hub).start()
        kernel.client.stop_channels()  # the websocket is the only client from here on
        try:
            # Import both once, so the first measured run does not pay for imports.
            await _ws_run(hub, kernel.id, "import jupyter_taskstream, ipywidgets, anywidget, tqdm.notebook", 120)
            for i in range(cfg.warmup + cfg.runs):
                for key, (ours_code, peer_code) in codes.items():
                    a = await _ws_run(hub, kernel.id, ours_code, 300)
                    b = await _ws_run(hub, kernel.id, peer_code, 300)
                    if i >= cfg.warmup:
                        res[key, "ours"].append(a)
                        res[key, "peer"].append(b)
        finally:
            httpx.delete(f"{hub.base}/api/kernels/{kernel.id}", headers=hub.headers, timeout=30)
    peer = "tqdm.notebook"
    rows = []
    for key, (count, body) in variants.items():
        ours, theirs = res[key, "ours"], res[key, "peer"]
        label = f"{count:,}-iteration loop" + (" (tight: `pass`)" if body == "pass" else " (a small function call per item)")
        rows += [
            Row(8, f"{label}: widget messages (comm_msg) in the busiest 1 s", "msg",
                [r["peak_1s"] for r in ours], peer, [r["peak_1s"] for r in theirs], target="≤ 10",
                check=lambda m, p: m <= 10, note="counted on the server's websocket, as a browser gets them"),
            _rate_row(label, body, ours, theirs, peer),
            Row(8, f"{label}: IOPub messages of every kind", "msg", [sum(r["counts"].values()) for r in ours], peer,
                [sum(r["counts"].values()) for r in theirs]),
            Row(8, f"{label}: wall time, busy to idle", "s", [r["seconds"] for r in ours], peer,
                [r["seconds"] for r in theirs]),
        ]
    all_ours = [r for k in variants for r in res[k, "ours"]]
    all_peer = [r for k in variants for r in res[k, "peer"]]
    rows.append(Row(8, "runs showing \"IOPub message rate exceeded\"", "runs",
                    [sum(r["rate_exceeded"] for r in all_ours)], peer, [sum(r["rate_exceeded"] for r in all_peer)],
                    target="never", check=lambda m, p: m == 0))
    return rows


#: A loop shorter than this gives too few of the pump's 10 messages a second for a rate.
MIN_RATE_SECONDS = 3.0


def _rate_row(label: str, body: str, ours: list[dict], theirs: list[dict], peer: str) -> Row:
    """Widget messages per second over the loop, or "not measured" for a loop too short to say."""
    row = Row(8, f"{label}: widget messages per second over the loop", "msg/s",
              [r["per_s"] for r in ours], peer, [r["per_s"] for r in theirs],
              target="≤ 10/s" if body != "pass" else "",
              check=(lambda m, p: m <= 10) if body != "pass" else None)  # fmt: skip
    shortest = min((r["seconds"] for r in ours), default=0.0)
    if shortest < MIN_RATE_SECONDS:
        return row.unmeasured(f"the loop lasted {shortest:.2f} s, under {MIN_RATE_SECONDS:g} s")
    return row


async def hub_arrivals(hub: HubServer, ids: list[str], starts: list[float], n: int) -> tuple[list[float], list[int]]:
    """For each task: ms from its start (wall ``starts``) to the hub's ``finished``, and the lines the hub holds.

    The task ends on the hub after its last line (a 404 until the hub has its first batch);
    a task that does not end within 60 s gets no time, and its count says what arrived.
    """
    published, lines = [], []
    async with httpx.AsyncClient(headers=hub.headers, timeout=30) as client:
        for tid, t0 in zip(ids, starts):
            deadline = time.monotonic() + 60
            while True:
                snap = (await client.get(f"{hub.api}/tasks/{tid}")).json()
                if snap.get("finished") or time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.1)
            if snap.get("finished"):
                finished = datetime.strptime(snap["finished"], "%Y-%m-%dT%H:%M:%S.%fZ")
                published.append((finished.replace(tzinfo=timezone.utc).timestamp() - t0) * 1000)
            count, after = 0, 0
            for _ in range(n // 10_000 + 2):
                page = (await client.get(f"{hub.api}/tasks/{tid}/log", params={"after": after, "limit": 10_000})).json()
                count += len(page["events"])
                if not page["events"]:
                    break
                after = page["last_event_id"]
            lines.append(count)
    return published, lines
