"""What the finished-log budget saves at a restart: load time, events held, peak memory, file size.

``python -m benchmarks.finished_budget [TASKS] [LINES] [BUDGET]`` writes TASKS finished tasks of
LINES lines each (300 × 10,000 by default) through a registry on a fresh SQLite file, once with
no budget to speak of and once with BUDGET (the default, 1,000,000), then loads each file twice
in a fresh process, as a restarted server does, and prints a table. A diagnostic for the
``retention_finished_events`` option, not a benchmark case.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import tempfile
import time

from jupyter_taskstream.hub.registry import TaskRegistry
from jupyter_taskstream.hub.store import SQLiteStore

UNBOUNDED = 10**12

# Peak RSS is the process's VmHWM, which starts again at exec; getrusage's ru_maxrss does not
# on Linux: it would report this (parent) process's size at the fork.
_LOAD = """
import sys, time
from jupyter_taskstream.hub.registry import TaskRegistry
from jupyter_taskstream.hub.store import SQLiteStore
start = time.perf_counter()
registry = TaskRegistry(store=SQLiteStore(path=sys.argv[1]), retention_finished_events=int(sys.argv[2]))
registry.load()
held = sum(len(registry.event_log(task.id)) for task in registry.tasks())
with open("/proc/self/status") as status:
    peak = int(status.read().split("VmHWM:")[1].split()[0]) * 1024
print(time.perf_counter() - start, held, peak)
registry.close()
"""


def build(path: str, tasks: int, lines: int, budget: int) -> None:
    """Write ``tasks`` finished tasks of ``lines`` lines through a registry with ``budget``."""

    async def main() -> None:
        registry = TaskRegistry(store=SQLiteStore(path=path), retention_finished_events=budget)
        registry.load()
        for k in range(tasks):
            task = registry.create(f"task {k}")
            text = [f"line {i} of task {k} of the probe" for i in range(lines)]
            registry.publish(task.id, [("log", {"stream": "stdout", "lines": text})])
            registry.publish(task.id, [("status", {"status": "completed"})])
            await registry.commit()
        await asyncio.sleep(0.5)  # the rounds that store the trimmed records
        registry.close()

    asyncio.run(main())


def load(path: str, budget: int) -> tuple[float, int, int]:
    """``(seconds, events held, peak RSS bytes)`` of loading ``path`` in a fresh process."""
    out = subprocess.run([sys.executable, "-c", _LOAD, path, str(budget)], capture_output=True, text=True, check=True)
    seconds, held, rss = out.stdout.split()
    return float(seconds), int(held), int(rss)


def main(argv: list[str]) -> list[dict]:
    tasks, lines, budget = (int(a) for a in (argv + ["300", "10000", "1000000"][len(argv):]))
    rows = []
    print(f"{tasks:,} finished tasks × {lines:,} lines, loaded twice each in a fresh process")
    print(f"{'budget':>22} {'file MB':>8} {'load s':>7} {'events held':>12} {'peak RSS MB':>12}")
    for limit in (UNBOUNDED, budget):
        with tempfile.TemporaryDirectory() as folder:
            path = os.path.join(folder, "tasks.sqlite")
            build(path, tasks, lines, limit)
            size = os.path.getsize(path)
            for _ in range(2):
                seconds, held, rss = load(path, limit)
                label = "none" if limit == UNBOUNDED else f"{limit:,}"
                print(f"{label:>22} {size / 1e6:8.0f} {seconds:7.1f} {held:12,} {rss / 1e6:12.0f}")
                rows.append({"budget": limit, "file": size, "seconds": seconds, "held": held, "rss": rss})
    return rows


if __name__ == "__main__":
    started = time.perf_counter()
    main(sys.argv[1:])
    print(f"({time.perf_counter() - started:.0f} s)")
