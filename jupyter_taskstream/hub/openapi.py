"""``/taskstream/api/openapi.json``: the hub's OpenAPI description, behind auth like every endpoint.

The description is a JSON file shipped in the package (``openapi.json`` beside this module,
written by ``scripts/make_openapi.py``); it is served as is, read once.
"""

from __future__ import annotations

import functools
import pathlib

from jupyter_server.auth.decorator import authorized
from tornado import web

from .base import TaskStreamHandler

__all__ = ["OPENAPI_PATH", "OpenAPIHandler", "openapi_bytes"]

OPENAPI_PATH = pathlib.Path(__file__).parent / "openapi.json"


@functools.lru_cache(maxsize=1)
def openapi_bytes() -> bytes:
    """The description as shipped."""
    return OPENAPI_PATH.read_bytes()


class OpenAPIHandler(TaskStreamHandler):
    """``/taskstream/api/openapi.json``."""

    @web.authenticated
    @authorized
    async def get(self) -> None:
        """The OpenAPI 3.2 description of every endpoint."""
        self.set_header("Content-Type", "application/json")
        self.finish(openapi_bytes())
