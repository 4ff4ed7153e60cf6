"""Turning integrations on: when a task starts, or when their library is first imported.

`activate` runs when a task starts (the runtime calls it): it turns on the integrations
whose library the process has imported already, and puts an import watcher on
``sys.meta_path`` that turns on the others right after their library's top-level module is
first imported. Outside tasks the installed hooks do nothing, so code that never uses a
task sees the libraries exactly as they are.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import sys
import threading
from typing import Any

__all__ = ["activate"]

#: Top-level module that, once imported, turns on an integration -> the integration's installer.
_TRIGGERS = {
    "dask": "jupyter_taskstream.integrations.dask:install_local",
    "distributed": "jupyter_taskstream.integrations.dask:install_distributed",
}

_lock = threading.Lock()
_done: set[str] = set()
_watching = False


def activate() -> None:
    """Turn on the integrations whose library is imported; watch for the rest (cheap, idempotent)."""
    global _watching
    if len(_done) == len(_TRIGGERS):
        return
    for module in _TRIGGERS:
        if module not in _done and module in sys.modules and getattr(sys.modules[module], "__spec__", None):
            _turn_on(module)
    with _lock:
        if not _watching and len(_done) < len(_TRIGGERS):
            _watching = True
            sys.meta_path.insert(0, _ImportWatcher())


def _turn_on(module: str) -> None:
    with _lock:
        if module in _done:
            return
        _done.add(module)
    from importlib import import_module

    path, _, name = _TRIGGERS[module].partition(":")
    getattr(import_module(path), name)()


class _ImportWatcher(importlib.abc.MetaPathFinder):
    """Runs an integration's installer right after its library's top-level module is imported."""

    def find_spec(self, fullname: str, path: Any = None, target: Any = None):
        if fullname not in _TRIGGERS or fullname in _done:
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return None
        loader = spec.loader
        original = loader.exec_module

        def exec_module(module: Any) -> None:
            original(module)
            _turn_on(fullname)

        loader.exec_module = exec_module  # type: ignore[method-assign]
        return spec
