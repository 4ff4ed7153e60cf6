"""The hub's REST API against a real jupyter server under a non-root base_url."""

from __future__ import annotations

import asyncio
import json
import logging

import httpx
import pytest

from ..conftest import read_sse, wait_for

API = "taskstream/api"


async def create(client, name="job", **body) -> dict:
    r = await client.post(f"{API}/tasks", json={"name": name, **body})
    assert r.status_code == 201, r.text
    return r.json()


async def publish(client, task_id, *events) -> None:
    r = await client.post(f"{API}/tasks/{task_id}/events", json={"events": list(events)})
    assert r.status_code == 204, r.text


def log(text, stream="stdout") -> dict:
    return {"type": "log", "data": {"stream": stream, "text": text}}


def assert_json_error(r, status: int, *words: str) -> dict:
    assert r.status_code == status, (r.status_code, r.text)
    assert r.headers["content-type"].startswith("application/json")
    body = r.json()
    assert "Traceback" not in r.text
    for word in words:
        assert word in body["message"], body
    return body


async def test_create_list_and_poll(client, jp_base_url):
    assert (await client.get(f"{API}/tasks")).json() == {"tasks": []}
    r = await client.post(f"{API}/tasks", json={"name": "train", "total": 4})
    assert r.status_code == 201
    task = r.json()
    assert r.headers["location"] == f"{jp_base_url}{API}/tasks/{task['id']}"
    assert task["status"] == "pending" and task["progress"]["total"] == 4 and task["kernel_id"] is None
    second = await create(client, "other")
    listed = (await client.get(f"{API}/tasks")).json()["tasks"]
    assert [t["id"] for t in listed] == [second["id"], task["id"]]  # newest first

    await publish(client, task["id"], {"type": "progress", "data": {"current": 1, "message": "step 1"}})
    polled = (await client.get(r.headers["location"].removeprefix(jp_base_url))).json()
    assert polled["status"] == "running"
    assert polled["progress"]["current"] == 1 and polled["progress"]["fraction"] == 0.25
    assert polled["message"] == "step 1" and polled["started"] is not None
    running = (await client.get(f"{API}/tasks", params={"status": "running"})).json()["tasks"]
    assert [t["id"] for t in running] == [task["id"]]
    assert_json_error(await client.get(f"{API}/tasks", params={"status": "bogus"}), 400, "status")


async def test_etag_and_304(client):
    task = await create(client)
    url = f"{API}/tasks/{task['id']}"
    first = await client.get(url)
    etag = first.headers["etag"]
    again = await client.get(url, headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.content == b""
    await publish(client, task["id"], log("changed"))
    changed = await client.get(url, headers={"If-None-Match": etag})
    assert changed.status_code == 200 and changed.headers["etag"] != etag


async def test_long_poll_answers_on_the_next_event_or_after_the_wait(client, registry):
    task = await create(client)
    url = f"{API}/tasks/{task['id']}"
    after = task["last_event_id"]
    loop = asyncio.get_running_loop()
    start = loop.time()
    quiet = await client.get(url, params={"wait": 0.3, "after": after})
    assert quiet.status_code == 200 and quiet.json()["last_event_id"] == after
    assert loop.time() - start >= 0.29

    poll = asyncio.ensure_future(client.get(url, params={"wait": 30, "after": after}))
    # The poll reached the server and waits on the task's log (else the event below would
    # answer it at once, and this would not test the wake-up).
    await wait_for(lambda: registry.event_log(task["id"])._waiters, message="the long poll is not waiting")
    assert not poll.done()
    await publish(client, task["id"], log("wake up"))
    woken = await asyncio.wait_for(poll, 5)
    assert woken.json()["last_event_id"] > after
    # An `after` already behind the task answers at once.
    assert (await asyncio.wait_for(client.get(url, params={"wait": 30, "after": 0}), 5)).status_code == 200
    assert_json_error(await client.get(url, params={"wait": "soon"}), 400, "wait")
    assert_json_error(await client.get(url, params={"wait": -1}), 400, "wait")


async def test_log_endpoint_pages_with_after(client):
    task = await create(client)
    await publish(client, task["id"], *(log(f"line {i}") for i in range(5)), {"type": "progress", "data": {"current": 1}})
    r = (await client.get(f"{API}/tasks/{task['id']}/log")).json()
    assert [e["data"]["text"] for e in r["events"]] == [f"line {i}" for i in range(5)]
    assert all(e["type"] == "log" for e in r["events"])
    page = (await client.get(f"{API}/tasks/{task['id']}/log", params={"after": 0, "limit": 2})).json()
    assert [e["data"]["text"] for e in page["events"]] == ["line 0", "line 1"]
    rest = (await client.get(f"{API}/tasks/{task['id']}/log", params={"after": page["last_event_id"]})).json()
    assert [e["data"]["text"] for e in rest["events"]] == ["line 2", "line 3", "line 4"]
    empty = (await client.get(f"{API}/tasks/{task['id']}/log", params={"after": rest["last_event_id"]})).json()
    assert empty["events"] == [] and empty["last_event_id"] == rest["last_event_id"]
    assert_json_error(await client.get(f"{API}/tasks/{task['id']}/log", params={"after": "x"}), 400, "after")


async def test_publish_validation_and_conflicts(client):
    task = await create(client)
    url = f"{API}/tasks/{task['id']}/events"
    assert_json_error(await client.post(url, json={"events": [{"type": "nope", "data": {}}]}), 400, "events[0].type")
    bad_second = {"events": [log("ok"), {"type": "progress", "data": {"current": "3"}}]}
    assert_json_error(await client.post(url, json=bad_second), 400, "events[1].data.current")
    # Nothing of a rejected batch was applied.
    assert (await client.get(f"{API}/tasks/{task['id']}/log")).json()["events"] == []
    assert_json_error(await client.post(url, content=b"{not json"), 400, "not valid JSON")
    assert_json_error(await client.post(url, content=b"\xff\xfe"), 400, "not valid UTF-8")
    assert_json_error(await client.post(url, json={"events": "x"}), 400, "events")
    assert_json_error(await client.post(url, json={"evnts": []}), 400, "evnts")
    assert_json_error(await client.post(url, json=[1]), 400, "body")
    await publish(client, task["id"], {"type": "status", "data": {"status": "completed"}})
    assert_json_error(await client.post(url, json={"events": [log("late")]}), 409, "already finished")
    assert_json_error(await client.post(f"{API}/tasks/nosuchtask/events", json={"events": []}), 404, "nosuchtask")


async def test_create_validation(client):
    url = f"{API}/tasks"
    assert_json_error(await client.post(url, json={"name": "x", "total": "many"}), 400, "total")
    assert_json_error(await client.post(url, json={"total": 3}), 400, "name")
    assert_json_error(await client.post(url, json={"name": "x", "kernel_id": "k"}), 400, "kernel_id")
    assert_json_error(await client.post(url, content=b""), 400, "JSON")
    assert_json_error(await client.post(url, content=b"x" * (5 * 1024 * 1024)), 413, "larger than")
    first = await create(client, "a", id="my-task")
    assert first["id"] == "my-task"
    assert_json_error(await client.post(url, json={"name": "b", "id": "my-task"}), 409, "already exists")


async def test_cancel_and_delete(client):
    task = await create(client)
    await publish(client, task["id"], log("working"))
    r = await client.post(f"{API}/tasks/{task['id']}/cancel")
    assert r.status_code == 202 and r.json()["cancel_requested"] is True
    assert r.json()["status"] == "running"  # the producer decides when it stops
    assert_json_error(await client.delete(f"{API}/tasks/{task['id']}"), 409, "still running")
    await publish(client, task["id"], {"type": "status", "data": {"status": "cancelled"}})
    assert_json_error(await client.post(f"{API}/tasks/{task['id']}/cancel"), 409, "already finished")
    assert (await client.delete(f"{API}/tasks/{task['id']}")).status_code == 204
    assert_json_error(await client.get(f"{API}/tasks/{task['id']}"), 404, task["id"])
    assert_json_error(await client.post(f"{API}/tasks/nope/cancel"), 404, "nope")
    assert_json_error(await client.delete(f"{API}/tasks/nope"), 404, "nope")
    # A task nobody has started ends at once when cancelled.
    pending = await create(client)
    r = await client.post(f"{API}/tasks/{pending['id']}/cancel")
    assert r.json()["status"] == "cancelled"


async def test_unknown_endpoints_answer_json_404(client):
    assert_json_error(await client.get(f"{API}/nothing/here"), 404, "no such endpoint")
    assert_json_error(await client.get(f"{API}/tasks/bad%20id"), 404)


async def test_no_input_yields_a_500(client):
    """A sweep of hostile inputs: every answer is a JSON 4xx (or success), never a 5xx."""
    task = await create(client)
    tid = task["id"]
    bodies = [
        b"null", b"[]", b"1", b'"s"', b"{}", b'{"events": null}', b'{"events": [null]}',
        b'{"events": [{"type": "log"}]}', b'{"events": [{"type": "log", "data": null}]}',
        b'{"events": [{"type": "status", "data": {"status": "pending"}}]}',
        b'{"events": [{"type": "progress", "data": {"current": 1e400}}]}',
        b'{"events": [{"type": "progress", "data": {"current": NaN}}]}',
        b'{"name": {"a": 1}}', b'{"name": "x", "total": true}', b'{"name": "x", "unit": 5}',
        b'{"name": "x", "id": ""}', b'{"tasks": [{"name": "x"}]}', b'{"tasks": {}}',
        b'{"events": [{"task": 5, "type": "log", "data": {"text": "x"}}]}',
        b'{"events": [{"type": "log", "data": {"lines": null}}]}',
        b'{"events": [{"type": "log", "data": {"lines": [1]}}]}',
        b'{"publisher": "p"}', b'{"seq": 1}', "\u2603".encode(),
    ]  # fmt: skip
    urls = [f"{API}/tasks", f"{API}/tasks/{tid}/events", f"{API}/events", f"{API}/tasks/{tid}/cancel"]
    for url in urls:
        for body in bodies:
            r = await client.post(url, content=body)
            assert r.status_code < 500, (url, body, r.status_code, r.text)
            if r.status_code >= 400:
                assert_json_error(r, r.status_code)
    for params in [{"wait": "nan"}, {"wait": "inf"}, {"after": "-5"}, {"after": "1.5"}, {"limit": "0"}]:
        for url in (f"{API}/tasks/{tid}", f"{API}/tasks/{tid}/log"):
            r = await client.get(url, params=params)
            assert r.status_code < 500, (url, params, r.text)


async def test_multi_task_publish_skips_finished_tasks_and_dedups_retries(client, publisher, registry):
    a, b = await create(client, "a"), await create(client, "b")
    await publish(client, b["id"], {"type": "status", "data": {"status": "completed"}})
    body = {
        "publisher": "p1",
        "seq": 1,
        "tasks": [{"id": "new-one", "name": "made in batch", "total": 2}],
        "events": [
            {"task": "new-one", **log("hello")},
            {"task": a["id"], **log("to a")},
            {"task": b["id"], **log("to finished b")},
        ],
    }
    r = await client.post(f"{API}/events", json=body)
    assert r.status_code == 200 and set(r.json()["skipped"]) == {b["id"]}
    assert registry.get("new-one").status == "running"
    again = await client.post(f"{API}/events", json=body)  # a retry of seq 1
    assert again.status_code == 204
    texts = [e["data"]["text"] for e in (await client.get(f"{API}/tasks/{a['id']}/log")).json()["events"]]
    assert texts == ["to a"]
    # A spec that collides with someone else's task refuses that task only.
    clash = {
        "tasks": [{"id": a["id"], "name": "not mine", "kernel_id": "other"}, {"id": "fresh", "name": "f"}],
        "events": [{"task": a["id"], **log("hijack")}, {"task": "fresh", **log("ok")}],
    }
    r = await publisher.post(f"{API}/events", json=clash)  # only a kernel's runtime sets kernel_id
    assert r.status_code == 200 and set(r.json()["skipped"]) == {a["id"]}
    assert registry.get("fresh").status == "running"
    texts = [e["data"]["text"] for e in (await client.get(f"{API}/tasks/{a['id']}/log")).json()["events"]]
    assert texts == ["to a"]


async def test_a_batch_of_lines_is_stored_and_streamed_as_one_event_per_line(client, publisher):
    """A kernel's publisher sends ``lines``; readers get one ``log`` event per line."""
    task = await create(client)
    lines = [f"line {i}" for i in range(3)]
    batch = [{"task": task["id"], "type": "log", "data": {"lines": lines}}]
    body = {"publisher": "k1", "seq": 1, "events": batch}
    assert (await publisher.post(f"{API}/events", json=body)).status_code == 204
    assert (await publisher.post(f"{API}/events", json=body)).status_code == 204  # a retry: not stored twice
    events = (await client.get(f"{API}/tasks/{task['id']}/log")).json()["events"]
    assert [e["data"] for e in events] == [{"stream": "stdout", "text": t} for t in lines]
    assert len({e["id"] for e in events}) == 3
    streamed = await read_sse(
        client, f"{API}/tasks/{task['id']}/events", headers={"Last-Event-ID": "0"},
        until=lambda got: sum(e == "log" for _, e, _ in got) == 3,
    )  # fmt: skip
    logged = [(e["id"], e["data"]["text"]) for e in events]
    assert [(int(i), d["text"]) for i, e, d in streamed if e == "log"] == logged
    # Refused whole, naming the field, with nothing applied.
    bad = {"events": [log("first"), {"type": "log", "data": {"lines": ["ok", None]}}]}
    refused = await client.post(f"{API}/tasks/{task['id']}/events", json=bad)
    assert_json_error(refused, 400, "events[1].data.lines[1]")
    mixed = {"events": [{"task": task["id"], "type": "log", "data": {"lines": ["x"], "text": "y"}}]}
    assert_json_error(await publisher.post(f"{API}/events", json=mixed), 400, "events[0].data.lines")
    # None of the kernel's batch applied; one stderr line on the task says it was refused, and why.
    after = (await client.get(f"{API}/tasks/{task['id']}/log")).json()["events"]
    assert len(after) == 4 and after[-1]["data"]["stream"] == "stderr"
    assert "refused" in after[-1]["data"]["text"] and "events[0].data.lines" in after[-1]["data"]["text"]


async def test_page_lists_tasks_with_names_escaped(client):
    await create(client, "<img src=x onerror=alert(1)>")
    r = await client.get("taskstream/")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert "&lt;img src=x onerror=alert(1)&gt;" in r.text
    assert "<img" not in r.text


async def test_large_json_round_trip_keeps_unicode(client):
    task = await create(client, "caf\u00e9 \u2603")
    text = "multi\nline\r\nwith \u00e9 and \U0001f600 and \x00 nul"
    await publish(client, task["id"], log(text, "stderr"))
    events = (await client.get(f"{API}/tasks/{task['id']}/log")).json()["events"]
    assert events[0]["data"] == {"stream": "stderr", "text": text}
    assert json.loads((await client.get(f"{API}/tasks/{task['id']}")).text)["name"] == "caf\u00e9 \u2603"


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "tasks"),
        ("POST", "tasks"),
        ("GET", "tasks/x"),
        ("DELETE", "tasks/x"),
        ("GET", "tasks/x/log"),
        ("GET", "tasks/x/events"),
        ("POST", "tasks/x/events"),
        ("POST", "tasks/x/cancel"),
        ("GET", "events"),
        ("POST", "events"),
        ("GET", "kernels/k/commands"),
        ("GET", "nothing"),
    ],
)
async def test_every_endpoint_refuses_anonymous_requests_with_403_json(anon, method, path):
    r = await anon.request(method, f"{API}/{path}", json={})
    assert r.status_code == 403, r.text  # never a redirect to a login page (EventSource gives up on those)
    assert r.headers["content-type"].startswith("application/json")


async def test_page_redirects_anonymous_users_to_login(anon):
    r = await anon.get("taskstream/")
    assert r.status_code == 302 and "login" in r.headers["location"]


async def test_cookie_authenticated_post_needs_xsrf(anon, jp_serverapp, client):
    token = jp_serverapp.identity_provider.token
    login = await anon.get("login")
    xsrf = login.cookies.get("_xsrf") or anon.cookies.get("_xsrf")
    r = await anon.post("login", data={"password": token, "_xsrf": xsrf})
    assert r.status_code in (302, 303), r.text
    assert (await anon.get(f"{API}/tasks")).status_code == 200  # the cookie works for reading
    refused = await anon.post(f"{API}/tasks", json={"name": "csrf"})
    assert refused.status_code == 403
    accepted = await anon.post(f"{API}/tasks", json={"name": "ok"}, headers={"X-XSRFToken": anon.cookies["_xsrf"]})
    assert accepted.status_code == 201, accepted.text
    names = [t["name"] for t in (await client.get(f"{API}/tasks")).json()["tasks"]]
    assert names == ["ok"]


async def test_publish_secret_creates_and_publishes_but_reads_nothing(publisher, client, server_url):
    r = await publisher.post(f"{API}/tasks", json={"name": "kernel task", "id": "k-task", "kernel_id": "k1"})
    assert r.status_code == 201, r.text
    assert r.json()["kernel_id"] == "k1"
    r = await publisher.post(f"{API}/tasks/k-task/events", json={"events": [log("from kernel")]})
    assert r.status_code == 204
    for method, path in [
        ("GET", "tasks"),
        ("GET", "tasks/k-task"),
        ("GET", "tasks/k-task/log"),
        ("GET", "tasks/k-task/events"),
        ("GET", "events"),
        ("POST", "tasks/k-task/cancel"),
        ("DELETE", "tasks/k-task"),
    ]:
        refused = await publisher.request(method, f"{API}/{path}")
        assert refused.status_code == 403, (method, path, refused.status_code)
    wrong = await publisher.post(
        f"{API}/tasks/k-task/events", json={"events": [log("x")]}, headers={"X-TaskStream-Secret": "guess"}
    )
    assert wrong.status_code == 403
    # The user's token cannot read the kernel command channel; the secret can.
    assert (await client.get(f"{API}/kernels/k1/commands")).status_code == 403
    assert (await client.get(f"{API}/tasks/k-task")).json()["status"] == "running"


async def test_current_activity_reports_running_tasks(client, jp_serverapp):
    app = jp_serverapp.extension_manager.extension_apps["jupyter_taskstream"]
    (ext,) = app
    assert ext.current_activity() is False
    task = await create(client)
    await publish(client, task["id"], log("busy"))
    assert ext.current_activity() is True
    assert jp_serverapp.extension_manager.any_activity()
    await publish(client, task["id"], {"type": "status", "data": {"status": "completed"}})
    await wait_for(lambda: ext.current_activity() is False, message="activity to end")


async def test_starting_code_needs_a_known_kernel_and_user_credentials(client, publisher):
    url = f"{API}/tasks"
    assert_json_error(await client.post(url, json={"name": "x", "code": "1"}), 400, "kernel_id")
    assert_json_error(await client.post(url, json={"name": "x", "code": "", "kernel_id": "k"}), 400, "code")
    assert_json_error(await client.post(url, json={"name": "x", "code": 5, "kernel_id": "k"}), 400, "code")
    assert_json_error(await client.post(url, json={"name": "x", "code": "1", "kernel_id": "nope"}), 404, "nope")
    r = await publisher.post(url, json={"name": "x", "code": "1", "kernel_id": "nope"})
    assert r.status_code == 403 and "cannot run code" in r.json()["message"]


@pytest.mark.parametrize(
    "path, body, field",
    [
        ("tasks", '{"name": "bad \\ud800 name"}', "name"),
        ("tasks/{tid}/events", '{"events": [{"type": "log", "data": {"text": "\\udcff"}}]}', "events[0].data.text"),
        ("events", '{"tasks": [{"id": "sur1", "name": "x\\ud800"}], "events": []}', "tasks[0].name"),
        ("events", '{"events": [{"task": "{tid}", "type": "log", "data": {"lines": ["ok", "\\ud83d"]}}]}',
         "events[0].data.lines[1]"),
    ],
)  # fmt: skip
async def test_lone_surrogates_are_refused_at_once_naming_the_field(client, path, body, field):
    """Valid JSON that is not valid Unicode text: a prompt 400, not a hang and a lost commit."""
    task = await create(client)
    url = f"{API}/" + path.replace("{tid}", task["id"])
    r = await asyncio.wait_for(client.post(url, content=body.replace("{tid}", task["id"]).encode()), 2)
    assert_json_error(r, 400, field, "surrogate")
    # The hub still commits and answers what comes next, and a valid pair is text like any other.
    await publish(client, task["id"], log("after \U0001f600"))
    r = await asyncio.wait_for(client.post(f"{API}/tasks", content=b'{"name": "pair \\ud83d\\ude00"}'), 2)
    assert r.status_code == 201 and r.json()["name"] == "pair \U0001f600"
    events = (await client.get(f"{API}/tasks/{task['id']}/log")).json()["events"]
    assert [e["data"]["text"] for e in events] == ["after \U0001f600"]


async def test_huge_integers_and_deep_nesting_are_400_not_500(client):
    task = await create(client)
    huge = "1" + "0" * 400
    cases = [
        (f"{API}/tasks", f'{{"name": "x", "total": {huge}}}', "total"),
        (f"{API}/tasks/{task['id']}/events", f'{{"events": [{{"type": "progress", "data": {{"current": {huge}}}}}]}}',
         "current"),
        (f"{API}/tasks/{task['id']}/events",
         f'{{"events": [{{"type": "progress", "data": {{"current": 1, "rate": {huge}}}}}]}}', "rate"),
        (f"{API}/tasks/{task['id']}/events",
         f'{{"events": [{{"type": "progress", "data": {{"current": 1, "eta": -{huge}}}}}]}}', "eta"),
    ]  # fmt: skip
    deep = "[" * 10_000 + "]" * 10_000
    cases += [(url, deep, "nested too deeply") for url in (f"{API}/tasks", f"{API}/tasks/{task['id']}/events", f"{API}/events")]
    for url, body, words in cases:
        assert_json_error(await client.post(url, content=body.encode()), 400, words)


async def test_query_numbers_are_decimal_ascii_only(client):
    task = await create(client)
    for value in ("1_0", "\u0661\u0662", "\uff11", "1e3", "0x10", "-1"):
        assert_json_error(await client.get(f"{API}/tasks/{task['id']}/log", params={"after": value}), 400, "after")
    assert (await client.get(f"{API}/tasks/{task['id']}/log", params={"after": "0"})).status_code == 200
    assert (await client.get(f"{API}/tasks/{task['id']}", params={"wait": "0.5", "after": "0"})).status_code == 200


async def test_no_credential_reaches_any_log_line(client, server_url, jp_serverapp, jp_auth_header):
    """EventSource clients authenticate with ?token=: a bad request must not log it, at any level."""
    token = jp_auth_header["Authorization"].split()[-1]
    records: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record):
            if not record.name.startswith(("httpx", "httpcore")):  # the test's own client
                records.append(self.format(record))

    handler = Collect(level=logging.DEBUG)
    loggers = [logging.getLogger(), logging.getLogger("tornado.general"), logging.getLogger("tornado.application"),
               logging.getLogger("tornado.access"), jp_serverapp.log]  # fmt: skip
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.addHandler(handler)
        lg.setLevel(logging.DEBUG)
    try:
        task = await create(client)
        async with httpx.AsyncClient(base_url=server_url, timeout=10) as anon:
            for path in (f"{API}/tasks/{task['id']}/log?after=abc", f"{API}/tasks/{task['id']}?wait=x",
                         f"{API}/tasks/nosuch", f"{API}/nothing", "taskstream/?x=1"):  # fmt: skip
                sep = "&" if "?" in path else "?"
                r = await anon.get(f"{path}{sep}token={token}")
                assert r.status_code in (200, 400, 404), (path, r.status_code)
            r = await anon.post(f"{API}/tasks?token={token}", content=b"{bad")
            assert r.status_code in (400, 403)
    finally:
        for lg, level in zip(loggers, levels):
            lg.removeHandler(handler)
            lg.setLevel(level)
    assert any("after" in line for line in records), "the bad request was not logged at all"
    assert not [line for line in records if token in line]


async def test_a_body_that_is_not_utf_8_is_refused_with_400_even_an_encoded_surrogate(client):
    # Found by tests/hub/test_fuzz_hostile.py: json.loads(bytes) decodes with "surrogatepass", so the
    # bytes ED A0 80 became a lone surrogate that reached the store and answered 503.
    for body in (b'{"name": "\xed\xa0\x80"}', b'{"name": "\xff"}', b'{"name": "\xc3\x28"}'):
        r = await client.post(f"{API}/tasks", content=body, headers={"Content-Type": "application/json"})
        assert_json_error(r, 400, "UTF-8")
    assert (await client.get(f"{API}/tasks")).json() == {"tasks": []}
