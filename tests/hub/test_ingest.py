"""Publishing across protocol versions: the current hub with older and newer kernels, over real HTTP.

Kernels and the server often run different package versions. A batch says which publish
protocol it speaks (no ``protocol`` field: version 1). The hub applies what it understands of
a newer kernel's batch and counts what it skipped; a batch it cannot serve gets a 400 naming
why and one line on each task it named. Hand-written input stays strict.
"""

from __future__ import annotations

import json

from jupyter_taskstream.protocol import PROTOCOL_HEADER, PROTOCOL_VERSION, TEXT_BATCH_TYPE, encode_batch

from .test_handlers import API, assert_json_error, create, log


async def task_log(client, task_id) -> list[dict]:
    return [e["data"] for e in (await client.get(f"{API}/tasks/{task_id}/log")).json()["events"]]


async def test_an_older_kernel_without_the_protocol_field_is_served(client, publisher, registry):
    body = {
        "publisher": "old-kernel", "seq": 1,
        "tasks": [{"id": "old1", "name": "from an old kernel", "total": 2, "kernel_id": "k-old"}],
        "events": [
            {"task": "old1", "type": "progress", "data": {"current": 1}},
            {"task": "old1", "type": "log", "data": {"stream": "stdout", "lines": ["a", "b"]}},
        ],
    }  # fmt: skip
    r = await publisher.post(f"{API}/events", json=body)
    assert r.status_code == 204, r.text
    assert [d["text"] for d in await task_log(client, "old1")] == ["a", "b"]
    assert registry.get("old1").current == 1 and registry.get("old1").kernel_id == "k-old"


async def test_a_newer_kernel_gets_what_the_hub_knows_applied_and_the_rest_counted(client, publisher, registry):
    newer = PROTOCOL_VERSION + 1
    body = {
        "protocol": newer, "publisher": "new-kernel", "seq": 1,
        "compression": "none",  # a batch field from the future
        "tasks": [{"id": "new1", "name": "from a new kernel", "kernel_id": "k-new", "colour": "teal"}],
        "events": [
            {"task": "new1", "type": "log", "data": {"stream": "stdout", "text": "hello", "at": 1.5}},
            {"task": "new1", "type": "metric", "data": {"loss": 0.25}},  # an event type from the future
            {"task": "new1", "type": "progress", "data": {"current": 3, "total": 10}, "trace": "abc"},
            {"task": "new1", "type": "status", "data": {"status": "completed"}},
        ],
    }  # fmt: skip
    r = await publisher.post(f"{API}/events", json=body)
    assert r.status_code == 200, r.text
    # Four unknown fields (batch, spec, event data, event) and one unknown event type.
    assert r.json() == {"ignored": {"fields": 4, "events": 1}}
    snapshot = (await client.get(f"{API}/tasks/new1")).json()
    assert snapshot["status"] == "completed" and snapshot["progress"]["current"] == 3
    assert [d["text"] for d in await task_log(client, "new1")] == ["hello"]
    assert "colour" not in snapshot and all("loss" not in str(d) for d in await task_log(client, "new1"))


async def test_a_batch_the_hub_cannot_serve_is_refused_and_said_on_the_task_once(client, publisher, registry):
    await publisher.post(f"{API}/tasks", json={"name": "victim", "id": "v1", "kernel_id": "k-v"})
    too_old = {"protocol": 0, "events": [{"task": "v1", **log("lost line")}]}
    refused = await publisher.post(f"{API}/events", json=too_old)
    assert_json_error(refused, 400, "protocol", "older than this hub serves")
    again = await publisher.post(f"{API}/events", json=too_old)
    assert again.status_code == 400
    lines = await task_log(client, "v1")
    assert len(lines) == 1, lines  # one line says it, not one per refused batch
    assert lines[0]["stream"] == "stderr" and "refused" in lines[0]["text"] and "protocol" in lines[0]["text"]
    # A task the refused batch would have created is created to carry the message.
    fresh = {"protocol": 0, "tasks": [{"id": "v2", "name": "never seen", "kernel_id": "k-v"}],
             "events": [{"task": "v2", **log("lost")}]}  # fmt: skip
    assert (await publisher.post(f"{API}/events", json=fresh)).status_code == 400
    assert "refused" in (await task_log(client, "v2"))[0]["text"]
    # A body shape it cannot read at all: a JSON 400, and the server goes on.
    assert_json_error(await publisher.post(f"{API}/events", json=["not", "a", "batch"]), 400, "body")
    assert_json_error(await publisher.post(f"{API}/events", json={"protocol": "2"}), 400, "protocol")
    assert (await publisher.post(f"{API}/events", json={"events": [{"task": "v1", **log("ok")}]})).status_code == 204


async def test_a_current_kernel_with_an_unknown_field_is_refused_naming_it(client, publisher):
    body = {"protocol": PROTOCOL_VERSION, "events": [{"task": "c1", **log("x")}]}
    await publisher.post(f"{API}/tasks", json={"name": "current", "id": "c1", "kernel_id": "k-c"})
    body["events"][0]["data"]["colour"] = "red"
    assert_json_error(await publisher.post(f"{API}/events", json=body), 400, "events[0].data.colour")


async def test_hand_written_input_stays_strict(client):
    task = await create(client)
    bad = {"events": [{"type": "log", "data": {"text": "x", "colour": "red"}}]}
    assert_json_error(await client.post(f"{API}/tasks/{task['id']}/events", json=bad), 400, "events[0].data.colour")
    unknown_type = {"events": [{"type": "metric", "data": {}}]}
    assert_json_error(await client.post(f"{API}/tasks/{task['id']}/events", json=unknown_type), 400, "events[0].type")
    assert_json_error(await client.post(f"{API}/tasks", json={"name": "x", "colour": "red"}), 400, "colour")
    assert_json_error(await client.post(f"{API}/tasks", json={"name": "x", "unit": ""}), 400, "unit")


async def test_only_a_kernels_runtime_sets_kernel_id_on_either_endpoint(client, publisher):
    spec = {"id": "kid1", "name": "claims a kernel", "kernel_id": "someone-elses"}
    assert_json_error(await client.post(f"{API}/tasks", json=spec), 400, "kernel_id", "kernel's runtime")
    assert_json_error(await client.post(f"{API}/events", json={"tasks": [spec]}), 400, "tasks[0].kernel_id")
    assert_json_error(await client.post(f"{API}/events", json={"tasks": [{**spec, "code": "1"}]}), 400, "code")
    r = await publisher.post(f"{API}/events", json={"tasks": [spec]})
    assert r.status_code == 204, r.text


async def test_the_protocol_version_is_a_json_integer_even_written_3_0(client, publisher):
    # Found by schemathesis: JSON Schema's "integer" takes 3.0, and so does the hub now.
    body = {"protocol": 3.0, "tasks": [{"id": "p30", "name": "three point oh"}], "events": []}
    assert (await publisher.post(f"{API}/events", json=body)).status_code in (200, 204)
    for bad in (3.5, "3", True):
        r = await publisher.post(f"{API}/events", json={**body, "protocol": bad})
        assert r.status_code == 400 and "protocol" in r.json()["message"], (bad, r.text)


async def test_null_publisher_or_seq_is_refused_and_an_answer_may_only_count_what_was_ignored(client):
    # Found by schemathesis: a present null was read as absent, though the description says integer.
    for body in ({"protocol": 4, "seq": None}, {"publisher": None}, {"seq": None, "publisher": "p"}):
        r = await client.post(f"{API}/events", json=body)
        assert r.status_code == 400, (body, r.text)
    r = await client.post(f"{API}/events", json={"protocol": PROTOCOL_VERSION + 1, "events": [], "colour": 1})
    assert r.status_code == 200 and r.json() == {"ignored": {"fields": 1, "events": 0}}


# ---- text batches (protocol 4): the lines outside the JSON ------------------------------------


async def test_a_text_batch_stores_one_event_per_line_in_order(client, publisher, registry):
    lines = [f"line {i} é ✓" for i in range(500)] + ["", "last"]
    batch = {
        "protocol": 4, "publisher": "text-kernel", "seq": 1,
        "tasks": [{"id": "txt1", "name": "text batch", "kernel_id": "k-txt"}],
        "events": [
            {"task": "txt1", "type": "log", "data": {"stream": "stdout", "lines": lines}},
            {"task": "txt1", "type": "progress", "data": {"current": 2}},
            {"task": "txt1", "type": "log", "data": {"stream": "stderr", "lines": ["oops \ud800"]}},
        ],
    }  # fmt: skip
    body, content_type = encode_batch(batch, text=True)
    assert content_type == TEXT_BATCH_TYPE and b'"lines"' not in body
    r = await publisher.post(f"{API}/events", content=body, headers={"Content-Type": content_type})
    assert r.status_code == 204, r.text
    assert r.headers[PROTOCOL_HEADER] == str(PROTOCOL_VERSION)
    got = await task_log(client, "txt1")
    assert [(d["stream"], d["text"]) for d in got] == [("stdout", line) for line in lines] + [("stderr", "oops \ufffd")]
    assert registry.get("txt1").current == 2


async def test_a_bad_text_batch_gets_a_400_that_says_what_is_wrong(publisher):
    async def post(body: bytes) -> dict:
        r = await publisher.post(f"{API}/events", content=body, headers={"Content-Type": TEXT_BATCH_TYPE})
        assert r.headers[PROTOCOL_HEADER] == str(PROTOCOL_VERSION)  # an error answer says it too
        return r

    def event(data: dict) -> bytes:
        return json.dumps({"protocol": 4, "events": [{"task": "nope", "type": "log", "data": data}]}).encode()

    assert_json_error(await post(b'{"events": []}'), 400, "a JSON line, a newline")
    assert_json_error(await post(b"not json\nabc"), 400, "first line", "must be JSON")
    for span in ([0, 99], [-1, 1], [0], "0,1", [0.0, 1]):
        r = await post(event({"stream": "stdout", "lines_at": span}) + b"\nabc")
        assert_json_error(r, 400, "events[0].data.lines_at", "[offset, length]")
    r = await post(event({"stream": "stdout", "lines_at": [0, 2], "text": "x"}) + b"\nab")
    assert_json_error(r, 400, "events[0].data.lines_at", "together")
    assert_json_error(await post(event({"stream": "stdout", "lines_at": [0, 2]}) + b"\n\xff\xfe"), 400, "UTF-8")
    assert_json_error(await post(b'{"events": [{"x": "\\ud800"}]}\n'), 400, "lone surrogate")
