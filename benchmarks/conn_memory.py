"""Where an idle SSE connection's memory goes: tracemalloc on a hub holding N idle streams.

``python -m benchmarks.conn_memory [N]`` starts a hub with tracemalloc on (8 frames), opens
100 streams on one task to warm it, snapshots, opens N more, snapshots again, and prints
the bytes and objects per connection by allocation site and by library. A diagnostic for
case 5 (issue 16, goal 3), not a benchmark case: tracemalloc's own bookkeeping doubles RSS.
"""

from __future__ import annotations

import collections
import os
import socket
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import httpx

from .harness import HubServer, raise_nofile

_WATCH = """
import gc, os, threading, time, tracemalloc
tracemalloc.start(8)
def _watch(folder={folder!r}):
    while True:
        for name in ("before", "after"):
            if os.path.exists(os.path.join(folder, name + ".go")):
                os.remove(os.path.join(folder, name + ".go"))
                gc.collect()
                tracemalloc.take_snapshot().dump(os.path.join(folder, name + ".tmp"))
                os.rename(os.path.join(folder, name + ".tmp"), os.path.join(folder, name))
        time.sleep(0.2)
threading.Thread(target=_watch, daemon=True).start()
"""


class TracedHub(HubServer):
    """A hub that dumps a tracemalloc snapshot into ``folder`` when asked (a ``.go`` file)."""

    def __init__(self, folder: Path):
        super().__init__()
        self.folder = folder

    def command(self) -> list[str]:
        cmd = super().command()
        with open(self.tmp / "bench_config.py", "a") as f:
            f.write(_WATCH.format(folder=str(self.folder)))
        return cmd

    def snapshot(self, name: str, timeout: float = 120.0) -> tracemalloc.Snapshot:
        (self.folder / f"{name}.go").touch()
        deadline = time.monotonic() + timeout
        while not (self.folder / name).exists():
            if time.monotonic() > deadline:
                raise TimeoutError(f"no {name} snapshot from the hub")
            time.sleep(0.1)
        return tracemalloc.Snapshot.load(str(self.folder / name))


def _library(filename: str) -> str:
    for marker in ("jupyter_taskstream/", "jupyter_server/", "tornado/"):
        if marker in filename:
            return marker + filename.split(marker)[-1].split("/")[0]
    return "asyncio" if "asyncio" in filename or "weakrefset" in filename else Path(filename).name


def main(n: int = 2000) -> None:
    raise_nofile()
    with TracedHub(Path(tempfile.mkdtemp(prefix="tsbench-mem-"))) as hub:
        task = httpx.post(hub.api + "/tasks", json={"name": "idle"}, headers=hub.headers).json()["id"]
        request = (f"GET /taskstream/api/tasks/{task}/events HTTP/1.1\r\nHost: 127.0.0.1:{hub.port}\r\n"
                   f"Accept: text/event-stream\r\nAuthorization: {hub.headers['Authorization']}\r\n\r\n").encode()

        def connect(count: int) -> list[socket.socket]:
            socks = [socket.create_connection(("127.0.0.1", hub.port)) for _ in range(count)]
            for s in socks:
                s.sendall(request)
            for s in socks:
                s.settimeout(30)
                s.recv(65536)  # headers and the snapshot: the stream is open and idle
            return socks

        socks = connect(100)
        time.sleep(1)
        before, rss0 = hub.snapshot("before"), hub.probe.rss()
        socks += connect(n)
        time.sleep(2)
        after, rss1 = hub.snapshot("after"), hub.probe.rss()
        stats = after.compare_to(before, "lineno")
        print(f"{n} idle streams: RSS {(rss1 - rss0) / n / 1024:.1f} KiB each (tracemalloc on), "
              f"traced {sum(s.size_diff for s in stats) / n:.0f} B each")
        by_lib: collections.Counter = collections.Counter()
        for s in stats:
            by_lib[_library(s.traceback[0].filename)] += s.size_diff
        for lib, size in by_lib.most_common(15):
            print(f"{size / n:8.0f} B  {lib}")
        print("top allocation sites:")
        for s in stats[:25]:
            frame = s.traceback[0]
            print(f"{s.size_diff / n:8.0f} B {s.count_diff / n:5.2f} objects  {frame.filename}:{frame.lineno}")
        for s in socks:
            s.close()


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 2000)
