"""The contract between the hub (server side) and the runtime (kernel side): written once here.

Both sides import this module and nothing of each other: the environment names a kernel
reads, the publish-secret header, the protocol version every batch carries, event types,
statuses (the terminal set and the status a view displays), validation of what a producer
publishes, the snapshot shape (`TaskState`) and the rate/ETA estimator.

Pure Python on purpose: no Jupyter, tornado or IPython imports, so both sides (and any
other producer) agree on one definition. Times are epoch seconds passed in by the caller.
"""

from __future__ import annotations

import math
import re
import secrets
from datetime import datetime, timezone
from typing import Any

from .errors import TaskFinished, ValidationError

__all__ = [
    "ENV_SECRET",
    "ENV_URL",
    "PROTOCOL_VERSION",
    "SECRET_HEADER",
    "RateEstimator",
    "check_count",
    "check_unit",
    "display_status",
    "PUBLISHED_EVENT_TYPES",
    "STATUSES",
    "TERMINAL_STATUSES",
    "TaskState",
    "iso_time",
    "new_task_id",
    "validate_event",
    "validate_name",
    "validate_task_id",
    "validate_task_spec",
    "lone_surrogate_path",
    "replace_lone_surrogates",
]

#: Environment variables a server-launched kernel reads to find its hub and prove it may publish.
ENV_URL = "JUPYTER_TASKSTREAM_URL"
ENV_SECRET = "JUPYTER_TASKSTREAM_SECRET"
#: The header that carries the publish secret (a browser cannot be made to send it: no XSRF).
SECRET_HEADER = "X-TaskStream-Secret"
#: Version of the publish protocol (the batch body of ``POST .../events``). Every batch says
#: which it speaks; kernels and the server often run different package versions.
#: 1: batches without a ``protocol`` field (before it existed). 2: ``protocol`` is sent.
PROTOCOL_VERSION = 2

STATUSES = ("pending", "running", "completed", "failed", "cancelled")
TERMINAL_STATUSES = frozenset({"completed", "failed", "cancelled"})
#: What views show: the statuses, plus ``cancelling`` for a live task asked to stop.
DISPLAY_STATUSES = (*STATUSES, "cancelling")
#: Event types a producer may publish; ``end`` and ``snapshot`` are written by the hub.
PUBLISHED_EVENT_TYPES = ("status", "progress", "log")
LOG_STREAMS = ("stdout", "stderr")
MAX_UNIT_LENGTH = 50

_TASK_ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
MAX_NAME_LENGTH = 200
# Weight of the newest sample in the hub's moving average of the rate (tqdm's default smoothing).
RATE_SMOOTHING = 0.3


def display_status(status: str, cancel_requested: bool) -> str:
    """The status a view shows: ``cancelling`` for a task asked to stop that has not ended yet."""
    return "cancelling" if cancel_requested and status not in TERMINAL_STATUSES else status


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


def check_count(value: Any, field: str, *, nullable: bool = False) -> Any:
    """A finite number >= 0 (or None when ``nullable``); `ValidationError` naming ``field``."""
    if value is None and nullable:
        return None
    if not _finite(value):
        raise ValidationError(field, f"must be a finite number, not {value!r}"[:200])
    if value < 0:
        raise ValidationError(field, f"must be >= 0, not {value!r}")
    return value


def check_unit(unit: Any, field: str = "unit") -> str:
    """A unit name: a non-empty string of at most 50 characters (``it``, ``epoch``, ``B``)."""
    if not isinstance(unit, str) or not unit or len(unit) > MAX_UNIT_LENGTH:
        raise ValidationError(field, f"must be a non-empty string of at most {MAX_UNIT_LENGTH} characters")
    return unit


def new_task_id() -> str:
    """Return a short, URL-safe, random task id that starts with a letter or digit.

    A leading '-' would read as an option on a command line (``%taskstream cancel -x1``).
    """
    while True:
        task_id = secrets.token_urlsafe(8)
        if task_id[0].isalnum():
            return task_id


def iso_time(epoch: float | None) -> str | None:
    """Format epoch seconds as ISO 8601 UTC (``2026-01-01T00:00:00.000000Z``)."""
    if epoch is None:
        return None
    return datetime.fromtimestamp(epoch, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def validate_task_id(value: Any, field: str = "id") -> str:
    """Check a client-chosen task id: 1-64 characters of ``[A-Za-z0-9_-]``."""
    if not isinstance(value, str) or not _TASK_ID_RE.match(value):
        raise ValidationError(field, "must be 1-64 characters of letters, digits, '-' or '_'")
    return value


def validate_name(value: Any, field: str = "name") -> str:
    """Check a task name: a non-empty string of at most 200 characters."""
    if not isinstance(value, str) or not value.strip():
        raise ValidationError(field, "must be a non-empty string")
    if len(value) > MAX_NAME_LENGTH:
        raise ValidationError(field, f"must be at most {MAX_NAME_LENGTH} characters")
    return value


_SURROGATE = re.compile("[\ud800-\udfff]")
#: A JSON body that may hold a lone surrogate: escapes of the surrogate range (pairs match too;
#: `lone_surrogate_path` then tells them apart).
SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89abcdefABCDEF]")


def lone_surrogate_path(value: Any, path: str = "") -> str | None:
    """The field path (``events[0].data.text``) of the first string in JSON data that holds
    a lone surrogate, ``"body"`` for the top level, or None when there is none.

    Such text (valid JSON, e.g. ``"\\ud800"``) cannot be encoded as UTF-8, so it could be
    neither stored nor streamed: hand-written input is refused naming the field.
    """
    if isinstance(value, str):
        return (path or "body") if _SURROGATE.search(value) else None
    if isinstance(value, dict):
        items = ((f"{path}.{k}" if path else str(k), k, v) for k, v in value.items())
    elif isinstance(value, list):
        items = ((f"{path}[{i}]", "", v) for i, v in enumerate(value))
    else:
        return None
    for sub, key, item in items:
        if _SURROGATE.search(key):
            return path or "body"
        found = lone_surrogate_path(item, sub)
        if found:
            return found
    return None


def replace_lone_surrogates(value: Any) -> Any:
    """JSON data with every lone surrogate replaced by U+FFFD (how kernels send odd text)."""
    if isinstance(value, str):
        return _SURROGATE.sub("\ufffd", value)
    if isinstance(value, dict):
        return {replace_lone_surrogates(k): replace_lone_surrogates(v) for k, v in value.items()}
    if isinstance(value, list):
        return [replace_lone_surrogates(v) for v in value]
    return value


def _finite(value: Any) -> bool:
    """True for a JSON number a float can hold (a 400-digit integer is not one)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:
        return False


def _number(data: dict, key: str, field: str, *, required=False, nullable=False, minimum=None):
    if key not in data:
        if required:
            raise ValidationError(field, "is required")
        return None
    value = data[key]
    if value is None:
        if nullable:
            return None
        raise ValidationError(field, "must be a number, not null")
    # bool is an int subclass; true/false as a count is always a client bug.
    if not _finite(value):
        raise ValidationError(field, "must be a finite number")
    if minimum is not None and value < minimum:
        raise ValidationError(field, f"must be >= {minimum}")
    return value


def _string(data: dict, key: str, field: str, *, required=False, choices=None, max_length=None):
    if key not in data:
        if required:
            raise ValidationError(field, "is required")
        return None
    value = data[key]
    if not isinstance(value, str):
        raise ValidationError(field, "must be a string")
    if choices is not None and value not in choices:
        raise ValidationError(field, f"must be one of {', '.join(choices)}")
    if max_length is not None and len(value) > max_length:
        raise ValidationError(field, f"must be at most {max_length} characters")
    return value


def _error(data: Any, field: str) -> dict:
    if not isinstance(data, dict):
        raise ValidationError(field, "must be an object")
    out = {
        "type": _string(data, "type", f"{field}.type") or "Error",
        "message": _string(data, "message", f"{field}.message") or "",
        "traceback": _string(data, "traceback", f"{field}.traceback") or "",
    }
    return out


def _check_keys(data: dict, allowed: tuple, field: str) -> None:
    extra = sorted(set(data) - set(allowed))
    if extra:
        raise ValidationError(f"{field}.{extra[0]}", "is not a known field")


def validate_event(etype: Any, data: Any, field: str = "events[0]") -> tuple[str, dict]:
    """Validate one published event and return ``(type, normalized data)``.

    A ``log`` event carries ``text`` (one line) or ``lines`` (several lines of one stream).

    Raises `ValidationError` naming the offending field, e.g. ``events[2].data.current``.
    """
    if etype not in PUBLISHED_EVENT_TYPES:
        raise ValidationError(f"{field}.type", f"must be one of {', '.join(PUBLISHED_EVENT_TYPES)}")
    if not isinstance(data, dict):
        raise ValidationError(f"{field}.data", "must be an object")
    f = f"{field}.data"
    if etype == "status":
        _check_keys(data, ("status", "message", "error", "cancel_requested"), f)
        out: dict = {"status": _string(data, "status", f"{f}.status", required=True, choices=STATUSES)}
        if "cancel_requested" in data:
            if data["cancel_requested"] is not True:
                raise ValidationError(f"{f}.cancel_requested", "can only be true (a request is not withdrawn)")
            out["cancel_requested"] = True
        message = _string(data, "message", f"{f}.message")
        if message is not None:
            out["message"] = message
        if data.get("error") is not None:
            out["error"] = _error(data["error"], f"{f}.error")
        return etype, out
    if etype == "progress":
        _check_keys(data, ("current", "total", "unit", "message", "rate", "eta"), f)
        out = {"current": _number(data, "current", f"{f}.current", required=True, minimum=0)}
        if "total" in data:
            out["total"] = _number(data, "total", f"{f}.total", nullable=True, minimum=0)
        for key in ("unit", "message"):
            value = _string(data, key, f"{f}.{key}", max_length=10_000)
            if value is not None:
                out[key] = value
        for key in ("rate", "eta"):
            value = _number(data, key, f"{f}.{key}", nullable=True, minimum=0)
            if value is not None:
                out[key] = value
        return etype, out
    _check_keys(data, ("stream", "text", "lines"), f)
    stream = _string(data, "stream", f"{f}.stream", choices=LOG_STREAMS) or "stdout"
    if "lines" not in data:
        return etype, {"stream": stream, "text": _string(data, "text", f"{f}.text", required=True)}
    # Several lines of one stream in one event, as a kernel's publisher batches them; the hub
    # stores and streams one log event per line, so readers never see this form.
    if "text" in data:
        raise ValidationError(f"{f}.lines", "cannot be given together with text")
    lines = data["lines"]
    if not isinstance(lines, list) or not lines:
        raise ValidationError(f"{f}.lines", "must be a non-empty array of strings")
    for i, line in enumerate(lines):
        if not isinstance(line, str):
            raise ValidationError(f"{f}.lines[{i}]", "must be a string")
    return etype, {"stream": stream, "lines": lines}


def validate_task_spec(spec: Any, field: str, *, require_id: bool) -> dict:
    """Validate a task creation body: ``name``, optional ``total``, ``unit``, ``id``, ``kernel_id``, ``code``."""
    if not isinstance(spec, dict):
        raise ValidationError(field or "body", "must be a JSON object")
    prefix = f"{field}." if field else ""
    allowed = {"name", "total", "unit", "id", "kernel_id", "code"}
    extra = sorted(set(spec) - allowed)
    if extra:
        raise ValidationError(f"{prefix}{extra[0]}", "is not a known field")
    out: dict = {"name": validate_name(spec.get("name"), f"{prefix}name")}
    out["total"] = _number(spec, "total", f"{prefix}total", nullable=True, minimum=0)
    unit = spec.get("unit", "it")
    if not isinstance(unit, str) or len(unit) > 50:
        raise ValidationError(f"{prefix}unit", "must be a string of at most 50 characters")
    out["unit"] = unit
    if "id" in spec or require_id:
        out["id"] = validate_task_id(spec.get("id"), f"{prefix}id")
    if spec.get("kernel_id") is not None:
        if not isinstance(spec["kernel_id"], str) or not spec["kernel_id"]:
            raise ValidationError(f"{prefix}kernel_id", "must be a string")
        out["kernel_id"] = spec["kernel_id"]
    if "code" in spec:
        if not isinstance(spec["code"], str) or not spec["code"].strip():
            raise ValidationError(f"{prefix}code", "must be a non-empty string of Python code")
        if "kernel_id" not in out:
            raise ValidationError(f"{prefix}kernel_id", "is required to run code")
        out["code"] = spec["code"]
    return out


class TaskState:
    """The hub's (and runtime's) view of one task: applies events, renders snapshots."""

    __slots__ = (
        "id", "name", "status", "current", "total", "unit", "rate", "eta", "message",
        "kernel_id", "created", "started", "finished", "error", "cancel_requested",
        "last_event_id", "version", "log_dropped", "_rate_sample",
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
        self._rate_sample: tuple[float, float] | None = None

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
            elif self.rate and self.total is not None:
                self.eta = max(self.total - self.current, 0) / self.rate
            else:
                self.eta = None
        elif etype == "log":
            self._start(now)

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
        # Finite inputs can still divide into infinity (a count of 1e308 in a millisecond, a
        # rate of 5e-324): such a rate or ETA is unknown, not a value JSON cannot carry, which
        # would fail every snapshot that includes this task.
        rate = self.rate if self.rate is not None and math.isfinite(self.rate) else None
        eta = self.eta if self.eta is not None and math.isfinite(self.eta) else None
        return {
            "current": self.current,
            "total": total,
            "fraction": None if fraction is None else round(fraction, 4),
            "unit": self.unit,
            "rate": None if rate is None else float(f"{rate:.4g}"),
            "eta": None if eta is None else round(eta, 1),
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
        }

    #: Fields a store keeps to rebuild the task after a restart (times stay epoch seconds).
    RECORD_FIELDS = (
        "id", "name", "status", "current", "total", "unit", "rate", "eta", "message", "kernel_id",
        "created", "started", "finished", "error", "cancel_requested", "last_event_id", "log_dropped",
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
