"""Tasks a child process ran, as child bars and log lines of the task that started it.

The kernel side of `parentlink`: a worker or child process sends its own tasks' spec,
events and captured lines over its `workerlink` connection, each tagged with the id of
the submitting task. One `ChildTasks` per connection (one process) turns them into that
task's parts:

- each child task becomes one child bar of the submitting task's main bar, named
  ``[pid N] <its name>``, carrying its main bar's count, total and unit (its message as the
  postfix); it stays, closed, with its final count when the child task ends (`MAIN`
  replaces a closed bar of the same name, so a worker that runs many items shows one bar
  per item name);
- the child task's own child bars (a nested ``ts.progress``, a second tqdm bar) nest
  under that bar, keeping their ``leave``;
- its captured lines go to the submitting task's log tagged ``[pid N] ``, as the worker's
  prints do; a failure adds one stderr line naming it.

Counts are exact at the end: the child sends its final progress before its final status,
before its work item returns, and the submitting task collects what is readable before it
ends (`childpipes.settle`). If the process goes away first, `close` closes its bars.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from .bars import MAIN, Bar
from .childpipes import TAG, deliver
from .diagnostics import report_once

if TYPE_CHECKING:
    from .taskcore import TaskCore

__all__ = ["ChildTasks"]

_ENDED = ("completed", "failed", "cancelled")


class _Child:
    """One task of the child process: its bar in the submitting task, and its bars' there."""

    __slots__ = ("task", "name", "main", "bars")

    def __init__(self, task: TaskCore, name: str, main: Bar):
        self.task = task
        self.name = name
        self.main = main
        #: The child's bar id -> the submitting task's bar showing it.
        self.bars: dict[str, Bar] = {}


class ChildTasks:
    """The tasks of one child process (one `workerlink` connection), by their id."""

    def __init__(self, pid: int | None):
        self.tag = TAG.format(pid=pid)
        self._children: dict[str, _Child] = {}

    def receive(self, task: TaskCore, text: str) -> None:
        """Apply one JSON message of the process to ``task``, the one it reports into."""
        try:
            message = json.loads(text)
            if "spec" in message:
                self._spec(task, message["spec"])
            elif "event" in message:
                self._event(message["event"])
            elif "lines" in message:
                lines = message["lines"]
                if lines["task"] in self._children and lines["stream"] in ("stdout", "stderr"):
                    deliver(task, lines["stream"], [str(line) for line in lines["lines"]], self.tag)
        except (ValueError, KeyError, TypeError, AttributeError) as e:
            # Another package version in the child, or a bug: said once, the task goes on.
            report_once(
                ("child task", type(e)), f"a child process's progress message could not be read: {e!r}", task.notice
            )

    def close(self) -> None:
        """The process went away: close the bars of its tasks that never ended."""
        for child in list(self._children.values()):
            self._end(child)
        self._children.clear()

    def _spec(self, task: TaskCore, spec: dict[str, Any]) -> None:
        name = str(spec["name"])
        main = task.bars.open(self.tag + name, spec.get("total"), spec.get("unit") or "it", leave=True, parent=MAIN)
        self._children[spec["id"]] = _Child(task, name, main)

    def _event(self, event: dict[str, Any]) -> None:
        child = self._children.get(event["task"])
        if child is None:
            return
        data = event["data"]
        if event["type"] == "progress":
            main = child.main
            main.current = data["current"]
            main.total = data.get("total")
            main.unit = data.get("unit") or main.unit
            main.postfix = data.get("message") or ""
            for state in data.get("bars") or ():
                self._bar(child, state)
        elif event["type"] == "status" and data.get("status") in _ENDED:
            if data["status"] == "failed":
                message = data.get("message") or "failed"
                deliver(child.task, "stderr", [f"task {child.name!r} failed: {message}"], self.tag)
            self._end(child)
            self._children.pop(event["task"], None)

    def _bar(self, child: _Child, state: dict[str, Any]) -> None:
        bar = child.bars.get(state["id"])
        if bar is None:
            if state["closed"] and not state.get("leave", True):
                return  # opened and gone between two reports: nothing to show
            over = child.bars.get(state.get("parent") or MAIN)
            parent = (over or child.main).id
            bar = child.task.bars.open(str(state["desc"]), state["total"], state["unit"], bool(state["leave"]), parent)
            child.bars[state["id"]] = bar
        bar.current = state["current"]
        bar.total = state["total"]
        bar.desc = str(state["desc"])
        bar.unit = state["unit"] or "it"
        bar.postfix = state.get("postfix") or ""
        if state["closed"]:
            bar.leave = bool(state["leave"])
            child.task.bars.close(bar)
            del child.bars[state["id"]]

    def _end(self, child: _Child) -> None:
        bars = child.task.bars
        for bar in list(child.bars.values()):
            bars.close(bar)
        child.bars.clear()
        bars.close(child.main)
