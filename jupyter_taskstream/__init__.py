"""jupyter_taskstream: observable, controllable long-running work in Jupyter.

Importing the package stays light: the server extension (jupyter_server, tornado)
loads only inside a Jupyter server, through `_jupyter_server_extension_points`.
"""

from __future__ import annotations

from ._version import __version__
from .errors import (
    TaskCancelled,
    TaskExists,
    TaskFinished,
    TaskNotFound,
    TaskRunning,
    TaskStreamError,
    ValidationError,
)

__all__ = [
    "TaskCancelled",
    "TaskExists",
    "TaskFinished",
    "TaskNotFound",
    "TaskRunning",
    "TaskStreamError",
    "ValidationError",
    "__version__",
]


def _jupyter_server_extension_points() -> list[dict]:
    """Tell jupyter_server where the extension app is (imported only by the server)."""
    from .app import TaskStreamApp

    return [{"module": "jupyter_taskstream.app", "app": TaskStreamApp}]
