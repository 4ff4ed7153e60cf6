"""The hub's REST handlers (list, create, poll, log, cancel, delete) and its route table.

SSE streams are in `streams`, publishing in `ingest`, the dashboard page in `page`, the
shared base in `base`. The route table at the bottom joins a stream and its publishing
into one handler where they share a URL.
"""

from __future__ import annotations

from jupyter_server.auth.decorator import authorized
from jupyter_server.utils import ensure_async
from tornado import web

from ..errors import ValidationError
from ..protocol import STATUSES, validate_task_spec
from .base import KERNEL_ID, MAX_WAIT_SECONDS, TASK_ID, TaskStreamHandler, publisher_or_authorized
from .ingest import BatchIngest, TaskEventsIngest
from .openapi import OpenAPIHandler
from .page import TaskPageHandler
from .pubsocket import PublishSocket
from .streams import AllEventsStream, KernelCommandsHandler, TaskEventsStream

__all__ = [
    "AllEventsHandler",
    "CancelHandler",
    "NotFoundHandler",
    "TaskHandler",
    "TaskEventsHandler",
    "TaskListHandler",
    "TaskLogHandler",
    "default_handlers",
]


class TaskListHandler(TaskStreamHandler):
    """``/taskstream/api/tasks``: list and create tasks."""

    publisher_verbs = frozenset({"POST"})

    @web.authenticated
    @authorized
    async def get(self) -> None:
        """List tasks newest first, optionally filtered by ``?status=``."""
        status = self.get_query_argument("status", None, strip=False)
        if status is not None and status not in STATUSES:
            raise ValidationError("status", f"must be one of {', '.join(STATUSES)}")
        self.write_json({"tasks": self.registry.snapshots(status)})

    @web.authenticated
    @publisher_or_authorized
    async def post(self) -> None:
        """Create an externally driven task; 201 with its snapshot and Location."""
        body = self.json_body()
        spec = validate_task_spec(body, "", require_id=False, from_kernel=self.publisher, can_run_code=True)
        if "code" in spec:
            await self.start_in_kernel(spec)
            return
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
            await self.settings["taskstream_kernels"].bootstrap_runtime(kernel_id)
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
            cursor = self.registry.event_log(task_id).last_id if after is None else after
            await self.registry.event_log(task_id).wait(cursor, wait)
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
        """Log lines after ``?after=ID`` or before ``?before=ID`` (at most ``?limit=``), or the last ``?tail=N``."""
        after = self.query_number("after", default=0, integer=True)
        before = self.query_number("before", default=None, minimum=1, integer=True)
        limit = self.query_number("limit", default=10_000, minimum=1, maximum=10_000, integer=True)
        tail = self.query_number("tail", default=None, minimum=1, maximum=10_000, integer=True)
        log = self.registry.event_log(task_id)
        cursor = log.last_id
        if before is not None:
            # Paging back: the newest `limit` lines older than `before` (and newer than `after`),
            # oldest first; the next page back is `before=<first id of this one>`. The cursor
            # stays the log's newest id, so a reader that pages back also knows where live starts.
            if tail is not None:  # the last N lines below `before`: the page size, as `limit` is
                limit = min(limit, tail)
            lines = [e.to_json() for e in log.before(before, limit, "log", floor=after)]
            # Truncated when retention dropped lines this page would have held.
            truncated = len(lines) < limit and after < min(log.trimmed_through, before - 1)
            self.write_json({"events": lines, "last_event_id": cursor, "truncated": truncated})
            return
        truncated = after < log.trimmed_through
        events = log.after(max(after, log.trimmed_through))
        lines = []
        if tail is not None:
            lines = [e.to_json() for e in events if e.type == "log"][-min(tail, limit):]
            # Truncated only when retention dropped lines the tail would have shown.
            truncated = truncated and len(lines) < tail
            self.write_json({"events": lines, "last_event_id": cursor, "truncated": truncated})
            return
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


class NotFoundHandler(TaskStreamHandler):
    """Any other path under ``/taskstream/api/``: a JSON 404, not an HTML page."""

    async def prepare(self) -> None:  # type:ignore[override]
        await super().prepare()
        if not self.current_user:
            raise web.HTTPError(403)
        raise web.HTTPError(404, f"no such endpoint: {self.request.path}")


class TaskEventsHandler(TaskEventsStream, TaskEventsIngest):
    """``/taskstream/api/tasks/{id}/events``: GET streams it (`streams`), POST publishes (`ingest`)."""


class AllEventsHandler(AllEventsStream, BatchIngest):
    """``/taskstream/api/events``: GET streams every task (`streams`), POST takes batches (`ingest`)."""


default_handlers = [
    (r"/taskstream/?", TaskPageHandler),
    (r"/taskstream/api/tasks", TaskListHandler),
    (rf"/taskstream/api/tasks/{TASK_ID}", TaskHandler),
    (rf"/taskstream/api/tasks/{TASK_ID}/log", TaskLogHandler),
    (rf"/taskstream/api/tasks/{TASK_ID}/events", TaskEventsHandler),
    (rf"/taskstream/api/tasks/{TASK_ID}/cancel", CancelHandler),
    (r"/taskstream/api/events", AllEventsHandler),
    (r"/taskstream/api/events/socket", PublishSocket),
    (rf"/taskstream/api/kernels/{KERNEL_ID}/commands", KernelCommandsHandler),
    (r"/taskstream/api/openapi\.json", OpenAPIHandler),
    (r"/taskstream/api/.*", NotFoundHandler),
]
