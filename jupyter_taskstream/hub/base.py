"""The base of the hub's API handlers: auth, the publish secret, JSON bodies, error mapping.

Every handler sits behind Jupyter's auth (`web.authenticated` + `authorized` on the
``taskstream`` resource). A kernel launched by this server may instead present the
per-server publish secret, which opens only the verbs listed in ``publisher_verbs``.
Domain errors are mapped to HTTP codes in one place (`TaskStreamHandler.send_error`).
"""

from __future__ import annotations

import hmac
import json
import logging
import re
from typing import Any, Callable
from urllib.parse import parse_qsl

from jupyter_server.auth.decorator import authorized
from jupyter_server.auth.identity import User
from jupyter_server.base.handlers import APIHandler
from jupyter_server.extension.handler import ExtensionHandlerMixin
from jupyter_server.utils import url_path_join
from tornado import web

from ..errors import TaskExists, TaskFinished, TaskNotFound, TaskRunning, TaskStreamError, ValidationError
from ..protocol import SECRET_HEADER, SURROGATE_ESCAPE, TEXT_BATCH_TYPE, decode_text_batch, lone_surrogate_path
from .registry import TaskRegistry
from .store import StoreError

__all__ = [
    "AUTH_RESOURCE",
    "ERROR_STATUS",
    "error_status",
    "KERNEL_ID",
    "MAX_WAIT_SECONDS",
    "PUBLISHER",
    "SECRET_HEADER",
    "TASK_ID",
    "TaskStreamHandler",
    "publisher_or_authorized",
    "safe_uri",
]

AUTH_RESOURCE = "taskstream"
TASK_ID = r"(?P<task_id>[A-Za-z0-9_-]{1,64})"
KERNEL_ID = r"(?P<kernel_id>[A-Za-z0-9_.-]{1,128})"
MAX_WAIT_SECONDS = 60.0

#: One place that says which domain error is which HTTP answer.
ERROR_STATUS: tuple[tuple[type[TaskStreamError], int], ...] = (
    (TaskNotFound, 404),
    (ValidationError, 400),
    (TaskFinished, 409),
    (TaskRunning, 409),
    (TaskExists, 409),
    (StoreError, 503),
)


def error_status(exc: BaseException | None) -> int | None:
    """The HTTP status `ERROR_STATUS` gives a domain error, or None for any other exception."""
    return next((code for cls, code in ERROR_STATUS if isinstance(exc, cls)), None)


PUBLISHER = User(username="taskstream-publisher", name="Kernel publisher")
#: Query arguments: plain decimal ASCII only (``int()`` would also take ``1_0`` and other scripts' digits).
_INTEGER = re.compile(r"[0-9]{1,18}")
_DECIMAL = re.compile(r"[0-9]{1,18}(\.[0-9]{1,18})?")
_app_log = logging.getLogger("tornado.application")
_gen_log = logging.getLogger("tornado.general")


def safe_uri(uri: str) -> str:
    """A request URI fit for a log line: the path, and the query's names without their values.

    EventSource cannot send headers, so ``?token=`` is how browsers authenticate a stream;
    no query value reaches a log, whatever its name.
    """
    path, _, query = uri.partition("?")
    if not query:
        return path
    names = [name for name, _ in parse_qsl(query, keep_blank_values=True)]
    return path + "?" + "&".join(f"{name}=…" for name in names)


class SafeLogMixin:
    """Tornado's error logging with `safe_uri` instead of the raw URI (and no request repr).

    It replaces ``log_exception`` whole rather than tornado's private ``_request_summary``,
    which a tornado upgrade could rename without notice (and tokens would reach the log).
    """

    def request_summary(self) -> str:
        """Method, query-free URI and client address, as tornado logs a request."""
        request = self.request  # type:ignore[attr-defined]
        return f"{request.method} {safe_uri(request.uri or '')} ({request.remote_ip})"

    def log_exception(self, typ, value, tb) -> None:
        if isinstance(value, web.HTTPError):
            message = value.get_message()
            if message:
                _gen_log.warning("%d %s: %s", value.status_code, self.request_summary(), message)
            return
        _app_log.error("Uncaught exception %s", self.request_summary(), exc_info=(typ, value, tb))


def publisher_or_authorized(method: Callable) -> Callable:
    """`authorized` for users; a request holding the publish secret is already scoped."""
    checked = authorized(method)

    def inner(self: TaskStreamHandler, *args: Any, **kwargs: Any):
        if self.publisher:
            return method(self, *args, **kwargs)
        return checked(self, *args, **kwargs)

    inner.__name__ = method.__name__
    inner.__doc__ = method.__doc__
    return inner


class TaskStreamHandler(SafeLogMixin, ExtensionHandlerMixin, APIHandler):
    """Base of the hub's API handlers: auth, JSON bodies, error mapping."""

    auth_resource = AUTH_RESOURCE
    #: HTTP verbs a kernel may call with the publish secret instead of a user's credentials.
    publisher_verbs: frozenset[str] = frozenset()
    publisher = False

    @property
    def registry(self) -> TaskRegistry:
        return self.settings["taskstream_registry"]

    async def prepare(self) -> None:  # type:ignore[override]
        secret = self.request.headers.get(SECRET_HEADER)
        if secret is None:
            await super().prepare()
            return
        expected = self.settings["taskstream_secret"]
        if not hmac.compare_digest(secret.encode("utf-8", "replace"), expected.encode()):
            raise web.HTTPError(403, "invalid publish secret")
        if self.request.method not in self.publisher_verbs:
            raise web.HTTPError(403, "the publish secret only creates tasks and publishes events")
        # The secret is a header a browser cannot be tricked into sending, so no XSRF check.
        self.publisher = True
        # Public setter only: jupyter_server's own copy (_jupyter_current_user) is read by its
        # XSRF check, which check_xsrf_cookie below skips for the publisher anyway.
        self.current_user = PUBLISHER

    def check_xsrf_cookie(self) -> None:
        if self.publisher:
            return None
        return super().check_xsrf_cookie()

    def send_error(self, status_code: int = 500, **kwargs: Any) -> None:
        exc_info = kwargs.get("exc_info")
        exc = exc_info[1] if exc_info else None
        code = error_status(exc)
        if code is not None:
            kwargs["exc_info"] = (web.HTTPError, web.HTTPError(code, str(exc)), exc_info[2])
            status_code = code
        super().send_error(status_code, **kwargs)

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        if status_code == 405:
            # RFC 9110: a 405 says which methods the resource has (tornado leaves it out).
            self.set_header("Allow", ", ".join(allowed_methods(type(self))))
        super().write_error(status_code, **kwargs)

    def log_exception(self, typ, value, tb) -> None:  # type:ignore[override]
        if isinstance(value, TaskStreamError):
            self.log.info("%s %s: %s", self.request.method, self.request.path, value)
            return
        super().log_exception(typ, value, tb)

    def json_body(self, text_batch: bool = False) -> Any:
        """The request body parsed as JSON; 413 when too large, 400 when not JSON.

        With ``text_batch``, a body sent as `TEXT_BATCH_TYPE` is read as one (see `batchbody`).
        """
        text_batch = text_batch and self.request.headers.get("Content-Type", "").partition(";")[0].strip() == TEXT_BATCH_TYPE
        return self.parse_body(self.request.body, text_batch)

    def parse_body(self, body: bytes, text_batch: bool = False) -> Any:
        """``body`` (a request's, or a publish socket's message) parsed: JSON, or a text batch."""
        limit = self.settings["taskstream_max_body_bytes"]
        if len(body) > limit:
            raise web.HTTPError(413, f"request body is larger than {limit} bytes")
        if not body:
            raise web.HTTPError(400, "request body must be JSON")
        if text_batch:
            data, json_part = decode_text_batch(body), body.partition(b"\n")[0]
        else:
            data, json_part = self._parse_json(body), body
        if SURROGATE_ESCAPE.search(json_part):
            path = lone_surrogate_path(data)
            if path is not None:
                raise ValidationError(path, "must be valid Unicode text (it holds a lone surrogate)")
        return data

    @staticmethod
    def _parse_json(body: bytes) -> Any:
        try:
            # Strict UTF-8 first: json.loads(bytes) decodes with "surrogatepass", so the bytes of
            # an encoded surrogate (ED A0 80) became a lone surrogate no check saw, and the
            # store could not write it (a 503 found by the fuzz test, issue 15).
            text = body.decode("utf-8")
        except UnicodeDecodeError as e:
            raise web.HTTPError(400, f"request body is not valid UTF-8: {e.reason} at byte {e.start}") from None
        try:
            return json.loads(text)
        except ValueError as e:
            raise web.HTTPError(400, f"request body is not valid JSON: {e}") from e
        except RecursionError:
            raise web.HTTPError(400, "request body is nested too deeply") from None

    def query_number(self, name: str, *, default=None, minimum=0.0, maximum=None, integer=False):
        """A numeric query argument, or 400 naming it."""
        # Unstripped: tornado turns control characters into spaces and strips them, which would
        # make ``?wait=%06`` an empty value, read as "not given", instead of the 400 it is.
        raw = self.get_query_argument(name, None, strip=False)
        if raw is None or raw == "":
            return default
        if not (_INTEGER if integer else _DECIMAL).fullmatch(raw):
            kind = "an integer" if integer else "a number"
            raise web.HTTPError(400, f"query argument {name} must be {kind} in decimal digits")
        value = int(raw) if integer else float(raw)
        if value < minimum:
            raise web.HTTPError(400, f"query argument {name} must be >= {minimum}")
        if maximum is not None and value > maximum:
            value = maximum
        return value

    def task_url(self, task_id: str) -> str:
        """Base-url-aware path of a task's polling endpoint."""
        return url_path_join(self.base_url, "taskstream/api/tasks", task_id)

    def write_json(self, data: Any, status: int = 200) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(data, ensure_ascii=False, allow_nan=False))


def allowed_methods(handler: type[web.RequestHandler]) -> list[str]:
    """The HTTP methods a handler class implements (those tornado's base does not stub)."""
    return [
        m for m in handler.SUPPORTED_METHODS
        if getattr(handler, m.lower(), None) is not getattr(web.RequestHandler, m.lower(), None)
    ]  # fmt: skip
