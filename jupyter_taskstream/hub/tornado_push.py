"""Tornado internals that the SSE fast path relies on, in one place, with a plain fallback.

Pushing one event to thousands of idle streams through ``RequestHandler.flush`` costs
futures, callbacks and chunk framing per stream, and an idle stream held by tornado costs
~15 KiB. The fast path leaves tornado once the first bytes are out (`detached`, through the
public ``RequestHandler.detach()``), which needs to know how tornado framed the response;
streams that stay in tornado drop its header copies (~2 KiB each). Internals with no public
accessor it uses:

``HTTP1Connection._chunking_output``
    True when the response is framed in HTTP/1.1 chunks, so the hub may go on framing
    chunks itself and ``send()`` them on the socket after the detach.
``RequestHandler._headers_written``, ``RequestHandler._headers``, ``RequestHandler._new_cookie``
    Once the headers are on the wire, the response header dict and the login cookie
    jupyter_server sets are dropped for the stream's life (nothing reads them again).

The first stream in a process probes a live handler (`probe`); if any of these is missing or
changed, a warning names it and every stream uses the public ``write()`` + ``flush()`` path,
which is correct, just costlier. ``tests/hub/test_tornado_push.py`` names each attribute and
fails when a tornado upgrade changes one.
"""

from __future__ import annotations

import http.cookies
import logging
import socket
from typing import Any

from tornado import httputil
from tornado.iostream import IOStream

__all__ = ["RELIES_ON", "chunk", "detachable", "direct_socket", "fast_path", "probe", "release_headers"]

RELIES_ON = (
    "HTTP1Connection._chunking_output",
    "RequestHandler._headers_written",
    "RequestHandler._headers",
    "RequestHandler._new_cookie",
)
_log = logging.getLogger("tornado.application")

#: None until the first stream probes tornado; then whether the fast path is used. Tests set
#: it to False to run the plain path end to end.
enabled: bool | None = None


def probe(handler: Any) -> dict[str, bool]:
    """For each name in `RELIES_ON`: does a streaming handler (headers written) have it as expected?"""
    connection = handler.request.connection
    cookie = handler.__dict__.get("_new_cookie")
    return {
        "HTTP1Connection._chunking_output": isinstance(getattr(connection, "_chunking_output", None), bool),
        "RequestHandler._headers_written": getattr(handler, "_headers_written", None) is True,
        "RequestHandler._headers": isinstance(getattr(handler, "_headers", None), httputil.HTTPHeaders),
        "RequestHandler._new_cookie": cookie is None or isinstance(cookie, http.cookies.SimpleCookie),
    }


def fast_path(handler: Any) -> bool:
    """True when the fast path may be used; the first call (a live stream) decides for the process."""
    global enabled
    if enabled is None:
        missing = [name for name, ok in probe(handler).items() if not ok]
        enabled = not missing
        if missing:
            _log.warning(
                "taskstream: this tornado has no %s as expected; SSE streams use plain write()/flush()",
                ", ".join(missing),
            )
    return enabled


def release_headers(handler: Any) -> None:
    """The headers are on the wire: drop tornado's copies of them for the stream's life."""
    if fast_path(handler) and handler._headers_written:
        handler._headers = httputil.HTTPHeaders()
        handler.__dict__.pop("_new_cookie", None)


def detachable(handler: Any) -> bool:
    """Before the headers: may this stream leave tornado after its first bytes?

    Plain TCP and HTTP/1.1 only (`direct_socket` confirms once the headers are out); TLS
    and HTTP/1.0 streams, and every stream once the probe failed, stay in tornado.
    """
    connection = handler.request.connection
    plain_tcp = type(getattr(connection, "stream", None)) is IOStream
    return enabled is not False and plain_tcp and handler.request.version == "HTTP/1.1"


def direct_socket(handler: Any) -> socket.socket | None:
    """The socket chunks framed by `chunk` may be sent on once detached, or None (stay in tornado).

    Only plain-TCP HTTP/1.1 chunked responses with nothing queued on the `IOStream`
    (``stream.writing()`` is False): TLS streams and unchunked (HTTP/1.0) responses always
    go through tornado, and the order on the wire stays tornado's.
    """
    if not fast_path(handler):
        return None
    connection = handler.request.connection
    stream = getattr(connection, "stream", None)
    if type(stream) is not IOStream or getattr(connection, "_chunking_output", None) is not True:
        return None
    if stream.writing():
        return None
    return stream.socket


def chunk(body: bytes) -> bytes:
    """``body`` framed as one HTTP/1.1 chunk, as tornado frames what ``flush`` writes."""
    return b"%x\r\n%b\r\n" % (len(body), body)
