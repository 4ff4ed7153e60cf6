"""The ``watch()`` callbacks of one task and when each is due: coalesced, plus one final call.

A watcher is called when what it would see changed (the task's view key), at most once per
``min_gap`` seconds, and always exactly once more with the final state after the task
ends. Deciding that is this module's job; calling them is the view pump's (`sampler`).
"""

from __future__ import annotations

from typing import Any, Callable

__all__ = ["Watcher", "Watchers"]


class Watcher:
    """One ``watch()`` callback and what it saw last."""

    __slots__ = ("callback", "key", "final", "called_at")

    def __init__(self, callback: Callable[[dict], Any]):
        self.callback = callback
        self.key: tuple | None = None
        self.final = False
        self.called_at = float("-inf")


class Watchers:
    """The watchers of one task; the owning task's lock is held around every method."""

    __slots__ = ("_list",)

    def __init__(self) -> None:
        self._list: list[Watcher] = []

    def __bool__(self) -> bool:
        return bool(self._list)

    def add(self, callback: Callable[[dict], Any]) -> Watcher:
        """Start watching with ``callback``."""
        watcher = Watcher(callback)
        self._list.append(watcher)
        return watcher

    def remove(self, watcher: Watcher) -> None:
        """Stop calling ``watcher`` (no error if it was removed already)."""
        if watcher in self._list:
            self._list.remove(watcher)

    def due(self, key: tuple, terminal: bool, now: float, min_gap: float) -> list[Watcher]:
        """The watchers to call now: those whose view changed, or the final call of each."""
        return [
            w for w in self._list
            if not w.final and (terminal or (w.key != key and now - w.called_at >= min_gap))
        ]  # fmt: skip

    @staticmethod
    def called(due: list[Watcher], key: tuple, terminal: bool, now: float) -> None:
        """Record that ``due`` are being called with the view ``key``."""
        for w in due:
            w.key, w.final, w.called_at = key, terminal, now

    def waiting_for_final(self) -> bool:
        """True while some watcher has not had its final call."""
        return any(not w.final for w in self._list)
