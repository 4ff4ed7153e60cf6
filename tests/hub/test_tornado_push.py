"""The tornado internals behind the SSE fast path: named, probed on a live stream, and optional.

If a tornado upgrade removes or changes one of them, `test_a_live_stream_has_every_internal`
fails naming it; the hub itself then falls back to plain ``write()``/``flush()``, which
`test_a_stream_without_the_fast_path_delivers_everything` (and the slow-socket test in
test_streams, run on both paths) checks end to end.
"""

from __future__ import annotations

import asyncio
import logging

from jupyter_taskstream.hub import tornado_push

from ..conftest import read_sse, wait_for
from .test_handlers import API, create, log, publish


def test_names_every_internal_it_relies_on():
    assert tornado_push.RELIES_ON == (
        "HTTP1Connection._chunking_output",
        "RequestHandler._headers_written",
        "RequestHandler._headers",
        "RequestHandler._new_cookie",
    )


async def stream_one_task(client, registry) -> list:
    """Read a task's stream from before its first line to its end."""
    task = await create(client)
    url = f"{API}/tasks/{task['id']}/events"
    await wait_for(lambda: registry.subscriber_count == 0, message="earlier subscribers to go")
    reader = asyncio.ensure_future(read_sse(client, url, until=lambda got: got[-1][1] == "end"))
    await wait_for(lambda: registry.subscriber_count == 1, message="the subscriber")
    await publish(client, task["id"], log("one"), {"type": "status", "data": {"status": "completed"}})
    return await reader


async def test_a_live_stream_has_every_internal(client, registry, monkeypatch):
    probed, real_probe = [], tornado_push.probe
    monkeypatch.setattr(tornado_push, "enabled", None)  # probe again, on this stream
    monkeypatch.setattr(tornado_push, "probe", lambda handler: probed.append(real_probe(handler)) or probed[-1])
    sockets, real_direct = [], tornado_push.direct_socket
    monkeypatch.setattr(tornado_push, "direct_socket", lambda handler: sockets.append(real_direct(handler)) or sockets[-1])
    await stream_one_task(client, registry)
    assert sockets and sockets[0] is not None  # plain HTTP/1.1: the fast path is taken
    assert probed, "no stream probed tornado"
    assert set(probed[0]) == set(tornado_push.RELIES_ON)
    missing = [name for name, ok in probed[0].items() if not ok]
    assert not missing, f"tornado no longer has these as the SSE fast path expects: {missing}"
    assert tornado_push.enabled is True


async def test_a_tornado_without_them_is_named_in_a_warning_and_streams_still_work(
    client, registry, monkeypatch, caplog
):
    monkeypatch.setattr(tornado_push, "enabled", None)
    monkeypatch.setattr(tornado_push, "probe", lambda handler: {**dict.fromkeys(tornado_push.RELIES_ON, True),
                                                                "HTTP1Connection._chunking_output": False})  # fmt: skip
    # On the logger itself: whether tornado's loggers propagate depends on what configured them.
    logger = logging.getLogger("tornado.application")
    logger.addHandler(caplog.handler)
    try:
        with caplog.at_level(logging.WARNING, logger="tornado.application"):
            got = await stream_one_task(client, registry)
    finally:
        logger.removeHandler(caplog.handler)
    assert [d["text"] for _, kind, d in got if kind == "log"] == ["one"]
    assert tornado_push.enabled is False
    assert any("_chunking_output" in r.getMessage() and "write()/flush()" in r.getMessage() for r in caplog.records)


async def test_a_stream_without_the_fast_path_delivers_everything(client, registry, monkeypatch):
    monkeypatch.setattr(tornado_push, "enabled", False)
    sockets = []
    real_direct = tornado_push.direct_socket
    monkeypatch.setattr(tornado_push, "direct_socket", lambda handler: sockets.append(real_direct(handler)) or None)
    task = await create(client)
    url = f"{API}/tasks/{task['id']}/events"
    readers = [read_sse(client, url, until=lambda got: got[-1][1] == "end", timeout=30) for _ in range(2)]
    pending = [asyncio.ensure_future(r) for r in readers]
    await wait_for(lambda: registry.subscriber_count >= 2, message="two subscribers")
    for start in range(0, 300, 50):
        await publish(client, task["id"], *(log(f"{i:03d}") for i in range(start, start + 50)))
    await publish(client, task["id"], {"type": "status", "data": {"status": "completed"}})
    for got in await asyncio.gather(*pending):
        assert [d["text"] for _, kind, d in got if kind == "log"] == [f"{i:03d}" for i in range(300)]
        assert got[0][1] == "snapshot" and got[-1][1] == "end"
    assert sockets and all(s is None for s in sockets)  # every byte went through tornado's write()
