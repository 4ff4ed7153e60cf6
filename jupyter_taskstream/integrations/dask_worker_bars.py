"""Bars of task code on Dask workers: ``ts.progress`` and tqdm there feed the task's child bars.

Runs inside workers (loaded by `.dask_worker.OutputForwarder.setup`). While a worker thread
executes a key whose annotations carry a ``taskstream`` task id, the key runs with a
`WorkerTask` as its current task: a stand-in, in this worker process, for the task that
submitted it (one per task id, shared by that task's keys here). It is a real kernel `Task`
that is never started and never drives a main bar, so every ``ts.progress`` loop and every
tqdm bar (the plugin installs the tqdm bridge here) becomes one of its child bars, nested as
in the kernel, and nothing draws on the worker. The plugin samples those bars at most every
`SAMPLE_INTERVAL` seconds and sends what changed on its topic; the state of a bar closed by
a key goes with the lines sent as that key stops executing, ahead of its result, so the
final count the client shows is exact. Lines written by child processes of such a key
(`add_lines`, see `integrations.processes`) are forwarded like its prints.

Nothing here connects anywhere: the bars travel on Dask's own event stream.

The one private part used: ``distributed.worker._run_task(task, data, execution_state, key,
...)``, which ``Worker.execute`` calls in the executor thread for each key; `hook_run_task`
wraps it (tests/integrations/test_dask_adapter.py checks the signature).
"""

from __future__ import annotations

import functools
import sys
import threading
from typing import Any, Callable

from ..kernel.bars import current_bar
from ..kernel.context import current_task
from ..kernel.task import Task

__all__ = ["BAR_FIELDS", "SAMPLE_INTERVAL", "WorkerTask", "hook_run_task", "install_tqdm_bridge"]

#: Seconds between two samples of a worker's bars: a few updates a second per bar at most.
SAMPLE_INTERVAL = 0.25
#: What is sent of a bar (the rate is the client's to estimate).
BAR_FIELDS = ("id", "parent", "desc", "current", "total", "unit", "postfix", "leave", "closed")


class WorkerTask(Task):
    """The submitting task as its keys on this worker see it: child bars only, output forwarded."""

    def __init__(self, task_id: str, forward: Callable[[str, str], None]):
        super().__init__("dask worker", task_id=task_id)
        self._forward = forward
        #: Keys of this task executing in this worker now, and when the last one ended
        #: (both changed under the plugin's lock).
        self.running = 0
        self.used_at = 0.0

    def drive(self, loop: Any, **kwargs: Any) -> bool:
        """Never: the submitting task's main bar counts its Dask keys; loops here are child bars."""
        return False

    def add_lines(self, stream: str, lines: list[str]) -> bool:
        """Lines of a child process of a key: forwarded like the key's own output."""
        self._forward(stream, "".join(line + "\n" for line in lines))
        return True

    def bar_changes(self) -> list[dict]:
        """The bars whose state changed since the last call (closed ones once), as sent."""
        bars = self._bars
        if bars is None:
            return []  # no loop or tqdm bar ever ran here: the usual case, kept cheap
        bars.refresh()
        return [{name: state[name] for name in BAR_FIELDS} for state in bars.changes()]

    @property
    def idle(self) -> bool:
        """No key of the task runs here and no bar is open: the stand-in may go."""
        return self.running == 0 and (self._bars is None or not self._bars.refresh())


_hook_lock = threading.Lock()
#: The running plugin's ``(enter, leave)``: the stand-in of a key's task (or None), and its release.
_keys: tuple[Callable[[Any], WorkerTask | None], Callable[[WorkerTask], None]] | None = None


def hook_run_task(enter: Callable[[Any], WorkerTask | None] | None, leave: Callable[[WorkerTask], None]) -> None:
    """Make each key run with ``enter(key)`` as its current task (None: unhook); idempotent."""
    global _keys
    from distributed import worker as worker_module

    with _hook_lock:
        _keys = None if enter is None else (enter, leave)
        original = worker_module._run_task
        if getattr(original, "__taskstream__", False):
            return

        @functools.wraps(original)
        def _run_task(task: Any, data: Any, execution_state: Any, key: Any, *args: Any, **kwargs: Any) -> Any:
            hooks = _keys
            try:
                shadow = hooks[0](key) if hooks is not None else None
            except Exception:  # never the user's work's problem: the key runs without bars
                shadow = None
            if shadow is None:
                return original(task, data, execution_state, key, *args, **kwargs)
            token, bar_token = current_task.set(shadow), current_bar.set(None)
            try:
                return original(task, data, execution_state, key, *args, **kwargs)
            finally:
                current_bar.reset(bar_token)
                current_task.reset(token)
                hooks[1](shadow)

        _run_task.__taskstream__ = True  # type: ignore[attr-defined]
        worker_module._run_task = _run_task


_TQDM_MODULES = ("tqdm.std", "tqdm.notebook", "tqdm.rich")


def install_tqdm_bridge() -> None:
    """tqdm bars in task code become child bars (now, or when tqdm is imported); idempotent.

    Only the tqdm bridge: code outside taskstream keys runs with no current task, so tqdm
    there behaves as without us.
    """
    import wrapt

    from . import tqdm as bridge

    for name in _TQDM_MODULES:
        wrapt.register_post_import_hook(lambda _module: bridge.install(), name)
    if "tqdm.std" in sys.modules:
        bridge.install()
