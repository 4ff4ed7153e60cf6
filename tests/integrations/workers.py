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
