"""Static HTML of a task snapshot: what a saved notebook shows where widgets do not render.

GitHub, nbconvert and a notebook reopened without its kernel have no widget model, so every
task display also carries this HTML (and `meter.format_snapshot` text) of the latest state.
Every task-supplied string goes through `html.escape`: a task named ``<img onerror=...>``
shows as that text.
"""

from __future__ import annotations

from html import escape
from typing import Any

from .meter import child_bars, child_meter, snapshot_meter, snapshot_status

__all__ = ["STATUS_COLOURS", "render_html"]

#: JupyterLab's palette: info blue while running, then success, error, warning.
STATUS_COLOURS = {
    "pending": "#757575",
    "running": "#1976d2",
    "cancelling": "#f57c00",
    "completed": "#388e3c",
    "failed": "#d32f2f",
    "cancelled": "#f57c00",
}


def render_html(snapshot: dict[str, Any], log_lines: int = 10) -> str:
    """A self-contained HTML block (inline styles only) of the task's state."""
    status = snapshot_status(snapshot)
    colour = STATUS_COLOURS.get(status, "#757575")
    p = snapshot["progress"]
    fraction = p["fraction"]
    width = 0.0 if fraction is None else min(max(fraction, 0.0), 1.0) * 100
    meter = snapshot_meter(snapshot)
    parts = [
        '<div class="taskstream-static" style="font-family: var(--jp-ui-font-family, sans-serif); '
        'font-size: 13px; max-width: 720px">',
        '<div style="display: flex; gap: 8px; align-items: center">',
        f"<b>{escape(snapshot['name'])}</b>",
        f'<span style="color: {colour}; font-weight: 600">{escape(status)}</span>',
        f'<span style="font-family: monospace">{escape(meter)}</span>',
        "</div>",
        '<div style="background: #e0e0e0; height: 8px; border-radius: 4px; margin: 4px 0">',
        f'<div style="background: {colour}; width: {width:.1f}%; height: 8px; border-radius: 4px"></div>',
        "</div>",
    ]
    for depth, bar in child_bars(snapshot):  # the bars that were left (or still open)
        total = bar.get("total")
        fill = 0.0 if not total else min(max((bar.get("current") or 0) / total, 0.0), 1.0) * 100
        parts.append(
            f'<div class="taskstream-bar" style="display: flex; gap: 8px; align-items: center; margin-left: {depth * 12}px">'
            f'<span style="min-width: 6em">{escape(bar.get("desc") or "")}</span>'
            '<span style="flex: 0 0 160px; background: #e0e0e0; height: 5px; border-radius: 3px">'
            f'<span style="display: block; background: {colour}; width: {fill:.1f}%; height: 5px; border-radius: 3px">'
            "</span></span>"
            f'<span style="font-family: monospace">{escape(child_meter(bar))}</span></div>'
        )
    if snapshot.get("message"):
        parts.append(f"<div>{escape(snapshot['message'])}</div>")
    lines = snapshot.get("log") or []
    if lines and log_lines > 0:
        text = "\n".join(_line_text(line) for line in lines[-log_lines:])
        # A reversed flex column starts scrolled to its end: the latest lines show, as in the
        # live widget, with no script to scroll it.
        parts.append(
            '<div class="taskstream-log" style="display: flex; flex-direction: column-reverse; '
            'max-height: 12em; overflow: auto; margin: 4px 0">'
            f'<pre style="margin: 0; flex: none; overflow: visible">{_one_line(text)}</pre></div>'
        )
    error = snapshot.get("error")
    if error:
        detail = error.get("traceback") or f"{error.get('type', 'Error')}: {error.get('message', '')}"
        parts.append(f'<pre style="color: {STATUS_COLOURS["failed"]}; margin: 4px 0">{_one_line(detail)}</pre>')
    parts.append("</div>")
    return "".join(parts)


def _one_line(text: str) -> str:
    # Line breaks as character references keep the whole block on one line, which line-based
    # tools (nbval's sanitizers, diffs of saved notebooks) can match as one unit.
    return escape(text).replace("\r", "&#13;").replace("\n", "&#10;")


def _line_text(line: Any) -> str:
    return line["text"] if isinstance(line, dict) else str(line)
