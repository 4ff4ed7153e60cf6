"""Validation of what producers publish and users post: one rule per field, written once.

Every check raises `ValidationError` naming the offending field (``events[2].data.current``).
Kernels' batches pass an ``ignored`` list so a newer peer's unknown fields are skipped and
counted (see `check_fields`); hand-written input passes none and gets a 400 for a typo.
"""

from __future__ import annotations

import math
import re
from typing import Any

from ..errors import ValidationError
from .wire import LOG_STREAMS, MAX_NAME_LENGTH, MAX_UNIT_LENGTH, PUBLISHED_EVENT_TYPES, STATUSES, dropped_marker

_TASK_ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")

__all__ = [
    "BAR_FIELDS", "MAX_BARS", "SURROGATE_ESCAPE", "check_count", "check_fields", "check_unit", "lone_surrogate_path",
    "replace_lone_surrogates", "validate_bars", "validate_event", "validate_name", "validate_task_id",
    "validate_task_spec",
]  # fmt: skip

#: The largest count taken: past it, a JSON parser may round a number down to the largest
#: float or up to infinity, so ``1e308`` is where the contract stops (see openapi.json).
MAX_COUNT = 1e308


def check_count(value: Any, field: str, *, nullable: bool = False) -> Any:
    """A finite number from 0 to `MAX_COUNT` (or None when ``nullable``); `ValidationError` naming ``field``."""
    if value is None and nullable:
        return None
    if not _finite(value):
        raise ValidationError(field, f"must be a finite number, not {value!r}"[:200])
    if value < 0:
        raise ValidationError(field, f"must be >= 0, not {value!r}")
    if value > MAX_COUNT:
        raise ValidationError(field, f"must be at most {MAX_COUNT:g}")
    return value


def check_unit(unit: Any, field: str = "unit") -> str:
    """A unit name: a non-empty string of at most 50 characters (``it``, ``epoch``, ``B``)."""
    if not isinstance(unit, str) or not unit or len(unit) > MAX_UNIT_LENGTH:
        raise ValidationError(field, f"must be a non-empty string of at most {MAX_UNIT_LENGTH} characters")
    return unit



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


def _number(data: dict, key: str, field: str, *, required=False, nullable=False):
    """``data[key]`` as a count (`check_count`), or None when absent and not ``required``."""
    if key not in data:
        if required:
            raise ValidationError(field, "is required")
        return None
    if data[key] is None and not nullable:
        raise ValidationError(field, "must be a number, not null")
    return check_count(data[key], field, nullable=nullable)


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


def check_fields(data: dict, allowed: Any, field: str, ignored: list[str] | None = None) -> None:
    """Refuse a field of ``data`` that is not in ``allowed``, naming it (``events[0].data.colour``).

    Given an ``ignored`` list, unknown fields are appended to it (by their path) instead: a
    newer peer's additions are skipped and counted rather than failing its whole batch.
    Hand-written input passes no list, so a typo is still a 400 that names it.
    """
    extra = sorted(str(key) for key in data if key not in allowed)
    if not extra:
        return
    paths = [f"{field}.{key}" if field else key for key in extra]
    if ignored is None:
        raise ValidationError(paths[0], "is not a known field")
    ignored.extend(paths)


def validate_event(etype: Any, data: Any, field: str = "events[0]",
                   ignored: list[str] | None = None) -> tuple[str, dict]:  # fmt: skip
    """Validate one published event and return ``(type, normalized data)``.

    A ``log`` event carries ``text`` (one line) or ``lines`` (several lines of one stream).
    Unknown data fields go to ``ignored`` when it is given (see `check_fields`); the type
    must be known either way (a caller that skips unknown types checks that first).

    Raises `ValidationError` naming the offending field, e.g. ``events[2].data.current``.
    """
    if etype not in PUBLISHED_EVENT_TYPES:
        raise ValidationError(f"{field}.type", f"must be one of {', '.join(PUBLISHED_EVENT_TYPES)}")
    if not isinstance(data, dict):
        raise ValidationError(f"{field}.data", "must be an object")
    f = f"{field}.data"
    if etype == "status":
        check_fields(data, ("status", "message", "error", "cancel_requested"), f, ignored)
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
        check_fields(data, ("current", "total", "unit", "message", "rate", "eta", "bars"), f, ignored)
        out = {"current": _number(data, "current", f"{f}.current", required=True)}
        if "bars" in data:
            out["bars"] = validate_bars(data["bars"], f"{f}.bars", ignored)
        if "total" in data:
            out["total"] = _number(data, "total", f"{f}.total", nullable=True)
        for key in ("unit", "message"):
            value = _string(data, key, f"{f}.{key}", max_length=10_000)
            if value is not None:
                out[key] = value
        for key in ("rate", "eta"):
            value = _number(data, key, f"{f}.{key}", nullable=True)
            if value is not None:
                out[key] = value
        return etype, out
    check_fields(data, ("stream", "text", "lines", "dropped"), f, ignored)
    stream = _string(data, "stream", f"{f}.stream", choices=LOG_STREAMS) or "stdout"
    if "dropped" in data:
        # A marker: ``dropped`` lines were lost at this point of the log (``text`` says so).
        dropped = data["dropped"]
        if type(dropped) is not int or not 1 <= dropped <= 2**53:
            raise ValidationError(f"{f}.dropped", "must be a whole number of lines, at least 1")
        if "lines" in data:
            raise ValidationError(f"{f}.dropped", "cannot be given together with lines")
        text = _string(data, "text", f"{f}.text", max_length=200) or dropped_marker(dropped)
        return etype, {"stream": stream, "text": text, "dropped": dropped}
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


#: A child bar's fields (see README's event table); the main bar is the task's ``progress``.
BAR_FIELDS = ("id", "parent", "desc", "current", "total", "unit", "rate", "eta", "postfix", "leave", "closed")
#: Child bars a task keeps at most; the oldest closed ones are forgotten first.
MAX_BARS = 100
_BAR_ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,32}$")


def validate_bars(value: Any, field: str, ignored: list[str] | None = None) -> list[dict]:
    """Validate the ``bars`` of a progress event: child bars that changed, each with its ``id``."""
    if not isinstance(value, list) or len(value) > MAX_BARS:
        raise ValidationError(field, f"must be an array of at most {MAX_BARS} bars")
    out = []
    for i, bar in enumerate(value):
        f = f"{field}[{i}]"
        if not isinstance(bar, dict):
            raise ValidationError(f, "must be an object")
        check_fields(bar, BAR_FIELDS, f, ignored)
        if not isinstance(bar.get("id"), str) or not _BAR_ID_RE.match(bar["id"]):
            raise ValidationError(f"{f}.id", "must be 1-32 characters of letters, digits, '-' or '_'")
        item: dict = {"id": bar["id"]}
        if bar.get("parent") is not None:
            if not isinstance(bar["parent"], str) or not _BAR_ID_RE.match(bar["parent"]):
                raise ValidationError(f"{f}.parent", "must be a bar id or null")
            item["parent"] = bar["parent"]
        for key in ("desc", "postfix"):
            text = _string(bar, key, f"{f}.{key}", max_length=MAX_NAME_LENGTH)
            if text is not None:
                item[key] = text
        if "unit" in bar:
            item["unit"] = check_unit(bar["unit"], f"{f}.unit")
        if "current" in bar:
            item["current"] = _number(bar, "current", f"{f}.current")
        for key in ("total", "rate", "eta"):
            if key in bar:
                item[key] = _number(bar, key, f"{f}.{key}", nullable=True)
        for key in ("leave", "closed"):
            if key in bar:
                if not isinstance(bar[key], bool):
                    raise ValidationError(f"{f}.{key}", "must be true or false")
                item[key] = bar[key]
        out.append(item)
    return out


_SPEC_FIELDS = ("name", "total", "unit", "id", "kernel_id")


def validate_task_spec(spec: Any, field: str, *, require_id: bool, from_kernel: bool = False,
                       can_run_code: bool = False, ignored: list[str] | None = None) -> dict:  # fmt: skip
    """Validate a task creation body: ``name``, optional ``total``, ``unit``, ``id``, ``kernel_id``, ``code``.

    ``kernel_id`` names the kernel that owns the task, and the hub fails the task when that
    kernel dies: only a kernel's runtime (``from_kernel``, the publish secret) may claim it,
    or a user asking to run ``code`` in that kernel (``can_run_code``: ``POST tasks`` only).
    """
    if not isinstance(spec, dict):
        raise ValidationError(field or "body", "must be a JSON object")
    prefix = f"{field}." if field else ""
    check_fields(spec, _SPEC_FIELDS + ("code",) if can_run_code else _SPEC_FIELDS, field, ignored)
    out: dict = {"name": validate_name(spec.get("name"), f"{prefix}name")}
    out["total"] = _number(spec, "total", f"{prefix}total", nullable=True)
    out["unit"] = check_unit(spec.get("unit", "it"), f"{prefix}unit")
    if "id" in spec or require_id:
        out["id"] = validate_task_id(spec.get("id"), f"{prefix}id")
    if spec.get("kernel_id") is not None:
        if not isinstance(spec["kernel_id"], str) or not spec["kernel_id"]:
            raise ValidationError(f"{prefix}kernel_id", "must be a string")
        if not from_kernel and "code" not in spec:
            raise ValidationError(f"{prefix}kernel_id", "may only be set by a kernel's runtime")
        out["kernel_id"] = spec["kernel_id"]
    if "code" in spec:
        if not isinstance(spec["code"], str) or not spec["code"].strip():
            raise ValidationError(f"{prefix}code", "must be a non-empty string of Python code")
        if "kernel_id" not in out:
            raise ValidationError(f"{prefix}kernel_id", "is required to run code")
        out["code"] = spec["code"]
    return out


