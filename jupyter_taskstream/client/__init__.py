"""The hub's API from outside Jupyter: `Client` (blocking) and `AsyncClient` (asyncio).

A client process is neither the server nor a kernel: nothing here imports tornado,
jupyter_server or IPython. `discovery` finds the hub, `_core` describes each call once,
`sync` and `aio` run the calls, `cli` is ``jupyter taskstream ls|watch|logs|...``.

    from jupyter_taskstream.client import Client

    hub = Client()                 # the running server, or JUPYTER_TASKSTREAM_URL / _TOKEN
    for task in hub.tasks(status="running"):
        print(task["name"], task["progress"]["fraction"])
    final = hub.wait(task_id, timeout=600)
"""

from __future__ import annotations

from ._core import Event
from .aio import AsyncClient, AsyncTaskHandle
from .discovery import ENV_TOKEN, Endpoint, find_endpoint, running_servers
from .errors import (
    BadRequest,
    ClientError,
    Conflict,
    NotFound,
    ServerError,
    ServerUnreachable,
    Unauthorized,
    WaitTimeout,
)
from .sync import Client, TaskHandle

__all__ = [
    "ENV_TOKEN",
    "AsyncClient",
    "AsyncTaskHandle",
    "BadRequest",
    "Client",
    "ClientError",
    "Conflict",
    "Endpoint",
    "Event",
    "NotFound",
    "ServerError",
    "ServerUnreachable",
    "TaskHandle",
    "Unauthorized",
    "WaitTimeout",
    "find_endpoint",
    "running_servers",
]
