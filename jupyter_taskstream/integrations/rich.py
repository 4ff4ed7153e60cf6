"""rich inside a task: ``rich.progress`` bars become the task's bars; no live display in the cell.

``rich.progress.track()`` and ``Progress`` draw with a ``Live`` display that rewrites the
terminal (in a notebook, an Output widget full of frames). Inside a task, a ``Progress`` is
created with ``disable=True`` (rich's own switch: its tasks still count, nothing is drawn),
and each of its tasks opens a bar on the task (the main bar if nothing drives it yet, else a
child), read from rich's task (``completed``, ``total``, ``description``) when the runtime
samples. The bars close when the ``Progress`` stops (or a rich task is removed).

``Progress`` is patched in place (``__init__``, ``add_task``, ``remove_task``, ``stop``),
idempotently and reversibly; outside tasks each patched method calls the original at once.
"""

from __future__ import annotations

import functools
import sys
from typing import Any, Callable

from ..kernel.context import current_task
from .patches import Patches

__all__ = ["install", "installed", "uninstall"]

_patches = Patches()
#: On a Progress made inside a task: (task, {rich task id: bar handle}).
_LINK = "_taskstream_link"


def _read(bar: Any, progress: Any, rich_id: Any) -> None:
    rich_task = progress._tasks.get(rich_id)
    if rich_task is None:
        return
    bar.current = rich_task.completed
    bar.total = rich_task.total
    bar.desc = str(rich_task.description or "")


def _init(original: Callable) -> Callable:
    @functools.wraps(original)
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        task = current_task.get()
        if task is None or task.done:
            return original(self, *args, **kwargs)
        kwargs["disable"] = True  # rich's own switch: tasks count, nothing is drawn
        original(self, *args, **kwargs)
        setattr(self, _LINK, (task, {}))

    return __init__


def _add_task(original: Callable) -> Callable:
    @functools.wraps(original)
    def add_task(self, description: str, *args: Any, **kwargs: Any) -> Any:
        rich_id = original(self, description, *args, **kwargs)
        link = getattr(self, _LINK, None)
        if link is not None:
            task, bars = link
            rich_task = self._tasks[rich_id]
            leave = not getattr(self.live, "transient", False)
            bars[rich_id] = task.open_bar(
                str(description or ""), rich_task.total, "it", leave, functools.partial(_read, progress=self, rich_id=rich_id)
            )
        return rich_id

    return add_task


def _close(progress: Any, rich_id: Any) -> None:
    link = getattr(progress, _LINK, None)
    if link is None:
        return
    task, bars = link
    handle = bars.pop(rich_id, None)
    if handle is not None:
        task.close_bar(handle)


def _remove_task(original: Callable) -> Callable:
    @functools.wraps(original)
    def remove_task(self, task_id: Any) -> None:
        _close(self, task_id)
        return original(self, task_id)

    return remove_task


def _stop(original: Callable) -> Callable:
    @functools.wraps(original)
    def stop(self) -> None:
        link = getattr(self, _LINK, None)
        if link is not None:
            for rich_id in list(link[1]):
                _close(self, rich_id)
        return original(self)

    return stop


_WRAPPERS = {"__init__": _init, "add_task": _add_task, "remove_task": _remove_task, "stop": _stop}


def install() -> None:
    """Patch ``rich.progress.Progress`` if it is imported; idempotent."""
    module = sys.modules.get("rich.progress")
    if module is None:
        return
    cls = module.Progress
    for name, wrapper in _WRAPPERS.items():
        _patches.patch(cls, name, wrapper)


def uninstall() -> None:
    """Put every original method back (identity preserved)."""
    _patches.restore()


def installed() -> bool:
    """True while rich's Progress is patched."""
    return bool(_patches)
