"""What one task tells the hub, and the rate and ETA it measures to tell it.

A `Reporter` belongs to one task. It folds the task's count into a rate
(`protocol.RateEstimator`, samples at least `MIN_RATE_INTERVAL` apart) and an ETA
(`protocol.eta`), and queues the task's spec, statuses, progress (only when it changed) and
captured lines on the runtime's `Publisher`. Without a hub (no publisher) it still measures,
for local views, and sends nothing. The owning task calls it with its lock held, except
`announce`, `status` and `cancel_requested`. `outcome` says how an exception ends a task.
"""

from __future__ import annotations

import asyncio
import copy
import traceback
from typing import TYPE_CHECKING, Any, Callable

from ..errors import TaskCancelled
from ..protocol import RateEstimator, TaskState, eta, eta_shown, rate_shown

if TYPE_CHECKING:
    from .publisher import Publisher

__all__ = ["MIN_RATE_INTERVAL", "Reporter", "detached", "outcome"]

_PACKAGE = __name__.rpartition(".")[0].rpartition(".")[0]

#: Seconds between two rate samples at least; closer samples are too noisy to use.
MIN_RATE_INTERVAL = 0.05


class Reporter:
    """Measures one task's rate and ETA and sends its events to the hub (if there is one)."""

    __slots__ = ("task_id", "publisher", "published_at", "_rate", "_published")

    def __init__(self, task_id: str):
        self.task_id = task_id
        #: Where events go; None until the task starts in a runtime that has a hub.
        self.publisher: Publisher | None = None
        #: Clock time progress was last considered for sending (the pump throttles on it).
        self.published_at = float("-inf")
        self._rate = RateEstimator(MIN_RATE_INTERVAL)
        self._published: tuple | None = None

    @property
    def connected(self) -> bool:
        """True when events go to a hub."""
        return self.publisher is not None

    def measure(self, state: TaskState, now: float) -> None:
        """Fold the current count into ``state.rate`` and ``state.eta``."""
        state.rate = self._rate.update(now, state.current)
        state.eta = eta(state.current, state.total, state.rate)

    def announce(self, state: TaskState) -> None:
        """Tell the hub a task started: its spec, then ``running``."""
        pub = self.publisher
        if pub is not None:
            pub.task_spec(
                {"id": state.id, "name": state.name, "total": state.total, "unit": state.unit, "kernel_id": state.kernel_id}
            )
            pub.event(self.task_id, "status", {"status": "running"})

    def status(self, data: dict[str, Any]) -> None:
        """Send a ``status`` event."""
        if self.publisher is not None:
            self.publisher.event(self.task_id, "status", data)

    def cancel_requested(self, status: str) -> None:
        """Let every viewer of the hub see a cancel request, wherever it came from."""
        self.status({"status": status, "cancel_requested": True})

    def lines(self, stream: str, lines: list[str]) -> None:
        """Queue captured lines of one stream."""
        if self.publisher is not None:
            self.publisher.log_lines(self.task_id, stream, lines)

    def output_waiting(self, drain: Callable[[], None]) -> None:
        """Output was written: have the hub's sender call ``drain`` before its next batch.

        Without a hub the pump splits at its next pass (it visits every running task).
        """
        if self.publisher is not None:
            self.publisher.output_waiting(drain)

    def progress(self, state: TaskState, force: bool = False, bars: list[dict] | None = None) -> None:
        """Send progress if it or a child bar (``bars``: the changed ones) changed since last
        time, or always with ``force``: one event per task and visit, whatever its bars do."""
        key = (state.current, state.total, state.message, state.unit)
        if self.publisher is None or (key == self._published and not force and not bars):
            return
        self._published = key
        data: dict[str, Any] = {"current": max(state.current, 0), "total": state.total, "unit": state.unit}
        if bars:
            data["bars"] = bars
        if state.message:
            data["message"] = state.message
        # As the snapshot shows them: a measure past the contract's range is not sent (the hub refuses it).
        if (rate := rate_shown(state.rate)) is not None:
            data["rate"] = rate
        if (left := eta_shown(state.eta)) is not None:
            data["eta"] = left
        self.publisher.event(self.task_id, "progress", data)


def outcome(exc: BaseException | None) -> tuple[str, str | None, dict | None]:
    """``(status, message, error)`` for a task that ended with ``exc``."""
    if exc is None:
        return "completed", None, None
    if isinstance(exc, (TaskCancelled, KeyboardInterrupt, asyncio.CancelledError)):
        return "cancelled", "interrupted" if isinstance(exc, KeyboardInterrupt) else "cancelled", None
    tb = exc.__traceback__
    # The user's code is what matters: drop the runtime's own frames from the top.
    while tb is not None and str(tb.tb_frame.f_globals.get("__name__", "")).startswith(_PACKAGE + "."):
        tb = tb.tb_next
    text = "".join(traceback.format_exception(type(exc), exc, tb))
    error = {"type": type(exc).__name__, "message": str(exc), "traceback": text}
    return "failed", f"{type(exc).__name__}: {exc}", error


def detached(exc: BaseException | None, owned: bool) -> BaseException | None:
    """``exc`` as a finished task keeps it: without live frames (a failed training cell's model
    and its GPU memory must go with the user's ``del``, not with the 1,000th task after)."""
    if exc is None:
        return None
    if not owned:
        # The exception is the caller's (it propagates on from a ``with`` block or a cell):
        # its frames stay for a debugger, the task keeps the same error without them.
        try:
            kept = copy.copy(exc)
        except Exception:
            kept = None
        if type(kept) is type(exc):
            kept.__traceback__ = kept.__cause__ = kept.__context__ = None
            return kept
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        tb = current.__traceback__
        if owned and current is exc and tb is not None:
            tb = current.__traceback__ = tb.tb_next  # the runner's own frame (it holds the arguments)
        traceback.clear_frames(tb)
        current = current.__cause__ or current.__context__
    return exc
