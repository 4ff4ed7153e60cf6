"""What the sync and async clients share: requests as data, answers to results or errors.

Each API call is described once (`Call`: method, path, query, body, expected statuses),
then executed by `Client` with httpx.Client or by `AsyncClient` with httpx.AsyncClient,
so the two cannot drift apart. Also the `Event` a stream yields and the reconnect backoff.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import httpx

from ..protocol import STATUSES, TERMINAL_STATUSES, validate_task_id
from .discovery import Endpoint
from .errors import ClientError, ServerUnreachable, error_for_status

__all__ = ["TERMINAL_STATUSES", "Backoff", "Call", "Event"]

#: Seconds of each long-poll in `wait` (the hub caps ``wait`` at 60).
POLL_SECONDS = 30.0
#: Read timeout on streams: several heartbeats (15 s by default) long, so a dead one is noticed.
STREAM_READ_TIMEOUT = 60.0


@dataclass
class Call:
    """One HTTP request of the API and the statuses that mean success."""

    method: str
    path: str
    params: dict[str, Any] = field(default_factory=dict)
    json: Any = None
    ok: tuple[int, ...] = (200,)

    def request(self, client: httpx.Client | httpx.AsyncClient, endpoint: Endpoint):
        params = {k: v for k, v in self.params.items() if v is not None}
        return client.build_request(
            self.method,
            endpoint.api_url + self.path,
            params=params,
            json=self.json,
            headers=endpoint.headers(),
        )

    def result(self, response: httpx.Response) -> Any:
        """The decoded answer, or the typed error carrying the server's message."""
        if response.status_code not in self.ok:
            raise error_for_status(response.status_code, server_message(response))
        if response.status_code == 204 or not response.content:
            return None
        try:
            return response.json()
        except ValueError:
            raise ClientError(f"the server's answer is not JSON (HTTP {response.status_code})",
                              response.status_code) from None  # fmt: skip


def server_message(response: httpx.Response) -> str:
    """The ``message`` of a Jupyter JSON error, else the status line."""
    try:
        data = json.loads(response.content or b"null")
    except ValueError:
        data = None
    if isinstance(data, dict) and data.get("message"):
        return str(data["message"])
    reason = response.reason_phrase or ""
    return f"HTTP {response.status_code} {reason}".strip()


def unreachable(endpoint: Endpoint, error: Exception) -> ServerUnreachable:
    """The error for a request that got no answer, naming the URL (never the token)."""
    return ServerUnreachable(f"cannot reach the Jupyter server at {endpoint.server_url} ({type(error).__name__})")


def task_path(task_id: str, suffix: str = "") -> str:
    """The path of a task's endpoint; ids are checked so a bad one cannot reach another route."""
    try:
        validate_task_id(task_id)
    except ValueError:
        from .errors import NotFound

        raise NotFound(f"no task with id {task_id!r}", None) from None
    return f"/tasks/{quote(task_id)}{suffix}"


def check_status(status: str | None) -> str | None:
    if status is not None and status not in STATUSES:
        raise ValueError(f"status must be one of {', '.join(STATUSES)}")
    return status


# ---- the calls ----------------------------------------------------------------------------


def list_call(status: str | None) -> Call:
    return Call("GET", "/tasks", {"status": check_status(status)})


def get_call(task_id: str, wait: float | None = None, after: int | None = None) -> Call:
    return Call("GET", task_path(task_id), {"wait": wait, "after": after})


def log_call(task_id: str, after: int | None, limit: int | None, tail: int | None) -> Call:
    return Call("GET", task_path(task_id, "/log"), {"after": after, "limit": limit, "tail": tail})


def cancel_call(task_id: str) -> Call:
    return Call("POST", task_path(task_id, "/cancel"), json={}, ok=(202,))


def delete_call(task_id: str) -> Call:
    return Call("DELETE", task_path(task_id), ok=(204,))


def create_call(name: str, total: float | None, unit: str | None) -> Call:
    body: dict[str, Any] = {"name": name, "total": total}
    if unit is not None:
        body["unit"] = unit
    return Call("POST", "/tasks", json=body, ok=(201,))


def publish_call(task_id: str, events: list[dict]) -> Call:
    return Call("POST", task_path(task_id, "/events"), json={"events": events}, ok=(204,))


def stream_path(task_id: str | None) -> str:
    return "/events" if task_id is None else task_path(task_id, "/events")


# ---- what a handle publishes ---------------------------------------------------------------


def progress_event(current: float, **fields: Any) -> dict:
    data = {"current": current, **{k: v for k, v in fields.items() if v is not None}}
    return {"type": "progress", "data": data}


def log_event(text: str, stream: str) -> dict:
    return {"type": "log", "data": {"stream": stream, "text": text}}


def status_event(status: str, message: str | None = None, error: dict | None = None) -> dict:
    data: dict[str, Any] = {"status": status}
    if message is not None:
        data["message"] = message
    if error is not None:
        data["error"] = error
    return {"type": "status", "data": data}


def error_data(message: str, error_type: str = "Error", traceback: str = "") -> dict:
    return {"type": error_type, "message": message, "traceback": traceback}


# ---- streams ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Event:
    """One event of a stream: ``type`` is ``snapshot``, ``status``, ``progress``, ``log``, ``end``
    or ``deleted``; ``task`` is the task it belongs to (None for the all-tasks snapshot)."""

    id: int | None
    type: str
    data: Any
    task: str | None = None

    @classmethod
    def from_sse(cls, sse: Any, task_id: str | None) -> Event:
        try:
            data = json.loads(sse.data) if sse.data else None
        except ValueError:
            data = sse.data
        try:
            event_id = int(sse.id) if sse.id else None
        except ValueError:
            event_id = None
        task = task_id
        if task is None and isinstance(data, dict):
            task = data.get("task")
        if task is None and sse.event in ("snapshot", "end") and task_id is not None:
            task = task_id
        return cls(event_id, sse.event or "message", data, task)


class Backoff:
    """Reconnect delays: the server's ``retry:`` to start, doubling to ``cap``, with jitter.

    Gives up (`expired`) once connections keep failing for ``give_up`` seconds in a row.
    """

    def __init__(self, first: float = 0.2, cap: float = 5.0, give_up: float = 30.0):
        self.first, self.cap, self.give_up = first, cap, give_up
        self.delay = first
        self.failing_since: float | None = None

    def succeeded(self) -> None:
        self.delay = self.first
        self.failing_since = None

    def next_delay(self, now: float) -> float | None:
        """Seconds to wait before the next attempt, or None to give up."""
        if self.failing_since is None:
            self.failing_since = now
        elif now - self.failing_since > self.give_up:
            return None
        delay = self.delay * (0.5 + random.random())
        self.delay = min(self.delay * 2, self.cap)
        return delay


def stream_timeout(timeout: float) -> httpx.Timeout:
    return httpx.Timeout(timeout, read=STREAM_READ_TIMEOUT)
