"""Functions the Dask tests send to workers (importable there: workers get this worktree's path)."""

from __future__ import annotations

import logging
import time


def shout(x, marker="m"):
    """Print, log and dask-print one line each, tagged with ``marker`` and ``x``."""
    from dask.distributed import print as dask_print

    print(f"{marker} print {x}")
    logging.getLogger("user.code").warning("%s log %s", marker, x)
    dask_print(f"{marker} dask-print {x}")
    return x


def inc(x):
    return x + 1


def add(x, y):
    return x + y


def fail_on_three(x):
    if x == 3:
        raise ValueError("three is not allowed")
    return x


def sleep_then(x, seconds=6.0):
    time.sleep(seconds)
    return x


def outside(marker):
    from dask.distributed import print as dask_print

    dask_print(marker)
    return marker


def expected_lines(marker, xs):
    """Every line `shout` makes for ``xs``, as the task's log shows it (without the worker tag)."""
    out = []
    for x in xs:
        out += [f"{marker} print {x}", f"WARNING:user.code:{marker} log {x}", f"{marker} dask-print {x}"]
    return out


def loop_with_progress(n, desc, pause=0.0):
    """``ts.progress`` over ``n`` items on a worker (a child bar ``desc`` of the submitting task)."""
    import jupyter_taskstream as ts

    done = 0
    for _ in ts.progress(range(n), desc=desc, leave=True):
        time.sleep(pause)
        done += 1
    return done


def loop_with_tqdm(n, desc, pause=0.0):
    """A tqdm bar over ``n`` items on a worker; returns what it counted."""
    from tqdm.auto import tqdm

    bar = tqdm(range(n), desc=desc)
    for _ in bar:
        time.sleep(pause)
    return bar.n


def nested_loops(outer, inner):
    """Two nested ``ts.progress`` loops on a worker (the inner one kept when it ends)."""
    import jupyter_taskstream as ts

    for _ in ts.progress(range(outer), desc="outer", leave=True):
        for _ in ts.progress(range(inner), desc="inner", leave=True):
            pass
    return outer * inner
