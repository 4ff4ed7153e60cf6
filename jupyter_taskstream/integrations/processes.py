"""Child processes are part of the task that starts them: their output goes to its log.

Inside a task (and only there: outside, every patched function calls the original at once):

- ``subprocess.Popen`` (so ``run``, ``call``, ``check_call``, ``check_output``) with no
  explicit ``stdout``/``stderr`` gives the child a `kernel.childpipes.ChildPipe` per stream
  instead of the kernel's descriptors; ``Popen.wait`` also waits (briefly) for the last
  lines. An explicit ``PIPE``, file or descriptor stays the user's; ``stderr=STDOUT``
  follows stdout. Return codes and values are the child's, unchanged. The child's
  environment also names the task (`protocol.ENV_PARENT`), so a Python child's own tasks
  report into it as child bars (`kernel.parentlink`); so does the environment of a child
  ``ptyprocess`` starts (pexpect, on which IPython runs ``!cmd``).
- ``os.system`` runs the command through that ``Popen`` with ``shell=True`` and returns
  the same wait status (``os.system("exit 3") == 768``).
- ``multiprocessing`` (``Pool.apply_async``/``map``/``map_async``/``starmap``/
  ``starmap_async``/``imap``/``imap_unordered``, and ``Process`` started with a
  ``target``), ``concurrent.futures.ProcessPoolExecutor.submit`` (and ``map``), and loky's
  executor (joblib's default backend; see `integrations` for the hook) send the work item
  as a `kernel.workerside.InTask`, which routes the worker's output to the submitting task.
  ``multiprocessing.pool.ThreadPool`` runs in threads, which `kernel.context` already covers.

`install` and `uninstall` are what `integrations.enable`/`disable` call; `uninstall` puts
back the very function objects it replaced.
"""

from __future__ import annotations

import functools
import inspect
import os
import sys
import threading
from typing import Any, Callable

from ..kernel import workerlink
from .patches import Patches
from ..kernel._compat import process_target, set_process_target
from ..kernel.childpipes import open_pipes
from ..kernel.context import current_task
from ..protocol import ENV_PARENT

__all__ = ["install", "uninstall"]

#: Seconds ``Popen.wait`` waits for a reader to deliver the last lines after the child exited;
#: bounded because a detached grandchild may hold the pipe open for ever.
LAST_LINES_WAIT = 1.0
#: What a worker calls before its first item: the bridges on, so its tqdm bars report too.
WORKER_SETUP = "jupyter_taskstream.integrations:enable"
POOL_METHODS = ("apply_async", "map", "map_async", "starmap", "starmap_async", "imap", "imap_unordered")

_lock = threading.Lock()
_patches = Patches()


def install() -> None:
    """Patch every supported library that is loaded now (idempotent)."""
    with _lock:
        subprocess = sys.modules.get("subprocess")
        if subprocess is not None:
            _patch(subprocess.Popen, "__init__", _popen_init)
            _patch(subprocess.Popen, "wait", _popen_wait)
            _patch(os, "system", _system)
        pool = sys.modules.get("multiprocessing.pool")
        if pool is not None:
            for name in POOL_METHODS:
                _patch(pool.Pool, name, _pool_method)
        process = sys.modules.get("multiprocessing.process")
        if process is not None:
            _patch(process.BaseProcess, "start", _process_start)
        futures = sys.modules.get("concurrent.futures.process")
        if futures is not None:
            _patch(futures.ProcessPoolExecutor, "submit", _executor_submit)
        pty = sys.modules.get("ptyprocess.ptyprocess")
        if pty is not None:
            _patches.patch(pty.PtyProcess, "spawn", _pty_spawn)
        for name in ("joblib.externals.loky.process_executor", "loky.process_executor"):
            loky = sys.modules.get(name)
            if loky is not None:
                _patch(loky.ProcessPoolExecutor, "submit", _executor_submit)


def uninstall() -> None:
    """Put every original back."""
    with _lock:
        _patches.restore()


def _patch(owner: Any, name: str, make: Callable[[Callable], Callable]) -> None:
    _patches.patch(owner, name, lambda original: functools.update_wrapper(make(original), original))


# ---- subprocess and os.system ---------------------------------------------------------


def _popen_init(original: Callable) -> Callable:
    signature = inspect.signature(original)

    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        task = current_task.get()
        if task is None:
            return original(self, *args, **kwargs)
        bound = signature.bind(self, *args, **kwargs)
        given = bound.arguments
        _name_task(given, task)
        pipes = open_pipes(task, given.get("stdout") is None, given.get("stderr") is None)
        for stream, pipe in pipes.items():
            given[stream] = pipe.write_fd
        try:
            original(*bound.args, **bound.kwargs)
        except BaseException:
            for pipe in pipes.values():
                pipe.abandon()
            raise
        for pipe in pipes.values():
            pipe.start(self.pid)
        self._taskstream_pipes = list(pipes.values())

    return __init__


def _name_task(given: dict, task: Any) -> None:
    """Add `ENV_PARENT` to a child's ``env`` argument: a Python child's own tasks report into
    ``task`` (see `kernel.parentlink`)."""
    env = os.environ if given.get("env") is None else given["env"]
    given["env"] = {**env, ENV_PARENT: workerlink.child_environment(task)}


def _pty_spawn(original: Any) -> Any:
    """``PtyProcess.spawn`` (a classmethod; IPython's ``!cmd`` runs through pexpect on it):
    the child's environment names the task, as `_popen_init` does. Its output is the task's
    already: IPython prints what it reads in the task's thread."""
    function = original.__func__
    signature = inspect.signature(function)

    @functools.wraps(function)
    def spawn(cls: Any, *args: Any, **kwargs: Any) -> Any:
        task = current_task.get()
        if task is None:
            return function(cls, *args, **kwargs)
        bound = signature.bind(cls, *args, **kwargs)
        _name_task(bound.arguments, task)
        return function(*bound.args, **bound.kwargs)

    return classmethod(spawn)


def _popen_wait(original: Callable) -> Callable:
    def wait(self: Any, timeout: float | None = None) -> int:
        code = original(self, timeout)
        for pipe in getattr(self, "_taskstream_pipes", ()):
            pipe.join(LAST_LINES_WAIT)  # the child's last lines are in the log when wait returns
        return code

    return wait


def _system(original: Callable) -> Callable:
    def system(command: Any) -> int:
        if current_task.get() is None:
            return original(command)
        import subprocess

        code = subprocess.Popen(command, shell=True).wait()
        # os.system's wait status: the exit code in the high byte, or the signal number.
        return code << 8 if code >= 0 else -code

    return system


# ---- process pools ----------------------------------------------------------------------


def _in_task(fn: Any) -> Any:
    """``fn`` wrapped for the current task's log, or ``fn`` itself outside tasks."""
    task = current_task.get()
    if task is None or isinstance(fn, workerlink.InTask) or not callable(fn):
        return fn
    return workerlink.wrap(fn, task, WORKER_SETUP)


def _pool_method(original: Callable) -> Callable:
    def method(self: Any, func: Callable, *args: Any, **kwargs: Any) -> Any:
        from multiprocessing.pool import ThreadPool

        if not isinstance(self, ThreadPool):
            func = _in_task(func)
        return original(self, func, *args, **kwargs)

    return method


def _process_start(original: Callable) -> Callable:
    def start(self: Any) -> None:
        target = process_target(self)
        if target is not None:
            set_process_target(self, _in_task(target))
        return original(self)

    return start


def _executor_submit(original: Callable) -> Callable:
    def submit(self: Any, fn: Callable, /, *args: Any, **kwargs: Any) -> Any:
        return original(self, _in_task(fn), *args, **kwargs)

    return submit
