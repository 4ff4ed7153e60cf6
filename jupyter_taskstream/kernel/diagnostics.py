"""The runtime's own messages, kept out of users' cells and task logs.

Two sources would otherwise leak into whatever cell runs: the HTTP clients the publisher and
command listener use (httpx logs every request at INFO on ``httpx``, httpcore traces at DEBUG,
websocket-client logs a closed publish socket at ERROR on ``websocket``),
and the runtime's own warnings. After ``logging.basicConfig(level=logging.INFO)`` in a notebook,
both would reach the user's root handlers, whose stream is the running cell.

- Records that these libraries emit on the runtime's threads are dropped by a filter on
  their loggers; the same libraries used by the user's code log as before.
- The package logger ``jupyter_taskstream`` does not propagate to the root logger and has no
  handler by default (quiet): attach one to read the runtime's warnings. Outside a kernel (a
  plain script) `report_once` also writes each warning once to stderr; inside one, stderr's
  file descriptor is forwarded to the running cell, so it does not.
- What users must know (the hub unreachable, lines dropped, a refused batch) is also shown
  once where they look: `report_once` calls the ``show`` its caller passes (the publisher's
  and the command listener's ``on_problem``), which the runtime points at its running tasks
  (a ``[jupyter_taskstream] ...`` line on stderr in each one's log, so in its widget too).
"""

from __future__ import annotations

import logging
import sys
import threading
from typing import Callable

__all__ = ["logger", "quiet_thread", "report_once"]

#: The one documented logger of the kernel runtime; quiet unless a handler is attached to it.
logger = logging.getLogger("jupyter_taskstream")
logger.propagate = False
logger.addHandler(logging.NullHandler())

#: The loggers of the HTTP clients the runtime uses (httpx and each httpcore module that logs;
#: websocket-client, which logs a hub's close of the publish socket at ERROR).
HTTP_LOGGERS = (
    "httpx", "httpcore.connection", "httpcore.http11", "httpcore.http2", "httpcore.proxy", "httpcore.socks",
    "websocket",
)  # fmt: skip

_local = threading.local()
_reported: set = set()


class _RuntimeThreadFilter(logging.Filter):
    """Drops records emitted on a thread that `quiet_thread` marked as the runtime's own."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not getattr(_local, "quiet", False)


_FILTER = _RuntimeThreadFilter("jupyter_taskstream.runtime-threads")


def quiet_thread() -> None:
    """Mark the calling thread as the runtime's: its HTTP client's log records are dropped."""
    _local.quiet = True
    for name in HTTP_LOGGERS:
        http_logger = logging.getLogger(name)
        if _FILTER not in http_logger.filters:
            http_logger.addFilter(_FILTER)


def report_once(key: object, message: str, show: Callable[[str], None] | None = None) -> bool:
    """Warn once per ``key``: on the ``jupyter_taskstream`` logger, the process's real stderr
    (outside a kernel) and ``show(message)``; True the first time, False after."""
    if key in _reported:
        return False
    _reported.add(key)
    logger.warning(message)
    if "ipykernel" not in sys.modules and sys.__stderr__ is not None:
        print(f"[jupyter_taskstream] {message}", file=sys.__stderr__, flush=True)
    if show is not None:
        try:
            show(message)
        except Exception:
            pass  # showing a problem must never become one
    return True
