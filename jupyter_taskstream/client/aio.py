"""`AsyncClient`: the hub's API for asyncio code; the same methods as `Client`, awaited.

    async with AsyncClient() as hub:
        task = await hub.create("upload", total=len(files))
        async for event in hub.follow(task.id):
            ...
"""

from __future__ import annotations

import asyncio
import time
import traceback as traceback_module
from collections.abc import AsyncIterator
from typing import Any

import httpx
from httpx_sse import aconnect_sse

from . import _core
from ._core import POLL_SECONDS, TERMINAL_STATUSES, Backoff, Call, Event
from .discovery import Endpoint, find_endpoint
from .errors import ServerUnreachable, WaitTimeout, error_for_status

__all__ = ["AsyncClient", "AsyncTaskHandle"]


class AsyncClient:
    """An asyncio client of one hub; the same methods as `Client`, as coroutines.

    Parameters
    ----------
    url : str, optional
        The server's URL with its base_url (as ``jupyter server list`` prints it), or the
        ``.../taskstream/api`` URL. Default: ``JUPYTER_TASKSTREAM_URL``, else the newest
        running server in the Jupyter runtime directory.
    token : str, optional
        The user's Jupyter token. Default: ``JUPYTER_TASKSTREAM_TOKEN``, a ``?token=`` in the
        URL, or the token of the server found.
    timeout : float
        Seconds a single request may take.
    reconnect_timeout : float
        Seconds `follow` keeps reconnecting to a server that does not answer before it raises
        `ServerUnreachable`.
    """

    def __init__(self, url: str | None = None, token: str | None = None, *, timeout: float = 10.0,
                 reconnect_timeout: float = 30.0, transport: httpx.AsyncBaseTransport | None = None):  # fmt: skip
        self.endpoint: Endpoint = find_endpoint(url, token)
        self.timeout = timeout
        self.reconnect_timeout = reconnect_timeout
        self._http = httpx.AsyncClient(timeout=timeout, transport=transport)

    @property
    def server_url(self) -> str:
        """The server's URL, base_url included, ending in ``/``."""
        return self.endpoint.server_url

    def dashboard_url(self, task_id: str | None = None, *, with_token: bool = False) -> str:
        """The dashboard's URL (``#task=ID`` selects a task); ``with_token`` logs a browser in."""
        url = self.server_url + "taskstream/"
        if with_token and self.endpoint.token:
            url += f"?token={self.endpoint.token}"
        return url + (f"#task={task_id}" if task_id else "")

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def _call(self, call: Call, timeout: float | None = None) -> Any:
        request = call.request(self._http, self.endpoint)
        if timeout is not None:
            request.extensions["timeout"] = httpx.Timeout(timeout).as_dict()
        try:
            response = await self._http.send(request)
        except httpx.TransportError as e:
            raise _core.unreachable(self.endpoint, e) from None
        return call.result(response)

    # ---- reading ------------------------------------------------------------------------

    async def tasks(self, status: str | None = None) -> list[dict]:
        """Snapshots of the tasks, newest first; ``status`` keeps one status."""
        return (await self._call(_core.list_call(status)))["tasks"]

    async def get(self, task_id: str) -> dict:
        """One task's snapshot; `NotFound` if there is no such task."""
        return await self._call(_core.get_call(task_id))

    async def log(self, task_id: str, after: int | None = None, limit: int | None = None,
            tail: int | None = None) -> dict:  # fmt: skip
        """The captured output: ``{"events": [...], "last_event_id", "truncated"}``.

        ``after`` (a ``last_event_id`` from before) and ``limit`` page through it; ``tail``
        gives the last lines only.
        """
        return await self._call(_core.log_call(task_id, after, limit, tail))

    async def follow(self, task_id: str | None = None, *, last_event_id: int | None = None) -> AsyncIterator[Event]:
        """The events of one task (ending at its ``end``) or of all tasks (never ending), live.

        A dropped connection is resumed with ``Last-Event-ID`` after a backoff, so no event is
        lost or repeated; `ServerUnreachable` once the server stays away ``reconnect_timeout``.
        """
        url = self.endpoint.api_url + _core.stream_path(task_id)
        backoff = Backoff(give_up=self.reconnect_timeout)
        last = last_event_id
        while True:
            headers = self.endpoint.headers()
            if last is not None:
                headers["Last-Event-ID"] = str(last)
            try:
                async with aconnect_sse(self._http, "GET", url, headers=headers,
                                 timeout=_core.stream_timeout(self.timeout)) as source:  # fmt: skip
                    response = source.response
                    if response.status_code != 200:
                        await response.aread()
                        if response.status_code < 500:
                            raise error_for_status(response.status_code, _core.server_message(response))
                    else:
                        backoff.succeeded()
                        async for sse in source.aiter_sse():
                            if sse.retry:
                                backoff.first = sse.retry / 1000
                            event = Event.from_sse(sse, task_id)
                            if event.id is not None:
                                last = event.id
                            yield event
                            if task_id is not None and event.type == "end":
                                return
            except httpx.TransportError:
                pass  # dropped or refused: resume below
            delay = backoff.next_delay(time.monotonic())
            if delay is None:
                raise ServerUnreachable(f"lost the Jupyter server at {self.server_url}")
            await asyncio.sleep(delay)

    async def wait(self, task_id: str, timeout: float | None = None) -> dict:
        """Block until the task ends; its final snapshot. `WaitTimeout` after ``timeout`` seconds."""
        deadline = None if timeout is None else time.monotonic() + timeout
        snapshot = await self.get(task_id)
        while snapshot["status"] not in TERMINAL_STATUSES:
            poll = POLL_SECONDS
            if deadline is not None:
                poll = min(poll, deadline - time.monotonic())
                if poll <= 0:
                    raise WaitTimeout(f"task {task_id!r} is still {snapshot['status']} after {timeout}s")
            call = _core.get_call(task_id, wait=f"{poll:.3f}", after=snapshot["last_event_id"])
            snapshot = await self._call(call, timeout=poll + self.timeout)
        return snapshot

    # ---- acting -------------------------------------------------------------------------

    async def cancel(self, task_id: str) -> dict:
        """Ask whoever runs the task to stop it; the snapshot (``cancel_requested`` set)."""
        return await self._call(_core.cancel_call(task_id))

    async def delete(self, task_id: str) -> None:
        """Remove a finished task and its log; `Conflict` while it runs."""
        await self._call(_core.delete_call(task_id))

    async def create(self, name: str, total: float | None = None, unit: str | None = None) -> AsyncTaskHandle:
        """A new task this process drives: shown on the dashboard like a kernel's."""
        return AsyncTaskHandle(self, await self._call(_core.create_call(name, total, unit)))

    async def publish(self, task_id: str, events: list[dict]) -> None:
        """Publish raw events (``{"type", "data"}``) to a task; `TaskHandle` is the easy way."""
        await self._call(_core.publish_call(task_id, events))


class AsyncTaskHandle:
    """A task created by `AsyncClient.create`: count, log and end it. An async context manager that
    finishes the task, or fails it with the exception that left the block.

    `update` sends at most one progress event per ``min_interval`` seconds (the latest
    count wins, as the hub coalesces anyway); every other call and the end send at once.
    """

    min_interval = 0.1

    def __init__(self, client: AsyncClient, snapshot: dict):
        self.client = client
        self.id: str = snapshot["id"]
        self.snapshot = snapshot
        self.current: float = snapshot["progress"]["current"]
        self._sent_at = float("-inf")
        self._unsent = False
        self.ended = False

    async def _publish(self, *events: dict) -> None:
        await self.client.publish(self.id, list(events))

    async def update(self, n: float = 1) -> None:
        """Count ``n`` more units done."""
        self.current += n
        now = time.monotonic()
        if now - self._sent_at < self.min_interval:
            self._unsent = True
            return
        self._sent_at, self._unsent = now, False
        await self._publish(_core.progress_event(self.current))

    async def set(self, current: float | None = None, *, total: float | None = None, unit: str | None = None,
            message: str | None = None) -> None:  # fmt: skip
        """Set the count, the total, the unit or the message line."""
        if current is not None:
            self.current = current
        self._sent_at, self._unsent = time.monotonic(), False
        await self._publish(_core.progress_event(self.current, total=total, unit=unit, message=message))

    async def log(self, text: str, stream: str = "stdout") -> None:
        """One line of output (``stdout`` or ``stderr``)."""
        await self._publish(*self._pending(), _core.log_event(text, stream))

    async def flush(self) -> None:
        """Send a count `update` held back by the rate limit."""
        pending = self._pending()
        if pending:
            await self._publish(*pending)

    async def finish(self, message: str | None = None) -> None:
        """End the task as completed."""
        await self._end(_core.status_event("completed", message))

    async def fail(self, message: str, error_type: str = "Error", traceback: str = "") -> None:
        """End the task as failed, with the error shown on the dashboard."""
        await self._end(_core.status_event("failed", message, _core.error_data(message, error_type, traceback)))

    async def cancelled(self, message: str | None = None) -> None:
        """End the task as cancelled: how a script honours `cancel_requested`."""
        await self._end(_core.status_event("cancelled", message))

    async def cancel_requested(self) -> bool:
        """True once someone asked to cancel this task (one request to the hub)."""
        self.snapshot = await self.client.get(self.id)
        return bool(self.snapshot["cancel_requested"])

    def _pending(self) -> list[dict]:
        if not self._unsent:
            return []
        self._unsent = False
        self._sent_at = time.monotonic()
        return [_core.progress_event(self.current)]

    async def _end(self, event: dict) -> None:
        await self._publish(*self._pending(), event)
        self.ended = True

    async def __aenter__(self) -> AsyncTaskHandle:
        return self

    async def __aexit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        if self.ended:
            return
        if exc is None:
            await self.finish()
        elif isinstance(exc, (KeyboardInterrupt, asyncio.CancelledError)):
            await self._end(_core.status_event("cancelled", "interrupted"))
        else:
            text = "".join(traceback_module.format_exception(exc_type, exc, tb))
            await self.fail(str(exc) or exc_type.__name__, exc_type.__name__, text)
