"""When a task's futures finish, read off the client's one stream of key reports from the scheduler.

Why not ``Future.add_done_callback``: each one costs a coroutine on the client's event loop
and a hop through Dask's callback thread per key, which on 10,000 tiny keys was +43% of the
client's CPU and 1.05× the wall time (benchmark case 12). The scheduler already tells the
client about every key it wants on one batched stream (``Client._handle_report``):
``key-in-memory``, ``task-erred``, ``cancelled-keys``. `KeyStream` wraps those three
handlers of one client, so a watched key costs one dict lookup when its report is handled,
and is counted *before* the future's waiters wake: a task that ends on ``gather`` has its
count already. Keys nobody watches pass straight through.

Relies on ``Client._stream_handlers`` mapping those message names to the handlers that
``_handle_report`` calls with the message's fields
(tests/integrations/test_dask_adapter.py checks it and fails on a change).
"""

from __future__ import annotations

import functools
import threading
from typing import Any, Callable, Iterable, Protocol

__all__ = ["KeyStream", "REPORTS"]

#: The client's stream handlers wrapped, and the status each reports.
REPORTS = {"key-in-memory": "finished", "task-erred": "error", "cancelled-keys": "cancelled"}


class KeyWatcher(Protocol):
    """What `KeyStream` tells (a `TaskTracker`)."""

    def key_finished(self, key: Any, status: str, error: str | None = None) -> None: ...


class KeyStream:
    """One client's key reports, routed to whoever watches each key."""

    def __init__(self, client: Any):
        self._lock = threading.Lock()
        #: key -> its watchers (a watcher appears once per future it holds of that key).
        self._keys: dict[Any, list[KeyWatcher]] = {}
        handlers = client._stream_handlers
        for name, status in REPORTS.items():
            original = handlers[name]
            if name == "cancelled-keys":
                handlers[name] = self._wrap_many(original)
            elif name == "task-erred":
                # Reported after the original: the future then holds the exception to log.
                handlers[name] = self._wrap_one(original, status, before=False)
            else:
                handlers[name] = self._wrap_one(original, status, before=True)

    def watch(self, futures: Iterable[Any], watcher: KeyWatcher) -> None:
        """Tell ``watcher`` when each of ``futures`` finishes, errs or is cancelled."""
        futures = list(futures)
        with self._lock:
            for future in futures:
                self._keys.setdefault(future.key, []).append(watcher)
        # A key can finish between its submission and the lines above: its report is gone.
        for future in futures:
            if future.done():
                self.report(future.key, future.status)

    def report(self, key: Any, status: str, error: str | None = None) -> None:
        """``key`` reached ``status`` (``error``: its exception as text): tell its watchers once."""
        with self._lock:
            watchers = self._keys.pop(key, None)
        if watchers:
            for watcher in watchers:
                watcher.key_finished(key, status, error)

    def forget(self, keys: Iterable[Any], watcher: KeyWatcher) -> None:
        """``watcher`` stops watching ``keys`` (it cancelled or settled them)."""
        with self._lock:
            for key in keys:
                watchers = self._keys.get(key)
                if watchers is not None:
                    self._keys[key] = [w for w in watchers if w is not watcher]
                    if not self._keys[key]:
                        del self._keys[key]

    def _wrap_one(self, original: Callable, status: str, before: bool) -> Callable:
        @functools.wraps(original)
        def handler(key: Any = None, **fields: Any) -> Any:
            if not self._keys or key not in self._keys:
                return original(key=key, **fields)
            if before:
                self.report(key, status)
                return original(key=key, **fields)
            try:
                return original(key=key, **fields)
            finally:
                self.report(key, status, _error_text(fields.get("exception"), fields.get("traceback")))

        return handler

    def _wrap_many(self, original: Callable) -> Callable:
        @functools.wraps(original)
        def handler(keys: Any, **fields: Any) -> Any:
            try:
                return original(keys, **fields)
            finally:
                if self._keys:
                    for key in keys:
                        self.report(key, "cancelled")

        return handler


def _error_text(exception: Any, traceback: Any) -> str:
    """``Type: message`` of an exception as the scheduler reports it (possibly still pickled)."""
    try:
        from distributed.core import clean_exception

        _, exc, _ = clean_exception(exception, traceback)
    except Exception as e:  # an exception class the client cannot unpickle
        return f"(exception not available: {type(e).__name__})"
    return f"{type(exc).__name__}: {exc}"
