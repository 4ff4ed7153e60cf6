"""The wire contract: environment names, the secret header, the protocol version, statuses.

What a kernel and the hub must agree on before any event is validated: how a kernel finds
its hub, how it proves it may publish, which version of the batch format it speaks, the
statuses (and the one a view shows), event types, ids and times.
"""

from __future__ import annotations

import functools
import secrets
from datetime import datetime, timezone

__all__ = [
    "DISPLAY_STATUSES", "ENV_DISCOVER", "ENV_PARENT", "ENV_SECRET", "ENV_TOKEN", "ENV_URL", "LOG_STREAMS", "MAX_NAME_LENGTH", "MAX_UNIT_LENGTH",
    "PROTOCOL_VERSION", "PUBLISH_SOCKET_PATH", "PUBLISHED_EVENT_TYPES", "RATE_SMOOTHING", "SECRET_HEADER", "STATUSES", "TERMINAL_STATUSES",
    "display_status", "dropped_marker", "iso_time", "new_task_id",
]  # fmt: skip

#: Environment variables a server-launched kernel reads to find its hub and prove it may publish
#: (the server puts them in each kernel's environment, and only there).
ENV_URL = "JUPYTER_TASKSTREAM_URL"
ENV_SECRET = "JUPYTER_TASKSTREAM_SECRET"
#: A user's Jupyter token, for a process outside Jupyter (a script, a terminal, a CI job) that
#: uses the client or publishes its own tasks; ``ENV_URL`` then names the server.
ENV_TOKEN = "JUPYTER_TASKSTREAM_TOKEN"
#: ``1``: a script without ``ENV_TOKEN`` publishes to the running server it finds in the Jupyter
#: runtime directory (its ``jpserver-*.json``, which holds the user's token). Opt-in: a script
#: should not start sending its output to whichever server happens to run.
ENV_DISCOVER = "JUPYTER_TASKSTREAM_DISCOVER"
#: Set by a kernel for a child process a task starts (``"<socket path>|<task id>"``): the
#: child's own tasks report into that task over the kernel's worker socket, not to the hub.
ENV_PARENT = "JUPYTER_TASKSTREAM_PARENT"
#: The header that carries the publish secret (a browser cannot be made to send it: no XSRF).
SECRET_HEADER = "X-TaskStream-Secret"
#: Version of the publish protocol (the batch body of ``POST .../events``). Every batch says
#: which it speaks; kernels and the server often run different package versions.
#: 1: batches without a ``protocol`` field (before it existed). 2: ``protocol`` is sent.
#: 3: progress events may carry child ``bars`` (a hub at 2 skips and counts them).
#: Also at 3, no bump needed: a ``log`` event may carry ``dropped`` (N lines lost before it,
#: e.g. shed by a kernel's full outbox); its ``text`` is the marker line, so a hub that does
#: not know the field still shows the gap, it only does not add N to ``log_dropped``.
#: 4: the hub also takes a text batch (`batchbody`: log lines outside the JSON) and says
#: which protocol it speaks in each answer; a kernel sends text batches only to a hub at 4+.
#: 5: the hub also takes batches over its publish socket (a WebSocket at ``events/socket``,
#: see `hub.pubsocket`); a kernel opens it only to a hub at 5+, and POSTs whenever it cannot.
PROTOCOL_VERSION = 5
#: The publish socket's path under the API URL (protocol 5).
PUBLISH_SOCKET_PATH = "events/socket"

STATUSES = ("pending", "running", "completed", "failed", "cancelled")
TERMINAL_STATUSES = frozenset({"completed", "failed", "cancelled"})
#: What views show: the statuses, plus ``cancelling`` for a live task asked to stop.
DISPLAY_STATUSES = (*STATUSES, "cancelling")
#: Event types a producer may publish; ``end`` and ``snapshot`` are written by the hub.
PUBLISHED_EVENT_TYPES = ("status", "progress", "log")
LOG_STREAMS = ("stdout", "stderr")
MAX_UNIT_LENGTH = 50

MAX_NAME_LENGTH = 200
# Weight of the newest sample in the hub's moving average of the rate (tqdm's default smoothing).
RATE_SMOOTHING = 0.3


def dropped_marker(count: int) -> str:
    """The line a log shows where ``count`` lines were dropped (the text of a ``dropped`` event)."""
    return f"… {count} line{'' if count == 1 else 's'} dropped …"


def display_status(status: str, cancel_requested: bool) -> str:
    """The status a view shows: ``cancelling`` for a task asked to stop that has not ended yet."""
    return "cancelling" if cancel_requested and status not in TERMINAL_STATUSES else status


def new_task_id() -> str:
    """Return a short, URL-safe, random task id that starts with a letter or digit.

    A leading '-' would read as an option on a command line (``%taskstream cancel -x1``).
    """
    while True:
        task_id = secrets.token_urlsafe(8)
        if task_id[0].isalnum():
            return task_id


@functools.lru_cache(maxsize=4096)
def iso_time(epoch: float | None) -> str | None:
    """Format epoch seconds as ISO 8601 UTC (``2026-01-01T00:00:00.000000Z``).

    Cached: every snapshot formats its task's three times again, once per commit on the hub
    (~5 % of its CPU per printed line); the same few instants recur.
    """
    if epoch is None:
        return None
    return datetime.fromtimestamp(epoch, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


