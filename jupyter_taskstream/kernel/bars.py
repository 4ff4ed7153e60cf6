"""Child bars of a task: nested loops, tqdm and rich bars inside a task, as one task's bars.

A task has one main bar (its own ``progress``) and any number of child bars. A bar opened
while another bar of the same task is open in the same thread or asyncio context becomes a
child of the innermost one (`current_bar`, a context variable, so threads and asyncio tasks
the task starts carry it, as output routing does).

Bars are written by the code that drives them (an attribute store per update: no lock, no
clock) and read by the runtime's sampler thread at most ``view_interval`` apart, which folds
the counts into rates and hands what changed to the views and the publisher. A bar fed by
another library (a tqdm or rich bar) has a ``source``: the sampler reads the count from it,
so the library's own update batching (tqdm's ``miniters``) costs nothing extra.

What leaves with a closed bar: ``leave=False`` removes it from the views, ``leave=True``
keeps it, closed. A bar opened again under the same parent with the same description (the
inner loop of the next epoch) replaces the closed one, so 30 epochs show one child bar.
"""

from __future__ import annotations

import contextvars
import threading
from typing import Any, Callable

from ..protocol import RateEstimator, eta, eta_shown, rate_shown

__all__ = ["MAIN", "Bar", "BarSet", "MainBar", "current_bar"]

#: The innermost open bar in this thread or asyncio context (of whichever task owns it).
current_bar: contextvars.ContextVar[Bar | None] = contextvars.ContextVar("taskstream_bar", default=None)

#: The id of a task's main bar (its ``progress``): the parent of its outermost child bars.
MAIN = "main"
#: Closed bars kept with ``leave=True`` per task, at most; the oldest go first.
MAX_LEFT_BARS = 50


class Bar:
    """One child bar: tqdm's fields, written by its driver and read by the sampler."""

    __slots__ = (
        "id", "parent", "desc", "current", "total", "unit", "postfix", "leave", "closed", "source",
        "owner", "_rates", "rate", "_token", "_sent",
    )  # fmt: skip

    def __init__(self, bar_id: str, parent: str | None, desc: str, total: float | None, unit: str, leave: bool):
        self.id = bar_id
        self.parent = parent
        self.desc = desc
        self.current: float = 0
        self.total = total
        self.unit = unit
        self.postfix = ""
        self.leave = leave
        self.closed = False
        #: ``source(bar)`` refreshes the fields from the library object that drives the bar.
        self.source: Callable[[Bar], None] | None = None
        #: The task this bar belongs to (any object; `BarSet` sets it).
        self.owner: Any = None
        self._rates = RateEstimator(min_interval=0.05)
        self.rate: float | None = None
        self._token: contextvars.Token | None = None
        #: What the publisher last sent of this bar, so unchanged bars are not sent again.
        self._sent: tuple | None = None

    def state(self) -> dict[str, Any]:
        """The bar in the protocol's shape (see ``protocol.BAR_FIELDS``)."""
        left = None if self.closed else eta(self.current, self.total, self.rate)
        return {
            "id": self.id,
            "parent": self.parent,
            "desc": self.desc,
            "current": self.current,
            "total": self.total,
            "unit": self.unit,
            "rate": rate_shown(self.rate),
            "eta": eta_shown(left),
            "postfix": self.postfix,
            "leave": self.leave,
            "closed": self.closed,
        }

    def enter(self) -> None:
        """Make this bar the innermost open one in the calling context."""
        self._token = current_bar.set(self)

    def exit(self) -> None:
        """Undo `enter` (in the context that entered; elsewhere, forget the innermost bar)."""
        token, self._token = self._token, None
        if token is None:
            return
        try:
            current_bar.reset(token)
        except ValueError:  # closed in another context than it was opened in
            if current_bar.get() is self:
                current_bar.set(None)


class BarSet:
    """The child bars of one task, in the order they were opened."""

    def __init__(self, owner: Any):
        self._owner = owner
        self._bars: dict[str, Bar] = {}
        self._lock = threading.Lock()
        self._next = 0
        #: Bars that closed with ``leave=False`` since the publisher last looked: sent once, closed.
        self._gone: list[Bar] = []

    def __len__(self) -> int:
        return len(self._bars)

    def open(self, desc: str, total: float | None, unit: str = "it", leave: bool = True, parent: str | None = None) -> Bar:
        """A new child of ``parent`` (a bar id), by default of the innermost open bar of this
        task in the calling context."""
        if parent is None:
            inner = current_bar.get()
            parent = inner.id if inner is not None and inner.owner is self._owner and not inner.closed else MAIN
        with self._lock:
            for old in self._bars.values():
                if old.closed and old.parent == parent and old.desc == desc:
                    del self._bars[old.id]  # the same inner loop again: it takes the old bar's place
                    bar_id = old.id
                    break
            else:
                self._next += 1
                bar_id = f"b{self._next}"
            bar = Bar(bar_id, parent, desc, total, unit, leave)
            bar.owner = self._owner
            self._bars[bar_id] = bar
            self._trim()
        return bar

    def close(self, bar: Bar) -> None:
        """The bar's loop ended: it stays (closed) when ``leave``, else it disappears."""
        if bar.closed:
            return
        if bar.source is not None:
            bar.source(bar)  # the final count, exact
            bar.source = None
        bar.closed = True
        bar.exit()
        if not bar.leave:
            with self._lock:
                # Its children go with it: a bar left in place under one that vanished means nothing.
                gone, ids = [], {bar.id}
                for other in list(self._bars.values()):
                    if other is bar or other.parent in ids and other.closed:
                        ids.add(other.id)
                        gone.append(self._bars.pop(other.id))
                for other in gone:
                    other.leave = False  # readers drop it once they see it closed
                self._gone.extend(gone if bar in gone else [bar, *gone])

    def close_all(self) -> None:
        """The task ended: close what is still open (a loop left by an exception)."""
        for bar in list(self._bars.values()):
            self.close(bar)

    def refresh(self) -> list[Bar]:
        """Read the live counts of bars fed by a library or a strided loop; the open bars."""
        bars = [bar for bar in list(self._bars.values()) if not bar.closed]
        for bar in bars:
            if bar.source is not None:
                try:
                    bar.source(bar)
                except Exception:  # the library object went away mid-read: keep the last values
                    pass
        return bars

    def sample(self, now: float) -> None:
        """`refresh`, and fold the counts into rates (the sampler thread, 10/s)."""
        for bar in self.refresh():
            bar.rate = bar._rates.update(now, bar.current)

    def visible(self) -> list[dict[str, Any]]:
        """The bars views show: open ones and closed ones left in place."""
        return [bar.state() for bar in list(self._bars.values())]

    def changes(self) -> list[dict[str, Any]]:
        """Bars whose state changed since the last call (closed transient ones once), for the hub."""
        with self._lock:
            gone, self._gone = self._gone, []
        out = []
        for bar in [*list(self._bars.values()), *gone]:
            state = bar.state()
            key = (state["current"], state["total"], state["desc"], state["postfix"], state["unit"], state["closed"])
            if key != bar._sent:
                bar._sent = key
                out.append(state)
        return out

    def key(self) -> tuple:
        """What a view would see change in the bars."""
        return tuple((b.id, b.current, b.total, b.desc, b.postfix, b.closed) for b in list(self._bars.values()))

    def _trim(self) -> None:
        left = [b for b in self._bars.values() if b.closed]
        for old in left[: max(0, len(left) - MAX_LEFT_BARS)]:
            del self._bars[old.id]


class MainBar:
    """A library's bar (tqdm, rich) driving a task's main bar, read through its ``source``."""

    __slots__ = ("source", "current", "total", "desc", "unit", "postfix")

    def __init__(self, source: Callable[[Any], None] | None):
        self.source = source
        self.current: float = 0
        self.total: float | None = None
        self.desc = ""
        self.unit = "it"
        self.postfix = ""

    def sample_into(self, state: Any) -> None:
        """Copy the library's count, total, unit and description into the task's state."""
        if self.source is None:
            return
        try:
            self.source(self)
        except Exception:  # the library object went away mid-read: keep the last values
            return
        state.current = self.current
        state.total = self.total
        if self.unit:
            state.unit = self.unit
        message = f"{self.desc} {self.postfix}".strip() if self.postfix else self.desc
        if message:
            state.message = message

    def nudge(self, now: float) -> None:
        """The pump's visit: nothing to do, `sample_into` reads the source."""

    def live_count(self) -> None:
        """Not a sequence loop: the count comes from `sample_into`."""
        return None
