"""Byte-exact tests of the SSE wire format (jupyter_taskstream.hub.sse)."""

from __future__ import annotations

import pytest

from jupyter_taskstream.hub import sse


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"data": "hello"}, b"data: hello\n\n"),
        ({"data": ""}, b"data: \n\n"),
        ({"data": "a\nb"}, b"data: a\ndata: b\n\n"),
        ({"data": "a\r\nb\rc\n"}, b"data: a\ndata: b\ndata: c\ndata: \n\n"),
        ({"data": "x", "event": "log", "id": 7}, b"id: 7\nevent: log\ndata: x\n\n"),
        ({"event": "end"}, b"event: end\n\n"),
        ({"data": "caf\u00e9 \u2603 \U0001f600"}, "data: caf\u00e9 \u2603 \U0001f600\n\n".encode()),
        ({"data": "line\u2028sep"}, "data: line\u2028sep\n\n".encode()),
    ],
)
def test_encode(kwargs, expected):
    assert sse.encode(**kwargs) == expected


@pytest.mark.parametrize("bad", ["a\nb", "a\rb", "a\0b"])
def test_encode_rejects_line_breaks_in_fields(bad):
    with pytest.raises(ValueError, match="one line"):
        sse.encode("x", event=bad)
    with pytest.raises(ValueError, match="one line"):
        sse.encode("x", id=bad)


def test_encode_json_keeps_text_with_line_breaks_on_one_data_line():
    payload = {"stream": "stdout", "text": "a\r\nb\rc\n\u00e9\U0001f600"}
    assert sse.encode_json(payload, event="log", id=3) == (
        'id: 3\nevent: log\ndata: {"stream":"stdout","text":"a\\r\\nb\\rc\\n\u00e9\U0001f600"}\n\n'
    ).encode()


def test_encode_json_refuses_nan():
    with pytest.raises(ValueError):
        sse.encode_json({"x": float("nan")})


def test_comment_and_retry():
    assert sse.comment() == b": \n"
    assert sse.comment("ping") == b": ping\n"
    assert sse.comment("a\nb") == b": a\n: b\n"
    assert sse.retry(1500) == b"retry: 1500\n"
    with pytest.raises(ValueError):
        sse.retry(-1)


def test_round_trip_through_httpx_sse_decoder():
    """What we frame, the client library used by the kernel and the tests decodes to the same."""
    from httpx_sse._decoders import SSEDecoder

    text = "first\r\nsecond\rthird\n"
    raw = (
        sse.retry(10)
        + sse.encode(text, event="log", id=42)
        + sse.comment("hb")
        + sse.encode_json({"t": "\u00e9\n"}, id=43)
        + sse.comment("hb")
    )
    decoder = SSEDecoder()
    events = []
    for line in raw.decode().splitlines():
        event = decoder.decode(line)
        if event is not None:
            events.append(event)
    # Heartbeats and retry dispatch nothing: only the two real events come out.
    assert [(e.id, e.event, e.data, e.retry) for e in events][0][3] == 10
    assert [(e.id, e.event, e.data) for e in events] == [
        ("42", "log", "first\nsecond\nthird\n"),
        ("43", "message", '{"t":"\u00e9\\n"}'),
    ]
