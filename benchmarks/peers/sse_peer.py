"""The peer: one task's event stream served by sse-starlette on uvicorn, the idiomatic way.

Same stream shape as the hub's ``/taskstream/api/tasks/{id}/events``: a ``retry:`` line, a
``snapshot`` event, then ``id:``/``event:``/``data:`` JSON events and ``end``. Fan-out is
one ``asyncio.Queue`` per subscriber (what sse-starlette#81 recommends), each event encoded
by sse-starlette for each subscriber it goes to. ``POST /publish`` takes
``{"type", "data"}`` or ``{"events": [...]}``; ``GET /status`` is the readiness probe.
No auth: the peer is only ever bound to 127.0.0.1 by the benchmark.
"""

from __future__ import annotations

import asyncio
import json

from sse_starlette.sse import EventSourceResponse
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

_subscribers: set[asyncio.Queue] = set()
_state = {"last_id": 0, "ended": False}


def _dumps(data: object) -> str:
    return json.dumps(data, ensure_ascii=False, separators=(",", ":"))


async def status(request: Request) -> Response:
    return JSONResponse({"subscribers": len(_subscribers), "last_id": _state["last_id"]})


async def publish(request: Request) -> Response:
    body = await request.json()
    items = body["events"] if "events" in body else [body]
    for item in items:
        _state["last_id"] += 1
        event = (_state["last_id"], item["type"], _dumps(item.get("data", {})))
        for queue in _subscribers:
            queue.put_nowait(event)
    return Response(status_code=204)


async def reset(request: Request) -> Response:
    """Start a new 'task': subscribers of the old one get ``end``."""
    await publish_end()
    return Response(status_code=204)


async def publish_end() -> None:
    _state["last_id"] += 1
    for queue in _subscribers:
        queue.put_nowait((_state["last_id"], "end", "{}"))


async def events(request: Request) -> Response:
    queue: asyncio.Queue = asyncio.Queue()
    _subscribers.add(queue)

    async def stream():
        try:
            yield {"data": _dumps({"status": "running", "log": []}), "event": "snapshot",
                   "id": str(_state["last_id"]), "retry": 2000}
            while True:
                event_id, etype, data = await queue.get()
                yield {"data": data, "event": etype, "id": str(event_id)}
                if etype == "end":
                    break
        finally:
            _subscribers.discard(queue)

    return EventSourceResponse(stream(), ping=15, sep="\n",
                               headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


app = Starlette(routes=[
    Route("/status", status),
    Route("/publish", publish, methods=["POST"]),
    Route("/reset", reset, methods=["POST"]),
    Route("/events", events),
])
