"""The body of a publish batch on the wire: JSON, or JSON with the log lines outside it.

Every batch is the JSON object `validate` describes. Encoding 100,000 captured lines as a
JSON array of strings costs a kernel ~25 ms of Python-held time (JSON escapes each string
and joins the pieces), time its user's code waits for. So a hub at protocol 4 also takes a
*text batch* (``Content-Type: application/x-taskstream-batch``): the JSON object on the
first line, then the UTF-8 text of the log lines. A log event there carries
``"lines_at": [offset, length]`` instead of ``"lines"``: bytes of the text after the first
newline, holding its lines joined by ``\\n`` (a captured line never contains one). One
``join`` and one ``encode`` per batch, both in C; the hub splits with one ``split``.

A kernel sends JSON until an answer of the hub says it speaks 4 (``PROTOCOL_HEADER``), so
a kernel newer than its server keeps working; see ``kernel.publisher``.
"""

from __future__ import annotations

import json
from typing import Any

from ..errors import ValidationError
from .validate import replace_lone_surrogates

__all__ = ["JSON_TYPE", "PROTOCOL_HEADER", "TEXT_BATCH_TYPE", "decode_text_batch", "encode_batch"]

JSON_TYPE = "application/json"
TEXT_BATCH_TYPE = "application/x-taskstream-batch"
#: The response header in which a hub says which publish protocol it speaks.
PROTOCOL_HEADER = "X-TaskStream-Protocol"


def _utf8(text: str) -> bytes:
    """UTF-8; a lone surrogate (e.g. from a file name that is not valid UTF-8) becomes U+FFFD,
    as in every other text a kernel sends: never refused, never lost."""
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        return replace_lone_surrogates(text).encode("utf-8")


def _json(value: Any) -> bytes:
    body = json.dumps(value, ensure_ascii=False, allow_nan=False)
    try:
        return body.encode("utf-8")
    except UnicodeEncodeError:
        return json.dumps(replace_lone_surrogates(value), ensure_ascii=False, allow_nan=False).encode("utf-8")


def encode_batch(batch: dict[str, Any], text: bool = False) -> tuple[bytes, str]:
    """``(body, content type)`` of a batch: JSON, or with ``text`` a text batch."""
    if not text:
        return _json(batch), JSON_TYPE
    parts: list[bytes] = []
    offset = 0
    events = []
    for event in batch["events"]:
        data = event.get("data")
        if event.get("type") == "log" and isinstance(data, dict) and "lines" in data:
            chunk = _utf8("\n".join(data["lines"]))
            data = {key: value for key, value in data.items() if key != "lines"}
            data["lines_at"] = [offset, len(chunk)]
            event = {**event, "data": data}
            parts.append(chunk)
            offset += len(chunk)
        events.append(event)
    head = _json({**batch, "events": events})
    return b"".join([head, b"\n", *parts]), TEXT_BATCH_TYPE


def decode_text_batch(body: bytes) -> Any:
    """A text batch as the JSON batch it stands for (``lines`` back in its log events).

    Raises `ValidationError` naming what is wrong (the header, an event's ``lines_at``).
    """
    head, newline, text = body.partition(b"\n")
    if not newline:
        raise ValidationError("body", f"a {TEXT_BATCH_TYPE} body is a JSON line, a newline, then the lines' text")
    try:
        batch = json.loads(head.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        raise ValidationError("body", f"the first line of a {TEXT_BATCH_TYPE} body must be JSON ({e})") from None
    events = batch.get("events") if isinstance(batch, dict) else None
    for i, event in enumerate(events if isinstance(events, list) else []):
        data = event.get("data") if isinstance(event, dict) else None
        if not isinstance(data, dict) or "lines_at" not in data:
            continue
        field = f"events[{i}].data.lines_at"
        span = data.pop("lines_at")
        if "lines" in data or "text" in data:
            raise ValidationError(field, "cannot be given together with lines or text")
        if (not isinstance(span, list) or len(span) != 2 or any(type(n) is not int for n in span)
                or span[0] < 0 or span[1] < 0 or span[0] + span[1] > len(text)):  # fmt: skip
            raise ValidationError(field, f"must be [offset, length] within the {len(text)} bytes of text")
        try:
            data["lines"] = text[span[0] : span[0] + span[1]].decode("utf-8").split("\n")
        except UnicodeDecodeError as e:
            raise ValidationError(field, f"the text is not valid UTF-8 ({e.reason})") from None
    return batch
