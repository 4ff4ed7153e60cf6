"""Class options that keep loading configuration written before the hub moved to ``hub/``.

Until the restructure, the store and the registry lived at ``jupyter_taskstream.store`` and
``jupyter_taskstream.registry``, and configuration files name them by those dotted paths
(``c.TaskStreamApp.store = "jupyter_taskstream.store.MemoryStore"``). `MovedClassType` reads
an old path as the new one, so such files keep working without modules left at the old paths.
"""

from __future__ import annotations

from typing import Any

from traitlets import Type

__all__ = ["MOVED_CLASSES", "MovedClassType"]

#: Old dotted path -> where the class lives now.
MOVED_CLASSES = {
    "jupyter_taskstream.store.TaskStore": "jupyter_taskstream.hub.store.TaskStore",
    "jupyter_taskstream.store.MemoryStore": "jupyter_taskstream.hub.store.MemoryStore",
    "jupyter_taskstream.store.SQLiteStore": "jupyter_taskstream.hub.store.SQLiteStore",
    "jupyter_taskstream.registry.TaskRegistry": "jupyter_taskstream.hub.registry.TaskRegistry",
}


class MovedClassType(Type):
    """A `Type` trait that also accepts the dotted paths classes had before they moved."""

    def _resolve_string(self, string: str) -> Any:
        return super()._resolve_string(MOVED_CLASSES.get(string.strip(), string))
