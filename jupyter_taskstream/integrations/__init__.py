"""Integrations with libraries that draw their own progress or run work elsewhere.

Each module here bridges one library into the task that runs its code (tqdm and rich bars
become the task's bars; process pools, Dask). They run in the kernel (or script) process,
may use `jupyter_taskstream.kernel`, and are never imported by it: `enable` registers
post-import hooks, so a library's bridge is loaded only when the user's code imports the
library, whether before or after jupyter_taskstream.
"""

from __future__ import annotations

__all__ = ["disable", "enable"]

#: Library module -> the bridge module that patches it once it is imported.
BRIDGES = {
    "tqdm.std": "jupyter_taskstream.integrations.tqdm",
    "tqdm.notebook": "jupyter_taskstream.integrations.tqdm",
    "tqdm.rich": "jupyter_taskstream.integrations.tqdm",
    "rich.progress": "jupyter_taskstream.integrations.rich",
    # Child processes (see integrations.processes): each name patches what is loaded of them.
    "subprocess": "jupyter_taskstream.integrations.processes",
    "multiprocessing.pool": "jupyter_taskstream.integrations.processes",
    "multiprocessing.process": "jupyter_taskstream.integrations.processes",
    "concurrent.futures.process": "jupyter_taskstream.integrations.processes",
    "joblib.externals.loky.process_executor": "jupyter_taskstream.integrations.processes",
    "loky.process_executor": "jupyter_taskstream.integrations.processes",
    "ptyprocess.ptyprocess": "jupyter_taskstream.integrations.processes",
    # Dask: its local schedulers' callbacks (dask) and the distributed client's futures.
    "dask": "jupyter_taskstream.integrations.dask",
    "distributed": "jupyter_taskstream.integrations.dask",
}

_hooked = False
_enabled = False


def enable() -> None:
    """Bridge every supported library the user's code imports (now or later); idempotent."""
    global _hooked, _enabled
    import importlib
    import sys

    _enabled = True
    if not _hooked:
        # wrapt's post-import hooks: what the ecosystem uses to patch a module when it is
        # imported, without importing it first (an optional library stays unimported).
        import wrapt

        for module in BRIDGES:
            wrapt.register_post_import_hook(_install_for(module), module)
        _hooked = True
    for module, bridge in BRIDGES.items():
        if module in sys.modules:
            importlib.import_module(bridge).install()


def disable() -> None:
    """Restore every patched library's original methods (the bridges stay off until `enable`)."""
    global _enabled
    import sys

    _enabled = False
    for bridge in set(BRIDGES.values()):
        module = sys.modules.get(bridge)
        if module is not None and hasattr(module, "uninstall"):
            module.uninstall()  # (Dask's hooks have none: they do nothing outside tasks)


def _install_for(module_name: str):
    def hook(module) -> None:
        import importlib

        if _enabled:
            importlib.import_module(BRIDGES[module_name]).install()

    return hook
