"""Which hub this process publishes to, and with which credential, read from the environment.

- ``JUPYTER_TASKSTREAM_URL`` and ``_SECRET``: a kernel the server launched (the server puts
  both in each kernel's environment, and nowhere else).
- ``JUPYTER_TASKSTREAM_TOKEN`` (a user's Jupyter token) with ``_URL`` (the server's URL as
  ``jupyter server list`` prints it, the dashboard's, or the API URL): any other process, a
  script, a terminal, a cron or CI job.
- ``JUPYTER_TASKSTREAM_DISCOVER=1``: the server at ``_URL``, else the newest running one, with
  the token its ``jpserver-*.json`` holds (opt-in: a script's output goes nowhere unasked).

A setting that names a hub but cannot be used (a URL that is not one, no server found, no
token) is said once on stderr; the script runs on, unpublished.
"""

from __future__ import annotations

from collections.abc import Mapping

from ..protocol import ENV_DISCOVER, ENV_SECRET, ENV_TOKEN, ENV_URL
from ..protocol.locate import api_url, running_servers, split_url, token_for
from .diagnostics import report_once

__all__ = ["hub_from_environment"]

_YES = ("1", "true", "yes", "on")


def hub_from_environment(env: Mapping[str, str]) -> tuple[str, str | None, str | None] | None:
    """``(api_url, secret, token)`` of the hub the environment names (one credential set), or None."""
    url, secret, token = env.get(ENV_URL), env.get(ENV_SECRET), env.get(ENV_TOKEN)
    if url and secret:
        return url, secret, None
    discover = env.get(ENV_DISCOVER, "").strip().lower() in _YES
    if not token and not discover:
        return None
    try:
        server, url_token = split_url(url) if url else (None, None)
        token = token or url_token
        if server is None and discover:
            for info in running_servers()[:1]:
                server = split_url(info["url"])[0]
                token = token or info.get("token") or None
        elif server is not None and not token:
            token = token_for(server)
    except ValueError as e:
        report_once(("environment", ENV_URL), f"not a server's URL ({e}): tasks are not published")
        return None
    if server is None:
        where = (
            f"no running Jupyter server found ({ENV_DISCOVER} is set)"
            if discover
            else f"{ENV_URL} is not set"
        )
        report_once(("environment", "server"), f"{where}: tasks are not published")
        return None
    if not token:
        report_once(("environment", "token"), f"no token for the Jupyter server at {server} (set {ENV_TOKEN}): "
                    "tasks are not published")  # fmt: skip
        return None
    return api_url(server), None, token
