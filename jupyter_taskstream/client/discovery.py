"""Where the hub is: explicit arguments, the environment, or a running server's runtime file.

The same places ``jupyter server list`` reads (``jpserver-*.json`` in the Jupyter runtime
directory, ``JUPYTER_RUNTIME_DIR`` respected), without importing jupyter_server: a client
process is neither a server nor a kernel.
"""

from __future__ import annotations

import glob
import json
import os
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit, urlunsplit

from ..protocol import ENV_SECRET, ENV_URL
from .errors import ServerUnreachable

__all__ = ["ENV_TOKEN", "Endpoint", "find_endpoint", "running_servers", "split_url"]

#: The user's token for a client outside Jupyter (kernels get the publish secret instead).
ENV_TOKEN = "JUPYTER_TASKSTREAM_TOKEN"
_API_SUFFIXES = ("taskstream/api/", "taskstream/")


@dataclass(frozen=True)
class Endpoint:
    """A hub to talk to: the server's URL (base_url included, ending in ``/``) and credentials."""

    server_url: str
    token: str | None = None
    #: The publish secret (kernels and processes a server launched): creates and publishes only.
    secret: str | None = None

    @property
    def api_url(self) -> str:
        return self.server_url + "taskstream/api"

    def headers(self) -> dict[str, str]:
        if self.token:
            return {"Authorization": f"token {self.token}"}
        if self.secret:
            return {"X-TaskStream-Secret": self.secret}
        return {}


def split_url(url: str) -> tuple[str, str | None]:
    """The server URL (with base_url, ending in ``/``) and any ``?token=`` in ``url``.

    Takes what ``jupyter server list`` prints, the dashboard's URL, or the API URL kernels get.
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


def find_endpoint(url: str | None = None, token: str | None = None) -> Endpoint:
    """Resolve the hub: ``url``/``token`` given, else the environment, else a running server.

    Raises `ServerUnreachable` when there is nothing to connect to.
    """
    secret = None
    from_env = url is None and bool(os.environ.get(ENV_URL))
    if url is None:
        url = os.environ.get(ENV_URL) or None
    if token is None:
        token = os.environ.get(ENV_TOKEN) or None
    if url is not None:
        server_url, url_token = split_url(url)
        token = token or url_token
        if token is None:
            token = _token_from_runtime(server_url)
        if token is None and from_env:
            # A process the server launched (kernel, terminal) holds its publish secret: it may
            # create and publish tasks, nothing else. Never sent to a URL given explicitly.
            secret = os.environ.get(ENV_SECRET) or None
        return Endpoint(server_url, token, secret)
    servers = running_servers()
    if not servers:
        raise ServerUnreachable(
            "no running Jupyter server found (start one with `jupyter taskstream`, or pass --url)"
        )
    info = servers[0]
    server_url, _ = split_url(info["url"])
    return Endpoint(server_url, token or info.get("token") or None)


def _token_from_runtime(server_url: str) -> str | None:
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
