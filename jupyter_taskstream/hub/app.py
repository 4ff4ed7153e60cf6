"""The jupyter-server extension app: options, wiring, and the kernel hand-off.

Thin on purpose: it declares the documented options, builds the `TaskRegistry`,
registers the handlers, hands kernels the publish URL and secret, and watches
the kernels that own running tasks. The logic lives in `registry` and `handlers`.
"""

from __future__ import annotations

import asyncio
import os
import pathlib
import secrets
from typing import Any

from jupyter_client.session import Session
from jupyter_core.paths import jupyter_data_dir
from jupyter_server.extension.application import ExtensionApp
from jupyter_server.utils import url_path_join
from traitlets import Float, Int, Type, Unicode, default

from .rest import default_handlers
from .registry import TaskRegistry
from .store import MemoryStore, SQLiteStore, TaskStore

__all__ = ["ENV_SECRET", "ENV_URL", "TaskStreamApp", "main"]

#: Environment variables a server-launched kernel reads to find its hub.
ENV_URL = "JUPYTER_TASKSTREAM_URL"
ENV_SECRET = "JUPYTER_TASKSTREAM_SECRET"
KERNEL_ACTIONS_SCHEMA = "https://events.jupyter.org/jupyter_server/kernel_actions/v1"
#: Run in a kernel to start its runtime's command listener (tasks started over HTTP).
BOOTSTRAP_CODE = "import jupyter_taskstream as _taskstream; _taskstream.connect_hub(); del _taskstream"
LOOPBACK_HOSTS = {"", "0.0.0.0", "::", "localhost", "127.0.0.1", "::1"}
STATIC_DIR = pathlib.Path(__file__).parent / "static"


class TaskStreamApp(ExtensionApp):
    """Serve task progress and logs over REST polling and Server-Sent Events."""

    name = "jupyter_taskstream"
    app_name = "TaskStream"
    description = "Progress and output of long-running Jupyter work, over polling and SSE."
    extension_url = "/taskstream/"
    default_url = "/taskstream/"
    load_other_extensions = True
    _watcher: asyncio.Task | None = None
    _orphan_timer: asyncio.TimerHandle | None = None
    _lock_file: Any = None
    #: Kernels of this server that own tasks, watched for restarts and death.
    _watched_kernels: set[str]

    store = Type(
        SQLiteStore,
        klass=TaskStore,
        config=True,
        help="Where tasks and their logs are kept: SQLiteStore (the default) survives restarts "
        "and crashes with no set-up; jupyter_taskstream.store.MemoryStore keeps them in memory.",
    )
    db_path = Unicode(
        "",
        config=True,
        help="The SQLite file of SQLiteStore. Empty: taskstream/tasks.sqlite under the Jupyter "
        "data directory, so history follows the user, not the working directory.",
    )
    restart_grace_period = Float(
        30.0,
        config=True,
        help="After a restart, seconds a task that was running may wait for its publisher to "
        "continue it before it ends as failed ('the server stopped').",
    )
    registry_class = Type(
        TaskRegistry,
        klass=TaskRegistry,
        config=True,
        help="The class that keeps tasks and their event logs; replace it to store them elsewhere.",
    )
    retention_events = Int(
        10_000,
        config=True,
        help="Events kept per task. A client resuming from an older event id gets a fresh "
        "snapshot instead of a replay; 10,000 keeps a long log resumable at modest memory.",
    )
    retention_all_events = Int(
        100_000,
        config=True,
        help="Events kept in the all-tasks log that /taskstream/api/events resumes from.",
    )
    heartbeat_interval = Float(
        15.0,
        config=True,
        help="Seconds between SSE heartbeat comments; under the 30-60 s idle timeouts of common proxies.",
    )
    progress_rate_hz = Float(
        10.0,
        config=True,
        help="Progress events sent per task per second at most (latest value wins); "
        "10/s looks smooth and keeps a tight loop from flooding clients.",
    )
    max_log_event_bytes = Int(
        64 * 1024,
        config=True,
        help="Log text longer than this (UTF-8 bytes) is split into several log events, never cut.",
    )
    max_tasks = Int(
        1000,
        config=True,
        help="Finished tasks kept; when more finish, the oldest finished ones are removed.",
    )
    snapshot_log_lines = Int(
        100,
        config=True,
        help="Log lines sent with a snapshot, so a new viewer sees recent output at once.",
    )
    all_snapshot_log_lines = Int(
        20,
        config=True,
        help="Log lines per task in the all-tasks snapshot; kept small because a dashboard "
        "with 1,000 finished tasks gets it on every load (the log endpoint has the rest).",
    )
    publish_secret = Unicode(
        "",
        config=True,
        help="The secret kernels publish with. Empty (the default): a new random one at every "
        "start. Set it only when kernels are launched by something other than this server.",
    )
    subscriber_backlog = Int(
        5000,
        config=True,
        help="Events an SSE subscriber may fall behind before it is disconnected; it then "
        "reconnects and resumes by id, instead of growing the server's memory.",
    )
    write_timeout = Float(
        30.0,
        config=True,
        help="Seconds an SSE client may leave its socket full before it is disconnected.",
    )
    retry_ms = Int(
        2000,
        config=True,
        help="Base of the SSE retry: sent to clients; a random 0-100 %% is added to spread reconnects.",
    )
    max_body_bytes = Int(
        4 * 1024 * 1024,
        config=True,
        help="Largest request body accepted; larger bodies get 413.",
    )
    kernel_check_interval = Float(
        2.0,
        config=True,
        help="Seconds between checks that kernels owning running tasks are still alive.",
    )
    kernel_hub_url = Unicode(
        "",
        config=True,
        help="URL kernels publish to (ending in /taskstream/api). Empty: derived from the "
        "server's own address, on loopback when it listens on all interfaces.",
    )

    @default("static_paths")
    def _default_static_paths(self) -> list[str]:
        # The dashboard's JS and CSS, served at <base_url>static/jupyter_taskstream/.
        return [str(STATIC_DIR)]

    def initialize_settings(self) -> None:
        """Build the registry and publish secret; hand kernels the hub's address."""
        self.registry = self.registry_class(
            parent=self,
            store=self._make_store(),
            retention_events=self.retention_events,
            retention_all_events=self.retention_all_events,
            progress_rate_hz=self.progress_rate_hz,
            max_log_event_bytes=self.max_log_event_bytes,
            max_tasks=self.max_tasks,
            snapshot_log_lines=self.snapshot_log_lines,
            all_snapshot_log_lines=self.all_snapshot_log_lines,
            subscriber_backlog=self.subscriber_backlog,
        )
        self.registry.load()
        self._orphan_timer = None
        try:
            self._schedule_orphans(asyncio.get_running_loop())
        except RuntimeError:
            pass  # no loop yet (a real server): _start_jupyter_server_extension schedules it
        # Kernels get this instead of the user's token: it may create and publish, nothing else.
        self.secret = self.publish_secret or secrets.token_urlsafe(32)
        self._saved_env: dict[str, str | None] = {}
        self._watched_kernels = set()
        self.settings.update(
            {
                "taskstream_app": self,
                "taskstream_registry": self.registry,
                "taskstream_secret": self.secret,
                "taskstream_heartbeat_interval": self.heartbeat_interval,
                "taskstream_retry_ms": self.retry_ms,
                "taskstream_write_timeout": self.write_timeout,
                "taskstream_max_body_bytes": self.max_body_bytes,
            }
        )
        self.registry.add_listener(self._on_event)
        self._hand_off_to_kernels()
        event_logger = getattr(self.serverapp, "event_logger", None)
        if event_logger is not None:
            event_logger.add_listener(schema_id=KERNEL_ACTIONS_SCHEMA, listener=self._on_kernel_action)

    def initialize_handlers(self) -> None:
        """Register the hub's routes under the server's base_url."""
        self.handlers.extend(default_handlers)

    async def _start_jupyter_server_extension(self, serverapp: Any) -> None:
        # The port is only final once the server has bound it (port_retries may move it).
        self._hand_off_to_kernels()
        self._schedule_orphans(asyncio.get_running_loop())

    def _make_store(self) -> TaskStore:
        if not issubclass(self.store, SQLiteStore):
            return self.store(parent=self)
        path = self.db_path or os.path.join(jupyter_data_dir(), "taskstream", "tasks.sqlite")
        if not _lock_exclusively(path, self):
            self.log.warning(
                "taskstream: another server uses the task database %s; this one keeps its tasks in memory "
                "(set c.TaskStreamApp.db_path to give it its own file)",
                path,
            )
            return MemoryStore(parent=self)
        self.log.info("taskstream: tasks are kept in %s", path)
        return self.store(parent=self, path=path, retention_events=self.retention_events)

    def _schedule_orphans(self, loop: asyncio.AbstractEventLoop) -> None:
        if self.registry.orphans and self._orphan_timer is None:
            self._orphan_timer = loop.call_later(self.restart_grace_period, self._fail_orphans)

    def _fail_orphans(self) -> None:
        failed = self.registry.fail_orphans("the server stopped while this task was running")
        if failed:
            self.log.warning("taskstream: %d task(s) interrupted by the server's restart ended as failed", len(failed))

    async def stop_extension(self) -> None:
        """End every stream, stop the kernel watcher, and take the hand-off back."""
        if not hasattr(self, "registry"):
            return  # the server stopped before this extension was initialized
        if self._watcher is not None:
            self._watcher.cancel()
        if self._orphan_timer is not None:
            self._orphan_timer.cancel()
        await self.registry.commit()  # what was emitted is stored before the store closes
        self.registry.close()
        if self._lock_file is not None:
            self._lock_file.close()
        for key, value in self._saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        self._saved_env.clear()

    def current_activity(self) -> bool:
        """A running task counts as activity, so idle culling does not stop a busy server."""
        return self.registry.running_count() > 0

    # ---- kernel hand-off -----------------------------------------------------------------

    def hub_url(self) -> str | None:
        """The URL server-launched kernels publish to, or None if kernels cannot reach it."""
        if self.kernel_hub_url:
            return self.kernel_hub_url.rstrip("/")
        app = self.serverapp
        if app is None or getattr(app, "sock", ""):
            return None
        host = app.ip
        if host in LOOPBACK_HOSTS:
            host = "127.0.0.1"
        elif ":" in host:
            host = f"[{host}]"
        scheme = "https" if app.certfile else "http"
        return url_path_join(f"{scheme}://{host}:{app.port}", app.base_url, "taskstream/api")

    def _hand_off_to_kernels(self) -> None:
        # Kernels started by this server inherit its environment (jupyter_server copies
        # os.environ when it launches one), which is the one channel every kernel spec shares.
        url = self.hub_url()
        if url is None:
            self.log.warning("taskstream: kernels cannot reach the hub over a unix socket; set kernel_hub_url")
            return
        for key, value in ((ENV_URL, url), (ENV_SECRET, self.secret)):
            self._saved_env.setdefault(key, os.environ.get(key))
            os.environ[key] = value

    async def bootstrap_runtime(self, kernel_id: str) -> None:
        """Load the runtime in a kernel so it reads its command stream and takes started tasks.

        A silent execute request: it waits its turn behind a busy cell, which is exactly when
        the task should stop being ``pending``.
        """
        kernel = self.serverapp.kernel_manager.get_kernel(kernel_id)
        # A session of its own: the manager's session id is the shell socket's identity, and a
        # second socket with the same identity steals the replies of whoever else uses it.
        session = Session(key=kernel.session.key, signature_scheme=kernel.session.signature_scheme)
        client = kernel.client(session=session)
        client.start_channels(shell=True, iopub=False, stdin=False, hb=False, control=False)
        try:
            client.execute(BOOTSTRAP_CODE, silent=True, store_history=False, allow_stdin=False)
        finally:
            # The request is on its way; the reply is not needed (the runtime reports by itself).
            asyncio.get_running_loop().call_later(30, client.stop_channels)

    # ---- kernel liveness -----------------------------------------------------------------

    def _on_event(self, event: Any) -> None:
        if event.type == "status" and event.data.get("status") == "pending":
            kernel_id = self.registry.get(event.task).kernel_id
            if kernel_id:
                self._watch_kernel(kernel_id)

    def _watch_kernel(self, kernel_id: str) -> None:
        """Learn at once when a kernel that owns tasks restarts or dies."""
        if self._watcher is None:
            self._watcher = asyncio.get_running_loop().create_task(self._watch_kernels())
        manager = self.serverapp.kernel_manager
        if kernel_id in self._watched_kernels or kernel_id not in manager:
            return
        self._watched_kernels.add(kernel_id)
        # The restarter revives a killed kernel within seconds, after which it looks alive:
        # only its callbacks tell that the tasks inside it are gone.
        manager.add_restart_callback(
            kernel_id,
            lambda: self.registry.fail_kernel_tasks(kernel_id, f"kernel {kernel_id} died and was restarted"),
            "restart",
        )
        manager.add_restart_callback(
            kernel_id, lambda: self.registry.fail_kernel_tasks(kernel_id, f"kernel {kernel_id} died"), "dead"
        )

    async def _watch_kernels(self) -> None:
        """Fail the tasks of kernels that died or were shut down without saying so."""
        try:
            while True:
                await asyncio.sleep(self.kernel_check_interval)
                await self.check_kernels()
        except asyncio.CancelledError:
            pass

    async def check_kernels(self) -> None:
        """One pass of the liveness check over kernels that own running tasks."""
        manager = self.serverapp.kernel_manager
        for kernel_id in self.registry.kernels_with_running_tasks():
            if kernel_id not in manager:
                # Only a kernel this server ran can be known to be gone; one it never managed
                # (launched by nbval, another server, a script) is not judged here.
                if kernel_id in self._watched_kernels:
                    self._watched_kernels.discard(kernel_id)
                    self.registry.fail_kernel_tasks(kernel_id, f"kernel {kernel_id} was shut down")
                continue
            alive = manager.get_kernel(kernel_id).is_alive()
            if asyncio.iscoroutine(alive):
                alive = await alive
            if not alive:
                self.registry.fail_kernel_tasks(kernel_id, f"kernel {kernel_id} died")

    async def _on_kernel_action(self, logger: Any, schema_id: str, data: dict) -> None:
        action, kernel_id = data.get("action"), data.get("kernel_id")
        if not kernel_id or data.get("status") != "success":
            return
        if action == "shutdown":
            self.registry.fail_kernel_tasks(kernel_id, f"kernel {kernel_id} was shut down")
        elif action == "restart":
            self.registry.fail_kernel_tasks(kernel_id, f"kernel {kernel_id} was restarted")


main = launch_new_instance = TaskStreamApp.launch_instance


def _lock_exclusively(path: str, app: TaskStreamApp) -> bool:
    """Hold an exclusive lock beside the database for the server's lifetime; False if taken.

    Two servers writing one history would interleave their event ids: the second one to
    start keeps its tasks in memory instead.
    """
    try:
        import fcntl
    except ImportError:  # no flock (Windows): one server per data directory is assumed
        return True
    try:
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        handle = open(path + ".lock", "a+")  # noqa: SIM115 (held until the server stops)
    except OSError:
        return True  # unwritable: the store reports it with the option to change
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.close()
        return False
    app._lock_file = handle
    return True
