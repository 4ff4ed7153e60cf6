"""Server-Sent Events wire format: bytes in, bytes out, nothing else.

Kept free of tornado so the framing can be tested byte for byte (the model is
sse-starlette's ``event.py``). Clients decode with any SSE parser (httpx-sse,
the browser's EventSource).
"""

from __future__ import annotations

import json
import re
from typing import Any

__all__ = ["comment", "encode", "encode_json", "retry"]

# The SSE spec ends a line at CRLF, LF or CR; every one of them must become a new "data:" field.
_LINE_BREAK = re.compile(r"\r\n|\r|\n")


def _field_value(name: str, value: str) -> str:
    if _LINE_BREAK.search(value) or "\0" in value:
        raise ValueError(f"SSE {name} must be one line without NUL, got {value!r}")
    return value


def encode(data: str | None = None, *, event: str | None = None, id: int | str | None = None) -> bytes:
    """Frame one event: optional ``id:`` and ``event:``, ``data:`` per line, blank line."""
    parts = []
    if id is not None:
        parts.append(f"id: {_field_value('id', str(id))}\n")
    if event is not None:
        parts.append(f"event: {_field_value('event', event)}\n")
    if data is not None:
        parts.extend(f"data: {line}\n" for line in _LINE_BREAK.split(data))
    parts.append("\n")
    return "".join(parts).encode("utf-8")


def encode_json(payload: Any, *, event: str | None = None, id: int | str | None = None) -> bytes:
    """Frame a JSON payload; JSON escapes CR/LF inside strings, so it stays one ``data:`` line."""
    text = json.dumps(payload, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    return encode(text, event=event, id=id)


# Comments and retry carry no blank line on purpose: a blank line dispatches an event, and
# some decoders (httpx-sse keeps the last id) would hand the client an empty one per heartbeat.


def comment(text: str = "") -> bytes:
    """``:`` comment lines: ignored by clients, keep proxies and idle timers awake."""
    return b"".join(f": {line}\n".encode() for line in _LINE_BREAK.split(text))


def retry(milliseconds: int) -> bytes:
    """A ``retry:`` line telling the client how long to wait before reconnecting."""
    if milliseconds < 0:
        raise ValueError("retry must be >= 0 milliseconds")
    return f"retry: {int(milliseconds)}\n".encode()
