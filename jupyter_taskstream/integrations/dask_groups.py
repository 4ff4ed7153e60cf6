"""`KeyGroups`: finished, failed and total keys per key prefix, as Dask's own ``progress()`` groups them.

The one structure the Dask integration's counting feeds (`.dask_progress.TaskTracker`) and
its views draw from: the task's message and its per-prefix child bars.
"""

from __future__ import annotations

import threading
from typing import Any

__all__ = ["KeyGroups"]


class KeyGroups:
    """Finished, failed and total keys per key prefix, like the groups of Dask's ``progress()``.

    The one structure both schedulers feed: counts of single futures (`add`, `finish`) plus
    whole-graph counts that the scheduler reports per computation (`set_source`). `rows` is
    what a view (the message today, child bars later) draws from.
    """

    def __init__(self) -> None:
        #: prefix -> [done, erred, total], of keys counted one by one
        self._groups: dict[str, list[int]] = {}
        #: computation -> {prefix: (done, total)}, as the scheduler last reported it
        self._sources: dict[Any, dict[str, tuple[int, int]]] = {}
        self._lock = threading.Lock()

    def add(self, prefix: str, n: int = 1) -> None:
        """``n`` more keys of ``prefix`` to run."""
        with self._lock:
            group = self._groups.get(prefix)
            if group is None:
                group = self._groups[prefix] = [0, 0, 0]
            group[2] += n

    def finish(self, prefix: str, erred: bool = False) -> None:
        """One key of ``prefix`` finished (or failed)."""
        with self._lock:
            group = self._groups.get(prefix)
            if group is not None:
                group[1 if erred else 0] += 1

    def set_source(self, source: Any, counts: dict[str, tuple[int, int]]) -> None:
        """The latest ``{prefix: (done, total)}`` of one whole computation (replaces its last)."""
        with self._lock:
            self._sources[source] = dict(counts)

    def complete_source(self, source: Any) -> None:
        """A computation finished: all its keys are done, whatever the last report said."""
        with self._lock:
            counts = self._sources.get(source)
            if counts is not None:
                self._sources[source] = {p: (t, t) for p, (_, t) in counts.items()}

    def rows(self) -> list[tuple[str, int, int, int]]:
        """``(prefix, done, erred, total)`` per prefix, in the order prefixes first appeared."""
        with self._lock:
            merged = {prefix: list(group) for prefix, group in self._groups.items()}
            for counts in self._sources.values():
                for prefix, (done, total) in counts.items():
                    group = merged.setdefault(prefix, [0, 0, 0])
                    group[0] += done
                    group[2] += total
        return [(prefix, d, e, t) for prefix, (d, e, t) in merged.items()]

    @property
    def done(self) -> int:
        """Keys finished, over all prefixes."""
        return sum(r[1] for r in self.rows())

    @property
    def total(self) -> int:
        """Keys expected, over all prefixes."""
        return sum(r[3] for r in self.rows())

    def describe(self) -> str:
        """One line for the task's message: ``inc 3/10 · add 1/5 (1 failed)``."""
        parts = []
        for prefix, done, erred, total in self.rows():
            part = f"{prefix} {done}/{total}"
            if erred:
                part += f" ({erred} failed)"
            parts.append(part)
        return " · ".join(parts)
