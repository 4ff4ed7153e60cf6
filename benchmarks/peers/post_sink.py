"""The HTTP floor of case 2: a tornado server that takes a POSTed body and answers 204.

What any hub on the same stack (tornado, loopback, one request at a time) pays before it
reads a single event; ``GET /status`` is the readiness probe. Run as
``python -m benchmarks.peers.post_sink PORT``; bound to 127.0.0.1 only.
"""

from __future__ import annotations

import asyncio
import sys

from tornado import web


class Sink(web.RequestHandler):
    def post(self) -> None:
        self.set_status(204)

    def get(self) -> None:
        self.write({"ok": True})


async def main(port: int) -> None:
    web.Application([(r"/sink", Sink), (r"/status", Sink)]).listen(port, address="127.0.0.1")
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1])))
