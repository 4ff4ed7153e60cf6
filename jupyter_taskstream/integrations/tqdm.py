"""tqdm inside a task: every tqdm bar becomes a bar of that task and draws nothing of its own.

``from tqdm.auto import tqdm`` binds the class when the user's (or a library's) module is
imported, possibly long before a task starts, so rebinding module attributes would miss it.
Instead the base class's methods are patched in place, idempotently and reversibly (what
Gradio's ``track_tqdm`` does): subclasses defined before or after, Hugging Face's included,
inherit the patch.

Inside a task (and only there):

- ``tqdm.std.tqdm.__init__`` writes to a sink whose ``isatty()`` is true, so the bar draws
  nothing and a bar a library disabled "because stderr is not a terminal" (``disable=None``)
  still counts; an explicit ``disable=True`` stays invisible. The bar is then opened on the
  task (its main bar if nothing drives that yet, else a child of the innermost open bar).
- The front ends (``tqdm.notebook``, ``tqdm.rich``) skip their own widget or live display:
  their ``__init__`` goes straight to the base class's, and their drawing methods to the
  base class's (which draw into the sink). No tqdm widget is ever created inside a task.
- The task reads ``n``, ``total``, ``desc``, ``unit`` and ``postfix`` off the tqdm object when
  it samples (10/s) and at ``close()``: tqdm batches its updates (``miniters``), so counting
  calls would be wrong, while ``n`` is exact at the end.
- ``tqdm.write()`` prints to ``sys.stdout``, which inside a task is the task's log already.

In a child process of a task (a pool work item it submitted, a Python process it started;
see `kernel.parentlink`), a bar opened outside any task gets a task of its own there, which
ends when the bar closes: it shows as a child bar of the submitting task.

Outside tasks every patched method calls the original at once: tqdm behaves as without us.
"""

from __future__ import annotations

import functools
import io
import sys
from typing import Any, Callable

from ..kernel.context import current_task
from ..kernel.parentlink import current_parent, own_task
from .patches import Patches

__all__ = ["install", "installed", "uninstall"]

_patches = Patches()
#: Attribute set on a tqdm object that feeds a task's bar.
_BAR = "_taskstream_bar"
#: Attribute set on a tqdm object that has a task of its own (in a child process of a task).
_OWNED = "_taskstream_task"
#: `_task_for`'s answer for a bar that gets a task of its own when it opens.
_OWN = object()


class _Sink(io.TextIOBase):
    """Where a bridged bar "draws": nothing is kept; a terminal, so ``disable=None`` bars count."""

    def write(self, s: str) -> int:
        return len(s)

    def isatty(self) -> bool:
        return True


_SINK = _Sink()
#: What a front end (tqdm.notebook, tqdm.rich) overrides to draw; a bridged object uses the base's.
_DRAWING = ("status_printer", "display", "close", "clear", "reset")


def _call(original: Any, obj: Any, *args: Any, **kwargs: Any) -> Any:
    """Call an original method found in a class ``__dict__`` (a function, or tqdm's
    ``partialmethod`` ``__init__``) bound to ``obj``, as attribute lookup would."""
    return original.__get__(obj, type(obj))(*args, **kwargs)


def _task_for(kwargs: dict) -> Any:
    """The task a new bar belongs to, or None (outside tasks, or an explicitly disabled bar)."""
    task = current_task.get()
    if kwargs.get("disable") is True:
        return None
    if task is None and current_parent() is not None:
        return _OWN  # a worker's bar outside tasks: a task of its own, reported into the submitter's
    if task is None or task.done:
        return None
    return task


def _read(bar: Any, obj: Any) -> None:
    """Copy a tqdm object's fields into a task bar (sampler thread, and at close)."""
    bar.current = obj.n
    bar.total = obj.total
    bar.desc = obj.desc or ""
    bar.unit = obj.unit or "it"
    bar.postfix = obj.postfix or ""


def _open(obj: Any, task: Any) -> None:
    if getattr(obj, "disable", True):
        return  # disabled by tqdm itself (e.g. an empty iterable with ``disable=None`` rules)
    if task is _OWN:
        task = own_task(obj.desc or "tqdm")
        if task is None:
            return
        setattr(obj, _OWNED, task)
    leave = obj.leave if obj.leave is not None else obj.pos == 0
    handle = task.open_bar(obj.desc or "", obj.total, obj.unit or "it", bool(leave), functools.partial(_read, obj=obj))
    setattr(obj, _BAR, (task, handle))


def _std_init(original: Any) -> Callable:
    @functools.wraps(getattr(original, "func", original))
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        task = _task_for(kwargs)
        if task is None:
            return _call(original, self, *args, **kwargs)
        kwargs["file"] = _SINK
        kwargs["gui"] = False
        _call(original, self, *args, **kwargs)
        _open(self, task)

    return __init__


def _std_close(original: Callable) -> Callable:
    @functools.wraps(original)
    def close(self) -> None:
        link = getattr(self, _BAR, None)
        try:
            return _call(original, self)
        finally:
            if link is not None:
                setattr(self, _BAR, None)
                task, handle = link
                task.close_bar(handle)
                if getattr(self, _OWNED, None) is task:
                    task.finish()

    return close


def _front_end_init(original: Any, base: type, front_end: type) -> Callable:
    """A front end's ``__init__``: inside a task, the base class's, with the base class's
    drawing methods set on the object, so no widget or live display is ever created."""
    drawing = [name for name in _DRAWING if name in vars(front_end)]

    @functools.wraps(getattr(original, "func", original))
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        if _task_for(kwargs) is None:
            return _call(original, self, *args, **kwargs)
        for key in ("display", "colour", "progress", "options"):  # front-end-only arguments
            kwargs.pop(key, None)
        for name in drawing:  # e.g. status_printer, display, close, clear, reset
            setattr(self, name, getattr(base, name) if isinstance(vars(base).get(name), staticmethod) else
                    getattr(base, name).__get__(self, type(self)))  # fmt: skip
        self.disp = lambda *_, **__: None  # tqdm.notebook's drawing hook, used by its loops
        base.__init__(self, *args, **kwargs)  # type: ignore[misc]

    return __init__


def install() -> None:
    """Patch tqdm's base class and each front end that is imported; idempotent."""
    std = sys.modules.get("tqdm.std")
    if std is None:
        return
    base = std.tqdm
    _patches.patch(base, "__init__", _std_init)
    _patches.patch(base, "close", _std_close)
    front_ends = []
    notebook = sys.modules.get("tqdm.notebook")
    if notebook is not None:
        front_ends.append(notebook.tqdm_notebook)
    rich = sys.modules.get("tqdm.rich")
    if rich is not None:
        front_ends.append(rich.tqdm_rich)
    for cls in front_ends:
        _patches.patch(cls, "__init__", lambda original, cls=cls: _front_end_init(original, base, cls))


def uninstall() -> None:
    """Put every original method back (identity preserved)."""
    _patches.restore()


def installed() -> bool:
    """True while tqdm's methods are patched."""
    return bool(_patches)
