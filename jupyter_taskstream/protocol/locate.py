"""How a process outside Jupyter finds a server: URL forms and the runtime directory's files.

The client, the CLI and a plain script's runtime all resolve a server the same way: a URL as
``jupyter server list`` prints it (base_url included), the dashboard's URL or the API URL
kernels get; or a live server's ``jpserver-*.json`` in the Jupyter runtime directory
(``JUPYTER_RUNTIME_DIR`` respected), which also holds its token. Written once here, without
importing jupyter_server: the processes that use it are neither servers nor kernels.
"""

from __future__ import annotations

import glob
import json
import os
from urllib.parse import parse_qs, urlsplit, urlunsplit

__all__ = ["api_url", "running_servers", "split_url", "token_for"]

_API_SUFFIXES = ("taskstream/api/", "taskstream/")


def split_url(url: str) -> tuple[str, str | None]:
    """The server URL (with base_url, ending in ``/``) and any ``?token=`` in ``url``.

    Takes what ``jupyter server list`` prints, the dashboard's URL, or the API URL kernels
    get; raises `ValueError` for anything that is not an http(s) URL.
    """
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"not an http(s) URL: {url!r}")
    token = (parse_qs(parts.query).get("token") or [None])[0]
    path = parts.path if parts.path.endswith("/") else parts.path + "/"
    for suffix in _API_SUFFIXES:
        if path.endswith("/" + suffix) or path == "/" + suffix:
            path = path[: -len(suffix)]
            break
    return urlunsplit((parts.scheme, parts.netloc, path, "", "")), token


def api_url(server_url: str) -> str:
    """The hub's API root of a server URL (``…/taskstream/api``, no trailing slash)."""
    return split_url(server_url)[0] + "taskstream/api"


def running_servers(runtime_dir: str | None = None) -> list[dict]:
    """The live servers' runtime info, newest first (as ``jupyter server list`` finds them)."""
    if runtime_dir is None:
        runtime_dir = _runtime_dir()
    found = []
    for path in glob.glob(os.path.join(runtime_dir, "jpserver-*.json")):
        try:
            with open(path, encoding="utf-8") as f:
                info = json.load(f)
            mtime = os.path.getmtime(path)
        except (OSError, ValueError):
            continue
        if not isinstance(info, dict) or "url" not in info or not _alive(info.get("pid")):
            continue
        found.append((mtime, info))
    found.sort(key=lambda item: item[0], reverse=True)
    return [info for _, info in found]


def token_for(server_url: str) -> str | None:
    """The token in the runtime file of the live server at ``server_url``, if any."""
    for info in running_servers():
        try:
            if split_url(info["url"])[0] == server_url:
                return info.get("token") or None
        except ValueError:
            continue
    return None


def _runtime_dir() -> str:
    try:
        from jupyter_core.paths import jupyter_runtime_dir
    except ImportError:  # jupyter_core is tiny and always there with Jupyter; be safe anyway
        return os.environ.get("JUPYTER_RUNTIME_DIR", os.path.expanduser("~/.local/share/jupyter/runtime"))
    return jupyter_runtime_dir()


def _alive(pid) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return True  # no pid to check: let the connection attempt decide
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
