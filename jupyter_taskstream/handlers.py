"""HTTP handlers of the hub: REST polling, SSE streams, publishing, cancel and delete.

Every handler sits behind Jupyter's auth (`web.authenticated` + `authorized` on the
``taskstream`` resource). A kernel launched by this server may instead present the
per-server publish secret, which opens only the verbs listed in ``publisher_verbs``.
Domain errors are mapped to HTTP codes in one place (`TaskStreamHandler.send_error`).
"""

from __future__ import annotations

import asyncio
import functools
import hmac
import json
import math
import pathlib
import random
from typing import Any, Callable

import jinja2
from jupyter_server.auth.decorator import authorized
from jupyter_server.auth.identity import User
from jupyter_server.base.handlers import APIHandler, JupyterHandler
from jupyter_server.extension.handler import ExtensionHandlerMixin
from jupyter_server.utils import ensure_async, url_path_join
from tornado import web
from tornado.iostream import StreamClosedError

from . import sse
from .errors import TaskExists, TaskFinished, TaskNotFound, TaskRunning, TaskStreamError, ValidationError
from .eventlog import Event, EventLog
from .model import STATUSES, validate_event, validate_task_id, validate_task_spec
from .registry import SubscriberTooSlow, TaskRegistry
from .store import StoreError

AUTH_RESOURCE = "taskstream"
SECRET_HEADER = "X-TaskStream-Secret"
TASK_ID = r"(?P<task_id>[A-Za-z0-9_-]{1,64})"
KERNEL_ID = r"(?P<kernel_id>[A-Za-z0-9_.-]{1,128})"
MAX_WAIT_SECONDS = 60.0
TEMPLATES_DIR = pathlib.Path(__file__).parent / "templates"

#: One place that says which domain error is which HTTP answer.
ERROR_STATUS: tuple[tuple[type[TaskStreamError], int], ...] = (
    (TaskNotFound, 404),
    (ValidationError, 400),
    (TaskFinished, 409),
    (TaskRunning, 409),
    (TaskExists, 409),
    (StoreError, 503),
)

PUBLISHER = User(username="taskstream-publisher", name="Kernel publisher")


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


class TaskStreamHandler(ExtensionHandlerMixin, APIHandler):
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
        self.current_user = self._jupyter_current_user = PUBLISHER

    def check_xsrf_cookie(self) -> None:
        if self.publisher:
            return None
        return super().check_xsrf_cookie()

    def send_error(self, status_code: int = 500, **kwargs: Any) -> None:
        exc_info = kwargs.get("exc_info")
        exc = exc_info[1] if exc_info else None
        for cls, code in ERROR_STATUS:
            if isinstance(exc, cls):
                http_error = web.HTTPError(code, str(exc))
                kwargs["exc_info"] = (web.HTTPError, http_error, exc_info[2])
                status_code = code
                break
        super().send_error(status_code, **kwargs)

    def log_exception(self, typ, value, tb) -> None:  # type:ignore[override]
        if isinstance(value, TaskStreamError):
            self.log.info("%s %s: %s", self.request.method, self.request.path, value)
            return
        super().log_exception(typ, value, tb)

    def json_body(self) -> Any:
        """The request body parsed as JSON; 413 when too large, 400 when not JSON."""
        limit = self.settings["taskstream_max_body_bytes"]
        body = self.request.body
        if len(body) > limit:
            raise web.HTTPError(413, f"request body is larger than {limit} bytes")
        if not body:
            raise web.HTTPError(400, "request body must be JSON")
        try:
            return json.loads(body)
        except (ValueError, UnicodeDecodeError) as e:
            raise web.HTTPError(400, f"request body is not valid JSON: {e}") from e

    def query_number(self, name: str, *, default=None, minimum=0.0, maximum=None, integer=False):
        """A numeric query argument, or 400 naming it."""
        raw = self.get_query_argument(name, None)
        if raw is None or raw == "":
            return default
        try:
            value = int(raw) if integer else float(raw)
        except ValueError:
            kind = "an integer" if integer else "a number"
            raise web.HTTPError(400, f"query argument {name} must be {kind}") from None
        if not math.isfinite(value) or value < minimum:
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


def _validate_events(raw: Any, *, with_task: bool) -> list[tuple[str | None, str, dict]]:
    """Validate an ``events`` array; every event is checked before any is applied."""
    if not isinstance(raw, list):
        raise ValidationError("events", "must be an array")
    out = []
    for i, item in enumerate(raw):
        field = f"events[{i}]"
        if not isinstance(item, dict):
            raise ValidationError(field, "must be an object")
        task_id = None
        if with_task:
            task_id = validate_task_id(item.get("task"), f"{field}.task")
        etype, data = validate_event(item.get("type"), item.get("data", {}), field)
        out.append((task_id, etype, data))
    return out


def _body_object(body: Any, allowed: tuple[str, ...]) -> dict:
    if not isinstance(body, dict):
        raise ValidationError("body", "must be a JSON object")
    extra = sorted(set(body) - set(allowed))
    if extra:
        raise ValidationError(extra[0], "is not a known field")
    return body


class TaskListHandler(TaskStreamHandler):
    """``/taskstream/api/tasks``: list and create tasks."""

    publisher_verbs = frozenset({"POST"})

    @web.authenticated
    @authorized
    async def get(self) -> None:
        """List tasks newest first, optionally filtered by ``?status=``."""
        status = self.get_query_argument("status", None)
        if status is not None and status not in STATUSES:
            raise ValidationError("status", f"must be one of {', '.join(STATUSES)}")
        self.write_json({"tasks": self.registry.snapshots(status)})

    @web.authenticated
    @publisher_or_authorized
    async def post(self) -> None:
        """Create an externally driven task; 201 with its snapshot and Location."""
        spec = validate_task_spec(self.json_body(), "", require_id=False)
        if "code" in spec:
            await self.start_in_kernel(spec)
            return
        if "kernel_id" in spec and not self.publisher:
            raise ValidationError("kernel_id", "may only be set by a kernel's runtime")
        if self.publisher and "id" in spec:
            task = self.registry.ensure(spec)  # a kernel's retry of its own task is not a conflict
        else:
            task = self.registry.create(
                spec["name"],
                total=spec["total"],
                unit=spec["unit"],
                kernel_id=spec.get("kernel_id"),
                task_id=spec.get("id"),
            )
        await self.registry.commit()
        self.set_header("Location", self.task_url(task.id))
        self.write_json(self.registry.snapshot(task.id), 201)

    async def start_in_kernel(self, spec: dict) -> None:
        """Run ``code`` as a task in a kernel: 202, ``pending`` until the kernel takes it."""
        if self.publisher:
            raise web.HTTPError(403, "the publish secret cannot run code")
        # Starting code in a kernel is executing code there: ask for that very permission.
        authorizer = self.authorizer
        allowed = await ensure_async(authorizer.is_authorized(self, self.current_user, "execute", "kernels"))
        if not allowed:
            raise web.HTTPError(403, "running code in a kernel needs the execute permission on kernels")
        kernel_id = spec["kernel_id"]
        manager = self.kernel_manager
        if kernel_id not in manager:
            raise web.HTTPError(404, f"no kernel with id {kernel_id!r}")
        task = self.registry.start_in_kernel(kernel_id, spec["name"], spec["code"], spec["total"])
        if not self.registry.has_command_listener(kernel_id):
            await self.settings["taskstream_app"].bootstrap_runtime(kernel_id)
        await self.registry.commit()
        self.set_header("Location", self.task_url(task.id))
        self.write_json(self.registry.snapshot(task.id), 202)


class TaskHandler(TaskStreamHandler):
    """``/taskstream/api/tasks/{id}``: the polling endpoint, and delete."""

    @web.authenticated
    @authorized
    async def get(self, task_id: str) -> None:
        """The task's snapshot; ETag/304, and long-poll with ``?wait=S&after=ID``."""
        snapshot = self.registry.snapshot(task_id)
        wait = self.query_number("wait", default=0.0, maximum=MAX_WAIT_SECONDS)
        after = self.query_number("after", default=None, integer=True)
        if wait:
            cursor = self.registry.log(task_id).last_id if after is None else after
            await self.registry.log(task_id).wait(cursor, wait)
            snapshot = self.registry.snapshot(task_id)  # 404 if it was deleted meanwhile
        self.set_header("ETag", self.registry.etag(task_id))
        self.set_header("Cache-Control", "no-cache")
        if self.check_etag_header():
            # Unchanged: one header-only response, the cheapest answer a poller can get.
            self.set_status(304)
            self.finish()
            return
        self.write_json(snapshot)

    @web.authenticated
    @authorized
    async def delete(self, task_id: str) -> None:
        """Remove a finished task and its log; 409 while it runs."""
        self.registry.delete(task_id)
        await self.registry.commit()
        self.set_status(204)
        self.finish()


class TaskLogHandler(TaskStreamHandler):
    """``/taskstream/api/tasks/{id}/log``: the captured output, for polling clients."""

    @web.authenticated
    @authorized
    async def get(self, task_id: str) -> None:
        """Log events after ``?after=ID`` (at most ``?limit=``), and the cursor to ask with next."""
        after = self.query_number("after", default=0, integer=True)
        limit = self.query_number("limit", default=10_000, minimum=1, maximum=10_000, integer=True)
        log = self.registry.log(task_id)
        truncated = after < log.trimmed_through
        events = log.after(max(after, log.trimmed_through))
        lines = []
        cursor = log.last_id
        for event in events:
            if event.type != "log":
                continue
            if len(lines) == limit:
                cursor = lines[-1]["id"]
                break
            lines.append(event.to_json())
        self.write_json({"events": lines, "last_event_id": cursor, "truncated": truncated})


class CancelHandler(TaskStreamHandler):
    """``/taskstream/api/tasks/{id}/cancel``."""

    @web.authenticated
    @authorized
    async def post(self, task_id: str) -> None:
        """Ask whoever runs the task to stop it; 202 with the snapshot."""
        self.registry.request_cancel(task_id)
        await self.registry.commit()
        self.write_json(self.registry.snapshot(task_id), 202)


class EventStreamHandler(TaskStreamHandler):
    """Shared SSE machinery: headers, first byte at once, replay, heartbeats, clean up."""

    _subscription = None
    _stall_timer = None

    def initialize(self, *args: Any, **kwargs: Any) -> None:
        super().initialize(*args, **kwargs)
        self._closed = False

    def compute_etag(self) -> None:
        return None  # a stream has no etag, and tornado must not buffer it to compute one

    def last_event_id(self) -> int | None:
        """The resume point: ``Last-Event-ID`` header, else ``?last_event_id=``."""
        raw = self.request.headers.get("Last-Event-ID") or self.get_query_argument("last_event_id", None)
        if raw is None or raw.strip() == "":
            return None
        try:
            value = int(raw)
        except ValueError:
            return -1  # unparseable: treated as unknown, so the client gets a fresh snapshot
        return value

    def start_stream(self) -> None:
        self.set_header("Content-Type", "text/event-stream; charset=utf-8")
        self.set_header("Cache-Control", "no-cache")
        self.set_header("X-Accel-Buffering", "no")
        # Randomized so that many clients dropped at once do not reconnect at once.
        base = self.settings["taskstream_retry_ms"]
        self.write(sse.retry(base + random.randint(0, base)))

    async def send(self, chunk: bytes) -> None:
        """Write and flush; a client that does not drain its socket in time is disconnected."""
        self.write(chunk)
        flushed = self.flush()
        if not self.request.connection.stream.writing():
            # The socket took every byte: waiting for `flushed` would only cost two more loop
            # turns per event per subscriber (the fan-out hot path). A full socket still waits.
            return
        loop = asyncio.get_running_loop()
        self._stall_timer = loop.call_later(self.settings["taskstream_write_timeout"], self._stalled)
        try:
            await flushed
        finally:
            self._stall_timer.cancel()

    def _stalled(self) -> None:
        self.log.warning("taskstream: dropping a subscriber that stopped reading (%s)", self.request.path)
        self.request.connection.close()

    async def pump(self, log: EventLog, cursor: int, encode: Callable[[Event], bytes], *, ends: bool) -> None:
        """Send events after ``cursor`` until the log closes, the task ends or the client goes."""
        heartbeat = self.settings["taskstream_heartbeat_interval"]
        self._subscription = sub = self.registry.subscribe(log, cursor)
        try:
            while not self._closed:
                batch = await sub.next(heartbeat)
                if batch is None:
                    await self.send(sse.comment("heartbeat"))
                    continue
                if not batch:
                    break
                await self.send(b"".join(encode(e) for e in batch))
                if ends and batch[-1].type == "end":
                    break
        except SubscriberTooSlow:
            self.log.warning("taskstream: subscriber fell too far behind, dropped; it resumes by id")
            self.request.connection.close()
            return
        except StreamClosedError:
            return
        finally:
            sub.close()
        if not self._closed:
            self.finish()

    def on_connection_close(self) -> None:
        self._closed = True
        if self._subscription is not None:
            self._subscription.close()


class TaskEventsHandler(EventStreamHandler):
    """``/taskstream/api/tasks/{id}/events``: SSE of one task (POST is publishing, above)."""

    publisher_verbs = frozenset({"POST"})

    @web.authenticated
    @authorized
    async def get(self, task_id: str) -> None:
        """Stream a task: ``retry``, a snapshot or the replay after Last-Event-ID, live events, ``end``."""
        registry = self.registry
        task = registry.get(task_id)
        log = registry.log(task_id)
        cursor = registry.resume_point(log, self.last_event_id())
        self.start_stream()
        if cursor is None:
            event_id, data = registry.snapshot_event(task_id)
            self.write(sse.encode_json(data, event="snapshot", id=event_id))
            cursor = event_id
        if task.terminal and log.last_id <= cursor:
            # The client saw everything already: repeat `end` so it knows to stop reconnecting.
            self.write(log.tail(1)[0].sse())
        try:
            # Headers and first bytes now: proxies and EventSource wait for them (USERS 5),
            # and APIHandler.finish would otherwise relabel an unflushed stream as JSON.
            await self.send(b"")
        except StreamClosedError:
            return
        if task.terminal and log.last_id <= cursor:
            self.finish()
            return
        await self.pump(log, cursor, Event.sse, ends=True)

    @web.authenticated
    @publisher_or_authorized
    async def post(self, task_id: str) -> None:
        """Publish events to this task: every event is validated before any applies; 204."""
        body = _body_object(self.json_body(), ("events",))
        events = _validate_events(body.get("events"), with_task=False)
        self.registry.publish(task_id, [(etype, data) for _, etype, data in events])
        await self.registry.commit()  # acknowledged means stored: the 204 waits for the commit
        self.set_status(204)
        self.finish()


class AllEventsHandler(EventStreamHandler):
    """``/taskstream/api/events``: one SSE stream of every task; POST publishes to many tasks."""

    publisher_verbs = frozenset({"POST"})

    @web.authenticated
    @authorized
    async def get(self) -> None:
        """Stream every task's events (payloads carry ``task``), resumable by Last-Event-ID."""
        registry = self.registry
        log = registry.all_events
        cursor = registry.resume_point(log, self.last_event_id())
        self.start_stream()
        if cursor is None:
            event_id, data = registry.all_snapshot_event()
            self.write(sse.encode_json(data, event="snapshot", id=event_id))
            cursor = event_id
        try:
            await self.send(b"")
        except StreamClosedError:
            return
        await self.pump(log, cursor, Event.sse_all, ends=False)

    @web.authenticated
    @publisher_or_authorized
    async def post(self) -> None:
        """Create tasks and publish events to many tasks in one request; 204.

        Body ``{"tasks": [spec, ...]?, "events": [{"task", "type", "data"}, ...],
        "publisher": str?, "seq": int?}``; a repeated ``(publisher, seq)`` is a retry and is
        ignored. Events for finished or unknown tasks are skipped: 200 ``{"skipped": {id: why}}``.
        """
        body = _body_object(self.json_body(), ("tasks", "events", "publisher", "seq"))
        specs_raw = body.get("tasks", [])
        if not isinstance(specs_raw, list):
            raise ValidationError("tasks", "must be an array")
        specs = [validate_task_spec(s, f"tasks[{i}]", require_id=True) for i, s in enumerate(specs_raw)]
        events = _validate_events(body.get("events", []), with_task=True)
        publisher, seq = body.get("publisher"), body.get("seq")
        if publisher is not None or seq is not None:
            if not isinstance(publisher, str) or not publisher:
                raise ValidationError("publisher", "must be a non-empty string when seq is given")
            if isinstance(seq, bool) or not isinstance(seq, int):
                raise ValidationError("seq", "must be an integer when publisher is given")
        registry = self.registry
        if publisher is not None and registry.publisher_seen(publisher, seq):
            self.set_status(204)
            self.finish()
            return
        skipped = {}
        for spec in specs:
            try:
                registry.ensure(spec)
            except TaskExists as e:  # someone else's id: refuse that task, not the whole batch
                skipped[spec["id"]] = str(e)
        by_task: dict[str, list] = {}
        for task_id, etype, data in events:
            by_task.setdefault(task_id, []).append((etype, data))
        # One finished or unknown task must not block the others a kernel batches with it:
        # its events are skipped and reported, the rest are applied.
        for task_id, items in by_task.items():
            if task_id in skipped:
                continue
            try:
                registry.publish(task_id, items)
            except (TaskNotFound, TaskFinished) as e:
                skipped[task_id] = str(e)
        await registry.commit()  # acknowledged means stored: the answer waits for the commit
        if skipped:
            self.write_json({"skipped": skipped}, 200)
        else:
            self.set_status(204)
            self.finish()


class KernelCommandsHandler(EventStreamHandler):
    """``/taskstream/api/kernels/{kernel_id}/commands``: SSE of cancel/start commands for a kernel."""

    publisher_verbs = frozenset({"GET"})

    @web.authenticated
    async def get(self, kernel_id: str) -> None:
        """The kernel runtime's control channel; only the publish secret may read it."""
        if not self.publisher:
            raise web.HTTPError(403, "only a kernel's runtime reads its commands")
        log = self.registry.commands(kernel_id)
        last = self.last_event_id()
        known = last is not None and log.trimmed_through <= last <= self.registry.last_event_id
        cursor = last if known else log.trimmed_through
        self.start_stream()
        try:
            await self.send(b"")
        except StreamClosedError:
            return
        await self.pump(log, cursor, Event.sse, ends=False)


class TaskPageHandler(ExtensionHandlerMixin, JupyterHandler):
    """``/taskstream/``: the live dashboard, with a server-rendered task table for browsers without JS."""

    auth_resource = AUTH_RESOURCE

    @property
    def content_security_policy(self) -> str:
        """Jupyter's policy, plus: scripts and styles only from the server's own files.

        Defence in depth for a page full of task-supplied text: even a string that reached
        the DOM as HTML could not run inline script. An admin-set policy is left alone.
        """
        if "Content-Security-Policy" in self.settings.get("headers", {}):
            return super().content_security_policy
        return "; ".join(
            [
                super().content_security_policy,
                "default-src 'self'",
                "script-src 'self'",
                "style-src 'self'",
                "img-src 'self' data:",
                "object-src 'none'",
                "base-uri 'none'",
            ]
        )

    @web.authenticated
    @authorized
    async def get(self) -> None:
        """The dashboard: config as a JSON block, JS and CSS as static files, a <noscript> table."""
        registry: TaskRegistry = self.settings["taskstream_registry"]
        config = {
            "baseUrl": self.base_url,
            "apiUrl": url_path_join(self.base_url, "taskstream/api") + "/",
            "xsrfToken": self.xsrf_token.decode("ascii"),
            # Lets the page measure elapsed time on the server's clock, not a skewed local one.
            "serverTime": registry.clock(),
        }
        rows = []
        for task in registry.snapshots():
            p = task["progress"]
            pct = "" if p["fraction"] is None else f"{p['fraction'] * 100:.0f}%"
            total = "" if p["total"] is None else f"/{p['total']:g}"
            rows.append(
                {
                    "id": task["id"],
                    "url": url_path_join(self.base_url, "taskstream/api/tasks", task["id"]),
                    "name": task["name"],
                    "status": task["status"],
                    "progress": f"{p['current']:g}{total} {p['unit']} {pct}".strip(),
                    "message": task["message"],
                }
            )
        html = _page_template().render(
            config=config,
            rows=rows,
            css_url=self.static_url("dashboard.css"),
            js_url=self.static_url("dashboard.js"),
            favicon_url=url_path_join(self.base_url, "static/favicon.ico"),
        )
        self.set_header("Content-Type", "text/html; charset=utf-8")
        self.finish(html)


@functools.lru_cache(maxsize=None)
def _page_template() -> jinja2.Template:
    """The dashboard page template; autoescaped, and its config goes through ``tojson``."""
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES_DIR), autoescape=True)
    return env.get_template("dashboard.html")


class NotFoundHandler(TaskStreamHandler):
    """Any other path under ``/taskstream/api/``: a JSON 404, not an HTML page."""

    async def prepare(self) -> None:  # type:ignore[override]
        await super().prepare()
        if not self.current_user:
            raise web.HTTPError(403)
        raise web.HTTPError(404, f"no such endpoint: {self.request.path}")


default_handlers = [
    (r"/taskstream/?", TaskPageHandler),
    (r"/taskstream/api/tasks", TaskListHandler),
    (rf"/taskstream/api/tasks/{TASK_ID}", TaskHandler),
    (rf"/taskstream/api/tasks/{TASK_ID}/log", TaskLogHandler),
    (rf"/taskstream/api/tasks/{TASK_ID}/events", TaskEventsHandler),
    (rf"/taskstream/api/tasks/{TASK_ID}/cancel", CancelHandler),
    (r"/taskstream/api/events", AllEventsHandler),
    (rf"/taskstream/api/kernels/{KERNEL_ID}/commands", KernelCommandsHandler),
    (r"/taskstream/api/.*", NotFoundHandler),
]
