"""The Python client against a real jupyter server (base_url ``/a%40b/``), over real HTTP and SSE.

The sync `Client` runs in a thread: the test server lives on this test's event loop.
"""

from __future__ import annotations

import asyncio
import socket

import pytest

from jupyter_taskstream.client import (
    AsyncClient,
    BadRequest,
    Client,
    ClientError,
    Conflict,
    NotFound,
    ServerUnreachable,
    Unauthorized,
    WaitTimeout,
)
from jupyter_taskstream.errors import TaskStreamError

from ..conftest import wait_for


def in_thread(fn, *args, **kwargs):
    return asyncio.to_thread(fn, *args, **kwargs)


async def test_async_client_drives_a_task_and_reads_it_back(server_url, token, clean_env):
    async with AsyncClient(server_url, token) as hub:
        async with await hub.create("import", total=3, unit="file") as task:
            await task.update()
            await task.log("loaded a.csv")
            await task.set(2, message="half way")
            await task.log("oops", stream="stderr")
            await task.update()
        final = await hub.wait(task.id, timeout=10)
        assert final["status"] == "completed"
        assert final["progress"] == {**final["progress"], "current": 3, "total": 3, "unit": "file"}
        assert final["message"] == "half way"
        assert [t["id"] for t in await hub.tasks(status="completed")] == [task.id]
        assert await hub.tasks(status="running") == []
        log = await hub.log(task.id)
        assert [e["data"]["text"] for e in log["events"]] == ["loaded a.csv", "oops"]
        assert log["events"][1]["data"]["stream"] == "stderr" and log["truncated"] is False
        tail = await hub.log(task.id, tail=1)
        assert [e["data"]["text"] for e in tail["events"]] == ["oops"]
        assert tail["last_event_id"] == log["last_event_id"]
        page = await hub.log(task.id, limit=1)
        assert [e["data"]["text"] for e in page["events"]] == ["loaded a.csv"]
        rest = await hub.log(task.id, after=page["last_event_id"])
        assert [e["data"]["text"] for e in rest["events"]] == ["oops"]
        events = [e async for e in hub.follow(task.id)]
        assert events[0].type == "snapshot" and events[-1].type == "end"
        assert events[-1].data["status"] == "completed" and events[-1].task == task.id
        await hub.delete(task.id)
        with pytest.raises(NotFound):
            await hub.get(task.id)


async def test_a_failing_block_fails_the_task_with_its_error(server_url, token, clean_env):
    async with AsyncClient(server_url, token) as hub:
        with pytest.raises(ZeroDivisionError):
            async with await hub.create("divide") as task:
                _ = 1 / 0
        final = await hub.get(task.id)
        assert final["status"] == "failed"
        assert final["error"]["type"] == "ZeroDivisionError"
        assert "division by zero" in final["error"]["message"]
        assert "Traceback" in final["error"]["traceback"]


async def test_sync_client_same_methods(server_url, token, clean_env):
    def script():
        with Client(server_url, token) as hub:
            task = hub.create("sync", total=2)
            task.update()
            task.log("one")
            assert hub.get(task.id)["status"] == "running"
            with pytest.raises(Conflict, match="still running"):
                hub.delete(task.id)
            cancelled = hub.cancel(task.id)
            assert cancelled["cancel_requested"] is True and task.cancel_requested()
            task.fail("gave up", "RuntimeError")
            with pytest.raises(Conflict, match="already finished"):
                task.log("too late")
            events = list(hub.follow(task.id))
            assert events[0].type == "snapshot" and events[-1].type == "end"
            final = hub.wait(task.id, timeout=5)
            assert final["status"] == "failed" and final["error"]["type"] == "RuntimeError"
            assert hub.log(task.id, tail=5)["events"][0]["data"]["text"] == "one"
            hub.delete(task.id)
            return task.id

    task_id = await in_thread(script)
    assert task_id


async def test_wait_blocks_until_the_end_and_times_out(server_url, token, clean_env, registry):
    async with AsyncClient(server_url, token) as hub:
        task = await hub.create("slow")
        with pytest.raises(WaitTimeout) as info:
            await hub.wait(task.id, timeout=0.3)
        assert isinstance(info.value, TimeoutError) and "still pending" in str(info.value)
        waiter = asyncio.ensure_future(hub.wait(task.id, timeout=10))
        # Its long poll waits on the task's log: the wait really blocks, not merely has not run yet.
        await wait_for(lambda: registry.event_log(task.id)._waiters, message="the wait's long poll is not waiting")
        assert not waiter.done()
        await task.finish("done")
        assert (await asyncio.wait_for(waiter, 10))["status"] == "completed"


async def test_errors_are_typed_and_carry_the_server_message(server_url, token, clean_env):
    async with AsyncClient(server_url, token) as hub:
        with pytest.raises(NotFound) as info:
            await hub.get("nope")
        assert isinstance(info.value, KeyError) and isinstance(info.value, TaskStreamError)
        assert "nope" in str(info.value) and info.value.status == 404
        with pytest.raises(BadRequest, match="name") as info:
            await hub.create("")
        assert isinstance(info.value, ValueError)
        with pytest.raises(NotFound):
            await hub.get("../tasks")  # not a task id: never sent to another route
        with pytest.raises(ValueError):
            await hub.tasks(status="bogus")
    async with AsyncClient(server_url, "wrong-token") as hub:
        with pytest.raises(Unauthorized) as info:
            await hub.tasks()
        assert isinstance(info.value, PermissionError) and info.value.status == 403
        with pytest.raises(Unauthorized):
            [e async for e in hub.follow()]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    async with AsyncClient(f"http://127.0.0.1:{port}/", token, reconnect_timeout=0.5) as hub:
        with pytest.raises(ServerUnreachable) as info:
            await hub.tasks()
        assert isinstance(info.value, ConnectionError) and str(port) in str(info.value)
        assert token not in str(info.value)
        with pytest.raises(ServerUnreachable):
            [e async for e in hub.follow("abc")]


async def test_urls_the_user_may_paste(server_url, token, clean_env):
    api = server_url + "taskstream/api"
    for url, tok in ((api, token), (api + "/", token), (server_url + "taskstream/", token),
                     (f"{server_url}?token={token}", None)):  # fmt: skip
        async with AsyncClient(url, tok) as hub:
            assert hub.server_url == server_url
            assert await hub.tasks() == []
    assert "/a%40b/" in server_url


async def test_finds_the_server_like_jupyter_server_list(server_url, token, runtime_file, monkeypatch):
    async with AsyncClient() as hub:
        assert hub.server_url == server_url and hub.endpoint.token == token
        assert await hub.tasks() == []
    # The URL from the environment, the token from the runtime file of that server.
    monkeypatch.setenv("JUPYTER_TASKSTREAM_URL", server_url + "taskstream/api")
    async with AsyncClient() as hub:
        assert hub.endpoint.token == token and await hub.tasks() == []


async def test_environment_url_and_token(server_url, token, clean_env, monkeypatch, tmp_path):
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(tmp_path))
    with pytest.raises(ServerUnreachable, match="no running Jupyter server"):
        AsyncClient()
    monkeypatch.setenv("JUPYTER_TASKSTREAM_URL", server_url)
    monkeypatch.setenv("JUPYTER_TASKSTREAM_TOKEN", token)
    async with AsyncClient() as hub:
        assert await hub.tasks() == []


async def test_publish_secret_from_the_environment_may_only_publish(server_url, jp_serverapp, clean_env,
                                                                   monkeypatch):  # fmt: skip
    secret = jp_serverapp.web_app.settings["taskstream_secret"]
    monkeypatch.setenv("JUPYTER_TASKSTREAM_URL", server_url + "taskstream/api")
    monkeypatch.setenv("JUPYTER_TASKSTREAM_SECRET", secret)
    async with AsyncClient() as hub:
        task = await hub.create("from a terminal")
        await task.update()
        await task.finish()
        with pytest.raises(Unauthorized, match="publish secret"):
            await hub.tasks()
    # An explicit URL never gets the secret.
    async with AsyncClient(server_url) as hub:
        assert "X-TaskStream-Secret" not in hub.endpoint.headers()


async def test_follow_resumes_after_a_dropped_connection(proxy, server_url, token, clean_env):
    url = f"http://127.0.0.1:{proxy.port}/a%40b/"
    # The reader goes through the proxy that drops; the producer talks to the server directly.
    async with AsyncClient(url, token) as hub, AsyncClient(server_url, token) as producer:
        task = await producer.create("flaky", total=10)
        seen = []

        async def follow():
            async for event in hub.follow(task.id):
                seen.append(event)

        reader = asyncio.ensure_future(follow())
        await wait_for(lambda: seen, message="the snapshot")
        for i in range(1, 11):
            await task.log(f"line {i}")
            if i == 5:
                await wait_for(lambda: sum(e.type == "log" for e in seen) == 5, message=f"5 lines {seen}")
                connections = proxy.connections
                proxy.drop()
                await task.log("while away")
                await wait_for(lambda c=connections: proxy.connections > c, message="reconnect")
        await task.finish()
        await asyncio.wait_for(reader, 10)
        texts = [e.data["text"] for e in seen if e.type == "log"]
        assert texts == [f"line {i}" for i in range(1, 6)] + ["while away"] + [f"line {i}" for i in range(6, 11)]
        ids = [e.id for e in seen if e.id is not None]
        assert ids == sorted(set(ids))  # nothing repeated
        assert seen[-1].type == "end"


async def test_follow_all_tasks_carries_task_ids(server_url, token, clean_env):
    async with AsyncClient(server_url, token) as hub:
        seen = []

        async def follow():
            async for event in hub.follow():
                seen.append(event)
                if event.type == "end":
                    return

        reader = asyncio.ensure_future(follow())
        await wait_for(lambda: seen, message="snapshot")
        assert seen[0].type == "snapshot" and seen[0].data == {"tasks": []}
        task = await hub.create("all")
        await task.log("hello")
        await task.finish()
        await asyncio.wait_for(reader, 10)
        assert {e.task for e in seen[1:]} == {task.id}
        assert "hello" in [e.data.get("text") for e in seen]


def test_client_imports_no_server_or_kernel_code():
    import subprocess
    import sys

    code = (
        "import sys, jupyter_taskstream.client, jupyter_taskstream.client.cli\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in "
        "('tornado', 'jupyter_server', 'IPython', 'ipykernel', 'ipywidgets', 'jupyter_client')]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_errors_subclass_the_package_base_and_stdlib():
    for cls, std in ((NotFound, KeyError), (Conflict, RuntimeError), (Unauthorized, PermissionError),
                     (ServerUnreachable, ConnectionError), (BadRequest, ValueError), (WaitTimeout, TimeoutError)):  # fmt: skip
        assert issubclass(cls, ClientError) and issubclass(cls, TaskStreamError) and issubclass(cls, std)
    assert str(NotFound("no task with id 'x'", 404)) == "no task with id 'x'"  # not KeyError's repr


async def test_log_tail_over_http(client, clean_env):
    r = await client.post("taskstream/api/tasks", json={"name": "tail"})
    task_id = r.json()["id"]
    events = [{"type": "log", "data": {"text": f"l{i}"}} for i in range(5)]
    await client.post(f"taskstream/api/tasks/{task_id}/events", json={"events": events})
    body = (await client.get(f"taskstream/api/tasks/{task_id}/log", params={"tail": 2})).json()
    assert [e["data"]["text"] for e in body["events"]] == ["l3", "l4"] and body["truncated"] is False
    body = (await client.get(f"taskstream/api/tasks/{task_id}/log", params={"tail": 9, "limit": 1})).json()
    assert [e["data"]["text"] for e in body["events"]] == ["l4"]
    assert (await client.get(f"taskstream/api/tasks/{task_id}/log", params={"tail": 0})).status_code == 400
    assert (await client.get(f"taskstream/api/tasks/{task_id}/log", params={"tail": "x"})).status_code == 400


async def test_query_values_are_not_cleaned_into_absence(client, clean_env):
    """Tornado turns control characters into spaces and strips them: a malformed value must
    still be refused, not read as "not given" (found by the schemathesis run)."""
    r = await client.post("taskstream/api/tasks", json={"name": "q"})
    task_id = r.json()["id"]
    for query in ("wait=%06&after=%06", "wait=%20", "after=%061"):
        r = await client.get(f"taskstream/api/tasks/{task_id}?{query}")
        assert r.status_code == 400, (query, r.status_code)
    assert (await client.get(f"taskstream/api/tasks/{task_id}/log?tail=%07")).status_code == 400
    assert (await client.get("taskstream/api/tasks?status=%20running")).status_code == 400
    assert (await client.get(f"taskstream/api/tasks/{task_id}?wait=")).status_code == 200  # empty: not given
