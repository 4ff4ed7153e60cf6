"""The ipywidgets view of a task: bar, meter, status, message, live log, Cancel, traceback.

One anywidget model per task, so an update is one comm message with only the traits that
changed (a composition of stock widgets sends one message per child). Updates come from the
runtime's view pump at most ``view_interval`` apart, so a tight loop never approaches the
kernel's IOPub limit. The display also carries text/plain and text/html of the state. When the
task ends, the display is replaced by text/plain and text/html of the final state alone, so a
saved notebook shows the outcome wherever it is opened: JupyterLab prefers a widget-view
output to every other type and, once the kernel that held the model is gone, shows
"Error displaying widget: model not found" instead of the HTML next to it.
"""

from __future__ import annotations

import pathlib
import threading
from typing import Any

import anywidget
from ipywidgets import Layout
from traitlets import Bool, Float, Int, List, Unicode, validate

from ..kernel._compat import publish_under
from ..protocol import TERMINAL_STATUSES
from .html_state import render_html
from .meter import child_bars, child_meter, format_snapshot_lines, snapshot_meter, snapshot_status

__all__ = ["TaskWidget", "display_task", "final_bundle", "shared_layout"]

STATIC = pathlib.Path(__file__).parent / "static"


class TaskWidget(anywidget.AnyWidget):
    """Live view of one task; state is synced traits, set together under ``hold_sync``."""

    _esm = STATIC / "widget.js"
    _css = STATIC / "widget.css"

    task_id = Unicode("").tag(sync=True)
    name = Unicode("").tag(sync=True)
    status = Unicode("pending").tag(sync=True)
    #: What the front end shows (``cancelling`` while a stop is pending) and whether the task
    #: has ended: sent, so widget.js holds no copy of the protocol's rules.
    display_status = Unicode("pending").tag(sync=True)
    final = Bool(False).tag(sync=True)
    fraction = Float(None, allow_none=True).tag(sync=True)
    meter = Unicode("").tag(sync=True)
    message = Unicode("").tag(sync=True)
    log = List(Unicode()).tag(sync=True)
    #: Child bars in tree order: ``{id, depth, desc, fraction, meter, closed}`` each.
    bars = List().tag(sync=True)
    traceback = Unicode("").tag(sync=True)
    has_hub = Bool(False).tag(sync=True)
    log_lines = Int(20, help="Lines the log pane keeps; the task's full log is in the hub.")

    def __init__(self, task: Any, *, log_lines: int | None = None, **kwargs: Any):
        if log_lines is not None:
            kwargs["log_lines"] = log_lines
        kwargs.setdefault("layout", shared_layout())
        super().__init__(task_id=task.id, **kwargs)
        self._task = task
        self._snapshot: dict = {}
        self.on_msg(self._on_frontend_message)
        self.show(task.snapshot())

    @validate("fraction")
    def _valid_fraction(self, proposal: Any) -> float | None:
        value = proposal["value"]
        return None if value is None else min(max(float(value), 0.0), 1.0)

    @validate("log")
    def _valid_log(self, proposal: Any) -> list[str]:
        lines = proposal["value"]
        return list(lines[-self.log_lines :]) if self.log_lines > 0 else []

    def show(self, snapshot: dict[str, Any]) -> None:
        """Render a task snapshot: every changed field goes out in one message."""
        self._snapshot = snapshot
        error = snapshot.get("error")
        with self.hold_sync():
            self.name = snapshot["name"]
            self.status = snapshot["status"]
            self.display_status = snapshot_status(snapshot)
            self.final = snapshot["status"] in TERMINAL_STATUSES
            self.fraction = snapshot["progress"]["fraction"]
            self.meter = snapshot_meter(snapshot)
            self.message = snapshot.get("message") or ""
            self.log = [_text(line) for line in snapshot.get("log") or []]
            self.bars = [_bar_view(bar, depth) for depth, bar in child_bars(snapshot)]
            self.traceback = (error.get("traceback") or f"{error.get('type')}: {error.get('message')}") if error else ""

    def _on_frontend_message(self, _widget: Any, content: Any, _buffers: Any) -> None:
        if isinstance(content, dict) and content.get("event") == "cancel":
            self._task.cancel()

    def _repr_mimebundle_(self, **kwargs: Any):
        bundle = super()._repr_mimebundle_(**kwargs)
        data, metadata = bundle if isinstance(bundle, tuple) else (bundle, {})
        if data is None:
            return bundle
        data = dict(data)
        data["text/plain"] = "\n".join(format_snapshot_lines(self._snapshot)) if self._snapshot else repr(self)
        data["text/html"] = render_html(self._snapshot) if self._snapshot else ""
        return data, metadata


_layout_lock = threading.Lock()
_layout: Layout | None = None


def shared_layout() -> Layout:
    """The one `Layout` every task widget uses (none of them sets one).

    ipywidgets gives each DOM widget a Layout model of its own, and closing the widget
    leaves it open: each finished task would leave a model behind in the kernel and the
    page. Sharing one also saves a task's start a model and a comm. Made again if closed
    (``Widget.close_all()``).
    """
    global _layout
    with _layout_lock:
        if _layout is None or _layout.comm is None:
            _layout = Layout()
        return _layout


def final_bundle(snapshot: dict[str, Any], log_lines: int = 20) -> dict[str, str]:
    """The display of a finished task: text/plain and text/html, with no widget to go missing."""
    return {"text/plain": "\n".join(format_snapshot_lines(snapshot)), "text/html": render_html(snapshot, log_lines=log_lines)}


def _bar_view(bar: dict[str, Any], depth: int) -> dict[str, Any]:
    """What widget.js needs of a child bar: its fill and tqdm's one-line meter."""
    total = bar.get("total")
    fraction = None if not total else min(max((bar.get("current") or 0) / total, 0.0), 1.0)
    meter = child_meter(bar)
    return {"id": bar["id"], "depth": depth, "desc": bar.get("desc") or "", "fraction": fraction, "meter": meter,
            "closed": bool(bar.get("closed"))}  # fmt: skip


def _text(line: Any) -> str:
    return line["text"] if isinstance(line, dict) else str(line)


def display_task(task: Any, *, log_lines: int | None = None, has_hub: bool = False) -> TaskWidget | None:
    """Show a task's widget in the current cell, kept live, then its final state as text/HTML.

    Returns None (and shows nothing) outside IPython. The final update is sent with the
    parent header of the cell that displayed the widget, so it lands in that cell even when
    another cell runs at that moment (ipykernel 7 routes thread output to the running cell).
    """
    try:
        from IPython import get_ipython
        from IPython.display import display
    except ImportError:
        return None
    shell = get_ipython()
    if shell is None:
        return None
    widget = TaskWidget(task, log_lines=log_lines, has_hub=has_hub)
    handle = display(widget, display_id=True)
    display_pub = getattr(shell, "display_pub", None)
    parent = getattr(display_pub, "parent_header", None)
    finished = False

    def on_change(snapshot: dict[str, Any]) -> None:
        nonlocal finished
        widget.show(snapshot)
        if snapshot["status"] in TERMINAL_STATUSES and not finished and handle is not None:
            finished = True
            bundle = final_bundle(snapshot, widget.log_lines)
            if parent and hasattr(display_pub, "set_thread_parent"):  # ipykernel 7
                token = display_pub.set_thread_parent(parent)
                try:
                    handle.update(bundle, raw=True)
                finally:
                    display_pub.reset_thread_parent(token)
            elif not (parent and publish_under(  # ipykernel 6: one shared parent header
                display_pub, parent, "update_display_data",
                {"data": bundle, "metadata": {}, "transient": {"display_id": handle.display_id}},
            )):  # fmt: skip
                handle.update(bundle, raw=True)
            # No view shows the model any more: free it in the kernel and the front end.
            widget.close()

    task.watch(on_change)
    return widget
