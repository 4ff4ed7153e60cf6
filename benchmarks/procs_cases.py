"""Case 14: output of process-pool workers inside a task, in a real kernel started by a real hub.

Four ``ProcessPoolExecutor`` workers print 100,000 lines in all (25,000 each) from work
items a task submitted; each line travels worker -> the kernel's worker link (a Unix socket)
-> the task's log -> the hub. Measured from the first submit to the hub's ``finished`` for
the task (it ends after its last line is in), next to the same four workers writing the same
lines to a file each (time until every item returned). The pool is started and warmed before
either is timed, so neither pays for starting processes.
"""

from __future__ import annotations

import asyncio
import textwrap

from .harness import BenchConfig, HubServer, Row
from .kernel_cases import Kernel, _prelude, hub_arrivals

__all__ = ["case14"]

WORKER = '''
import os

def to_stdout(start, count):
    for i in range(start, start + count):
        print("line", i, "of the benchmark output")
    return count

def to_file(path, start, count):
    with open(path, "w") as f:
        for i in range(start, start + count):
            print("line", i, "of the benchmark output", file=f)
    return count

def pid(_):
    return os.getpid()
'''


async def case14(cfg: BenchConfig) -> list[Row]:
    """4 pool workers printing 100,000 lines in a task until the hub holds them all, vs to files."""
    n = cfg.pick(100_000, 20_000, 2_000)
    workers = 4
    each = n // workers
    code = _prelude() + textwrap.dedent(f"""
        import sys, tempfile, concurrent.futures as cf
        here = tempfile.mkdtemp()
        with open(os.path.join(here, "tsbench_workers.py"), "w") as f:
            f.write({WORKER!r})
        sys.path.insert(0, here)
        import tsbench_workers as w
        ex = cf.ProcessPoolExecutor({workers})
        list(ex.map(w.pid, range({workers} * 4)))  # every worker started and warm
        def to_files():
            t = time.perf_counter_ns()
            futures = [ex.submit(w.to_file, os.path.join(here, f"out{{k}}.txt"), k * {each}, {each})
                       for k in range({workers})]
            assert sum(f.result() for f in futures) == {n}
            return time.perf_counter_ns() - t
        def in_task():
            with ts.task("bench: pool prints") as task:
                t0 = time.time()
                t = time.perf_counter_ns()
                futures = [ex.submit(w.to_stdout, k * {each}, {each}) for k in range({workers})]
                assert sum(f.result() for f in futures) == {n}
            return task.id, t0, time.perf_counter_ns() - t
        res = {{"file": [], "ids": [], "t0": [], "kernel": []}}
        for i in range({cfg.warmup + cfg.runs}):
            f = to_files()
            tid, t0, d = in_task()
            if i >= {cfg.warmup}:
                res["file"].append(f); res["ids"].append(tid); res["t0"].append(t0); res["kernel"].append(d)
            time.sleep(0.5)  # let the publisher drain before the next run is timed
        ex.shutdown()
        _report(**res)
    """)
    runs = cfg.warmup + cfg.runs
    with HubServer(retention_events=4 * n, retention_all_events=(runs + 1) * 2 * n,
                   retention_finished_events=(runs + 1) * 2 * n) as hub:
        kernel = Kernel(hub).start()
        try:
            res = await asyncio.to_thread(kernel.execute, code, 600)
            published, lines = await hub_arrivals(hub, res["ids"], res["t0"], n)
        finally:
            kernel.stop()
    return [
        Row(14, f"{workers} pool workers print {n:,} lines in a task: until the hub holds every line", "ms",
            published, "the same workers writing to a file each", [x / 1e6 for x in res["file"]],
            note="first submit to the hub's `finished` (the task ends after its last line)"),
        Row(14, "the same, until the task ends in the kernel (every line in its log)", "ms",
            [x / 1e6 for x in res["kernel"]], "the same workers writing to a file each", [x / 1e6 for x in res["file"]]),
        Row(14, "lines the hub holds per task", "lines", lines, target=f"{n:,}", check=lambda m, p: m == n),
    ]
