"""The publisher's POSTs to the hub: one kept-alive `http.client` connection, or httpx.

A one-line batch is the common case while a task prints, and its POST is on the path of
every line to the hub's readers: over a kept-alive `http.client` connection it costs ~0.3 ms
of Python, over httpx ~0.6 ms (measured in benchmarks/ANALYSIS.md). httpx is kept where it
does more than we would: a hub reached through a proxy (``HTTP(S)_PROXY`` without a
``NO_PROXY`` match, which httpx honours). A POST that fails on a connection the hub closed
while idle is sent once more on a new one; a repeat is safe, as every batch carries its
``(publisher, seq)`` and the hub applies a retried one once.

`post_batch` picks the body's form: JSON until an answer of the hub says it takes text
batches (protocol 4, see `protocol.batchbody`), then text batches, whose lines cost the
kernel one join and one encode instead of JSON's per-line escaping.

From a hub at protocol 5 on, small batches (the common case while a task prints, up to
`SOCKET_MAX_BYTES`) travel over its publish socket (`hub.pubsocket`, one WebSocket,
websocket-client): no HTTP request per batch, which is most of a printed line's way to a
reader (benchmarks/ANALYSIS.md); large ones, where a request's fixed cost does not matter
and masking would, stay POSTs. Whenever the socket cannot be opened or breaks,
the batch is POSTed instead (the same ``seq``: a batch the hub applied before the break is
not applied twice), and the socket is tried again after `SOCKET_RETRY_SECONDS`.
"""

from __future__ import annotations

import http.client
import json
import ssl
import time
import urllib.request
from typing import Any
from urllib.parse import urlsplit

from ..protocol import JSON_TYPE, PROTOCOL_HEADER, PUBLISH_SOCKET_PATH, TEXT_BATCH_TYPE, encode_batch

__all__ = ["SOCKET_MAX_BYTES", "SOCKET_RETRY_SECONDS", "HubUnreachable", "Response", "open_client"]

#: After the publish socket failed (or could not be opened), POSTs for this long, then try again.
SOCKET_RETRY_SECONDS = 10.0
#: Larger batches are POSTed: a WebSocket client masks what it sends (RFC 6455), which
#: websocket-client does in Python at ~6 ms per MB of GIL-held time, while a POST's fixed
#: cost (~0.3 ms) is what the socket saves; at 16 KiB masking costs ~0.08 ms.
SOCKET_MAX_BYTES = 16 * 1024


_CLOSED_WHILE_IDLE = (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError)


class HubUnreachable(OSError):
    """The request did not get an answer (refused, reset, timed out): retry later."""


class Response:
    """What the publisher reads of an answer: the status, the body as text and as JSON, and
    the publish protocol the hub says it speaks (0 when it does not say)."""

    def __init__(self, status_code: int, body: bytes, protocol: str | None = None):
        self.status_code = status_code
        self.text = body.decode("utf-8", "replace")
        self.protocol = int(protocol) if protocol and protocol.isdigit() else 0

    def json(self) -> Any:
        return json.loads(self.text)


class _Batches:
    """`post_batch`, over a client's ``post``."""

    #: The protocol the hub said it speaks in its last answer.
    hub_protocol = 0

    def post(self, path: str, body: bytes, content_type: str = JSON_TYPE) -> Response:
        raise NotImplementedError

    def post_batch(self, batch: dict[str, Any]) -> Response:
        """Send a batch to ``events``, as a text batch when the hub takes them."""
        text = self.hub_protocol >= 4
        response = self.send_batch(*encode_batch(batch, text))
        self.hub_protocol = response.protocol
        if text and response.status_code in (400, 415) and response.protocol < 4:
            # The server was replaced by one older than text batches: the same batch as JSON
            # (it refused the body unread, so this is no repeat).
            response = self.post("events", *encode_batch(batch))
            self.hub_protocol = response.protocol
        return response

    def send_batch(self, body: bytes, content_type: str) -> Response:
        """One encoded batch to the hub: a POST here."""
        return self.post("events", body, content_type)


class _Direct(_Batches):
    def __init__(self, url: str, headers: dict[str, str], timeout: float):
        parts = urlsplit(url)
        self.https = parts.scheme == "https"
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port
        self.prefix = parts.path.rstrip("/") + "/"
        self.headers = headers
        self.timeout = timeout
        self.conn: http.client.HTTPConnection | None = None

    def _connect(self) -> http.client.HTTPConnection:
        if self.https:
            return http.client.HTTPSConnection(self.host, self.port, timeout=self.timeout,
                                               context=ssl.create_default_context())
        return http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)

    def post(self, path: str, body: bytes, content_type: str = JSON_TYPE) -> Response:
        headers = {**self.headers, "Content-Type": content_type}
        for attempt in (0, 1):
            fresh = self.conn is None
            if fresh:
                self.conn = self._connect()
            try:
                self.conn.request("POST", self.prefix + path, body=body, headers=headers)
                response = self.conn.getresponse()
                data = response.read()
                if response.will_close:
                    self.close()
                return Response(response.status, data, response.getheader(PROTOCOL_HEADER))
            except (OSError, http.client.HTTPException) as e:
                self.close()
                # Only a kept-alive connection the hub closed while idle is worth a second try at once.
                if fresh or attempt or not isinstance(e, _CLOSED_WHILE_IDLE):
                    raise HubUnreachable(f"{type(e).__name__}: {e}") from e
        raise AssertionError("unreachable")

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None
        self._close_socket()

    # ---- the publish socket (protocol 5) ------------------------------------------------

    socket: Any = None
    socket_retry_at = 0.0
    #: Why the socket was last given up (for diagnostics and tests), or None.
    socket_error: str | None = None

    def send_batch(self, body: bytes, content_type: str) -> Response:
        """Over the publish socket when the hub has one and the batch is small; else a POST."""
        if (self.hub_protocol >= 5 and content_type == TEXT_BATCH_TYPE and len(body) <= SOCKET_MAX_BYTES
                and time.monotonic() >= self.socket_retry_at):  # fmt: skip
            try:
                return self._over_socket(body)
            except Exception as e:  # noqa: BLE001 - any failure of the socket: this batch is POSTed
                self._close_socket()
                self.socket_error = f"{type(e).__name__}: {e}"
                self.socket_retry_at = time.monotonic() + SOCKET_RETRY_SECONDS
        return self.post("events", body, content_type)

    def _over_socket(self, body: bytes) -> Response:
        if self.socket is None:
            import websocket  # websocket-client; only a kernel whose hub has a socket imports it

            scheme = "wss" if self.https else "ws"
            self.socket = websocket.create_connection(
                f"{scheme}://{self.host}:{self.port}{self.prefix}{PUBLISH_SOCKET_PATH}",
                header=[f"{k}: {v}" for k, v in self.headers.items()],
                timeout=self.timeout,
                suppress_origin=True,  # not a browser: the hub's origin check has nothing to check
                skip_utf8_validation=True,
                http_no_proxy=[self.host],  # a proxied hub gets httpx (`open_client`), never this
            )
        self.socket.send_binary(body)
        reply = json.loads(self.socket.recv())
        answer = reply.get("body")
        data = json.dumps(answer).encode() if answer is not None else b""
        return Response(reply["status"], data, str(reply.get("protocol", "")))

    def _close_socket(self) -> None:
        if self.socket is not None:
            try:
                self.socket.close(timeout=0.5)
            except Exception:  # noqa: BLE001 - closing a broken socket may fail again; it is gone either way
                pass
            self.socket = None


class _Httpx(_Batches):
    def __init__(self, url: str, headers: dict[str, str], timeout: float):
        import httpx

        self.client = httpx.Client(base_url=url + "/", headers=headers, timeout=timeout)
        self.errors = httpx.HTTPError

    def post(self, path: str, body: bytes, content_type: str = JSON_TYPE) -> Response:
        try:
            r = self.client.post(path, content=body, headers={"Content-Type": content_type})
        except self.errors as e:
            raise HubUnreachable(repr(e)) from e
        return Response(r.status_code, r.content, r.headers.get(PROTOCOL_HEADER))

    def close(self) -> None:
        self.client.close()


def open_client(url: str, headers: dict[str, str], timeout: float) -> _Direct | _Httpx:
    """A client with ``post(path, body) -> Response`` and ``close()`` for the hub at ``url``."""
    parts, proxies = urlsplit(url), urllib.request.getproxies()
    proxied = parts.scheme in proxies or "all" in proxies
    if proxied and not urllib.request.proxy_bypass(parts.hostname or ""):
        return _Httpx(url, headers, timeout)
    return _Direct(url, headers, timeout)
