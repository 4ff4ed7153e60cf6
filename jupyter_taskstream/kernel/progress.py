"""`progress()`: a tqdm-like loop wrapper that does next to nothing per item.

Over a ``range`` or a ``tuple`` the position can be read off the iterator itself
(``__length_hint__`` is exactly what is left), so the loop hands items out in C-level
strides (``islice`` chained in C) and runs no Python per item; the pump reads the live
position. Any other iterable is counted in a local variable: one add and one compare.

Either way, only every ``stride`` items the loop does a checkpoint:
store the count in the task, check for a cancel, read the clock, and choose the next
stride so that checkpoints come about every `CHECK_INTERVAL` seconds (tqdm's dynamic
``miniters``). Nothing is locked or published per item; the runtime's pump thread reads
the stored count at most 10 times a second. The loop drives its task through the task's
runtime interface (`Task.drive`, `count_to`, `release`); the task asks the loop for its
live position (`live_count`) and nudges it (`nudge`). If items suddenly become slow after the stride
grew, the pump sees no checkpoint for `STALL_INTERVAL` and asks for one at the next item
(what tqdm's monitor thread does with ``maxinterval``); a strided sequence loop cannot be
stopped mid-stride, but its count stays live and a cancel still lands through the
grace-period interrupt.
"""

from __future__ import annotations

import sys
import threading
from itertools import chain, islice
from types import FrameType
from typing import TYPE_CHECKING, Callable, Iterable, Iterator

from ..errors import ValidationError
from ..protocol import check_count, check_unit
from .bars import Bar
from .context import current_task
from .task import Task

if TYPE_CHECKING:
    from .runtime import Runtime

__all__ = ["CHECK_INTERVAL", "STALL_INTERVAL", "iterate"]

#: Seconds between checkpoints the stride aims for: half a view frame at 10/s.
CHECK_INTERVAL = 0.05
#: Seconds without a checkpoint after which the pump asks for one at the next item.
STALL_INTERVAL = 1.0
#: A stride grows at most this much per checkpoint, so one fast item cannot set a huge stride.
_MAX_GROWTH = 4


class _Loop:
    """One progress() loop: what its generator and the pump thread share."""

    __slots__ = (
        "check_at", "stride", "last_n", "last_t", "task", "owned", "runtime", "total", "desc", "unit", "frame", "size",
        "left", "live", "bar", "leave",
    )  # fmt: skip

    def __init__(
        self, runtime: Runtime, total: float | None, desc: str | None, unit: str, frame: FrameType | None, leave: bool
    ):
        self.runtime = runtime
        self.leave = leave
        #: The child bar this loop counts on, inside a task whose main bar something else drives.
        self.bar: Bar | None = None
        self.total = total
        self.desc = desc
        self.unit = unit
        self.frame = frame
        self.task: Task | None = None
        self.owned = False
        self.check_at = 1
        self.stride = 1
        self.last_n = 0
        self.last_t = 0.0
        #: For a sequence loop: its length and its iterator's ``__length_hint__``.
        self.size = 0
        self.left: Callable[[], int] | None = None
        #: True for a sequence loop, whose position the task reads while the loop runs.
        self.live = False

    def claim(self) -> None:
        """Drive the current task's main bar if it may; else count on a child bar of the innermost
        open bar of that task; outside any task, start a task of our own."""
        parent = current_task.get()
        task = None
        if parent is not None and parent.drive(self, total=self.total, unit=self.unit, message=self.desc):
            task = parent
        elif parent is not None and not parent.done:
            bar = parent.bars.open(self.desc or "", self.total, self.unit, self.leave)
            if self.left is not None:
                bar.source = self._sample_bar
            bar.enter()
            self.bar, task = bar, parent
        if task is None:
            task = Task(self.desc or "progress", self.total, self.unit, runtime=self.runtime)
            task.drive(self)
            self.owned = True
            if parent is not None:
                parent.add_child(task)
            task.begin()
            task.bind_thread(threading.get_ident(), self.frame)
            self.runtime.adopt_cell_task(task)
        self.frame = None
        self.task = task
        self.last_t = self.runtime.clock()
        task.raise_if_cancelled()

    def checkpoint(self, n: int) -> None:
        """Every ``stride`` items: publish the count, honour a cancel, pick the next stride."""
        task = self.task
        if self.bar is not None:
            self.bar.current = n
        else:
            task.count_to(n, live=self.live)  # type: ignore[union-attr]
        task.raise_if_cancelled()  # type: ignore[union-attr]
        now = self.runtime.clock()
        elapsed, items = now - self.last_t, n - self.last_n
        if elapsed > 0 and items > 0:
            stride = max(1, int(items * CHECK_INTERVAL / elapsed))
        else:
            stride = self.stride * _MAX_GROWTH
        self.stride = min(stride, self.stride * _MAX_GROWTH)
        self.last_t, self.last_n = now, n
        self.check_at = n + self.stride

    def _sample_bar(self, bar: Bar) -> None:
        """A child sequence loop's live count (the pump's read of its bar)."""
        count = self.live_count()
        if count is not None and count > bar.current:
            bar.current = count

    def live_count(self) -> int | None:
        """A sequence loop's live count, read off its iterator (any thread); None for others."""
        if self.left is None or self.task is None:  # task None: still inside claim()
            return None
        # Less the item the loop body holds: the count is of items done, as in tqdm.
        return self.size - self.left() - 1

    def nudge(self, now: float) -> None:
        """Called by the pump: after a long silence in a counted loop, checkpoint at the next item."""
        if self.left is None and now - self.last_t > STALL_INTERVAL:
            self.check_at = 0

    def release(self, n: int, exc: BaseException | None) -> None:
        """The loop is over: store the final count; end the task if it was ours."""
        task = self.task
        if task is None:
            return
        bar = self.bar
        if bar is not None:
            bar.source = None
            bar.current = n
            task.bars.close(bar)
            return
        task.release(self, n)
        if self.owned:
            task.finish(exc)


def _drive(loop: _Loop, iterable: Iterable) -> Iterator:
    loop.claim()
    n = 0
    try:
        for obj in iterable:
            yield obj
            n += 1
            if n >= loop.check_at:
                loop.checkpoint(n)
    except GeneratorExit:
        # The consumer stopped early (break, or the generator was dropped): a normal end.
        loop.release(n, None)
        raise
    except BaseException as exc:
        loop.release(n, exc)
        raise
    loop.release(n, None)


def _sequence_strides(loop: _Loop, seq: range | tuple, size: int) -> Iterator[Iterator]:
    """The strides of a loop over ``seq``, each an ``islice``; checkpoints in between.

    `chain.from_iterable` walks each stride in C and comes back here only when it is used
    up, so no Python frame runs per item: that is what makes this loop cheaper than even a
    bare generator.
    """
    it = iter(seq)
    left = it.__length_hint__
    loop.size, loop.left, loop.live = size, left, True
    loop.claim()
    n = 0
    try:
        while True:
            yield islice(it, loop.stride)
            n = size - left()  # the body asked for more: every item handed out is done
            if n >= size:
                break
            loop.checkpoint(n)
    except GeneratorExit:
        # Dropped mid-stride (the body broke out): the item it held is not counted, as in tqdm.
        loop.release(size - left() - 1, None)
        raise
    except BaseException as exc:
        loop.release(n, exc)
        raise
    loop.release(size, None)


#: Sequences whose iterator's ``__length_hint__`` is exact and which cannot change length.
_SEQUENCES = (range, tuple)


def iterate(
    runtime: Runtime,
    iterable: Iterable,
    total: float | None = None,
    desc: str | None = None,
    unit: str = "it",
    frame: FrameType | None = None,
    leave: bool = False,
) -> Iterator:
    """Validate the arguments now and return the counting generator (see `jupyter_taskstream.progress`)."""
    check_count(total, "total", nullable=True)
    check_unit(unit)
    if desc is not None and not isinstance(desc, str):
        raise ValidationError("desc", f"must be a string, not {type(desc).__name__}")
    if not hasattr(iterable, "__iter__") and not hasattr(iterable, "__getitem__"):
        raise TypeError(f"progress() needs an iterable, not {type(iterable).__name__}")
    size = None
    if total is None or type(iterable) in _SEQUENCES:
        try:
            size = len(iterable)  # type: ignore[arg-type]
        except (TypeError, AttributeError, OverflowError):  # no length, or a range past sys.maxsize
            pass
    if total is None:
        total = size
    loop = _Loop(runtime, total, desc, unit, frame or sys._getframe(1), bool(leave))
    if size is not None and type(iterable) in _SEQUENCES:
        return chain.from_iterable(_sequence_strides(loop, iterable, size))  # type: ignore[arg-type]
    return _drive(loop, iterable)
