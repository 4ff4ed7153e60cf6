"""The hub's side of the kernels' lifecycle.

- The hand-off: kernels this server launches get the publish URL and secret in their own
  environment (`ENV_URL`, `ENV_SECRET`), added to each kernel's launch (``start_kernel``'s
  ``env``) and to nothing else: terminals and other processes of the server never hold the
  secret (a script there publishes with the user's token, see `kernel.hubenv`).
- Liveness: kernels that own running tasks are watched (restart callbacks, the server's
  kernel-action events, and a periodic check); when one restarts, is shut down or dies,
  its unfinished tasks end as ``failed`` and their streams end.
- The bootstrap of tasks started over HTTP: a silent execute request loads the runtime in
  the kernel, which then reads its command stream and runs the ``start`` command.
- After a restart of the server, tasks that were running wait ``restart_grace_period``
  for their publisher, then fail (the orphan timer).
"""

from __future__ import annotations

import asyncio
import logging
import os
from typing import Any

from jupyter_client.session import Session
from jupyter_server.utils import url_path_join

from ..protocol import ENV_SECRET, ENV_URL
from .eventlog import Event
from .registry import TaskRegistry

__all__ = ["BOOTSTRAP_CODE", "KERNEL_ACTIONS_SCHEMA", "KernelLifecycle", "add_kernel_env"]

KERNEL_ACTIONS_SCHEMA = "https://events.jupyter.org/jupyter_server/kernel_actions/v1"
#: Run in a kernel to start its runtime's command listener (tasks started over HTTP).
BOOTSTRAP_CODE = "import jupyter_taskstream as _taskstream; _taskstream.connect_hub(); del _taskstream"
LOOPBACK_HOSTS = {"", "0.0.0.0", "::", "localhost", "127.0.0.1", "::1"}


class KernelLifecycle:
    """Hands kernels the hub's address, and ends the tasks of kernels that are gone."""

    def __init__(
        self,
        serverapp: Any,
        registry: TaskRegistry,
        secret: str,
        *,
        kernel_hub_url: str,
        check_interval: float,
        restart_grace_period: float,
        log: logging.Logger | logging.LoggerAdapter,
    ):
        self.serverapp = serverapp
        self.registry = registry
        self.secret = secret
        self.kernel_hub_url = kernel_hub_url
        self.check_interval = check_interval
        self.restart_grace_period = restart_grace_period
        self.log = log
        #: What each kernel launched from now on gets in its environment (filled by `hand_off`).
        self.kernel_env: dict[str, str] = {}
        self._manager: Any = None
        #: Kernels of this server that own tasks, watched for restarts and death.
        self._watched: set[str] = set()
        self._watcher: asyncio.Task | None = None
        self._orphan_timer: asyncio.TimerHandle | None = None
        registry.add_listener(self._on_event)
        event_logger = getattr(serverapp, "event_logger", None)
        if event_logger is not None:
            event_logger.add_listener(schema_id=KERNEL_ACTIONS_SCHEMA, listener=self._on_kernel_action)

    def start(self) -> None:
        """Hand off to kernels and arm the orphan timer (again, once the server is listening)."""
        self.hand_off()
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # no loop yet (a real server): the app calls this again from its start hook
        if self.registry.orphans and self._orphan_timer is None:
            self._orphan_timer = loop.call_later(self.restart_grace_period, self._fail_orphans)

    def stop(self) -> None:
        """Stop watching, and take the hand-off back from the kernel manager."""
        if self._watcher is not None:
            self._watcher.cancel()
        if self._orphan_timer is not None:
            self._orphan_timer.cancel()
        if self._manager is not None:
            vars(self._manager).pop("start_kernel", None)  # the class's own again
            self._manager = None
        self.kernel_env.clear()

    # ---- the hand-off --------------------------------------------------------------------

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

    def hand_off(self) -> None:
        """Give the hub's URL and the publish secret to the kernels launched from now on."""
        # Only kernels: the server's own os.environ would also reach its terminals (and any
        # process they start), whose tasks the hub could neither cancel nor fail when they die.
        # Called again once the server listens: the port is only final then (port_retries).
        url = self.hub_url()
        if url is None:
            self.log.warning("taskstream: kernels cannot reach the hub over a unix socket; set kernel_hub_url")
            return
        self.kernel_env.update({ENV_URL: url, ENV_SECRET: self.secret})
        manager = getattr(self.serverapp, "kernel_manager", None)
        if manager is not None and self._manager is None:
            self._manager = manager
            add_kernel_env(manager, self.kernel_env)

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

    # ---- liveness ------------------------------------------------------------------------

    def _on_event(self, event: Event) -> None:
        if event.type == "status" and event.data.get("status") == "pending":
            kernel_id = self.registry.get(event.task).kernel_id
            if kernel_id:
                self.watch_kernel(kernel_id)

    def watch_kernel(self, kernel_id: str) -> None:
        """Learn at once when a kernel that owns tasks restarts or dies."""
        if self._watcher is None:
            self._watcher = asyncio.get_running_loop().create_task(self._watch_kernels())
        manager = self.serverapp.kernel_manager
        if kernel_id in self._watched or kernel_id not in manager:
            return
        self._watched.add(kernel_id)
        fail = self.registry.fail_kernel_tasks
        # The restarter revives a killed kernel within seconds, after which it looks alive:
        # only its callbacks tell that the tasks inside it are gone.
        manager.add_restart_callback(
            kernel_id, lambda: fail(kernel_id, f"kernel {kernel_id} died and was restarted"), "restart"
        )
        manager.add_restart_callback(kernel_id, lambda: fail(kernel_id, f"kernel {kernel_id} died"), "dead")

    async def _watch_kernels(self) -> None:
        """Fail the tasks of kernels that died or were shut down without saying so."""
        try:
            while True:
                await asyncio.sleep(self.check_interval)
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
                if kernel_id in self._watched:
                    self._watched.discard(kernel_id)
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

    def _fail_orphans(self) -> None:
        failed = self.registry.fail_orphans("the server stopped while this task was running")
        if failed:
            self.log.warning("taskstream: %d task(s) interrupted by the server's restart ended as failed", len(failed))


def add_kernel_env(manager: Any, env: dict[str, str]) -> None:
    """Have ``manager.start_kernel`` add ``env`` (read at each launch) to every kernel's environment.

    ``env=`` is jupyter_client's public way to set a kernel's environment (a provisioner
    starts from it instead of ``os.environ``, then adds the kernel spec's ``env``); the server
    passes one for notebook sessions, none for ``POST /api/kernels``. A restart reuses the
    launch's arguments, so a restarted kernel keeps it.
    """
    start_kernel = manager.start_kernel  # the class's bound method

    def start_kernel_with_env(*args: Any, **kwargs: Any) -> Any:
        base = kwargs.get("env")
        kwargs["env"] = {**(os.environ if base is None else base), **env}
        return start_kernel(*args, **kwargs)

    manager.start_kernel = start_kernel_with_env
