"""The snapshot shape: a task's state as both sides fold events into it, and its rate and ETA.

`TaskState` is the hub's (and the runtime's) view of one task: it applies validated events,
keeps the child bars, and renders the documented snapshot; `RateEstimator` and `eta` are
tqdm's smoothed rate and the time left, the one rule both sides measure with.
"""

from __future__ import annotations

import math


from ..errors import TaskFinished
from .validate import BAR_FIELDS, MAX_BARS, MAX_COUNT
from .wire import RATE_SMOOTHING, TERMINAL_STATUSES, display_status, iso_time

__all__ = ["RateEstimator", "TaskState", "eta", "eta_shown", "rate_shown"]


class RateEstimator:
    """tqdm's smoothed rate: an exponential moving average of the count's speed between samples.

    Samples closer than ``min_interval`` seconds are skipped (too noisy); a count that goes
    down (a new loop) restarts the estimate.
    """

    __slots__ = ("rate", "_sample", "min_interval", "smoothing")

    def __init__(self, min_interval: float = 0.0, smoothing: float = RATE_SMOOTHING):
        self.rate: float | None = None
        self._sample: tuple[float, float] | None = None
        self.min_interval = min_interval
        self.smoothing = smoothing

    def update(self, now: float, current: float) -> float | None:
        """Fold the count at ``now`` into the rate and return it."""
        sample = self._sample
        if sample is None or current < sample[1]:
            self._sample = (now, current)
            if sample is not None:
                self.rate = None  # the counter restarted
            return self.rate
        dt = now - sample[0]
        if dt <= 0 or dt < self.min_interval:
            return self.rate  # keep the older sample so the next interval is measurable
        instant = (current - sample[1]) / dt
        self.rate = instant if self.rate is None else self.smoothing * instant + (1 - self.smoothing) * self.rate
        self._sample = (now, current)
        return self.rate


def eta(current: float, total: float | None, rate: float | None) -> float | None:
    """Seconds left at ``rate``, or None when the total or a positive rate is unknown."""
    if not rate or total is None:
        return None
    return max(total - current, 0) / rate


def _in_contract(value: float | None) -> float | None:
    # Finite inputs can still divide into infinity or past `MAX_COUNT` (a count of 1e308 in
    # a millisecond, a rate of 5e-324): such a measure is unknown, not a value the contract
    # (openapi.json: 0 to 1e308) cannot carry and a reader's parser may turn into infinity.
    if value is None or not math.isfinite(value) or not 0 <= value <= MAX_COUNT:
        return None
    return value


def rate_shown(rate: float | None) -> float | None:
    """A measured rate as readers get it: 4 significant digits, or None when out of the contract's range.

    Within the range, rounding stays in it: the most it rounds up to is ``1e308`` itself.
    """
    rate = _in_contract(rate)
    return None if rate is None else float(f"{rate:.4g}")


def eta_shown(seconds: float | None) -> float | None:
    """Seconds left as readers get them: to a tenth, or None when out of the contract's range."""
    seconds = _in_contract(seconds)
    return None if seconds is None else round(seconds, 1)



class TaskState:
    """The hub's (and runtime's) view of one task: applies events, renders snapshots."""

    __slots__ = (
        "id", "name", "status", "current", "total", "unit", "rate", "eta", "message",
        "kernel_id", "created", "started", "finished", "error", "cancel_requested",
        "last_event_id", "version", "log_dropped", "trimmed_through", "_rate_sample", "bars", "_bars_changed",
    )  # fmt: skip

    def __init__(self, task_id: str, name: str, *, now: float, total=None, unit="it", kernel_id=None):
        self.id = task_id
        self.name = name
        self.status = "pending"
        self.current: float = 0
        self.total = total
        self.unit = unit
        self.rate: float | None = None
        self.eta: float | None = None
        self.message = ""
        self.kernel_id = kernel_id
        self.created = now
        self.started: float | None = None
        self.finished: float | None = None
        self.error: dict | None = None
        self.cancel_requested = False
        self.last_event_id = 0
        #: bumped on every change, including coalesced progress not yet sent: the ETag.
        self.version = 0
        #: log lines no longer kept (retention), so a reader knows the log it gets is a tail.
        self.log_dropped = 0
        #: the id of the newest event trimmed from its log: kept with the record, so a restart
        #: knows which ids are gone (a resume before it gets a snapshot, not a gap)
        self.trimmed_through = 0
        self._rate_sample: tuple[float, float] | None = None
        #: Child bars by id, in the order they opened (open ones, and closed ones left in place).
        self.bars: dict[str, dict] = {}
        #: Bars changed since `take_bar_changes`: what the next progress event tells readers.
        self._bars_changed: dict[str, dict] = {}

    @property
    def terminal(self) -> bool:
        """True once the task has completed, failed or been cancelled."""
        return self.status in TERMINAL_STATUSES

    def apply(self, etype: str, data: dict, now: float) -> None:
        """Fold a validated event into the state; raises `TaskFinished` after the end."""
        if self.terminal:
            raise TaskFinished(self.id, self.status)
        self.version += 1
        if etype == "status":
            status = data["status"]
            if data.get("cancel_requested"):
                self.cancel_requested = True
            if status == "pending" and self.status == "running":
                status = "running"  # a late or repeated "pending" never moves a task backwards
            self.status = status
            if "message" in data:
                self.message = data["message"]
            if status != "pending" and self.started is None:
                self.started = now
            if status in TERMINAL_STATUSES:
                self.finished = now
                self.eta = None
                if "error" in data:
                    self.error = data["error"]
        elif etype == "progress":
            self._start(now)
            if "total" in data:
                self.total = data["total"]
            if "unit" in data:
                self.unit = data["unit"]
            if "message" in data:
                self.message = data["message"]
            self._update_rate(data["current"], now, data.get("rate"))
            self.current = data["current"]
            if "eta" in data:
                self.eta = data["eta"]
            else:
                self.eta = eta(self.current, self.total, self.rate)
            for bar in data.get("bars", ()):
                self._apply_bar(bar)
        elif etype == "log":
            self._start(now)

    def _apply_bar(self, change: dict) -> None:
        bar = self.bars.get(change["id"])
        if bar is None:
            bar = dict.fromkeys(BAR_FIELDS)
            bar.update(parent="main", desc="", current=0, unit="it", postfix="", leave=True, closed=False)
        bar.update(change)
        if bar["closed"] and not bar["leave"]:
            self.bars.pop(bar["id"], None)  # a transient bar: readers drop it when they see it closed
        else:
            self.bars[bar["id"]] = bar
            if len(self.bars) > MAX_BARS:
                oldest = next((k for k, b in self.bars.items() if b["closed"]), next(iter(self.bars)))
                del self.bars[oldest]
        self._bars_changed[bar["id"]] = dict(bar)

    def take_bar_changes(self) -> list[dict]:
        """The bars that changed since the last call, in full: the ``bars`` of the next progress event."""
        changed, self._bars_changed = self._bars_changed, {}
        return list(changed.values())

    def _start(self, now: float) -> None:
        if self.status == "pending":
            self.status = "running"
            self.started = now

    def _update_rate(self, current: float, now: float, given: float | None) -> None:
        if given is not None:
            self.rate = given
            return
        sample = self._rate_sample
        if sample is not None and now <= sample[0]:
            return  # same instant: keep the older sample so the next interval is measurable
        self._rate_sample = (now, current)
        if sample is None or current < sample[1]:
            return  # first sample, or the counter was reset: no rate to derive
        dt, dn = now - sample[0], current - sample[1]
        instant = dn / dt
        self.rate = instant if self.rate is None else RATE_SMOOTHING * instant + (1 - RATE_SMOOTHING) * self.rate

    def progress(self) -> dict:
        """The ``progress`` object of the snapshot."""
        total = self.total
        fraction = None
        if total:
            fraction = min(max(self.current / total, 0.0), 1.0)
        elif total == 0:
            fraction = 1.0 if self.terminal else 0.0
        # Measured values to the precision anyone reads them: a 16-digit float is a third of
        # a progress event's bytes on the wire, and SSE's cost per update is mostly bytes.
        return {
            "current": self.current,
            "total": total,
            "fraction": None if fraction is None else round(fraction, 4),
            "unit": self.unit,
            "rate": rate_shown(self.rate),
            "eta": eta_shown(self.eta),
        }

    def snapshot(self) -> dict:
        """The task as JSON-ready data, in the hub's documented shape."""
        return {
            "id": self.id,
            "name": self.name,
            "status": self.status,
            "progress": self.progress(),
            "message": self.message,
            "kernel_id": self.kernel_id,
            "created": iso_time(self.created),
            "started": iso_time(self.started),
            "finished": iso_time(self.finished),
            "error": self.error,
            "cancel_requested": self.cancel_requested,
            "display_status": display_status(self.status, self.cancel_requested),
            "last_event_id": self.last_event_id,
            "log_dropped": self.log_dropped,
            "bars": list(self.bars.values()),
        }

    #: Fields a store keeps to rebuild the task after a restart (times stay epoch seconds).
    RECORD_FIELDS = (
        "id", "name", "status", "current", "total", "unit", "rate", "eta", "message", "kernel_id",
        "created", "started", "finished", "error", "cancel_requested", "last_event_id", "log_dropped", "trimmed_through", "bars",
    )  # fmt: skip

    def to_record(self) -> dict:
        """The task's state as plain JSON data, for a store."""
        return {name: getattr(self, name) for name in self.RECORD_FIELDS}

    @classmethod
    def from_record(cls, record: dict) -> TaskState:
        """Rebuild a task from `to_record` data."""
        task = cls(record["id"], record["name"], now=record["created"])
        for name in cls.RECORD_FIELDS:
            if name in record:
                setattr(task, name, record[name])
        return task
