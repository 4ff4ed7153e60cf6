"""The duplicate-batch check: a kernel's retried batch is applied once.

A kernel's publisher numbers its batches (``publisher``, ``seq``) and keeps the number when
it retries after a lost reply; the hub remembers the highest number it applied per publisher
and drops anything at or below it.
"""

from __future__ import annotations

__all__ = ["BatchSequences"]


class BatchSequences:
    """The last batch number applied per publisher."""

    def __init__(self) -> None:
        self._last: dict[str, int] = {}

    def seen(self, publisher: str, seq: int) -> bool:
        """True if this publisher already delivered batch ``seq``; otherwise record it."""
        last = self._last.get(publisher)
        if last is not None and seq <= last:
            return True
        self._last[publisher] = seq
        return False
