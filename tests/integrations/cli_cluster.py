"""A Dask cluster of separate processes started with the ``dask scheduler``/``dask worker`` command lines.

Each process is started by the test and stopped by its pid (SIGTERM, then SIGKILL).
``bare=True`` starts workers whose Python cannot import jupyter_taskstream: the package
is installed editable in the test environment (a ``.pth`` path) and the worktree is on
``PYTHONPATH``, so the worker runs ``distributed``'s CLI from a ``python -c`` that drops
those paths from ``sys.path`` first, as a worker on a machine without the package would be.
"""

from __future__ import annotations

import json
import os
import signal
import shutil
import subprocess
import sys
import time
from pathlib import Path

import jupyter_taskstream

#: Folders on sys.path that hold jupyter_taskstream here (the worktree, an editable install's path).
PACKAGE_ROOTS = sorted(
    {str(Path(jupyter_taskstream.__file__).resolve().parents[1])}
    | {p for p in sys.path if p and (Path(p) / "jupyter_taskstream" / "__init__.py").exists()}
)
#: A regular (non-editable) install sits beside dask in site-packages: no path trick hides it.
CAN_HIDE_PACKAGE = not any(Path(p).name in ("site-packages", "dist-packages") for p in PACKAGE_ROOTS)

_BARE_WORKER = (
    "import os, sys\n"
    "roots = {roots!r}\n"
    # Exactly the folders that hold the package: a prefix match would also drop a virtual
    # environment that lives inside the checkout (CI's .ci/venv), and with it distributed.
    "sys.path[:] = [p for p in sys.path if p and os.path.realpath(p) not in roots]\n"
    "import importlib.util\n"
    "assert importlib.util.find_spec('jupyter_taskstream') is None, 'the bare worker can import the package'\n"
    "from distributed.cli.dask_worker import main\n"
    "sys.argv[0] = 'dask-worker'\n"
    "main()\n"
)


class CliCluster:
    """A scheduler and ``n_workers`` single-threaded workers, each its own OS process."""

    def __init__(self, directory: Path, n_workers: int = 2, bare: bool = False):
        self.directory = directory
        self.scheduler_file = directory / "scheduler.json"
        self.processes: list[subprocess.Popen] = []
        self.logs: list[Path] = []
        dask_cli = shutil.which("dask") or str(Path(sys.executable).with_name("dask"))
        self._start(
            [dask_cli, "scheduler", "--scheduler-file", str(self.scheduler_file), "--port", "0",
             "--dashboard-address", ":0", "--no-show"],
            os.environ, "scheduler",
        )  # fmt: skip
        deadline = time.monotonic() + 30
        while not self._address():
            if time.monotonic() > deadline or self.processes[0].poll() is not None:
                self.stop()
                raise RuntimeError(f"the scheduler did not start: {self.logs[0].read_text()[-2000:]}")
            time.sleep(0.05)
        worker_args = ["--scheduler-file", str(self.scheduler_file), "--nthreads", "1", "--no-nanny",
                       "--no-dashboard", "--local-directory", str(directory)]  # fmt: skip
        for i in range(n_workers):
            if bare:
                env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
                cmd = [sys.executable, "-c", _BARE_WORKER.format(roots=PACKAGE_ROOTS), *worker_args]
            else:
                env, cmd = os.environ, [dask_cli, "worker", *worker_args]
            self._start(cmd, env, f"worker-{i}")

    @property
    def address(self) -> str:
        return self._address()

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self.processes]

    def _address(self) -> str:
        try:
            return json.loads(self.scheduler_file.read_text())["address"]
        except (OSError, ValueError, KeyError):
            return ""

    def _start(self, cmd: list[str], env, name: str) -> None:
        log = self.directory / f"{name}.log"
        self.logs.append(log)
        with open(log, "wb") as out:
            self.processes.append(
                subprocess.Popen(cmd, env=dict(env), cwd=self.directory, stdout=out, stderr=subprocess.STDOUT)
            )

    def stop(self, timeout: float = 10) -> None:
        """Stop every process by its pid: workers first, then the scheduler."""
        for proc in reversed(self.processes):
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for proc in reversed(self.processes):
            try:
                proc.wait(max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait(5)
