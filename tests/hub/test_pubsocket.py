"""The publish socket (protocol 5): batches over one WebSocket, each answered in order.

A real server in-process and tornado's own WebSocket client on the test's loop: the
answers must be the POST's (status, body), the retry rule the POST's, and the socket's
door as closed as the POST's.
"""

from __future__ import annotations

import collections
import json
import random

import pytest
from tornado import httpclient, websocket

from jupyter_taskstream.hub.pubsocket import close_publish_sockets
from jupyter_taskstream.protocol import PROTOCOL_HEADER, PROTOCOL_VERSION, SECRET_HEADER, encode_batch

from ..conftest import wait_for
from .test_handlers import API, assert_json_error

pytestmark = pytest.mark.timeout(60)


def socket_url(server_url: str) -> str:
    return "ws" + server_url[len("http"):] + f"{API}/events/socket"


async def connect(server_url: str, headers: dict[str, str]) -> websocket.WebSocketClientConnection:
    request = httpclient.HTTPRequest(socket_url(server_url), headers=headers)
    return await websocket.websocket_connect(request)


@pytest.fixture
def secret_headers(jp_serverapp) -> dict[str, str]:
    return {SECRET_HEADER: jp_serverapp.web_app.settings["taskstream_secret"]}


async def ask(ws, batch: dict, text: bool = False) -> dict:
    body, _ = encode_batch(batch, text)
    await ws.write_message(body if text else body.decode(), binary=text)
    reply = await ws.read_message()
    assert reply is not None, "the hub closed the socket instead of answering"
    return json.loads(reply)


async def task_texts(client, task_id: str) -> list[str]:
    return [e["data"]["text"] for e in (await client.get(f"{API}/tasks/{task_id}/log")).json()["events"]]


async def test_json_and_text_batches_are_applied_stored_and_answered_in_order(server_url, secret_headers, client, registry):
    ws = await connect(server_url, secret_headers)
    spec = {"id": "sock1", "name": "over the socket", "kernel_id": "k-sock"}
    first = {"protocol": PROTOCOL_VERSION, "publisher": "p-sock", "seq": 1, "tasks": [spec],
             "events": [{"task": "sock1", "type": "log", "data": {"stream": "stdout", "lines": ["a", "b"]}}]}
    assert await ask(ws, first) == {"status": 204, "protocol": PROTOCOL_VERSION}
    second = {"protocol": PROTOCOL_VERSION, "publisher": "p-sock", "seq": 2, "tasks": [],
              "events": [{"task": "sock1", "type": "log", "data": {"stream": "stdout", "lines": ["c ✓", "d"]}},
                         {"task": "sock1", "type": "progress", "data": {"current": 3}}]}
    assert (await ask(ws, second, text=True))["status"] == 204
    assert await task_texts(client, "sock1") == ["a", "b", "c ✓", "d"]
    assert registry.get("sock1").current == 3 and registry.get("sock1").kernel_id == "k-sock"
    # A batch sent again (its answer was lost with a broken socket, say) is applied once.
    assert (await ask(ws, second, text=True))["status"] == 204
    assert await task_texts(client, "sock1") == ["a", "b", "c ✓", "d"]
    ws.close()


async def test_a_bad_batch_gets_the_posts_answer_and_the_socket_stays_open(server_url, secret_headers, client):
    ws = await connect(server_url, secret_headers)
    bad = await ask(ws, {"protocol": PROTOCOL_VERSION, "events": [{"task": "sock2", "type": "log", "data": 7}]})
    assert bad["status"] == 400 and "events[0]" in bad["body"]["message"], bad
    await ws.write_message(b"not a text batch", binary=True)
    garbled = json.loads(await ws.read_message())
    assert garbled["status"] == 400 and "text" in garbled["body"]["message"], garbled
    unknown = await ask(ws, {"protocol": PROTOCOL_VERSION, "events": [
        {"task": "nosuchtask", "type": "log", "data": {"text": "x"}}]})  # fmt: skip
    assert unknown["status"] == 200 and "nosuchtask" in unknown["body"]["skipped"], unknown
    spec = {"id": "sock2", "name": "after the errors"}
    ok = await ask(ws, {"protocol": PROTOCOL_VERSION, "tasks": [spec],
                        "events": [{"task": "sock2", "type": "log", "data": {"text": "still here"}}]})  # fmt: skip
    assert ok["status"] == 204
    assert await task_texts(client, "sock2") == ["still here"]
    ws.close()


async def test_the_door_is_the_posts_secret_or_a_users_token(server_url, secret_headers, jp_auth_header, anon, client):
    for headers in ({}, {SECRET_HEADER: "wrong"}):
        with pytest.raises(httpclient.HTTPClientError) as refused:
            await connect(server_url, headers)
        assert refused.value.code == 403
    ws = await connect(server_url, jp_auth_header)  # a script publishing with the user's token
    assert ws.headers[PROTOCOL_HEADER] == str(PROTOCOL_VERSION)
    assert (await ask(ws, {"protocol": PROTOCOL_VERSION, "tasks": [{"id": "sock3", "name": "a script's"}],
                           "events": []}))["status"] == 204  # fmt: skip
    ws.close()
    # Not a WebSocket: a JSON 400 that says what the URL is; a POST: 405 naming GET.
    r = await client.get(f"{API}/events/socket")
    assert_json_error(r, 400)
    assert "WebSocket" in r.json()["message"]
    r = await client.post(f"{API}/events/socket", json={"events": []})
    assert r.status_code == 405 and r.headers["Allow"].split(", ")[0] == "GET" and "POST" not in r.headers["Allow"]
    assert (await anon.get(f"{API}/events/socket")).status_code == 403


async def test_stopping_closes_every_socket(server_url, secret_headers, jp_serverapp):
    ws = await connect(server_url, secret_headers)
    settings = jp_serverapp.web_app.settings
    await wait_for(lambda: settings.get("taskstream_publish_sockets"), message="the socket is not registered")
    close_publish_sockets(settings)
    assert await ws.read_message() is None  # closed by the hub
    assert ws.close_code == 1001
    await wait_for(lambda: not settings["taskstream_publish_sockets"], message="a closed socket stayed registered")


async def test_hostile_messages_get_answers_never_a_500_and_the_socket_lives_on(server_url, secret_headers, client):
    """What an HTTP fuzzer cannot send: seeded garbage as binary and text messages."""
    rng = random.Random(1616)
    ws = await connect(server_url, secret_headers)
    pieces = [b"{", b"}", b"[", b"\n", b'"events"', b'"tasks"', b'"lines_at"', b"[0, 99]", b"\xed\xa0\x80",
              b"\xff", b"null", b"1e999", b'{"task": "h1", "type": "log", "data": {}}', b":", b","]
    statuses = collections.Counter()
    for i in range(300):
        message = b"".join(rng.choice(pieces) for _ in range(rng.randint(0, 12)))
        if i % 2:
            await ws.write_message(message, binary=True)
        else:
            await ws.write_message(message.decode("utf-8", "replace"))
        reply = json.loads(await ws.read_message())
        statuses[reply["status"]] += 1
        assert reply["status"] in (200, 204, 400), (message, reply)
        assert "Traceback" not in json.dumps(reply)
    assert statuses[400] > 250, statuses  # mostly refused, each with a message
    ok = await ask(ws, {"protocol": PROTOCOL_VERSION, "tasks": [{"id": "h1", "name": "after the garbage"}],
                        "events": [{"task": "h1", "type": "log", "data": {"text": "fine"}}]})  # fmt: skip
    assert ok["status"] == 204 and await task_texts(client, "h1") == ["fine"]
    ws.close()


async def test_a_page_of_another_site_cannot_open_it_with_the_users_login_cookie(server_url, anon, token):
    """Cross-site WebSocket hijacking: a browser sends the login cookie and its page's Origin."""
    await anon.get("login")  # the XSRF cookie of the login form
    r = await anon.post("login", data={"password": token, "_xsrf": anon.cookies["_xsrf"]})
    assert r.status_code in (200, 302), r.text
    cookie = "; ".join(f"{name}={value}" for name, value in anon.cookies.items())
    host = server_url.split("/")[2]
    with pytest.raises(httpclient.HTTPClientError) as refused:
        await connect(server_url, {"Cookie": cookie, "Origin": "http://evil.example"})
    assert refused.value.code == 404  # jupyter_server's answer to a cross-origin API request
    ws = await connect(server_url, {"Cookie": cookie, "Origin": f"http://{host}"})  # the Jupyter page itself
    assert (await ask(ws, {"protocol": PROTOCOL_VERSION, "events": []}))["status"] == 204
    ws.close()
