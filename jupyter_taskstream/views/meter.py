"""Text rendering of progress, shared by the console bar and the notebook views.

Pure functions of numbers or of a snapshot, in the spirit of tqdm's ``format_meter``:
``format_meter(30, 100, elapsed=3, rate=10)`` gives ``30/100 [00:03<00:07, 10.00 it/s]``.
Hand-written rather than borrowed from tqdm so the runtime does not depend on tqdm and the
text matches the snapshot fields (``eta`` and ``rate`` come from the task, not recomputed).
`snapshot_meter` and `snapshot_status` are the one place every view turns a snapshot into
its meter text and its shown status.
"""

from __future__ import annotations

import math
from typing import Any

from ..protocol import display_status, eta as eta_for

__all__ = [
    "child_bars", "child_meter", "format_bar", "format_child", "format_interval", "format_meter", "format_rate", "format_snapshot",
    "format_snapshot_lines", "snapshot_meter", "snapshot_status",
]  # fmt: skip

_BLOCKS = " ▏▎▍▌▋▊▉█"


def format_interval(seconds: float | None) -> str:
    """Seconds as ``MM:SS``, or ``H:MM:SS`` from one hour; ``?`` when unknown."""
    if seconds is None or not math.isfinite(seconds) or seconds < 0:
        return "?"
    minutes, secs = divmod(int(seconds + 0.5), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours:d}:{minutes:02d}:{secs:02d}" if hours else f"{minutes:02d}:{secs:02d}"


def _number(value: float) -> str:
    if isinstance(value, int) or (math.isfinite(value) and value == int(value)):
        return str(int(value))
    return f"{value:.2f}"


def format_rate(rate: float | None, unit: str = "it") -> str:
    """``12.50 it/s``, or ``3.20 s/it`` below one per second (easier to read), ``? it/s`` unknown."""
    if rate is None or not math.isfinite(rate):
        return f"? {unit}/s"
    if 0 < rate < 1:
        return f"{1 / rate:.2f} s/{unit}"
    return f"{rate:.2f} {unit}/s"


def format_meter(
    current: float,
    total: float | None = None,
    elapsed: float | None = None,
    rate: float | None = None,
    unit: str = "it",
    eta: float | None = None,
) -> str:
    """``current/total [elapsed<eta, rate unit/s]``; without a total, ``current unit [elapsed, rate]``.

    Parameters
    ----------
    current, total : float
        Items done, and expected (None when unknown).
    elapsed : float, optional
        Seconds since the task started.
    rate : float, optional
        Items per second; shown as ``?`` when None.
    unit : str
        What is counted.
    eta : float, optional
        Seconds left; when None and rate and total are known, it is derived from them.
    """
    if total is not None:
        if eta is None:
            eta = eta_for(current, total, rate)
        return f"{_number(current)}/{_number(total)} [{format_interval(elapsed)}<{format_interval(eta)}, {format_rate(rate, unit)}]"
    return f"{_number(current)} {unit} [{format_interval(elapsed)}, {format_rate(rate, unit)}]"


def format_bar(fraction: float | None, width: int = 20, ascii: bool = False) -> str:
    """A bar ``width`` characters wide filled to ``fraction`` (eighths with Unicode blocks)."""
    if width <= 0:
        return ""
    if fraction is None:
        return " " * width
    fraction = min(max(fraction, 0.0), 1.0)
    if ascii:
        full = int(fraction * width)
        return ("#" * full).ljust(width)
    eighths = int(fraction * width * 8)
    full, rest = divmod(eighths, 8)
    bar = "█" * full + (_BLOCKS[rest] if rest and full < width else "")
    return bar.ljust(width)


def snapshot_status(snapshot: dict[str, Any]) -> str:
    """The status a view shows for a snapshot (``cancelling`` while a stop is pending)."""
    shown = snapshot.get("display_status")
    if shown is not None:
        return shown
    asked = bool(snapshot.get("cancel_requested") or snapshot.get("cancelling"))
    return display_status(snapshot["status"], asked)


def snapshot_meter(snapshot: dict[str, Any]) -> str:
    """`format_meter` of a snapshot's progress (and its local ``elapsed``, when it has one)."""
    p = snapshot["progress"]
    return format_meter(p["current"], p["total"], snapshot.get("elapsed"), p["rate"], p["unit"], p["eta"])


def format_snapshot(snapshot: dict[str, Any], width: int = 80, ascii: bool = False) -> str:
    """One line for a task snapshot: name, percentage, bar, meter, and the status once it matters."""
    p = snapshot["progress"]
    meter = snapshot_meter(snapshot)
    status = snapshot_status(snapshot)
    suffix = "" if status == "running" else f" {status}"
    if status == "failed" and snapshot.get("error"):
        suffix += f": {snapshot['error'].get('type', 'Error')}"
    name = snapshot["name"]
    fraction = p["fraction"]
    if fraction is None:
        return f"{name}: {meter}{suffix}"[:width]
    head = f"{name}: {fraction * 100:3.0f}%|"
    tail = f"| {meter}{suffix}"
    bar_width = max(width - len(head) - len(tail), 0)
    line = head + format_bar(fraction, min(bar_width, 40), ascii) + tail
    return line[:width]


def child_bars(snapshot: dict[str, Any]) -> list[tuple[int, dict[str, Any]]]:
    """A snapshot's child bars in tree order, each with its depth (1 under the main bar)."""
    bars = snapshot.get("bars") or []
    by_parent: dict[str, list[dict]] = {}
    ids = {bar["id"] for bar in bars}
    for bar in bars:
        parent = bar.get("parent") or "main"
        by_parent.setdefault(parent if parent in ids else "main", []).append(bar)
    out: list[tuple[int, dict[str, Any]]] = []

    def walk(parent: str, depth: int) -> None:
        for bar in by_parent.get(parent, ()):
            out.append((depth, bar))
            if depth < 8:  # deeper nesting is shown flat rather than off the screen
                walk(bar["id"], depth + 1)

    walk("main", 1)
    return out


def child_meter(bar: dict[str, Any]) -> str:
    """A child bar's counts and timing: ``17/50 [<00:01, 41.00 it/s], loss=0.31``."""
    total, current = bar.get("total"), bar.get("current") or 0
    unit = bar.get("unit") or "it"
    rate = format_rate(bar.get("rate"), unit)
    left = None if bar.get("closed") or total is None else bar.get("eta")
    timing = f"[<{format_interval(left)}, {rate}]" if left is not None else f"[{rate}]"
    count = f"{_number(current)}/{_number(total)}" if total else f"{_number(current)} {unit}"
    return f"{count} {timing}" + (f", {bar['postfix']}" if bar.get("postfix") else "")


def format_child(bar: dict[str, Any], depth: int = 1, width: int = 80, ascii: bool = False) -> str:
    """One tqdm-like line for a child bar, indented by its depth: ``  batch:  34%|███ | 17/50 [<00:01, 41.00 it/s]``."""
    head = "  " * depth + (f"{bar['desc']}: " if bar.get("desc") else "")
    meter = child_meter(bar)
    total = bar.get("total")
    if not total:
        return f"{head}{meter}"[:width]
    fraction = min(max((bar.get("current") or 0) / total, 0.0), 1.0)
    head += f"{fraction * 100:3.0f}%|"
    tail = f"| {meter}"
    return (head + format_bar(fraction, min(max(width - len(head) - len(tail), 0), 20), ascii) + tail)[:width]


def format_snapshot_lines(snapshot: dict[str, Any], width: int = 80, ascii: bool = False) -> list[str]:
    """`format_snapshot`, then one `format_child` line per child bar (tree order)."""
    lines = [format_snapshot(snapshot, width, ascii)]
    lines += [format_child(bar, depth, width, ascii) for depth, bar in child_bars(snapshot)]
    return lines
