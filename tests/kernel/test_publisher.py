"""The runtime talking to a real hub in-process: publishing, commands, retries and shedding.

The server runs on the test's event loop, so blocking runtime calls run in threads
(``asyncio.to_thread``) and every wait is an async wait with a deadline.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from jupyter_taskstream.errors import TaskNotFound
from jupyter_taskstream.hub.pubsocket import close_publish_sockets
from jupyter_taskstream.kernel.outbox import Outbox
from jupyter_taskstream.kernel.publisher import Publisher
from jupyter_taskstream.protocol import (
    ENV_SECRET, ENV_TOKEN, ENV_URL, JSON_TYPE, PROTOCOL_HEADER, PROTOCOL_VERSION, TEXT_BATCH_TYPE, JoinedLines,
    decode_text_batch,
)  # fmt: skip
from jupyter_taskstream.kernel.runtime import Runtime
from jupyter_taskstream.kernel.config import RuntimeConfig

from ..conftest import wait_for
from ..kernel_fixtures import shown_ended

pytestmark = pytest.mark.timeout(60)
API = "taskstream/api"
KERNEL = "kernel-under-test"


@pytest.fixture
def taskstream_config() -> dict:
    # The kernel id here names no real kernel: keep the hub's liveness check from failing its tasks.
    return {"heartbeat_interval": 0.5, "retry_ms": 100, "kernel_check_interval": 600}


@pytest.fixture
def hub_runtime(jp_serverapp, api_url):
    """Make runtimes that publish to the test server; close them in the test with `close`."""
    secret = jp_serverapp.web_app.settings["taskstream_secret"]
    made = []

    def make(**kwargs) -> Runtime:
        publisher = Publisher(api_url, secret, KERNEL, backoff_max=0.2)
        kwargs.setdefault("namespace", {})
        runtime = Runtime(RuntimeConfig(cancel_grace_period=0.3), publisher=publisher, kernel_id=KERNEL, **kwargs)
        made.append(runtime)
        return runtime

    yield make
    for runtime in made:  # the server's loop no longer runs here: do not wait for it
        runtime.close(0.1)


async def close(runtime: Runtime) -> None:
    await asyncio.to_thread(runtime.close, 5)


def hub_task(registry, task_id):
    try:
        return registry.get(task_id)
    except TaskNotFound:
        return None


async def hub_log(client, task_id) -> list[str]:
    """Every retained log line of a task, paging through the polling endpoint."""
    texts, after = [], 0
    while True:
        body = (await client.get(f"{API}/tasks/{task_id}/log", params={"after": after})).json()
        if not body["events"]:
            return texts
        texts += [e["data"]["text"] for e in body["events"]]
        after = body["events"][-1]["id"]


async def test_a_task_reaches_the_hub_with_progress_log_and_status(hub_runtime, registry, client):
    rt = hub_runtime()

    def work():
        with rt.task("train", total=50) as t:
            for i in rt.progress(range(50)):
                print(f"line {i}")
            t.set(message="done")
        return t.id

    task_id = await asyncio.to_thread(work)
    await wait_for(lambda: shown_ended(registry, task_id), message="task ends in the hub")
    snap = (await client.get(f"{API}/tasks/{task_id}")).json()
    assert snap["status"] == "completed" and snap["kernel_id"] == KERNEL and snap["message"] == "done"
    assert snap["progress"]["current"] == 50 and snap["progress"]["total"] == 50
    assert await hub_log(client, task_id) == [f"line {i}" for i in range(50)]
    await close(rt)


async def test_a_failure_reaches_the_hub_with_its_traceback(hub_runtime, registry):
    rt = hub_runtime()

    def explode():
        raise RuntimeError("kaboom")

    t = rt.run(explode)
    await wait_for(lambda: shown_ended(registry, t.id))
    hub = registry.get(t.id)
    assert hub.status == "failed" and hub.error["type"] == "RuntimeError"
    assert "kaboom" in hub.error["message"] and "in explode" in hub.error["traceback"]
    await close(rt)


async def test_many_lines_arrive_in_order_and_the_tail_is_right(hub_runtime, registry, client):
    rt = hub_runtime()

    def chatty():
        for i in range(20_000):
            print(f"n={i}")

    t = rt.run(chatty)
    await wait_for(lambda: shown_ended(registry, t.id), timeout=30)
    texts = await hub_log(client, t.id)
    assert texts[-1] == "n=19999" and len(texts) >= registry.retention_events - 100
    assert texts == [f"n={i}" for i in range(20_000 - len(texts), 20_000)]  # ordered, none lost
    assert rt.publisher.dropped_lines == 0
    assert rt.publisher.client.hub_protocol == PROTOCOL_VERSION  # so the lines went as text batches
    await close(rt)


@pytest.mark.parametrize(
    "taskstream_config",
    [{"heartbeat_interval": 0.5, "retry_ms": 100, "kernel_check_interval": 600, "retention_events": 100_000}],
)
async def test_a_burst_of_prints_reaches_the_hub_whole_and_in_order(hub_runtime, registry, client):
    """Case 2 of issue 6 as a contract: every line of a burst, in order, none shed."""
    rt = hub_runtime()
    n = 60_000

    def burst():
        with rt.task("burst") as t:
            for i in range(n):
                print("line", i, "of the burst")
                if i % 10_000 == 0:
                    print("checkpoint", i, file=sys.stderr)
        return t

    t = await asyncio.to_thread(burst)
    await wait_for(lambda: shown_ended(registry, t.id), timeout=60, message="the burst's task ends")
    events, after = [], 0
    while True:
        body = (await client.get(f"{API}/tasks/{t.id}/log", params={"after": after})).json()
        if not body["events"]:
            break
        events += [(e["data"]["stream"], e["data"]["text"]) for e in body["events"]]
        after = body["events"][-1]["id"]
    expected = []
    for i in range(n):
        expected.append(("stdout", f"line {i} of the burst"))
        if i % 10_000 == 0:
            expected.append(("stderr", f"checkpoint {i}"))
    assert events == expected
    assert rt.publisher.dropped_lines == 0 and rt.publisher.sent_events >= len(expected)
    assert registry.snapshot(t.id)["log_dropped"] == 0
    await close(rt)


async def test_batches_go_over_the_publish_socket_and_posts_take_over_when_it_breaks(
    hub_runtime, registry, client, jp_serverapp
):
    rt = hub_runtime()
    sockets = lambda: jp_serverapp.web_app.settings.get("taskstream_publish_sockets")  # noqa: E731

    def chatty(name):
        with rt.task(name) as t:
            for i in range(200):
                print(f"{name} {i}")
        return t

    first = await asyncio.to_thread(chatty, "before")
    await wait_for(lambda: shown_ended(registry, first.id), message="the first task ends")
    # The first answer said 5: everything after it went over the socket, which the hub holds.
    assert rt.publisher.client.socket is not None and sockets()
    assert rt.publisher.client.socket_error is None
    close_publish_sockets(jp_serverapp.web_app.settings)  # as a stopping server does
    second = await asyncio.to_thread(chatty, "after")
    await wait_for(lambda: shown_ended(registry, second.id), message="the second task ends")
    assert rt.publisher.client.socket_error is not None  # noticed on the next batch, which was POSTed
    for t, name in ((first, "before"), (second, "after")):
        assert await hub_log(client, t.id) == [f"{name} {i}" for i in range(200)]  # none lost, none twice
    assert rt.publisher.dropped_lines == 0
    await close(rt)


async def test_rest_cancel_reaches_a_cooperative_and_a_tight_task(hub_runtime, registry, client):
    rt = hub_runtime()
    assert rt.connect_hub()
    await wait_for(rt.commands.connected.is_set, message="command stream open")

    def cooperative():
        for _ in rt.progress(iter(int, 1)):  # endless
            pass

    def tight():
        while True:
            pass

    tasks = [rt.run(cooperative), rt.run(tight)]
    for t in tasks:
        await wait_for(lambda t=t: (h := hub_task(registry, t.id)) and h.status == "running")
        r = await client.post(f"{API}/tasks/{t.id}/cancel")
        assert r.status_code == 202 and r.json()["cancel_requested"] is True
    for t in tasks:
        await wait_for(lambda t=t: t.done, message=f"{t.name} stops")
        await wait_for(lambda t=t: shown_ended(registry, t.id))
        assert t.status == "cancelled" and registry.get(t.id).status == "cancelled"
    await close(rt)


async def test_a_local_cancel_is_visible_in_the_hub_before_the_task_ends(hub_runtime, registry):
    rt = hub_runtime()
    gate = threading.Event()

    def stubborn():
        gate.wait(10)  # a blocking call: the cancel lands at the next step after it returns
        rt.current().update()

    task = rt.run(stubborn)
    await wait_for(lambda: (h := hub_task(registry, task.id)) and h.status == "running")
    task.cancel()
    await wait_for(lambda: registry.get(task.id).cancel_requested, message="the hub to see the request")
    assert registry.get(task.id).status == "running"
    gate.set()
    await wait_for(lambda: registry.get(task.id).status == "cancelled", message="the task to end")
    await close(rt)


async def test_start_command_runs_code_as_that_task(hub_runtime, registry, client):
    namespace = {}
    rt = hub_runtime(namespace=namespace)
    assert rt.connect_hub()
    # Over the command stream, as the hub sends it:
    started = registry.start_in_kernel(KERNEL, "started", "x = 6 * 7\nprint(x)")
    await wait_for(lambda: shown_ended(registry, started.id), message="started task ends")
    assert registry.get(started.id).status == "completed" and namespace["x"] == 42
    assert await hub_log(client, started.id) == ["42"] and rt.get(started.id).name == "started"
    # Driven directly, with code that fails: the traceback shows the started code's line.
    pending = registry.create("direct", kernel_id=KERNEL)
    rt.handle_command("start", {"task": pending.id, "name": "direct", "code": "y = 1\nraise ValueError('nope')"})
    await wait_for(lambda: shown_ended(registry, pending.id))
    error = registry.get(pending.id).error
    assert error["type"] == "ValueError" and "raise ValueError('nope')" in error["traceback"]
    await close(rt)


# ---- the sender on its own: retries, refusals, shedding, no hub ---------------------------------


class _RecordingHub(BaseHTTPRequestHandler):
    """A tiny real HTTP endpoint answering with a scripted list of status codes."""

    def do_POST(self):  # noqa: N802 - http.server's naming
        raw = self.rfile.read(int(self.headers["Content-Length"]))
        server = self.server
        text = self.headers.get("Content-Type") == TEXT_BATCH_TYPE
        body = decode_text_batch(raw) if text else json.loads(raw)
        server.bodies.append((self.path, self.headers.get("X-TaskStream-Secret"), body))
        server.types.append(self.headers.get("Content-Type"))
        # A scripted status, or ``(status, protocol it says it speaks)``.
        status, protocol = (server.script.pop(0) if server.script else 204), None
        if isinstance(status, tuple):
            status, protocol = status
        payload = json.dumps({"message": "events[0].type must be one of status"}).encode() if status == 400 else b""
        self.send_response(status)
        self.send_header("Content-Length", str(len(payload)))
        if protocol is not None:
            self.send_header(PROTOCOL_HEADER, str(protocol))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args):
        pass


@pytest.fixture
def recording_hub():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _RecordingHub)
    server.bodies, server.script, server.types = [], [], []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def test_a_retried_batch_keeps_its_seq_and_the_next_one_counts_on(recording_hub):
    recording_hub.script = [503]
    url = f"http://127.0.0.1:{recording_hub.server_port}/a%40b/taskstream/api"
    pub = Publisher(url, "s3cret", "k", backoff_initial=0.01)
    pub.task_spec({"id": "t1", "name": "x", "total": None, "unit": "it", "kernel_id": "k"})
    pub.event("t1", "status", {"status": "running"})
    assert pub.flush(5)
    pub.event("t1", "log", {"stream": "stdout", "text": "hi"})
    assert pub.flush(5)
    pub.close()
    # The sender may take the spec before the status is queued: one batch or two before the log.
    (p1, secret, first), (_, _, retry), *later = recording_hub.bodies
    rest = [body for _, _, body in later]
    assert p1 == "/a%40b/taskstream/api/events" and secret == "s3cret"
    assert first == retry and first["tasks"][0]["id"] == "t1"  # the 503's batch again, same seq
    hi = {"task": "t1", "type": "log", "data": {"stream": "stdout", "text": "hi"}}
    assert len(rest) in (1, 2) and rest[-1]["events"] == [hi]
    assert [e["type"] for b in (first, *rest) for e in b["events"]] == ["status", "log"]
    assert [b["seq"] for b in rest] == [first["seq"] + 1 + i for i in range(len(rest))]
    assert all(b["publisher"] == first["publisher"] for b in rest)
    assert all(b["protocol"] == PROTOCOL_VERSION for b in (first, *rest))  # every batch says what it speaks


def held(kind: str, lines: list[str]):
    """``lines`` as the runtime queues them: a list, or joined (print()'s plain lines)."""
    return lines if kind == "list" else JoinedLines("\n".join(lines), len(lines))


@pytest.mark.parametrize("kind", ["list", "joined"])
@pytest.mark.parametrize("protocol", [3, 4], ids=["json", "text"])
def test_batches_of_lines_go_out_in_order_within_the_batch_limit(recording_hub, kind, protocol):
    url = f"http://127.0.0.1:{recording_hub.server_port}/api"
    pub = Publisher(url, "s", None, max_batch_events=100)
    recording_hub.script = [(204, protocol)] * 10  # every answer says it, as a hub does
    pub.event("t", "status", {"status": "pending"})  # the hub's answer says what it speaks
    assert pub.flush(5)
    pub.log_lines("t", "stdout", held(kind, [f"a{i}" for i in range(150)]))
    pub.log_lines("t", "stdout", held(kind, [f"b{i}" for i in range(30)]))
    pub.event("t", "status", {"status": "running"})
    pub.log_lines("t", "stderr", held(kind, ["c"]))
    assert pub.flush(5)
    want_type = TEXT_BATCH_TYPE if protocol == 4 else JSON_TYPE
    assert recording_hub.types[1:] and all(t == want_type for t in recording_hub.types[1:])
    del recording_hub.bodies[0]
    pub.close()
    sent = [e for _, _, body in recording_hub.bodies for e in body["events"]]
    bodies = [body for _, _, body in recording_hub.bodies]
    counts = [sum(len(e["data"].get("lines", [0])) for e in body["events"]) for body in bodies]
    assert all(c <= 100 for c in counts) and sum(counts) == 182
    lines = [(e["data"]["stream"], line) for e in sent if e["type"] == "log" for line in e["data"]["lines"]]
    expected = [("stdout", f"a{i}") for i in range(150)] + [("stdout", f"b{i}") for i in range(30)]
    expected.append(("stderr", "c"))
    assert lines == expected and pub.sent_events == 183
    assert max(len(e["data"].get("lines", ())) for e in sent) == 100  # a batch of lines is one event


@pytest.mark.parametrize("kind", ["list", "joined"])
def test_long_lines_are_batched_by_size_and_one_too_long_goes_alone(recording_hub, kind):
    url = f"http://127.0.0.1:{recording_hub.server_port}/api"
    pub = Publisher(url, "s", None, max_batch_bytes=1000)
    written = [str(i) * 300 for i in range(10)] + ["x" * 5000, "y"]
    pub.log_lines("t", "stdout", held(kind, written))
    assert pub.flush(5)
    pub.close()
    bodies = [body for _, _, body in recording_hub.bodies]
    batches = [[line for e in body["events"] for line in e["data"]["lines"]] for body in bodies]
    assert [line for batch in batches for line in batch] == written
    assert ["x" * 5000] in batches and all(sum(map(len, b)) <= 1000 for b in batches if "x" * 5000 not in b)


@pytest.mark.parametrize("kind", ["list", "joined"])
def test_shedding_drops_the_oldest_lines_of_batches_and_counts_them(kind):
    box = Outbox(max_buffered=200)  # no sender: what is queued stays queued
    shed = [box.put_lines("t", "stdout", held(kind, [f"{b}.{i}" for i in range(50)])) for b in range(10)]
    items = [p["data"] for _, p in box.items()]
    queued = [line for data in items for line in data.get("lines", ())]
    assert len(queued) <= 200 and box.dropped_lines == 500 - len(queued) and any(shed)
    written = [f"{b}.{i}" for b in range(10) for i in range(50)]
    assert queued[-1] == "9.49" and queued == written[-len(queued) :]
    # The gap is marked where it is, once, with the count (issue 15, defect 4).
    assert items[0] == {"stream": "stdout", "text": f"… {box.dropped_lines} lines dropped …",
                        "dropped": box.dropped_lines}
    assert all("lines" in data for data in items[1:])
    assert len(box) == len(queued) + 1


@pytest.fixture(autouse=True)
def runtime_log(caplog):
    """pytest's log capture on the runtime's own logger, which does not propagate to the root."""
    logger = logging.getLogger("jupyter_taskstream")
    logger.addHandler(caplog.handler)
    yield
    logger.removeHandler(caplog.handler)


def warnings_seen(capfd, caplog) -> str:
    """What report_once said: on the ``jupyter_taskstream`` logger (and stderr outside a kernel)."""
    return capfd.readouterr().err + caplog.text


def test_a_refused_event_is_reported_once_and_replaced_by_a_marker(recording_hub, capfd, caplog):
    recording_hub.script = [400, 400]  # the line, then its marker
    url = f"http://127.0.0.1:{recording_hub.server_port}/api"
    pub = Publisher(url, "s", None)
    for i in range(3):
        pub.event("t", "log", {"stream": "stdout", "text": str(i)})
        assert pub.flush(5)
    pub.close()
    bodies = [body["events"] for _, _, body in recording_hub.bodies]
    # No retry of a 400 as it was: the named event becomes a marker of its line, then goes.
    assert [e["data"] for e in bodies[1]] == [{"stream": "stdout", "text": "… 1 line dropped …", "dropped": 1}]
    assert [[e["data"]["text"] for e in events] for events in bodies[2:]] == [["1"], ["2"]]
    assert pub.dropped_lines == 1
    err = warnings_seen(capfd, caplog)
    assert err.count("refused an event") == 1 and "events[0].type" in err


def test_an_unreachable_hub_buffers_boundedly_and_keeps_what_matters(capfd, caplog):
    pub = Publisher("http://127.0.0.1:9/api", "s", None, max_buffered=200, backoff_initial=0.01, backoff_max=0.05)
    pub.task_spec({"id": "t", "name": "x", "total": 10, "unit": "it", "kernel_id": None})
    pub.event("t", "status", {"status": "running"})
    for i in range(1000):
        pub.event("t", "log", {"stream": "stdout", "text": f"line {i}"})
        pub.event("t", "progress", {"current": i})
    pub.event("t", "status", {"status": "completed"})
    queued = pub.outbox.items()
    pub.close(0.2)
    assert len(queued) <= 200 and pub.dropped_lines > 0
    kinds = [(k, p["type"] if k == "event" else None) for k, p in queued]
    assert ("event", "status") in kinds and kinds[-1] == ("event", "status")
    progress = [p["data"]["current"] for k, p in queued if k == "event" and p["type"] == "progress"]
    assert progress[-1] == 999
    texts = [p["data"]["text"] for k, p in queued if k == "event" and p["type"] == "log"]
    assert texts[-1] == "line 999" and texts == sorted(texts, key=lambda t: int(t.split()[1]))
    err = warnings_seen(capfd, caplog)
    assert err.count("dropping the oldest") == 1 and err.count("cannot reach the hub") <= 1


def test_without_the_hand_off_nothing_is_started(monkeypatch):
    monkeypatch.delenv(ENV_URL, raising=False)
    monkeypatch.delenv(ENV_SECRET, raising=False)
    before = {t.name for t in threading.enumerate()}
    rt = Runtime(kernel_id="k")
    with rt.task("local") as t:
        t.update()
    assert rt.publisher is None and rt.commands is None and t.status == "completed"
    started = {t.name for t in threading.enumerate()} - before
    assert not {"taskstream-publisher", "taskstream-commands"} & started
    rt.close()


def test_the_hand_off_reads_the_protocol_environment_names():
    pub = Publisher.from_environment("k", {ENV_URL: "http://h/api/", ENV_SECRET: "x"})
    assert (pub.url, pub.secret, pub.kernel_id) == ("http://h/api", "x", "k")
    assert Publisher.from_environment("k", {ENV_URL: "http://h/api"}) is None


def test_outside_a_kernel_the_environment_names_a_token_and_the_server_url(recording_hub):
    env = {ENV_URL: "http://h:8888/a%40b/", ENV_TOKEN: "tok"}
    pub = Publisher.from_environment("k", env)
    # The server's URL as `jupyter server list` prints it becomes the API root; no kernel is claimed.
    assert (pub.url, pub.secret, pub.token, pub.kernel_id) == ("http://h:8888/a%40b/taskstream/api", None, "tok", None)
    assert pub.auth_headers == {"Authorization": "token tok"}
    pub = Publisher.from_environment("k", {**env, ENV_URL: f"http://127.0.0.1:{recording_hub.server_port}/"})
    pub.task_spec({"id": "t", "name": "n", "kernel_id": "k"})
    assert pub.flush(5)
    pub.close()
    assert recording_hub.bodies[0][2]["tasks"] == [{"id": "t", "name": "n", "kernel_id": None}]
    # A kernel's hand-off wins over a token someone also exported.
    kernel = Publisher.from_environment("k", {**env, ENV_URL: "http://h/api", ENV_SECRET: "s"})
    assert (kernel.secret, kernel.token, kernel.kernel_id) == ("s", None, "k")
    assert Publisher.from_environment(None, {ENV_TOKEN: "tok"}) is None  # no URL, no opt-in to look


def test_a_batch_too_large_is_split_in_halves_and_all_of_it_arrives(recording_hub):
    recording_hub.script = [413, 413]  # the batch, then its first half
    url = f"http://127.0.0.1:{recording_hub.server_port}/api"
    pub = Publisher(url, "s", None)
    pub.outbox.put_lines("t", "stdout", ["a", "b"])
    pub.outbox.put(("event", {"task": "t", "type": "progress", "data": {"current": 1}}))
    pub.outbox.put_lines("t", "stderr", ["c"])
    pub.outbox.put(("event", {"task": "t", "type": "progress", "data": {"current": 2}}))
    pub._poke()
    assert pub.flush(5)
    pub.close()
    bodies = [body for _, _, body in recording_hub.bodies]
    assert [len(b["events"]) for b in bodies] == [4, 2, 1, 1, 2]
    delivered = [e for b in bodies[2:] for e in b["events"]]
    assert [e["type"] for e in delivered] == ["log", "progress", "log", "progress"]
    assert [b["seq"] for b in bodies[2:]] == sorted({b["seq"] for b in bodies[2:]})  # increasing, so none is a "retry"
    assert pub.dropped_lines == 0


def test_text_batches_once_the_hub_says_it_takes_them_and_json_for_an_older_one(recording_hub):
    # A hub at 4 answers the first batch; then the server is replaced by an older one, which
    # cannot read a text batch (400, no protocol header): the same batch goes again as JSON.
    recording_hub.script = [(204, 4), 400, 204, 204]
    url = f"http://127.0.0.1:{recording_hub.server_port}/api"
    pub = Publisher(url, "s", None)
    sent = []
    for part in range(4):
        lines = [f"p{part} line {i} ✓" for i in range(50)]
        sent += lines
        pub.log_lines("t", "stdout", lines)
        assert pub.flush(5)
    pub.close()
    assert recording_hub.types == [JSON_TYPE, TEXT_BATCH_TYPE, JSON_TYPE, JSON_TYPE, JSON_TYPE]
    bodies = [body for _, _, body in recording_hub.bodies]
    assert bodies[1] == bodies[2]  # the refused text batch, resent as it was, as JSON
    got = [line for body in bodies[:1] + bodies[2:] for e in body["events"] for line in e["data"]["lines"]]
    assert got == sent and pub.dropped_lines == 0


def test_a_hub_that_says_5_without_a_socket_gets_every_batch_posted(recording_hub):
    # A hub that says 5 but has no socket at its URL (a proxy in front that drops WebSockets, say).
    recording_hub.script = [(204, 5)] * 3
    url = f"http://127.0.0.1:{recording_hub.server_port}/api"
    pub = Publisher(url, "s", None)
    for part in range(3):
        pub.log_lines("t", "stdout", [f"p{part} {i}" for i in range(10)])
        assert pub.flush(5)
    pub.close()
    assert recording_hub.types == [JSON_TYPE, TEXT_BATCH_TYPE, TEXT_BATCH_TYPE]
    assert "501" in pub.client.socket_error  # http.server has no GET: the handshake failed, said once
    got = [line for _, _, body in recording_hub.bodies for e in body["events"] for line in e["data"]["lines"]]
    assert got == [f"p{part} {i}" for part in range(3) for i in range(10)] and pub.dropped_lines == 0
