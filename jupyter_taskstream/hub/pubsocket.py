"""The publish socket: a kernel's batches over one WebSocket instead of a POST each.

``GET /taskstream/api/events/socket`` (a WebSocket, publish protocol 5) takes the same
batches as ``POST /taskstream/api/events`` and answers each, in order, with one text
message: ``{"status": 204}``, ``{"status": 200, "body": {...}}`` (what a 200 says) or
``{"status": 4xx|503, "body": {"message": ...}}``, each with the hub's ``"protocol"``. Only the transport differs: validation,
the ``(publisher, seq)`` retry rule and the commit before the answer are `BatchIngest`'s.

Why: a printed line's way to an SSE reader is mostly the hub's own request path, and for
a one-line batch tornado's per-request work (parsing, a handler object, its headers, the
answer) is half of it (benchmarks/ANALYSIS.md, issue 16 goal 4). A socket pays it once per
kernel. A binary message is a text batch (`protocol.batchbody`), a text message JSON.

Auth is the POST's: the publish secret (a header no browser can send), or Jupyter's auth
with ``write`` on ``taskstream`` and Jupyter's origin check.
"""

from __future__ import annotations

import json
from typing import Any

from jupyter_server.auth.decorator import authorized
from jupyter_server.base.handlers import JupyterHandler
from tornado import web, websocket

from ..errors import TaskStreamError
from ..protocol import PROTOCOL_VERSION
from .base import AUTH_RESOURCE, error_status
from .ingest import BatchIngest

__all__ = ["PublishSocket", "close_publish_sockets"]

_SOCKETS = "taskstream_publish_sockets"


def close_publish_sockets(settings: dict[str, Any]) -> None:
    """Close every open publish socket (the server is stopping): kernels go back to POSTs."""
    for socket in list(settings.get(_SOCKETS, ())):
        socket.close(1001, "the server is stopping")


class PublishSocket(websocket.WebSocketHandler, BatchIngest):
    """``GET /taskstream/api/events/socket``: batches in, one answer per batch out."""

    publisher_verbs = frozenset({"GET"})
    post = web.RequestHandler.post  # batches come as messages here: a POST is a 405 (Allow: GET)

    @web.authenticated
    async def get(self, *args: Any, **kwargs: Any) -> None:
        """Open the publish socket (Upgrade: websocket); anything else is a 400 that says so."""
        headers = self.request.headers
        if headers.get("Upgrade", "").lower() != "websocket" or "upgrade" not in headers.get("Connection", "").lower():
            raise web.HTTPError(400, "this URL is a WebSocket (the publish socket): connect with Upgrade: websocket")
        await (self._open(*args, **kwargs) if self.publisher else self._open_authorized(*args, **kwargs))

    async def _open(self, *args: Any, **kwargs: Any) -> None:
        await super().get(*args, **kwargs)

    #: A user (not a kernel) publishes: ``write`` on ``taskstream``, as for the POST.
    _open_authorized = authorized("write", AUTH_RESOURCE)(_open)

    def check_origin(self, origin: str | None = None) -> bool:
        # Jupyter's rule (same host, or its allow_origin settings), not tornado's stricter own.
        return JupyterHandler.check_origin(self, origin or "")

    @property
    def max_message_size(self) -> int:  # type: ignore[override]
        return self.settings["taskstream_max_body_bytes"]

    def open(self, *args: Any, **kwargs: Any) -> None:
        self.settings.setdefault(_SOCKETS, set()).add(self)

    def on_close(self) -> None:
        self.settings.get(_SOCKETS, set()).discard(self)

    async def on_message(self, message: str | bytes) -> None:
        """Apply one batch, then answer it (tornado reads the next message after this returns)."""
        text_batch = isinstance(message, bytes)
        body = message if text_batch else message.encode("utf-8", "surrogatepass")  # type: ignore[union-attr]
        try:
            answer = await self.apply_batch(self.parse_body(body, text_batch))  # type: ignore[arg-type]
            reply: dict[str, Any] = {"status": 200, "body": answer} if answer else {"status": 204}
        except web.HTTPError as e:
            reply = {"status": e.status_code, "body": {"message": e.log_message or ""}}
        except TaskStreamError as e:
            reply = {"status": error_status(e) or 400, "body": {"message": str(e)}}
        except Exception:  # a bug: said to the kernel as a 500, with the traceback in the log only
            self.log.exception("taskstream: a batch on the publish socket failed")
            reply = {"status": 500, "body": {"message": "internal error (see the server's log)"}}
        reply["protocol"] = PROTOCOL_VERSION  # as every POST's answer says it in a header
        try:
            self.write_message(json.dumps(reply))
        except websocket.WebSocketClosedError:
            pass  # the kernel went away; it resends the batch (same seq) on its next connection
