"""Exceptions the client raises: each carries the server's message and HTTP status.

Every one subclasses `ClientError` (itself a `TaskStreamError`) and the stdlib error it
means, so ``except KeyError`` catches a missing task and ``except ConnectionError`` a
server that is not there, as with the package's other errors.
"""

from __future__ import annotations

from ..errors import TaskStreamError

__all__ = [
    "BadRequest",
    "ClientError",
    "Conflict",
    "NotFound",
    "ServerError",
    "ServerUnreachable",
    "Unauthorized",
    "WaitTimeout",
    "error_for_status",
]


class ClientError(TaskStreamError):
    """Base of the client's errors; ``status`` is the HTTP status (None without an answer)."""

    def __init__(self, message: str, status: int | None = None):
        self.message = message
        self.status = status
        super().__init__(message)

    def __str__(self) -> str:
        return self.message


class BadRequest(ClientError, ValueError):
    """The server refused the request's input (400, 413); the message names the field."""


class Unauthorized(ClientError, PermissionError):
    """No valid token, or the token may not do this (401, 403)."""


class NotFound(ClientError, KeyError):
    """No such task (404)."""


class Conflict(ClientError, RuntimeError):
    """The task's state forbids this (409): e.g. deleting a running task, updating a finished one."""


class ServerError(ClientError, RuntimeError):
    """The server failed (5xx)."""


class ServerUnreachable(ClientError, ConnectionError):
    """No answer from the server: none runs at the URL, or the network is down."""


class WaitTimeout(ClientError, TimeoutError):
    """`wait` gave up before the task ended."""


def error_for_status(status: int, message: str) -> ClientError:
    """The exception for an HTTP error status and the server's message."""
    if status in (401, 403):
        cls: type[ClientError] = Unauthorized
        if not message or message in ("Forbidden", "Unauthorized") or message.startswith("HTTP "):
            # Jupyter says only "Forbidden" for a missing or wrong token: say which it is about.
            message = f"the server refused the credentials (HTTP {status}): check the token"
    elif status == 404:
        cls = NotFound
    elif status == 409:
        cls = Conflict
    elif 400 <= status < 500:
        cls = BadRequest
    else:
        cls = ServerError
    return cls(message or f"HTTP {status}", status)
