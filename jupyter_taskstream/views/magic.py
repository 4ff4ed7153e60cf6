"""``%%taskstream``: run a cell as a background task; ``%taskstream`` lists and cancels tasks.

The cell magic is the "run this cell in the background" users keep asking for
(jupyterlab#8963, ipython#844): the cell body runs as a task in the user namespace on a
thread, its widget appears at once, and the kernel is free for other cells. ``--wait``
blocks until the task ends (what "Run All" and nbval want), still showing it live; the
kernel's interrupt button then cancels the task *and* fails the cell with KeyboardInterrupt,
so "Run All" stops there as it would at a plain cell.

Top-level ``await`` works in the cell: the body is compiled as IPython compiles an async
cell (``PyCF_ALLOW_TOP_LEVEL_AWAIT``) and, when it awaits, runs as a coroutine on an event
loop of the task's own, in the task's thread (``asyncio.run``). asyncio tasks it creates
copy its context, so their output and progress belong to the task too. The kernel's own
loop is not used: the cell may run while other cells keep it busy.
"""

from __future__ import annotations

import ast
import shlex
from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_cell_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments, parse_argstring

from .. import api
from .auto import show_widgets
from .meter import format_snapshot

__all__ = ["TaskStreamMagics", "load_ipython_extension"]


@magics_class
class TaskStreamMagics(Magics):
    """The ``taskstream`` line and cell magic."""

    @magic_arguments()
    @argument("name", nargs="*", help="Task name (default: 'cell [N]'); as a line magic: 'cancel ID'.")
    @argument("--total", type=float, default=None, help="Expected count, for a bar before the first update.")
    @argument("--wait", action="store_true", help="Block until the task ends (Run All, nbval, scripts).")
    @argument("--no-widget", action="store_true", help="Start the task without showing its widget.")
    @line_cell_magic
    def taskstream(self, line: str, cell: str | None = None) -> Any:
        """Run the cell as a background task; as a line magic, list tasks or ``cancel ID``."""
        if cell is None:
            # The line magic takes words, not options: an id may be anything a client chose.
            return self._line(shlex.split(line))
        args = parse_argstring(self.taskstream, line)  # bad input raises UsageError, naming it
        if args.total is not None and args.total < 0:
            raise UsageError(f"%%taskstream: --total must be >= 0, not {args.total:g}")
        return self._cell(cell, " ".join(args.name), args.total, args.wait, not args.no_widget)

    def _cell(self, cell: str, name: str, total: float | None, wait: bool, widget: bool) -> Any:
        shell = self.shell
        name = name or f"cell [{shell.execution_count}]"
        # IPython syntax (%magics, !shell, ...) becomes plain Python, as in a normal cell.
        code = shell.transform_cell(cell)
        filename = shell.compile.cache(cell, shell.execution_count)  # tracebacks show the cell
        # A body that awaits compiles to a code object whose evaluation returns a coroutine,
        # which the task's thread runs to the end (see `Runtime.run`).
        compiled = compile(code, filename, "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT, dont_inherit=True)
        namespace = shell.user_ns

        def body() -> Any:
            return eval(compiled, namespace)

        token = show_widgets.set(widget)
        try:
            task = api.run(body, name=name)
        finally:
            show_widgets.reset(token)
        if total is not None:
            task.set(total=total)
        if not wait:
            return None
        try:
            task.wait()
        except KeyboardInterrupt:
            # The kernel's interrupt button means "stop this": cancel the task, and fail the
            # cell as a plain cell would, so Run All stops here.
            task.cancel()
            task.wait(api.config.cancel_grace_period + 5)
            raise
        if task.status == "failed":
            task.result()  # re-raise in the cell, so Run All and nbval stop here
        return None

    def _line(self, words: list[str]) -> Any:
        if not words:
            tasks = api.tasks()
            if not tasks:
                print("No tasks yet.")
            for task in tasks:
                print(f"{task.id}  {format_snapshot(task.snapshot(), width=100)}")
            return None
        if words[0] == "cancel" and len(words) == 2:
            task = api.get(words[1])
            if task.cancel():
                print(f"Cancelling {task.id} ({task.name}).")
            else:
                print(f"{task.id} ({task.name}) has already finished: {task.status}.")
            return None
        raise UsageError(f"usage: %taskstream  |  %taskstream cancel ID  (got {shlex.join(words)!r})")


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext jupyter_taskstream``: register the magics."""
    ipython.register_magics(TaskStreamMagics)
