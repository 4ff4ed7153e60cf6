"""pytest plugin: a real hub for the tutorial notebooks that nbval runs.

nbval starts its own kernels, so they would run without a hub. Before the first notebook
cell runs, this plugin starts a ``jupyter server`` with the extension and gives the
kernels the environment a server-launched kernel gets (hub URL and publish secret), plus a
runtime dir in which ``jupyter_server.serverapp.list_running_servers()`` finds the server
and its token, as on Binder. Loaded with ``-p tests.nbval_hub`` (see pyproject.toml).
"""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

import pytest

_server: subprocess.Popen | None = None
_saved_env: dict[str, str | None] = {}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_hub(
    root_dir: str, env: dict[str, str] | None = None, python: str = sys.executable, extra_args: tuple = ()
) -> tuple:
    """Start ``jupyter server`` with the extension on loopback; returns (process, env for kernels).

    ``env`` is the server's environment (default: ours with a fresh runtime dir); the returned
    mapping holds what a kernel of that server would get: URL, secret, runtime dir.
    """
    port, token, secret = _free_port(), secrets.token_hex(16), secrets.token_urlsafe(32)
    runtime_dir = tempfile.mkdtemp(prefix="taskstream-runtime-")
    server_env = dict(os.environ if env is None else env)
    server_env["JUPYTER_RUNTIME_DIR"] = runtime_dir
    # A task database of its own, not the user's (the default store keeps history on disk).
    server_env.setdefault("JUPYTER_DATA_DIR", os.path.join(runtime_dir, "data"))
    if env is None:
        server_env["JUPYTER_DATA_DIR"] = os.path.join(runtime_dir, "data")
    command = [
        python, "-m", "jupyter_server", f"--port={port}", "--ip=127.0.0.1", "--no-browser", "--allow-root",
        f"--IdentityProvider.token={token}", f"--TaskStreamApp.publish_secret={secret}",
        f"--ServerApp.root_dir={root_dir}", "--ServerApp.port_retries=0", *extra_args,
    ]  # fmt: skip
    log = open(os.path.join(runtime_dir, "server.log"), "wb")  # noqa: SIM115 (lives with the server)
    process = subprocess.Popen(command, env=server_env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + 60
    while True:
        try:
            request = urllib.request.Request(url + "api/status", headers={"Authorization": f"token {token}"})
            with urllib.request.urlopen(request, timeout=2):
                break
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                with open(os.path.join(runtime_dir, "server.log"), encoding="utf-8", errors="replace") as f:
                    raise RuntimeError(f"the hub server did not start:\n{f.read()[-3000:]}") from None
            time.sleep(0.1)
    kernel_env = {
        "JUPYTER_TASKSTREAM_URL": f"{url}taskstream/api",
        "JUPYTER_TASKSTREAM_SECRET": secret,
        "JUPYTER_RUNTIME_DIR": runtime_dir,
    }
    return process, kernel_env, token


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """Before the first notebook cell (whose setup starts nbval's kernel), start the hub."""
    global _server
    if _server is not None or type(item).__name__ != "IPyNbCell":
        return
    root = os.path.join(str(item.config.rootpath), "notebooks")
    _server, kernel_env, _token = start_hub(root)
    for key, value in kernel_env.items():
        _saved_env[key] = os.environ.get(key)
        os.environ[key] = value  # nbval's kernels inherit this environment


def pytest_unconfigure(config: pytest.Config) -> None:
    global _server
    if _server is None:
        return
    _server.terminate()
    try:
        _server.wait(10)
    except subprocess.TimeoutExpired:
        _server.kill()
    _server = None
    for key, value in _saved_env.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
