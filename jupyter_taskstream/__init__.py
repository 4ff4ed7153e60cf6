"""jupyter_taskstream: observable, controllable long-running work in Jupyter.

Importing the package stays light: the kernel-side API (`task`, `progress`, `run`, ...)
is loaded on first attribute access, and the server extension (jupyter_server, tornado)
loads only inside a Jupyter server, through `_jupyter_server_extension_points`.

Kernel side::

    import jupyter_taskstream as ts

    with ts.task("download", total=3) as t:
        for url in urls:
            fetch(url)
            t.update()

    for batch in ts.progress(batches, desc="train"):
        step(batch)

    handle = ts.run(train, epochs=3)   # background thread; handle.cancel(), handle.result()
"""

from __future__ import annotations

from typing import Any

from ._version import __version__
from .errors import (
    TaskCancelled,
    TaskExists,
    TaskFinished,
    TaskNotFound,
    TaskRunning,
    TaskStreamError,
    ValidationError,
)

__all__ = [
    "Runtime",
    "RuntimeConfig",
    "Task",
    "TaskCancelled",
    "TaskExists",
    "TaskFinished",
    "TaskNotFound",
    "TaskRunning",
    "TaskStreamError",
    "ValidationError",
    "__version__",
    "cancelled",
    "config",
    "connect_hub",
    "current",
    "format_meter",
    "format_snapshot",
    "get",
    "last",
    "progress",
    "run",
    "task",
    "tasks",
]

#: Public names loaded on first use, and the module that holds each (`api` for everything on
#: the default runtime: loading it is what wires that runtime to its views).
_LAZY = {
    "Runtime": "api",
    "RuntimeConfig": "api",
    "Task": "api",
    "cancelled": "api",
    "config": "api",
    "connect_hub": "api",
    "current": "api",
    "get": "api",
    "last": "api",
    "progress": "api",
    "run": "api",
    "task": "api",
    "tasks": "api",
    "format_meter": "views.meter",
    "format_snapshot": "views.meter",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'jupyter_taskstream' has no attribute {name!r}")
    from importlib import import_module

    value = getattr(import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext jupyter_taskstream``: register the ``%%taskstream`` magic."""
    from .views.magic import load_ipython_extension as load

    load(ipython)


def _jupyter_server_extension_points() -> list[dict]:
    """Tell jupyter_server where the extension app is (imported only by the server)."""
    from .hub.app import TaskStreamApp

    return [{"module": "jupyter_taskstream.hub.app", "app": TaskStreamApp}]
