"""The jupyter-server extension app: options, wiring, and lifecycle hooks. Nothing else.

It declares the documented options, builds the store, the `TaskRegistry` and the
`KernelLifecycle` (kernels), registers the routes of `rest`, and starts and stops them
in jupyter_server's hooks. The logic lives in those modules.
"""

from __future__ import annotations

import os
import pathlib
import secrets
from typing import Any

from jupyter_core.paths import jupyter_data_dir
from jupyter_server.extension.application import ExtensionApp
from traitlets import Float, Int, Unicode, default

from ..protocol import ENV_SECRET, ENV_URL
from .classpaths import MovedClassType
from .detached import DetachedStreams
from .pubsocket import close_publish_sockets
from .kernels import KernelLifecycle
from .options import RegistryOptions
from .registry import TaskRegistry
from .rest import default_handlers
from .store import MemoryStore, SQLiteStore, TaskStore, lock_exclusively

__all__ = ["ENV_SECRET", "ENV_URL", "TaskStreamApp", "main"]

STATIC_DIR = pathlib.Path(__file__).parent / "static"


# The registry's options (retention_events, max_tasks, ...) are declared once, in
# `RegistryOptions`, which both this app and `TaskRegistry` inherit: users set them here
# (c.TaskStreamApp.retention_events, as documented) and `registry_options()` hands them on.
class TaskStreamApp(ExtensionApp, RegistryOptions):
    """Serve task progress and logs over REST polling and Server-Sent Events."""

    name = "jupyter_taskstream"
    app_name = "TaskStream"
    description = "Progress and output of long-running Jupyter work, over polling and SSE."
    extension_url = "/taskstream/"
    default_url = "/taskstream/"
    load_other_extensions = True
    _lock_file: Any = None

    store = MovedClassType(
        SQLiteStore,
        klass=TaskStore,
        config=True,
        help="Where tasks and their logs are kept: SQLiteStore (the default) survives restarts "
        "and crashes with no set-up; jupyter_taskstream.hub.store.MemoryStore keeps them in memory.",
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
    registry_class = MovedClassType(
        TaskRegistry,
        klass=TaskRegistry,
        config=True,
        help="The class that keeps tasks and their event logs; replace it to store them elsewhere.",
    )
    heartbeat_interval = Float(
        15.0,
        config=True,
        help="Seconds between SSE heartbeat comments; under the 30-60 s idle timeouts of common proxies.",
    )
    publish_secret = Unicode(
        "",
        config=True,
        help="The secret kernels publish with. Empty (the default): a new random one at every "
        "start. Set it only when kernels are launched by something other than this server.",
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
        """Build the store, registry, publish secret and kernel lifecycle; share them with handlers."""
        self.registry = self.registry_class(parent=self, store=self._make_store(), **self.registry_options())
        self.registry.load()
        # Kernels get this instead of the user's token: it may create and publish, nothing else.
        self.secret = self.publish_secret or secrets.token_urlsafe(32)
        self.kernels = KernelLifecycle(
            self.serverapp,
            self.registry,
            self.secret,
            kernel_hub_url=self.kernel_hub_url,
            check_interval=self.kernel_check_interval,
            restart_grace_period=self.restart_grace_period,
            log=self.log,
        )
        self.streams = DetachedStreams(self.heartbeat_interval, self.write_timeout, self.log)
        self.settings.update(
            {
                "taskstream_registry": self.registry,
                "taskstream_kernels": self.kernels,
                "taskstream_secret": self.secret,
                "taskstream_heartbeat_interval": self.heartbeat_interval,
                "taskstream_retry_ms": self.retry_ms,
                "taskstream_write_timeout": self.write_timeout,
                # SSE streams served outside tornado after their first bytes, and their heartbeats.
                "taskstream_streams": self.streams,
                "taskstream_max_body_bytes": self.max_body_bytes,
                # Tasks already told that a batch of their kernel was refused (see `ingest`).
                "taskstream_told_refused": set(),
            }
        )
        self.kernels.start()

    def initialize_handlers(self) -> None:
        """Register the hub's routes under the server's base_url."""
        self.handlers.extend(default_handlers)

    async def _start_jupyter_server_extension(self, serverapp: Any) -> None:
        # The port is only final once the server has bound it (port_retries may move it).
        self.kernels.start()

    async def stop_extension(self) -> None:
        """End every stream, stop watching kernels, and take the hand-off back."""
        if not hasattr(self, "registry"):
            return  # the server stopped before this extension was initialized
        self.kernels.stop()
        close_publish_sockets(self.settings)  # no batch arrives after the last commit
        await self.registry.commit()  # what was emitted is stored before the store closes
        self.registry.close()  # every stream's log closes: each writes its last chunk
        self.streams.close()
        if self._lock_file is not None:
            self._lock_file.close()

    def current_activity(self) -> bool:
        """A running task counts as activity, so idle culling does not stop a busy server."""
        return self.registry.running_count() > 0

    def _make_store(self) -> TaskStore:
        if not issubclass(self.store, SQLiteStore):
            return self.store(parent=self)
        path = self.db_path or os.path.join(jupyter_data_dir(), "taskstream", "tasks.sqlite")
        locked, self._lock_file = lock_exclusively(path)
        if not locked:
            self.log.warning(
                "taskstream: another server uses the task database %s; this one keeps its tasks in memory "
                "(set c.TaskStreamApp.db_path to give it its own file)",
                path,
            )
            return MemoryStore(parent=self)
        self.log.info("taskstream: tasks are kept in %s", path)
        return self.store(parent=self, path=path)


main = launch_new_instance = TaskStreamApp.launch_instance
