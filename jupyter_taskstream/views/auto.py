"""Which view shows a task, chosen the way ``tqdm.auto`` chooses a front end.

`AutoView` is the default runtime's view hook (see `jupyter_taskstream.api`): a notebook
widget for a task a cell starts on a kernel's main thread (when ipywidgets and anywidget
are installed), a text bar on stderr when it is a terminal outside a kernel, else nothing.
``config.widget`` and ``config.console`` (``auto``/``on``/``off``) override the guess. The
widget and its libraries are imported only when a widget is shown.
"""

from __future__ import annotations

import contextvars
import importlib.util
import sys
import threading
from typing import Any

from ..kernel import host
from ..kernel.config import RuntimeConfig
from ..kernel.task import Task

__all__ = ["AutoView", "show_widgets"]

#: False while a caller (``%%taskstream --no-widget``) starts tasks that must not show a widget.
show_widgets: contextvars.ContextVar[bool] = contextvars.ContextVar("taskstream_show_widgets", default=True)


class AutoView:
    """Shows each started task in the view that suits where the process runs."""

    def __init__(self, config: RuntimeConfig):
        self.config = config
        self._console: Any = None
        self._console_checked = False

    def __call__(self, task: Task, has_hub: bool) -> None:
        """Show ``task`` (a `Runtime` view hook); ``has_hub`` links the widget to the dashboard."""
        console = self._console_bar()
        if console is not None:
            task.watch(console.show)
        if self._widget_wanted():
            from .widget import display_task

            display_task(task, log_lines=self.config.widget_log_lines, has_hub=has_hub)

    def _console_bar(self) -> Any:
        """The one console bar of the process, decided at the first task."""
        if not self._console_checked:
            self._console_checked = True
            if self._console_wanted():
                from .console import ConsoleBar

                self._console = ConsoleBar(sys.__stderr__)
        return self._console

    def _widget_wanted(self) -> bool:
        """A widget for tasks a cell starts on the main thread, not for tasks inside tasks."""
        mode = self.config.widget
        if mode == "off" or not show_widgets.get():
            return False
        if threading.current_thread() is not threading.main_thread() or not host.in_kernel():
            return False
        if mode == "auto":
            return all(importlib.util.find_spec(m) is not None for m in ("ipywidgets", "anywidget"))
        return True

    def _console_wanted(self) -> bool:
        mode = self.config.console
        if mode != "auto":
            return mode == "on"
        stream = sys.__stderr__
        try:
            return stream is not None and stream.isatty() and not host.in_kernel()
        except (AttributeError, ValueError):
            return False
