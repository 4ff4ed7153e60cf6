"""The private parts of other libraries the runtime relies on (`kernel._compat`): one test each.

When one of these fails after an upgrade, the library changed what the adapter reads: fix
the adapter in ``jupyter_taskstream/kernel/_compat.py`` (and its plain path), nowhere else.
"""

from __future__ import annotations

import socket
import threading
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import thread as futures_thread
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx

from jupyter_taskstream.kernel import _compat


def test_thread_target_and_the_executor_worker_function_exist():
    """Relies on ``threading.Thread._target`` and ``concurrent.futures.thread._worker``."""
    assert callable(getattr(futures_thread, "_worker", None)), "concurrent.futures.thread._worker is gone"

    def body() -> None:
        pass

    plain = threading.Thread(target=body)
    assert getattr(plain, "_target", None) is body, "threading.Thread._target no longer holds the target"
    assert not _compat.is_executor_worker(plain)
    seen = []
    original_start = threading.Thread.start

    def spy(self: threading.Thread) -> None:
        seen.append(_compat.is_executor_worker(self))
        original_start(self)

    threading.Thread.start = spy  # type: ignore[method-assign]
    try:
        with ThreadPoolExecutor(1) as pool:
            pool.submit(lambda: None).result(5)
    finally:
        threading.Thread.start = original_start  # type: ignore[method-assign]
    assert seen == [True], "a ThreadPoolExecutor worker is no longer recognised before it starts"


def test_the_executor_plain_path_treats_every_thread_as_ordinary(monkeypatch):
    monkeypatch.setattr(_compat, "_EXECUTOR_WORKER", None)
    assert not _compat.is_executor_worker(threading.Thread(target=None))


class _Slow(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.end_headers()
        self.wfile.write(b": hi\n\n")
        self.wfile.flush()
        self.server.release.wait(10)  # type: ignore[attr-defined]

    def log_message(self, *args: object) -> None:
        pass


def test_httpcore_network_stream_gives_the_socket_of_a_streaming_response():
    """Relies on httpcore's ``network_stream`` response extension and ``get_extra_info("socket")``."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Slow)
    server.release = threading.Event()  # type: ignore[attr-defined]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with httpx.Client() as client:
            with client.stream("GET", f"http://127.0.0.1:{server.server_port}/") as response:
                assert "network_stream" in response.extensions, "httpcore no longer offers network_stream"
                sock = _compat.response_socket(response)
                assert isinstance(sock, socket.socket), "network_stream.get_extra_info('socket') changed"
                server.release.set()  # type: ignore[attr-defined]
    finally:
        server.release.set()  # type: ignore[attr-defined]
        server.shutdown()
        server.server_close()


def test_the_socket_plain_path_is_none_without_the_extension():
    class Response:
        extensions: dict = {}

    assert _compat.response_socket(Response()) is None


def test_process_target_is_the_target_a_process_was_made_with():
    """Relies on ``multiprocessing.process.BaseProcess._target``."""
    import multiprocessing

    def body() -> None:
        pass

    process = multiprocessing.get_context("spawn").Process(target=body)
    assert _compat.process_target(process) is body, "BaseProcess._target no longer holds the target"
    _compat.set_process_target(process, print)
    assert process._target is print


def test_publish_under_sends_with_the_given_parent_through_session_pub_socket_and_topic():
    """Relies on ipykernel's ``ZMQDisplayPublisher.session``, ``.pub_socket`` and ``.topic``."""
    from ipykernel.zmqshell import ZMQDisplayPublisher

    for name in ("session", "pub_socket", "topic"):
        assert name in ZMQDisplayPublisher.class_traits(), f"ZMQDisplayPublisher.{name} is gone"
    sent = []

    class Session:
        def send(self, stream, msg_type, content, parent=None, ident=None):
            sent.append((stream, msg_type, content, parent, ident))

    class Publisher:
        session, pub_socket, topic = Session(), "socket", b"display_data"

    parent = {"msg_id": "cell-1"}
    assert _compat.publish_under(Publisher(), parent, "update_display_data", {"data": {}})
    assert sent == [("socket", "update_display_data", {"data": {}}, parent, b"display_data")]
    assert not _compat.publish_under(object(), parent, "update_display_data", {})
