"""What the runtime needs to know about the kernel it runs in, without importing one.

The runtime never imports ipykernel or IPython itself: they are only consulted when the
process already loaded them (i.e. it *is* a kernel), so a plain script pays nothing.
"""

from __future__ import annotations

import os
import re
import sys
import threading
from typing import Any, Callable

__all__ = ["in_kernel", "kernel_id", "on_cell_error", "user_namespace"]

_CONNECTION_FILE = re.compile(r"^kernel-(?P<id>.+)\.json$")


def _ipython() -> Any:
    """The running IPython shell, or None (never imports IPython)."""
    ipython = sys.modules.get("IPython")
    if ipython is None:
        return None
    try:
        return ipython.get_ipython()
    except Exception:
        return None


def in_kernel() -> bool:
    """True inside a running ipykernel."""
    kernelapp = sys.modules.get("ipykernel.kernelapp")
    try:
        return kernelapp is not None and kernelapp.IPKernelApp.initialized()
    except Exception:
        return False


def kernel_id() -> str | None:
    """The kernel's id, from its connection file name ``kernel-<id>.json``; None outside a kernel."""
    if not in_kernel():
        return None
    try:
        from ipykernel.connect import get_connection_file  # already loaded in a kernel

        path = get_connection_file()
    except Exception:
        return None
    match = _CONNECTION_FILE.match(os.path.basename(path))
    return match.group("id") if match else None


def user_namespace() -> dict[str, Any]:
    """Where code sent to the kernel runs: IPython's ``user_ns``, else ``__main__``'s globals."""
    shell = _ipython()
    if shell is not None:
        return shell.user_ns
    return sys.modules["__main__"].__dict__


def on_cell_error(callback: Callable[[BaseException], None]) -> bool:
    """Call ``callback(error)`` after each IPython cell that raised; False outside IPython.

    Also called with no error after every cell (as ``callback(None)``) so per-cell state
    can be reset. Runs on the main thread, as IPython's ``post_run_cell`` event does.
    """
    shell = _ipython()
    if shell is None or threading.current_thread() is not threading.main_thread():
        return False

    def post_run_cell(result: Any) -> None:
        callback(getattr(result, "error_in_exec", None))

    shell.events.register("post_run_cell", post_run_cell)
    return True
