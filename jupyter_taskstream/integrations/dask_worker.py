"""What runs inside Dask workers: a worker plugin that sends task output to the client.

`OutputForwarder` is registered by the client (`Client.register_plugin`) and runs in
each worker process. While a worker thread executes a key whose annotations carry a
``taskstream`` task id (the client adds it at submit time), that thread's writes to
``sys.stdout``/``sys.stderr`` and the logging records it emits are collected, split into
lines and sent every 50 ms as events on the ``taskstream-output`` topic through the
scheduler (`Worker.log_event`), which the submitting client subscribes to. Workers never
connect to the Jupyter server. Output of any other code passes through unchanged.

``dask.distributed.print`` in such a key prints locally (captured here) *and* sends a
``print`` event to the client; the plugin drops that event so the line reaches the task
once, and Dask's own client-side ``print`` handler stays in place for everything else.

While such a key runs, ``ts.progress`` loops and tqdm bars in it feed bars that are sent
on the same topic (`.dask_worker_bars`: the key's current task there is a stand-in).

This module imports only the standard library and distributed (the bars module is loaded
by `setup`): it is unpickled in the workers, which need jupyter_taskstream installed
(without it the client says so once on each task, tqdm there draws as usual and the work
itself runs as usual).
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from typing import Any

from distributed.diagnostics.plugin import WorkerPlugin

__all__ = ["ANNOTATION", "OutputForwarder", "PLUGIN_NAME", "TOPIC"]

#: The annotation key that carries the id of the task that submitted a key.
ANNOTATION = "taskstream"
#: The event topic worker output travels on.
TOPIC = "taskstream-output"
PLUGIN_NAME = "jupyter-taskstream-output"
#: Seconds between two sends of collected lines.
FLUSH_INTERVAL = 0.05
#: A partial line is sent as it is after waiting this long for its newline.
PARTIAL_AFTER = 0.5
#: Seconds a task's stand-in (see `_enter`) stays after its last key here ended.
KEEP_IDLE = 5.0


class _Collected:
    """Output of one task on this worker not sent yet: complete lines and partial text."""

    __slots__ = ("lines", "partial", "partial_since")

    def __init__(self) -> None:
        self.lines: list[tuple[str, str]] = []
        self.partial = {"stdout": "", "stderr": ""}
        self.partial_since = {"stdout": 0.0, "stderr": 0.0}


class _TaskStream:
    """Stands in for ``sys.stdout``/``sys.stderr`` in a worker: task output is collected."""

    def __init__(self, name: str, target: Any, forwarder: OutputForwarder):
        self._name = name
        self._target = target
        self._forwarder = forwarder

    def write(self, text: str) -> int:
        task_id = self._forwarder.task_of_thread()
        if task_id is None:
            return self._target.write(text) if self._target is not None else len(text)
        self._forwarder.collect(task_id, self._name, text)
        return len(text)

    def flush(self) -> None:
        if self._target is not None:
            self._target.flush()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._target, name)


class _TaskLogHandler(logging.Handler):
    """Logging records of task code, formatted like Python's default ``%(levelname)s:%(name)s:%(message)s``."""

    def __init__(self, forwarder: OutputForwarder):
        super().__init__(logging.NOTSET)
        self._forwarder = forwarder
        self.setFormatter(logging.Formatter(logging.BASIC_FORMAT))

    def emit(self, record: logging.LogRecord) -> None:
        task_id = self._forwarder.task_of_thread()
        if task_id is None:
            return
        try:
            self._forwarder.collect(task_id, "stderr", self.format(record) + "\n")
        except Exception:
            self.handleError(record)


class OutputForwarder(WorkerPlugin):
    """Worker plugin: forwards what task code prints and logs to the submitting client."""

    name = PLUGIN_NAME
    idempotent = True

    def __init__(self) -> None:
        self._worker: Any = None
        self._lock = threading.Lock()
        self._pending: dict[str, _Collected] = {}
        self._streams: dict[str, Any] = {}
        self._handler: logging.Handler | None = None
        self._callback: Any = None
        self._log_event: Any = None
        #: task id -> its `WorkerTask` stand-in here, while its keys run or its bars are open.
        self._shadows: dict[str, Any] = {}
        self._sampled_at = 0.0

    def __getstate__(self) -> dict:
        return {}  # the client's instance holds nothing a worker needs

    def __setstate__(self, state: dict) -> None:
        self.__init__()

    # ---- plugin lifecycle --------------------------------------------------------------

    def setup(self, worker: Any) -> None:
        from tornado.ioloop import PeriodicCallback

        self._worker = worker
        for name in ("stdout", "stderr"):
            current = getattr(sys, name)
            if not isinstance(current, _TaskStream):
                self._streams[name] = current
                setattr(sys, name, _TaskStream(name, current, self))
        self._handler = _TaskLogHandler(self)
        logging.getLogger().addHandler(self._handler)
        # Wrapping the instance's log_event is how the duplicate ``print`` event is dropped.
        self._log_event = worker.log_event
        worker.log_event = self._worker_log_event
        from . import dask_worker_bars as bars

        bars.hook_run_task(self._enter, self._leave)
        bars.install_tqdm_bridge()
        self._callback = PeriodicCallback(self.send, FLUSH_INTERVAL * 1000)
        self._callback.start()

    def teardown(self, worker: Any) -> None:
        if self._callback is not None:
            self._callback.stop()
        self.send(final=True)
        for name, original in self._streams.items():
            if isinstance(getattr(sys, name), _TaskStream):
                setattr(sys, name, original)
        if self._handler is not None:
            logging.getLogger().removeHandler(self._handler)
        if self._log_event is not None:
            worker.log_event = self._log_event
        from . import dask_worker_bars as bars

        bars.hook_run_task(None, self._leave)

    def transition(self, key: Any, start: str, finish: str, **kwargs: Any) -> None:
        # Sent here, before the worker reports the key done: the lines travel ahead of the
        # result on the same streams, so the task has them when the client sees the result.
        if start == "executing":
            self.send(ended=self._task_of_key(key))

    # ---- the keys' stand-in tasks (bars) -------------------------------------------------

    def _enter(self, key: Any) -> Any:
        """In the executor thread, as ``key`` starts: the stand-in of its task, or None."""
        task_id = self._task_of_key(key)
        if task_id is None:
            return None
        with self._lock:
            shadow = self._shadows.get(task_id)
            if shadow is None:
                from .dask_worker_bars import WorkerTask

                shadow = self._shadows[task_id] = WorkerTask(task_id, lambda stream, text: self.collect(task_id, stream, text))
            shadow.running += 1
        return shadow

    def _leave(self, shadow: Any) -> None:
        with self._lock:
            shadow.running -= 1
            shadow.used_at = time.monotonic()

    def _bar_changes(self, now: float, ended: str | None, final: bool) -> dict[str, list]:
        """What changed in the stand-ins' bars: all of them every `SAMPLE_INTERVAL`, else those of ``ended``."""
        from .dask_worker_bars import SAMPLE_INTERVAL

        due = final or now - self._sampled_at >= SAMPLE_INTERVAL
        if due:
            self._sampled_at = now
        with self._lock:
            shadows = list(self._shadows.items()) if due else [(ended, self._shadows.get(ended))]
        out = {}
        for task_id, shadow in shadows:
            if shadow is None:
                continue
            changes = shadow.bar_changes()
            if changes:
                out[task_id] = changes
            # Kept a while after its last key: a task's next key here reuses it (tiny keys).
            if due and now - shadow.used_at > KEEP_IDLE and shadow.idle:
                with self._lock:
                    if shadow.running == 0 and self._shadows.get(task_id) is shadow:
                        del self._shadows[task_id]
        return out

    # ---- collecting and sending --------------------------------------------------------

    def task_of_thread(self) -> str | None:
        """The taskstream task id of the key this thread executes, or None."""
        worker = self._worker
        if worker is None:
            return None
        key = worker.active_threads.get(threading.get_ident())
        return None if key is None else self._task_of_key(key)

    def _task_of_key(self, key: Any) -> str | None:
        ts = self._worker.state.tasks.get(key)
        annotations = getattr(ts, "annotations", None)
        if not annotations:
            return None
        task_id = annotations.get(ANNOTATION)
        return task_id if isinstance(task_id, str) else None

    def collect(self, task_id: str, stream: str, text: str) -> None:
        """Add text written by ``task_id``'s code to what the next send takes."""
        with self._lock:
            collected = self._pending.get(task_id)
            if collected is None:
                collected = self._pending[task_id] = _Collected()
            text = collected.partial[stream] + text
            if "\n" in text:
                *complete, rest = text.split("\n")
                collected.lines.extend((stream, line) for line in complete)
            else:
                rest = text
            if rest and not collected.partial[stream]:
                collected.partial_since[stream] = time.monotonic()
            collected.partial[stream] = rest

    def send(self, final: bool = False, ended: str | None = None) -> None:
        """Send collected lines as one event per task (runs on the worker's event loop).

        Partial lines go too when ``final``, when they waited `PARTIAL_AFTER`, or when they
        belong to task ``ended`` (a key of it just stopped executing).
        """
        now = time.monotonic()
        batches: list[dict] = []
        bars = self._bar_changes(now, ended, final) if self._shadows else {}
        with self._lock:
            for task_id, collected in list(self._pending.items()):
                for stream, text in collected.partial.items():
                    if text and (final or task_id == ended or now - collected.partial_since[stream] >= PARTIAL_AFTER):
                        collected.lines.append((stream, text))
                        collected.partial[stream] = ""
                if collected.lines or task_id in bars:
                    batch = {"task": task_id, "worker": self._worker.address, "lines": [list(x) for x in collected.lines]}
                    if task_id in bars:
                        batch["bars"] = bars.pop(task_id)
                    batches.append(batch)
                    collected.lines = []
                if not any(collected.partial.values()):
                    del self._pending[task_id]
            for task_id, changes in bars.items():
                batches.append({"task": task_id, "worker": self._worker.address, "lines": [], "bars": changes})
        log_event = self._log_event
        for batch in batches:
            log_event(TOPIC, batch)

    def _worker_log_event(self, topic: Any, msg: Any) -> None:
        if topic == "print" and self.task_of_thread() is not None:
            return  # dask.distributed.print also printed locally: that copy reaches the task
        self._log_event(topic, msg)
