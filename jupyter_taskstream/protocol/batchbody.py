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

A kernel also keeps a run of captured lines in that joined form (`JoinedLines`) from the
moment it splits them until the batch is encoded: what it needs of them (how many, their
size, the last few) costs one C-level search, where a string per line cost the printing
thread ~10 ms of the interpreter lock per 100,000 lines, only to be joined again here.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, Union, overload

from ..errors import ValidationError
from .validate import replace_lone_surrogates

__all__ = [
    "JSON_TYPE", "PROTOCOL_HEADER", "TEXT_BATCH_TYPE", "JoinedLines", "decode_text_batch", "encode_batch", "joined",
    "line_chars",
]  # fmt: skip

JSON_TYPE = "application/json"
TEXT_BATCH_TYPE = "application/x-taskstream-batch"
#: The response header in which a hub says which publish protocol it speaks.
PROTOCOL_HEADER = "X-TaskStream-Protocol"


class JoinedLines(Sequence):
    """``count`` lines (at least one) held as one text, joined by ``\\n``, as a text batch carries them.

    Immutable. Length, size and the last few lines (``lines[-k:]``) need no string per
    line; any other index or slice splits the text (once per call: rare paths only).
    """

    __slots__ = ("text", "count")

    def __init__(self, text: str, count: int):
        if count < 1:
            raise ValueError(f"JoinedLines holds at least one line, not {count}")
        self.text = text
        self.count = count

    def __len__(self) -> int:
        return self.count

    @overload
    def __getitem__(self, index: int) -> str: ...
    @overload
    def __getitem__(self, index: slice) -> list[str]: ...
    def __getitem__(self, index: int | slice) -> str | list[str]:
        if isinstance(index, slice) and index.stop is None and index.step is None and index.start is not None:
            if -self.count < index.start < 0:  # the tail, for views: one rsplit of k
                return self.text.rsplit("\n", -index.start)[1:]
        return self.as_list()[index]

    def __iter__(self):
        return iter(self.as_list())

    def __eq__(self, other: object) -> bool:
        if isinstance(other, JoinedLines):
            return self.count == other.count and self.text == other.text
        return isinstance(other, list) and self.as_list() == other

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"JoinedLines({self.count} lines, {len(self.text)} characters)"

    def as_list(self) -> list[str]:
        """The lines as a new list of strings."""
        return self.text.split("\n")

    def end_of(self, n: int) -> int:
        """Where the first ``n`` lines end in ``text`` (the index of the ``n``-th newline, or its length)."""
        if not 1 <= n <= self.count:
            raise IndexError(f"{n} is not between 1 and the {self.count} lines")
        return len(self.text) if n == self.count else _nth_newline(self.text, n, self.count - 1)

    def cut(self, n: int) -> tuple[JoinedLines, JoinedLines]:
        """The first ``n`` lines and the rest (``0 < n < len``), each still joined."""
        end = self.end_of(n)
        return JoinedLines(self.text[:end], n), JoinedLines(self.text[end + 1 :], self.count - n)


def _nth_newline(text: str, n: int, total: int) -> int:
    """The index of the ``n``-th of the ``total`` newlines in ``text``.

    Interpolation search with ``str.count`` (C) from the nearer end of the bracket, halving
    the bracket when a guess did not: about one pass over the text where a split would make
    a string per line. The last few newlines are stepped with ``find``.
    """
    lo, lo_n, hi, hi_n = 0, 0, len(text), total  # lo_n newlines in text[:lo] < n <= hi_n in text[:hi]
    bisect = False
    while n - lo_n > 32 and hi_n - n >= 32:
        width = hi - lo
        if bisect:
            guess = lo + width // 2
        else:
            guess = min(max(lo + width * (n - lo_n) // (hi_n - lo_n), lo + 1), hi - 1)
        if guess - lo <= hi - guess:
            at_guess = lo_n + text.count("\n", lo, guess)
        else:
            at_guess = hi_n - text.count("\n", guess, hi)
        if at_guess < n:
            lo, lo_n = guess, at_guess
        else:
            hi, hi_n = guess, at_guess
        bisect = not bisect and hi - lo > width // 2  # a poor guess: halve next time
    if n - lo_n <= 32:  # forward from lo
        at = lo - 1
        for _ in range(n - lo_n):
            at = text.find("\n", at + 1)
        return at
    at = hi  # back from hi: the n-th is the (hi_n - n + 1)-th newline before it
    for _ in range(hi_n - n + 1):
        at = text.rfind("\n", 0, at)
    return at


Lines = Union[list[str], JoinedLines]


def joined(lines: Lines) -> str:
    """The lines joined by ``\\n``."""
    return lines.text if type(lines) is JoinedLines else "\n".join(lines)


def line_chars(lines: Lines) -> int:
    """The characters of all the lines, newlines not counted."""
    if type(lines) is JoinedLines:
        return len(lines.text) - lines.count + 1
    return sum(map(len, lines))


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
        return _json(_as_lists(batch)), JSON_TYPE
    parts: list[bytes] = []
    offset = 0
    events = []
    for event in batch["events"]:
        data = event.get("data")
        if event.get("type") == "log" and isinstance(data, dict) and "lines" in data:
            chunk = _utf8(joined(data["lines"]))
            data = {key: value for key, value in data.items() if key != "lines"}
            data["lines_at"] = [offset, len(chunk)]
            event = {**event, "data": data}
            parts.append(chunk)
            offset += len(chunk)
        events.append(event)
    head = _json({**batch, "events": events})
    return b"".join([head, b"\n", *parts]), TEXT_BATCH_TYPE


def _as_lists(batch: dict[str, Any]) -> dict[str, Any]:
    """The batch with every log event's `JoinedLines` as a list, for JSON (anything else as given)."""
    events = batch.get("events")
    if not isinstance(events, list) or not any(_joined_in(event) for event in events):
        return batch
    return {**batch, "events": [
        {**event, "data": {**event["data"], "lines": event["data"]["lines"].as_list()}} if _joined_in(event) else event
        for event in events
    ]}  # fmt: skip


def _joined_in(event: Any) -> bool:
    data = event.get("data") if isinstance(event, dict) else None
    return isinstance(data, dict) and type(data.get("lines")) is JoinedLines


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
