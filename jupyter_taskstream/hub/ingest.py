"""The hub's publishing (ingest) handlers: events into one task, and a kernel's batches.

``POST /taskstream/api/tasks/{id}/events`` takes hand-written events: strict, every unknown
field is a 400 that names it. ``POST /taskstream/api/events`` takes the batches a kernel's
runtime sends (or anyone's), each saying which publish protocol it speaks (``protocol``,
absent before version 2):

- a version this hub knows (1 up to `PROTOCOL_VERSION`) is validated strictly;
- a newer version's unknown fields (in the batch, its task specs, its events and their data)
  and unknown event types are skipped and counted in the answer (``"ignored"``), and the
  rest applies: kernels often run a newer package than the server;
- a batch the hub cannot serve (a version older than `OLDEST_PROTOCOL`, or a shape it cannot
  read) gets a 400 naming why, and when a kernel sent it, one line on each task it named
  (stderr) says so, so lost output never goes unnoticed.

Every event of a batch is validated before any applies. The SSE GETs of the same URLs are in
`streams`; `rest` joins both into one handler per URL.
"""

from __future__ import annotations

from typing import Any

from tornado import web

from ..errors import TaskExists, TaskFinished, TaskNotFound, TaskStreamError, ValidationError
from ..protocol import (
    PROTOCOL_HEADER,
    PROTOCOL_VERSION,
    PUBLISHED_EVENT_TYPES,
    check_fields,
    validate_event,
    validate_task_id,
    validate_task_spec,
)
from .base import TaskStreamHandler, publisher_or_authorized
from .store import StoreError

__all__ = ["OLDEST_PROTOCOL", "BatchIngest", "TaskEventsIngest", "validate_events"]

#: The oldest publish protocol this hub serves (1: batches from before the version field).
OLDEST_PROTOCOL = 1
BATCH_FIELDS = ("tasks", "events", "publisher", "seq", "protocol")
EVENT_FIELDS = ("task", "type", "data")
#: Tasks told that a batch of their kernel was refused, kept so each is told once, not per batch.
_TOLD_LIMIT = 10_000


def validate_events(
    raw: Any, *, with_task: bool, ignored: list[str] | None = None, unknown_types: list[str] | None = None
) -> list[tuple[str | None, str, dict]]:
    """Validate an ``events`` array; every event is checked before any is applied.

    With ``ignored`` and ``unknown_types`` lists (a newer peer's batch), unknown fields and
    events of unknown types are skipped and listed there by path instead of refused.
    """
    if not isinstance(raw, list):
        raise ValidationError("events", "must be an array")
    out = []
    for i, item in enumerate(raw):
        field = f"events[{i}]"
        if not isinstance(item, dict):
            raise ValidationError(field, "must be an object")
        etype = item.get("type")
        if unknown_types is not None and isinstance(etype, str) and etype not in PUBLISHED_EVENT_TYPES:
            unknown_types.append(f"{field}.type")
            continue
        if ignored is not None:
            check_fields(item, EVENT_FIELDS, field, ignored)
        task_id = validate_task_id(item.get("task"), f"{field}.task") if with_task else None
        etype, data = validate_event(etype, item.get("data", {}), field, ignored)
        out.append((task_id, etype, data))
    return out


class TaskEventsIngest(TaskStreamHandler):
    """``POST /taskstream/api/tasks/{id}/events``: publish events to one task."""

    publisher_verbs = frozenset({"POST"})

    @web.authenticated
    @publisher_or_authorized
    async def post(self, task_id: str) -> None:
        """Publish events to this task: every event is validated before any applies; 204."""
        body = self.json_body()
        if not isinstance(body, dict):
            raise ValidationError("body", "must be a JSON object")
        check_fields(body, ("events",), "")
        events = validate_events(body.get("events"), with_task=False)
        self.registry.publish(task_id, [(etype, data) for _, etype, data in events])
        await self.registry.commit()  # acknowledged means stored: the 204 waits for the commit
        self.set_status(204)
        self.finish()


class BatchIngest(TaskStreamHandler):
    """``POST /taskstream/api/events``: create tasks and publish to many tasks in one request."""

    publisher_verbs = frozenset({"POST"})

    @web.authenticated
    @publisher_or_authorized
    async def post(self) -> None:
        """Create tasks and publish events to many tasks in one request; 204, or 200 with news.

        Body ``{"tasks": [spec, ...]?, "events": [{"task", "type", "data"}, ...],
        "publisher": str?, "seq": int?, "protocol": int?}``; a repeated ``(publisher, seq)``
        is a retry and is ignored. Events for finished or unknown tasks are skipped, and a
        newer protocol's unknown fields and event types ignored: 200
        ``{"skipped": {id: why}?, "ignored": {"fields": n, "events": n}?}``. The body may
        be a text batch (`protocol.batchbody`); every answer says the protocol this hub speaks.
        """
        answer = await self.apply_batch(self.json_body(text_batch=True))
        if answer:
            self.write_json(answer, 200)
        else:
            self.set_status(204)
            self.finish()

    async def apply_batch(self, body: Any) -> dict[str, Any] | None:
        """Apply a parsed batch once it is stored: None (all applied), or what a 200 says.

        Shared by this POST and the publish socket (`pubsocket`); a ValidationError is a 400.
        """
        try:
            specs, events, publisher, seq, ignored, unknown_types = self._read(body)
        except ValidationError as e:
            if self.publisher:
                self._tell_tasks(body, f"the hub refused a batch of this task's events ({e})")
                try:
                    await self.registry.commit()  # the line is stored before the kernel hears 400
                except StoreError:
                    pass  # the 400 still says why; the store's own error is logged where it failed
            raise
        registry = self.registry
        if publisher is not None and registry.publisher_seen(publisher, seq):
            return None
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
        answer: dict[str, Any] = {}
        if skipped:
            answer["skipped"] = skipped
        if ignored or unknown_types:
            answer["ignored"] = {"fields": len(ignored), "events": len(unknown_types)}
            self.log.debug("taskstream: a newer kernel's batch: skipped fields %s, events %s", ignored[:5], unknown_types[:5])
        return answer or None

    def clear(self) -> None:
        """Tornado's reset of the answer (at the start, and before an error answer): every
        answer says the protocol this hub speaks, so a kernel never takes an error for an
        older hub's."""
        super().clear()
        self.set_header(PROTOCOL_HEADER, str(PROTOCOL_VERSION))

    def _read(self, body: Any) -> tuple[list[dict], list, str | None, int | None, list[str], list[str]]:
        """The batch validated: specs, events, publisher, seq, ignored fields, unknown event types."""
        if not isinstance(body, dict):
            raise ValidationError("body", "must be a JSON object")
        version = body.get("protocol", 1)  # absent: a kernel from before the field existed
        if isinstance(version, float) and version.is_integer():
            version = int(version)  # 3.0 is the integer 3 in JSON (and in the description's schema)
        if isinstance(version, bool) or not isinstance(version, int):
            raise ValidationError("protocol", "must be an integer (the publish protocol version)")
        if version < OLDEST_PROTOCOL:
            raise ValidationError(
                "protocol", f"{version} is older than this hub serves ({OLDEST_PROTOCOL}-{PROTOCOL_VERSION})"
            )
        # A newer peer may add what this hub does not know: skipped and counted, not refused.
        newer = version > PROTOCOL_VERSION
        ignored: list[str] = []
        unknown_types: list[str] = []
        check_fields(body, BATCH_FIELDS, "", ignored if newer else None)
        specs_raw = body.get("tasks", [])
        if not isinstance(specs_raw, list):
            raise ValidationError("tasks", "must be an array")
        specs = [
            validate_task_spec(
                s, f"tasks[{i}]", require_id=True, from_kernel=self.publisher, ignored=ignored if newer else None
            )
            for i, s in enumerate(specs_raw)
        ]
        events = validate_events(
            body.get("events", []),
            with_task=True,
            ignored=ignored if newer else None,
            unknown_types=unknown_types if newer else None,
        )
        publisher, seq = body.get("publisher"), body.get("seq")
        if isinstance(seq, float) and seq.is_integer():
            seq = int(seq)  # as the protocol's version: JSON has one number type
        if "publisher" in body or "seq" in body:  # given as null is given: refused, not read as absent
            if not isinstance(publisher, str) or not publisher:
                raise ValidationError("publisher", "must be a non-empty string when seq is given")
            if isinstance(seq, bool) or not isinstance(seq, int):
                raise ValidationError("seq", "must be an integer when publisher is given")
        return specs, events, publisher, seq, ignored, unknown_types

    def _tell_tasks(self, body: Any, message: str) -> None:
        """Put ``message`` on each running task a refused kernel batch named, once per task.

        The kernel's runtime reports the 400 too, but in the kernel; this puts it where the
        task's viewers look. A task the batch would have created is created to carry it.
        """
        told: set[str] = self.settings["taskstream_told_refused"]
        if len(told) > _TOLD_LIMIT:
            told.clear()
        registry = self.registry
        ids: list[str] = []
        if isinstance(body, dict):
            for spec in body.get("tasks", []) if isinstance(body.get("tasks"), list) else []:
                try:
                    spec = validate_task_spec(spec, "", require_id=True, from_kernel=True, ignored=[])
                    ids.append(registry.ensure(spec).id)
                except TaskStreamError:
                    continue
            for item in body.get("events", []) if isinstance(body.get("events"), list) else []:
                if isinstance(item, dict) and isinstance(item.get("task"), str):
                    ids.append(item["task"])
        self.log.warning("taskstream: %s", message)
        for task_id in dict.fromkeys(ids):
            if task_id in told or not registry.is_running(task_id):
                continue
            told.add(task_id)
            registry.publish(task_id, [("log", {"stream": "stderr", "text": f"[taskstream] {message}"})])
