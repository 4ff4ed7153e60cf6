"""Listening to the hub's commands for this kernel: ``cancel`` and ``start``, over SSE.

One daemon thread holds ``GET {url}/kernels/{kernel_id}/commands`` open with httpx and
httpx-sse, reconnecting with capped exponential backoff and resuming with
``Last-Event-ID``. This is how a cancel reaches a task while the kernel's shell is busy
running another cell: nothing here waits for the kernel's message loop.
"""

from __future__ import annotations

import contextvars
import json
import socket
import threading
from typing import Any, Callable
from urllib.parse import quote

from ..protocol import SECRET_HEADER
from ._compat import response_socket
from .diagnostics import quiet_thread, report_once

__all__ = ["CommandListener"]


class CommandListener:
    """Reads the hub's command stream for one kernel and hands each command to ``on_command``.

    Parameters
    ----------
    url, secret : str
        The hub's API root and publish secret (as for `Publisher`).
    kernel_id : str
        Whose commands to read.
    on_command : callable
        ``on_command(event_type, data)``, called on the listener's thread.
    read_timeout : float
        Seconds of silence (no event, no heartbeat) before the stream is considered dead;
        several times the hub's 15 s heartbeat.
    """

    def __init__(
        self,
        url: str,
        secret: str,
        kernel_id: str,
        on_command: Callable[[str, dict], Any],
        *,
        backoff_initial: float = 0.1,
        backoff_max: float = 5.0,
        read_timeout: float = 60.0,
    ):
        self.url = url.rstrip("/")
        self.secret = secret
        self.kernel_id = kernel_id
        self.on_command = on_command
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self.read_timeout = read_timeout
        self.last_event_id: str | None = None
        #: Set while a stream is open; tests and callers may wait on it.
        self.connected = threading.Event()
        self._closed = threading.Event()
        self._response: Any = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start the listener thread (once)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="taskstream-commands", daemon=True)
            contextvars.Context().run(self._thread.start)

    def close(self, timeout: float = 5.0) -> None:
        """Stop listening; wakes a blocked read by shutting its socket down (else at the read timeout)."""
        self._closed.set()
        response = self._response
        if response is not None:
            sock = response_socket(response)
            if sock is not None:
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    def _run(self) -> None:
        import httpx
        from httpx_sse import SSEError, connect_sse

        quiet_thread()
        path = f"kernels/{quote(self.kernel_id, safe='')}/commands"
        timeout = httpx.Timeout(10.0, read=self.read_timeout)
        backoff = self.backoff_initial
        with httpx.Client(base_url=self.url + "/", headers={SECRET_HEADER: self.secret}, timeout=timeout) as client:
            while not self._closed.is_set():
                headers = {"Last-Event-ID": self.last_event_id} if self.last_event_id else {}
                try:
                    with connect_sse(client, "GET", path, headers=headers) as source:
                        self._response = source.response
                        if self._closed.is_set():
                            break
                        if source.response.status_code != 200:
                            report_once(
                                ("commands", source.response.status_code),
                                f"the hub refused the command stream ({source.response.status_code}); retrying",
                            )
                        else:
                            self.connected.set()
                            backoff = self.backoff_initial
                            for sse in source.iter_sse():
                                if sse.id:
                                    self.last_event_id = sse.id
                                self._dispatch(sse.event, sse.data)
                except (httpx.HTTPError, SSEError, OSError):
                    pass  # the hub went away or the stream broke: reconnect below
                finally:
                    self._response = None
                    self.connected.clear()
                self._closed.wait(backoff)
                backoff = min(backoff * 2, self.backoff_max)

    def _dispatch(self, event: str, raw: str) -> None:
        try:
            data = json.loads(raw) if raw else {}
            self.on_command(event, data)
        except Exception as e:
            report_once(("command", event, type(e)), f"could not handle the hub's {event!r} command: {e!r}")
