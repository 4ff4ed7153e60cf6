"""Where the hub is: explicit arguments, the environment, or a running server's runtime file.

The same places ``jupyter server list`` reads (``jpserver-*.json`` in the Jupyter runtime
directory, ``JUPYTER_RUNTIME_DIR`` respected), through `protocol.locate`, which a plain
script's runtime uses too.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from ..protocol import ENV_SECRET, ENV_TOKEN, ENV_URL
from ..protocol.locate import running_servers, split_url, token_for
from .errors import ServerUnreachable

__all__ = ["ENV_TOKEN", "Endpoint", "find_endpoint", "running_servers", "split_url"]


@dataclass(frozen=True)
class Endpoint:
    """A hub to talk to: the server's URL (base_url included, ending in ``/``) and credentials."""

    server_url: str
    token: str | None = None
    #: The publish secret (kernels the server launched): creates and publishes only.
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
            token = token_for(server_url)
        if token is None and from_env:
            # A kernel the server launched holds its publish secret: it may
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
