"""Write jupyter_taskstream/hub/openapi.json: the hub's OpenAPI 3.2 description.

Written from Python so the repeated parts (errors, security, the SSE event variants of the
one-task and all-tasks streams) are said once; the JSON is what ships and what is served.
Run ``python scripts/make_openapi.py`` after changing an endpoint; tests/hub/test_openapi.py
fails when the README's endpoint table and the description disagree.
"""

from __future__ import annotations

import json
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))
from jupyter_taskstream.protocol import PROTOCOL_VERSION, PUBLISHED_EVENT_TYPES  # noqa: E402

OUT = pathlib.Path(__file__).resolve().parent.parent / "jupyter_taskstream" / "hub" / "openapi.json"

TASK_ID = {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,64}$"}
BAR_ID = {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,32}$"}
STATUSES = ["pending", "running", "completed", "failed", "cancelled"]
# JSON numbers the hub takes: >= 0 and at most 1e308 (protocol.validate.MAX_COUNT), so a
# number just past a float's range, which a JSON parser may round down to the largest float,
# is refused like one that overflows.
COUNT = {"type": "number", "minimum": 0, "maximum": 1e308}
NULLABLE_COUNT = {"type": ["number", "null"], "minimum": 0, "maximum": 1e308}
# Query numbers are plain decimal digits (no exponent, no sign): the hub refuses other spellings.
# An empty value is the same as leaving the argument out (what a form or a template sends).
DECIMAL = "^([0-9]{1,18}(\\.[0-9]{1,18})?)?$"
#: An event id (cursor): 0 and up.
CURSOR = "^[0-9]{0,18}$"
#: A count: 1 and up, at most 18 digits.
POSITIVE = "^(?=[0-9]{1,18}$)0*[1-9][0-9]*$|^$"


#: A character Python's ``str.strip()`` keeps: the hub refuses names and code that are all whitespace.
NOT_SPACE = "[^\\t\\n\\v\\f\\r\\x1c-\\x20\\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000]"


def ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


#: The publish protocol a hub speaks, in every answer of the batch endpoint.
PROTOCOL_HEADERS = {"X-TaskStream-Protocol": {
    "description": "The publish protocol this hub speaks (4: it takes text batches).",
    "schema": {"type": "string", "pattern": "^[0-9]+$"}}}  # fmt: skip


def json_body(schema: dict, description: str) -> dict:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def error(description: str) -> dict:
    return {"$ref": f"#/components/responses/{description}"}


ERRORS = {
    "400": error("BadRequest"),
    "403": error("Forbidden"),
}
TASK_ERRORS = {**ERRORS, "404": error("NotFound")}


def task_param() -> dict:
    return {"$ref": "#/components/parameters/TaskId"}


def event_variants(all_tasks: bool) -> list[dict]:
    """One schema per SSE event of a stream; on the all-tasks stream payloads carry ``task``."""

    def payload(schema: dict) -> dict:
        if not all_tasks:
            return schema
        if "$ref" in schema:
            return {"allOf": [schema, {"type": "object", "required": ["task"],
                                       "properties": {"task": TASK_ID}}]}  # fmt: skip
        props = {**schema["properties"], "task": TASK_ID}
        return {**schema, "properties": props, "required": [*schema.get("required", []), "task"]}

    def event(name: str, data: dict, description: str) -> dict:
        return {
            "title": name,
            "description": description,
            "type": "object",
            "required": ["event", "data", "id"],
            "properties": {
                "event": {"const": name},
                "id": {"type": "string", "pattern": "^[0-9]+$"},
                "retry": {"type": "integer", "minimum": 0},
                "data": {"type": "string", "contentMediaType": "application/json", "contentSchema": data},
            },
        }

    snapshot = ref("AllTasksSnapshot") if all_tasks else ref("TaskSnapshotWithLog")
    variants = [
        event("snapshot", snapshot, "First event of a fresh stream (and after an id the hub cannot place); "
              "its id is the last event it covers."),  # fmt: skip
        event("status", payload(ref("StatusData")), "A status change, a task's first status carries its name; "
              "a cancel request carries cancel_requested."),  # fmt: skip
        event("progress", payload(ref("ProgressData")), "Coalesced progress: the latest value wins."),
        event("log", payload(ref("LogData")), "One line of captured output; never dropped or reordered."),
        event("end", ref("TaskSnapshot") if not all_tasks else payload(ref("TaskSnapshot")),
              "The final snapshot after a terminal status; the one-task stream then closes."),  # fmt: skip
    ]
    if all_tasks:
        variants.append(event("deleted", payload({"type": "object", "properties": {}, "additionalProperties": False}),
                              "The task was removed (DELETE or max_tasks)."))  # fmt: skip
    return variants


#: What a newer protocol's batch may extend: copies named ``Newer...`` take unknown keys.
EXTENSIBLE = ("TaskSpecWithId", "PublishedEvent", "PublishedStatus", "PublishedProgress", "PublishedLog", "Bar")


def extensible(schema):
    """A copy of ``schema`` that also takes unknown keys, as the hub reads a newer protocol's batch."""
    if isinstance(schema, list):
        return [extensible(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out = {key: extensible(value) for key, value in schema.items() if (key, value) != ("additionalProperties", False)}
    name = out.get("$ref", "").rpartition("/")[2]
    if name in EXTENSIBLE:
        out["$ref"] = f"#/components/schemas/Newer{name}"
    return out


def newer_batch(schemas: dict) -> dict:
    """``NewerBatch`` and the extensible copies it refers to."""
    out = {f"Newer{name}": extensible(schemas[name]) for name in EXTENSIBLE}
    # A user's token may not claim a kernel, in a newer batch too (the field is known, not skipped).
    spec = out["NewerTaskSpecWithId"]
    spec["properties"] = {**spec["properties"], "kernel_id": {"type": "null"}}
    batch = extensible(schemas["KnownBatch"])
    batch["description"] = (f"A batch of a newer protocol than this hub's ({PROTOCOL_VERSION}): unknown fields, "
                            "anywhere, and events of unknown types are skipped and counted.")  # fmt: skip
    batch["required"] = ["protocol"]
    batch["properties"] = {
        **batch["properties"],
        "protocol": {"type": "integer", "minimum": PROTOCOL_VERSION + 1},
        "events": {"type": "array", "items": {"oneOf": [
            batch["properties"]["events"]["items"],
            {"type": "object", "required": ["type"], "description": "An event type this hub does not know.",
             "properties": {"type": {"type": "string", "not": {"enum": list(PUBLISHED_EVENT_TYPES)}}}},
        ]}},
    }  # fmt: skip
    out["NewerBatch"] = batch
    return out


def stream_response(all_tasks: bool) -> dict:
    name = "AllTasksEvent" if all_tasks else "TaskEvent"
    return {
        "description": "Server-Sent Events: a randomized `retry:` line, a `snapshot` (or the replay after "
        "Last-Event-ID), live events, heartbeat comments"
        + ("." if all_tasks else ", and `end`, after which the stream closes."),
        "headers": {
            "Cache-Control": {"schema": {"type": "string", "const": "no-cache"}},
            "X-Accel-Buffering": {"schema": {"type": "string", "const": "no"}},
        },
        "content": {"text/event-stream": {"itemSchema": ref(name)}},
    }


STREAM_PARAMS = [
    {
        "name": "Last-Event-ID",
        "in": "header",
        "description": "Resume after this event id: the events after it are replayed; an id the hub "
        "cannot place gets a fresh snapshot.",
        "schema": {"type": "string"},
    },
    {
        "name": "last_event_id",
        "in": "query",
        "description": "The same as the Last-Event-ID header, for clients that cannot send headers.",
        "schema": {"type": "string"},
    },
    {
        "name": "limit",
        "in": "query",
        "description": "End the stream after this many events (the snapshot counts as one). For scripts "
        "and fuzzers that read a stream to its end.",
        "schema": {"type": "string", "pattern": POSITIVE},
    },
    {
        "name": "timeout",
        "in": "query",
        "description": "End the stream after this many seconds (at most 60 are honoured).",
        "schema": {"type": "string", "pattern": DECIMAL},
    },
]


def build() -> dict:
    schemas = {
        "Error": {
            "type": "object",
            "description": "Jupyter's JSON error: `message` says what was wrong (naming the field).",
            "required": ["message"],
            "properties": {
                "message": {"type": "string"},
                "reason": {"type": ["string", "null"]},
                "traceback": {"type": "string"},
            },
        },
        "Progress": {
            "type": "object",
            "required": ["current", "total", "fraction", "unit", "rate", "eta"],
            "additionalProperties": False,
            "properties": {
                "current": COUNT,
                "total": NULLABLE_COUNT,
                "fraction": {"type": ["number", "null"], "minimum": 0, "maximum": 1},
                "unit": {"type": "string"},
                "rate": NULLABLE_COUNT,
                "eta": NULLABLE_COUNT,
            },
        },
        "TaskError": {
            "type": "object",
            "required": ["type", "message", "traceback"],
            "properties": {"type": {"type": "string"}, "message": {"type": "string"}, "traceback": {"type": "string"}},
        },
        "TaskSnapshot": {
            "type": "object",
            "required": ["id", "name", "status", "progress", "message", "kernel_id", "created", "started",
                         "finished", "error", "cancel_requested", "display_status", "last_event_id",
                         "log_dropped"],  # fmt: skip
            "properties": {
                "id": TASK_ID,
                "name": {"type": "string"},
                "status": {"enum": STATUSES},
                "display_status": {"enum": [*STATUSES, "cancelling"]},
                "progress": ref("Progress"),
                "message": {"type": "string"},
                "kernel_id": {"type": ["string", "null"]},
                "created": {"type": "string", "format": "date-time"},
                "started": {"type": ["string", "null"], "format": "date-time"},
                "finished": {"type": ["string", "null"], "format": "date-time"},
                "error": {"oneOf": [ref("TaskError"), {"type": "null"}]},
                "cancel_requested": {"type": "boolean"},
                "last_event_id": {"type": "integer", "minimum": 0},
                "log_dropped": {"type": "integer", "minimum": 0},
                "bars": {"type": "array", "items": ref("Bar")},
            },
        },
        "SnapshotLogLine": {
            "type": "object",
            "required": ["id", "stream", "text"],
            "properties": {"id": {"type": "integer"}, "stream": {"enum": ["stdout", "stderr"]}, "text": {"type": "string"}},
        },
        "TaskSnapshotWithLog": {
            "allOf": [ref("TaskSnapshot"), {
                "type": "object", "required": ["log"],
                "properties": {"log": {"type": "array", "items": ref("SnapshotLogLine")}},
            }],  # fmt: skip
        },
        "AllTasksSnapshot": {
            "type": "object",
            "required": ["tasks"],
            "properties": {"tasks": {"type": "array", "items": ref("TaskSnapshotWithLog")}},
        },
        "TaskList": {
            "type": "object",
            "required": ["tasks"],
            "additionalProperties": False,
            "properties": {"tasks": {"type": "array", "items": ref("TaskSnapshot")}},
        },
        "TaskSpec": {
            "type": "object",
            "description": "An externally driven task (`code` absent), or code to run as a task in a kernel "
            "of this server (`code` with `kernel_id`; needs the execute permission on kernels).",
            "required": ["name"],
            "additionalProperties": False,
            "properties": {
                "name": {"type": "string", "minLength": 1, "maxLength": 200, "pattern": NOT_SPACE},
                "total": NULLABLE_COUNT,
                "unit": {"type": "string", "minLength": 1, "maxLength": 50},
                "id": TASK_ID,
                "kernel_id": {"type": ["string", "null"], "minLength": 1,
                              "description": "With `code`: the kernel to run it in (null: no kernel)."},
                "code": {"type": "string", "minLength": 1, "pattern": NOT_SPACE},
            },
            # A user names a kernel only to run code in it (a kernel's runtime names its own).
            "allOf": [
                {"if": {"required": ["code"]},
                 "then": {"required": ["kernel_id"], "properties": {"kernel_id": {"type": "string"}}}},
                {"if": {"required": ["kernel_id"], "properties": {"kernel_id": {"type": "string"}}},
                 "then": {"required": ["code"]}},
            ],  # fmt: skip
        },
        "StatusData": {
            "type": "object",
            "required": ["status"],
            "properties": {
                "status": {"enum": STATUSES},
                "name": {"type": "string"},
                "message": {"type": "string"},
                "error": ref("TaskError"),
                "cancel_requested": {"const": True},
            },
        },
        "ProgressData": {
            "type": "object",
            "description": "The progress object; `unit` and `message` only when they changed.",
            "required": ["current", "total", "fraction", "rate", "eta"],
            "properties": {
                "current": COUNT,
                "total": NULLABLE_COUNT,
                "fraction": {"type": ["number", "null"], "minimum": 0, "maximum": 1},
                "unit": {"type": "string"},
                "rate": NULLABLE_COUNT,
                "eta": NULLABLE_COUNT,
                "message": {"type": "string"},
                "bars": {"type": "array", "items": ref("Bar"),
                         "description": "Child bars that changed since the previous progress event, in full."},
            },
        },
        "Bar": {
            "type": "object",
            "description": "A child bar of a task (the main bar is its `progress`).",
            "additionalProperties": False,
            "required": ["id"],
            "properties": {
                "id": BAR_ID,
                "parent": {"type": ["string", "null"], "pattern": "^[A-Za-z0-9_-]{1,32}$"},
                "desc": {"type": "string", "maxLength": 200},
                "current": COUNT,
                "total": NULLABLE_COUNT,
                "unit": {"type": "string", "minLength": 1, "maxLength": 50},
                "rate": NULLABLE_COUNT,
                "eta": NULLABLE_COUNT,
                "postfix": {"type": "string", "maxLength": 200},
                "leave": {"type": "boolean"},
                "closed": {"type": "boolean"},
            },
        },
        "LogData": {
            "type": "object",
            "required": ["stream", "text"],
            "properties": {"stream": {"enum": ["stdout", "stderr"]}, "text": {"type": "string"}},
        },
        "LogEvent": {
            "type": "object",
            "required": ["id", "type", "data"],
            "additionalProperties": False,
            "properties": {"id": {"type": "integer", "minimum": 1}, "type": {"const": "log"}, "data": ref("LogData")},
        },
        "LogPage": {
            "type": "object",
            "required": ["events", "last_event_id", "truncated"],
            "additionalProperties": False,
            "properties": {
                "events": {"type": "array", "items": ref("LogEvent")},
                "last_event_id": {"type": "integer", "minimum": 0,
                                  "description": "Pass it back as `after`; with `before` or `tail`, the log's newest id."},
                "truncated": {"type": "boolean", "description": "Retention dropped lines this page would hold."},
            },
        },
        "PublishedEvent": {
            "type": "object",
            "description": "Other keys are ignored.",
            "required": ["type"],
            "properties": {
                "type": {"enum": ["status", "progress", "log"]},
                "data": {"type": "object"},
            },
            "oneOf": [
                {"properties": {"type": {"const": "status"}, "data": ref("PublishedStatus")}, "required": ["data"]},
                {"properties": {"type": {"const": "progress"}, "data": ref("PublishedProgress")}, "required": ["data"]},
                {"properties": {"type": {"const": "log"}, "data": ref("PublishedLog")}, "required": ["data"]},
            ],
        },
        "PublishedStatus": {
            "type": "object",
            "required": ["status"],
            "additionalProperties": False,
            "properties": {
                "status": {"enum": STATUSES},
                "message": {"type": "string"},
                "error": {"oneOf": [{"type": "null"}, {
                    "type": "object", "description": "Other keys are ignored.",
                    "properties": {"type": {"type": "string"}, "message": {"type": "string"},
                                   "traceback": {"type": "string"}},
                }]},  # fmt: skip
                "cancel_requested": {"const": True},
            },
        },
        "PublishedProgress": {
            "type": "object",
            "required": ["current"],
            "additionalProperties": False,
            "properties": {
                "current": COUNT,
                "total": NULLABLE_COUNT,
                "unit": {"type": "string", "maxLength": 10000},
                "message": {"type": "string", "maxLength": 10000},
                "rate": NULLABLE_COUNT,
                "eta": NULLABLE_COUNT,
                "bars": {"type": "array", "maxItems": 100, "items": ref("Bar")},
            },
        },
        "PublishedLog": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "stream": {"enum": ["stdout", "stderr"]},
                "text": {"type": "string"},
                "lines": {"type": "array", "minItems": 1, "items": {"type": "string"}},
            },
            "oneOf": [{"required": ["text"], "not": {"required": ["lines"]}},
                      {"required": ["lines"], "not": {"required": ["text"]}}],  # fmt: skip
        },
        "PublishBody": {
            "type": "object",
            "required": ["events"],
            "additionalProperties": False,
            "properties": {"events": {"type": "array", "items": ref("PublishedEvent")}},
        },
        "BatchBody": {
            "description": "What a kernel's runtime (or a script's) sends. A repeated (publisher, seq) is a retry "
            "and is ignored. A batch of a protocol this hub knows is read strictly; one of a newer protocol "
            "has its unknown fields and event types skipped and counted (`ignored` in the answer).",
            "oneOf": [ref("KnownBatch"), ref("NewerBatch")],
        },
        "KnownBatch": {
            "type": "object",
            "description": f"A batch of protocol 1 (no `protocol` field) to {PROTOCOL_VERSION}.",
            "additionalProperties": False,
            "properties": {
                "tasks": {"type": "array", "items": {"allOf": [ref("TaskSpecWithId")]}},
                "events": {"type": "array", "items": {
                    "allOf": [ref("PublishedEvent")],
                    "properties": {"task": TASK_ID}, "required": ["task"],
                }},  # fmt: skip
                "publisher": {"type": "string", "minLength": 1},
                "seq": {"type": "integer"},
                "protocol": {"type": "integer", "minimum": 1, "maximum": PROTOCOL_VERSION,
                             "description": "The publish protocol's version (absent: 1)."},  # fmt: skip
            },
            "dependentRequired": {"publisher": ["seq"], "seq": ["publisher"]},
        },
        "TaskSpecWithId": {
            "type": "object",
            "required": ["name", "id"],
            "additionalProperties": False,
            "properties": {
                "name": {"type": "string", "minLength": 1, "maxLength": 200, "pattern": NOT_SPACE},
                "total": NULLABLE_COUNT,
                "unit": {"type": "string", "minLength": 1, "maxLength": 50},
                "id": TASK_ID,
            },
            "description": "A task the batch creates. A kernel's runtime (the publish secret) also sends "
            "`kernel_id`, which a user's token may not set.",
        },
        "BatchAnswer": {
            "type": "object",
            "minProperties": 1,
            "additionalProperties": False,
            "properties": {
                "skipped": {"type": "object", "additionalProperties": {"type": "string"},
                            "description": "Tasks whose events were skipped, and why."},
                "ignored": {
                    "type": "object", "required": ["fields", "events"], "additionalProperties": False,
                    "description": "What this hub does not know of a newer protocol's batch, skipped: "
                    "fields (by path) and events (of unknown types).",
                    "properties": {"fields": {"type": "integer", "minimum": 0},
                                   "events": {"type": "integer", "minimum": 0}},
                },
            },
        },  # fmt: skip
        "KernelCommand": {
            "type": "object",
            "required": ["event", "data", "id"],
            "properties": {
                "event": {"enum": ["cancel", "start"]},
                "id": {"type": "string", "pattern": "^[0-9]+$"},
                "retry": {"type": "integer"},
                "data": {"type": "string", "contentMediaType": "application/json", "contentSchema": {
                    "type": "object", "required": ["task"],
                    "properties": {"task": TASK_ID, "name": {"type": "string"}, "code": {"type": "string"}},
                }},  # fmt: skip
            },
        },
        "TaskEvent": {"oneOf": event_variants(False)},
        "AllTasksEvent": {"oneOf": event_variants(True)},
    }
    schemas.update(newer_batch(schemas))

    created = {
        "description": "Created: the snapshot; `Location` is its polling URL (base_url included).",
        "headers": {"Location": {"$ref": "#/components/headers/Location"}},
        "content": {"application/json": {"schema": ref("TaskSnapshot")}},
        "links": {
            "GetTask": {"operationId": "getTask", "parameters": {"task_id": "$response.body#/id"}},
            "GetTaskLog": {"operationId": "getTaskLog", "parameters": {"task_id": "$response.body#/id"}},
            "PublishEvents": {"operationId": "publishTaskEvents", "parameters": {"task_id": "$response.body#/id"}},
            "StreamTask": {"operationId": "streamTask", "parameters": {"task_id": "$response.body#/id"}},
            "CancelTask": {"operationId": "cancelTask", "parameters": {"task_id": "$response.body#/id"}},
            "DeleteTask": {"operationId": "deleteTask", "parameters": {"task_id": "$response.body#/id"}},
        },
    }
    api = "/taskstream/api"
    paths = {
        "/taskstream/": {
            "get": {
                "operationId": "dashboard",
                "summary": "The live dashboard (HTML; a plain table without JavaScript).",
                "responses": {
                    "200": {"description": "The page.", "content": {"text/html": {"schema": {"type": "string"}}}},
                    "302": {"description": "Not logged in: the login page."},
                    "403": {"description": "Logged in without permission."},
                },
                "security": [{"token": []}, {"tokenQuery": []}, {"cookie": []}],
            }
        },
        f"{api}/openapi.json": {
            "get": {
                "operationId": "getOpenAPI",
                "summary": "This description.",
                "responses": {
                    "200": json_body({"type": "object", "required": ["openapi", "paths"]}, "The OpenAPI document."),
                    "403": error("Forbidden"),
                },
            }
        },
        f"{api}/tasks": {
            "get": {
                "operationId": "listTasks",
                "summary": "Task snapshots, newest first.",
                "parameters": [{"name": "status", "in": "query", "schema": {"enum": STATUSES},
                                "description": "Only tasks with this status."}],  # fmt: skip
                "responses": {"200": json_body(ref("TaskList"), "The tasks."), **ERRORS},
            },
            "post": {
                "operationId": "createTask",
                "summary": "Create an externally driven task, or run code as a task in a kernel.",
                "security": [{"token": []}, {"tokenQuery": []}, {"publishSecret": []}],
                "requestBody": {"required": True, "content": {"application/json": {"schema": ref("TaskSpec")}}},
                "responses": {
                    "201": created,
                    "202": {**created, "description": "Code accepted: the task is pending until the kernel takes it."},
                    **ERRORS,
                    "404": error("NotFound"),
                    "409": error("Conflict"),
                    "413": error("TooLarge"),
                },
            },
        },
        f"{api}/tasks/{{task_id}}": {
            "parameters": [task_param()],
            "get": {
                "operationId": "getTask",
                "summary": "Poll a task: its snapshot, with ETag / If-None-Match and long-polling.",
                "parameters": [
                    {"name": "wait", "in": "query", "schema": {"type": "string", "pattern": DECIMAL},
                     "description": "Long-poll: wait up to this many seconds (at most 60) for a new event."},
                    {"name": "after", "in": "query", "schema": {"type": "string", "pattern": CURSOR},
                     "description": "With wait: the event id the client has seen."},
                    {"name": "If-None-Match", "in": "header", "schema": {"type": "string"}},
                ],  # fmt: skip
                "responses": {
                    "200": {
                        "description": "The snapshot.",
                        "headers": {"ETag": {"$ref": "#/components/headers/ETag"}},
                        "content": {"application/json": {"schema": ref("TaskSnapshot")}},
                    },
                    "304": {"description": "Unchanged since If-None-Match.",
                            "headers": {"ETag": {"$ref": "#/components/headers/ETag"}}},  # fmt: skip
                    **TASK_ERRORS,
                },
            },
            "delete": {
                "operationId": "deleteTask",
                "summary": "Remove a finished task and its log.",
                "responses": {"204": {"description": "Removed."}, **TASK_ERRORS, "409": error("Conflict")},
            },
        },
        f"{api}/tasks/{{task_id}}/log": {
            "parameters": [task_param()],
            "get": {
                "operationId": "getTaskLog",
                "summary": "Captured output, paged forward (after) or back (before) by event id, or its last lines.",
                "parameters": [
                    {"name": "after", "in": "query", "schema": {"type": "string", "pattern": CURSOR},
                     "description": "Lines after this event id (a `last_event_id` from before)."},
                    {"name": "before", "in": "query", "schema": {"type": "string", "pattern": POSITIVE},
                     "description": "Page back: the newest `limit` lines with an id below this one (the first "
                                    "id of the page shown), oldest first; `tail` there is a page size too."},
                    {"name": "limit", "in": "query", "description": "At most this many lines (up to 10,000).",
                     "schema": {"type": "string", "pattern": POSITIVE}},
                    {"name": "tail", "in": "query", "description": "Only the last N lines (up to 10,000).",
                     "schema": {"type": "string", "pattern": POSITIVE}},
                ],  # fmt: skip
                "responses": {"200": json_body(ref("LogPage"), "A page of the log."), **TASK_ERRORS},
            },
        },
        f"{api}/tasks/{{task_id}}/events": {
            "parameters": [task_param()],
            "get": {
                "operationId": "streamTask",
                "summary": "SSE of one task; ends with `end`.",
                "parameters": STREAM_PARAMS,
                "responses": {"200": stream_response(False), **TASK_ERRORS},
            },
            "post": {
                "operationId": "publishTaskEvents",
                "summary": "Publish events to a task; all are validated before any applies.",
                "security": [{"token": []}, {"tokenQuery": []}, {"publishSecret": []}],
                "requestBody": {"required": True, "content": {"application/json": {"schema": ref("PublishBody")}}},
                "responses": {"204": {"description": "Published and stored."}, **TASK_ERRORS,
                              "409": error("Conflict"), "413": error("TooLarge")},  # fmt: skip
            },
        },
        f"{api}/tasks/{{task_id}}/cancel": {
            "parameters": [task_param()],
            "post": {
                "operationId": "cancelTask",
                "summary": "Ask whoever runs the task to stop it.",
                "responses": {"202": json_body(ref("TaskSnapshot"), "Requested: the snapshot."),
                              **TASK_ERRORS, "409": error("Conflict")},  # fmt: skip
            },
        },
        f"{api}/events": {
            "get": {
                "operationId": "streamAll",
                "summary": "One SSE stream of every task (payloads carry `task`).",
                "parameters": STREAM_PARAMS,
                "responses": {"200": stream_response(True), **ERRORS},
            },
            "post": {
                "operationId": "publishBatch",
                "summary": "Create tasks and publish to many in one request (the kernel runtime's batch).",
                "security": [{"token": []}, {"tokenQuery": []}, {"publishSecret": []}],
                "requestBody": {"required": True, "content": {
                    "application/json": {"schema": ref("BatchBody")},
                    "application/x-taskstream-batch": {"schema": {
                        "type": "string", "format": "binary",
                        "description": "A text batch (protocol 4): a `BatchBody` as JSON on the first line, then "
                        "the UTF-8 text of log lines; a log event there has `lines_at: [offset, length]` (bytes "
                        "of that text, its lines joined by newlines) instead of `lines`. Send it only to a hub "
                        "whose answers say `X-TaskStream-Protocol` 4 or more."}},
                }},  # fmt: skip
                "responses": {
                    "200": {**json_body(ref("BatchAnswer"), "Applied, except for the tasks named in `skipped` "
                                        "(finished, unknown, or someone else's id) and what `ignored` counts."),
                            "headers": PROTOCOL_HEADERS},  # fmt: skip
                    "204": {"description": "Applied and stored.", "headers": PROTOCOL_HEADERS},
                    **ERRORS,
                    "413": error("TooLarge"),
                },
            },
        },
        f"{api}/events/socket": {
            "get": {
                "operationId": "publishSocket",
                "summary": "The publish socket (protocol 5): the batches of `publishBatch` over one WebSocket.",
                "description": "Connect with `Upgrade: websocket`. Each message is one batch: a binary message "
                "is a text batch (`application/x-taskstream-batch`), a text message a `BatchBody` as JSON. The "
                "hub answers each, in order, with one text message `{\"status\": 204|200|400|413|503, "
                "\"body\": BatchAnswer or {\"message\": ...}, \"protocol\": 5}`; `status` is what the POST "
                "would have answered. A kernel opens it only to a hub whose answers say `X-TaskStream-Protocol` "
                "5 or more, and POSTs whenever it cannot.",
                "security": [{"token": []}, {"tokenQuery": []}, {"publishSecret": []}],
                "responses": {
                    "101": {"description": "Switched to the WebSocket protocol.", "headers": PROTOCOL_HEADERS},
                    **ERRORS,
                },
            },
        },
        f"{api}/kernels/{{kernel_id}}/commands": {
            "get": {
                "operationId": "streamKernelCommands",
                "summary": "SSE of cancel/start commands for a kernel's runtime; only the publish secret reads it.",
                "security": [{"publishSecret": []}],
                "parameters": [
                    {"name": "kernel_id", "in": "path", "required": True,
                     "schema": {"type": "string", "pattern": "^[A-Za-z0-9_.-]{1,128}$"}},
                    *STREAM_PARAMS,
                ],  # fmt: skip
                "responses": {
                    "200": {"description": "Commands as they come.",
                            "content": {"text/event-stream": {"itemSchema": ref("KernelCommand")}}},  # fmt: skip
                    **ERRORS,
                    "404": error("NotFound"),
                },
            }
        },
    }
    return {
        "openapi": "3.2.0",
        "info": {
            "title": "jupyter_taskstream hub",
            "version": "1",
            "description": "Task progress and output of a Jupyter server, over REST polling and Server-Sent "
            "Events. Paths are under the server's base_url. Every endpoint needs Jupyter auth; "
            "unauthenticated requests get 403 JSON, never a redirect (the dashboard page excepted).",
        },
        "servers": [{"url": "/", "description": "The Jupyter server's base_url."}],
        "security": [{"token": []}, {"tokenQuery": []}],
        "paths": paths,
        "components": {
            "schemas": schemas,
            "parameters": {"TaskId": {"name": "task_id", "in": "path", "required": True, "schema": TASK_ID}},
            "headers": {
                "Location": {"schema": {"type": "string"}, "description": "The task's URL path, base_url included."},
                "ETag": {"schema": {"type": "string"}, "description": "Changes with every change of the task."},
            },
            "responses": {
                "BadRequest": json_body(ref("Error"), "Malformed input; the message names the field."),
                "Forbidden": json_body(ref("Error"), "No valid credentials, or not allowed."),
                "NotFound": json_body(ref("Error"), "No such task (or kernel)."),
                "Conflict": json_body(ref("Error"), "The task's state forbids it (finished, running, id taken)."),
                "TooLarge": json_body(ref("Error"), "The body is larger than max_body_bytes."),
            },
            "securitySchemes": {
                "token": {"type": "apiKey", "in": "header", "name": "Authorization",
                          "description": "`token <the server's token>`."},
                "tokenQuery": {"type": "apiKey", "in": "query", "name": "token",
                               "description": "For EventSource, which cannot send headers."},
                "cookie": {"type": "apiKey", "in": "cookie", "name": "_xsrf",
                           "description": "Jupyter's login cookie (with the _xsrf check on non-GET requests)."},
                "publishSecret": {"type": "apiKey", "in": "header", "name": "X-TaskStream-Secret",
                                  "description": "The per-server secret kernels get: create, publish, "
                                  "read the kernel's own commands; nothing else."},
            },  # fmt: skip
        },
    }


if __name__ == "__main__":
    OUT.write_text(json.dumps(build(), indent=1, ensure_ascii=False) + "\n")
    print(f"wrote {OUT}")
