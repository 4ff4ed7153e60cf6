"""Child bars of a task fed by its code on Dask workers (``ts.progress``, tqdm), client side.

The workers' plugin sends the bars of each key's stand-in task (`.dask_worker_bars`) as
they change, at most a few times a second, with a closed bar's exact final state.
`RemoteBars` (one per task) turns them into child bars of the task: a worker's outermost bar
becomes a child of the task's main bar named ``[worker-address] desc``, its nested bars
children of that one, so the views show which worker runs which loop. The same loop run
again on that worker (the next key) takes its closed bar's place, as a nested loop's next
epoch does in the kernel.
"""

from __future__ import annotations

import math
import threading
from typing import Any

from ..kernel.bars import Bar, current_bar

__all__ = ["RemoteBars"]

#: Longest description kept of a worker's bar.
MAX_DESC = 200


class RemoteBars:
    """``(worker, bar id)`` -> the task's child bar that shows it, while the worker's bar is open."""

    def __init__(self) -> None:
        self._bars: dict[tuple[str, str], Bar] = {}
        self._lock = threading.Lock()

    def apply(self, task: Any, worker: str, states: list | tuple) -> None:
        """Fold the states of one worker's bars (as `.dask_worker_bars.BAR_FIELDS`) into ``task``'s bars."""
        closing: list[tuple[str, str]] = []
        with self._lock:
            for state in states:
                try:
                    self._apply_one(task, worker, state, closing)
                except (KeyError, TypeError, ValueError):
                    continue  # not a bar state this version sends: skip it, keep the others
            # Closed last: a loop and the nested loop it ran often close in one batch, and the
            # nested one is found under its parent only while the parent is still known.
            for ref in closing:
                bar = self._bars.pop(ref, None)
                if bar is not None:
                    task.bars.close(bar)

    def _apply_one(self, task: Any, worker: str, state: dict, closing: list) -> None:
        ref = (worker, str(state["id"]))
        bar = self._bars.get(ref)
        closed, leave = bool(state["closed"]), bool(state["leave"])
        if bar is None:
            if closed and not leave:
                return  # a transient bar that came and went between two samples
            parent = self._bars.get((worker, str(state["parent"])))
            desc = str(state["desc"])
            if parent is None:
                desc = f"[{worker}] {desc}".rstrip()
            token = current_bar.set(parent)  # None: a child of the main bar
            try:
                bar = task.bars.open(desc[:MAX_DESC], _count(state["total"]), str(state["unit"]) or "it", leave)
            finally:
                current_bar.reset(token)
            self._bars[ref] = bar
        bar.current = _count(state["current"]) or 0
        bar.total = _count(state["total"])
        bar.postfix = str(state["postfix"] or "")[:MAX_DESC]
        if closed:
            closing.append(ref)


def _count(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise ValueError(f"not a count: {value!r}")
    return value
