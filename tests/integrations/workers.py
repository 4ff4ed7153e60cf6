"""Work items for process-pool tests: importable by spawn and forkserver workers (no pytest here)."""

from __future__ import annotations

import os
import sys
import time


def shout(x: int) -> int:
    """Print one stdout and one stderr line; return ``x * 2``."""
    print(f"out {x}")
    print(f"err {x}", file=sys.stderr)
    return x * 2


def lines(start: int, count: int) -> int:
    """Print ``count`` numbered lines; return the worker's pid."""
    for i in range(start, start + count):
        print(f"line {i}")
    return os.getpid()


def slow_lines(tag: str, count: int, gap: float) -> int:
    """Print ``count`` lines tagged ``tag``, ``gap`` seconds apart; return the pid."""
    for i in range(count):
        print(f"{tag} {i}")
        time.sleep(gap)
    return os.getpid()


def pid(_: object = None) -> int:
    """The worker's pid (to start a pool's workers)."""
    return os.getpid()


def count(n: int) -> int:
    """Count ``n`` items with ``ts.progress`` (a task of the worker's own); return the pid."""
    import jupyter_taskstream as ts

    for _ in ts.progress(range(n), desc=f"count {n}"):
        pass
    return os.getpid()


def tqdm_count(n: int) -> int:
    """Count ``n`` items with a tqdm bar; return the pid."""
    from tqdm.auto import tqdm

    for _ in tqdm(range(n), desc=f"tqdm {n}"):
        pass
    return os.getpid()


def task_count(n: int) -> int:
    """A ``ts.task`` counted with ``update()``, a nested loop kept, one print; return the pid."""
    import jupyter_taskstream as ts

    with ts.task(f"part {n}", total=n) as t:
        print(f"part {n} says hi")
        for _ in range(n):
            t.update()
        for _ in ts.progress(range(3), desc="nested", leave=True):
            pass
    return os.getpid()


#: A script a task runs with ``subprocess``: its own ``ts.task`` and loop, and a print.
CHILD_SCRIPT = """
import jupyter_taskstream as ts
with ts.task("inner", total=5) as t:
    print("inner says hi")
    for _ in ts.progress(range(5)):
        pass
"""
