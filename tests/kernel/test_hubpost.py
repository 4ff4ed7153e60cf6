"""The publisher's HTTP client: one kept-alive connection that survives its closing; httpx behind a proxy."""

from __future__ import annotations

import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from jupyter_taskstream.kernel.hubpost import HubUnreachable, open_client


class _KeepAliveHub(BaseHTTPRequestHandler):
    """HTTP/1.1 keep-alive; after an answer, closes the connection when told to (an idle timeout)."""

    protocol_version = "HTTP/1.1"

    def do_POST(self):  # noqa: N802 - http.server's naming
        body = self.rfile.read(int(self.headers["Content-Length"]))
        secret, port = self.headers.get("X-TaskStream-Secret"), self.client_address[1]
        self.server.seen.append((self.path, secret, body, port))
        payload = b'{"skipped": {}}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)
        self.wfile.flush()
        if self.server.drop_after_answer:
            # Gone without a word, as a server's idle timeout closes a kept-alive connection.
            self.close_connection = True

    def log_message(self, *args):
        pass


@pytest.fixture
def hub():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _KeepAliveHub)
    server.seen, server.drop_after_answer = [], False
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def test_posts_reuse_one_connection_and_survive_the_hub_closing_it(hub, monkeypatch):
    for name in ("HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    url = f"http://127.0.0.1:{hub.server_port}/a%40b/taskstream/api"
    client = open_client(url, {"X-TaskStream-Secret": "s"}, 5)
    first = client.post("events", b'{"n": 1}')
    second = client.post("events", b'{"n": 2}')
    assert first.status_code == second.status_code == 200 and first.json() == {"skipped": {}}
    assert [s[:3] for s in hub.seen] == [("/a%40b/taskstream/api/events", "s", b'{"n": 1}'),
                                         ("/a%40b/taskstream/api/events", "s", b'{"n": 2}')]
    assert hub.seen[0][3] == hub.seen[1][3]  # the same client port: one kept-alive connection
    # The hub closes the connection after its answer: the next POST is sent again on a new one.
    hub.drop_after_answer = True
    client.post("events", b'{"n": 3}')
    hub.drop_after_answer = False
    assert client.post("events", b'{"n": 4}').status_code == 200
    assert [s[2] for s in hub.seen[2:]] == [b'{"n": 3}', b'{"n": 4}']
    assert hub.seen[2][3] != hub.seen[3][3]
    client.close()


def test_a_hub_that_does_not_answer_is_unreachable_not_an_exception_of_http_client(monkeypatch):
    monkeypatch.delenv("HTTP_PROXY", raising=False)
    monkeypatch.delenv("http_proxy", raising=False)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens here once the socket is closed
    client = open_client(f"http://127.0.0.1:{port}/taskstream/api", {}, 2)
    with pytest.raises(HubUnreachable):
        client.post("events", b"{}")
    client.close()


def test_a_proxy_in_the_environment_is_honoured_through_httpx(monkeypatch):
    monkeypatch.setenv("HTTP_PROXY", "http://proxy.invalid:3128")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    client = open_client("http://hub.invalid:8888/taskstream/api", {}, 2)
    assert type(client).__name__ == "_Httpx"
    client.close()
    monkeypatch.setenv("NO_PROXY", "hub.invalid")
    client = open_client("http://hub.invalid:8888/taskstream/api", {}, 2)
    assert type(client).__name__ == "_Direct"
    client.close()
