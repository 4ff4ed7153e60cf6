"""Captured text as lines: carriage returns, endless lines, the newline search."""

from __future__ import annotations

import pytest

from jupyter_taskstream.kernel.lines import MAX_PARTIAL_CHARS, LineBuffer, no_run_over


@pytest.mark.parametrize(
    ("writes", "expected", "partial"),
    [
        (["a\nb\n"], ["a", "b"], ""),
        (["a", "b", "\n"], ["ab"], ""),
        (["\n"], [""], ""),
        (["10%\r20%\r30%\n"], ["30%"], ""),
        (["\r 10%", "\r 20%", "\r100%", "\n"], ["100%"], ""),
        (["windows\r\n"], ["windows"], ""),
        (["abc\r", "\n"], ["abc"], ""),
        (["abc\r", "de"], [], "de"),
        (["one\ntwo\rTWO"], ["one"], "TWO"),
    ],
)
def test_line_buffer(writes, expected, partial):
    buffer = LineBuffer()
    out = []
    for w in writes:
        out += buffer.feed(w)
    assert out == expected and buffer.peek() == partial


def test_line_buffer_bounds_a_line_that_never_ends():
    buffer = LineBuffer()
    out = []
    for _ in range(100):
        out += buffer.feed("x" * 1000)
    assert out and all(len(line) <= MAX_PARTIAL_CHARS + 1000 for line in out)
    assert len(buffer.partial) <= MAX_PARTIAL_CHARS


@pytest.mark.parametrize("size", [0, 1, 9, 10, 11, 19, 20, 21, 45])
@pytest.mark.parametrize("where", ["start", "middle", "end"])
def test_no_run_over_never_misses_a_long_run(size, where):
    pad = "ab\ncd\n" * 5
    run = "x" * size
    text = {"start": run + "\n" + pad, "middle": pad + run + "\n" + pad, "end": pad + run}[where]
    longest = max(map(len, text.split("\n")))
    if not no_run_over(text, 10):
        assert longest >= 10 // 2  # it may only be unsure about runs of half the limit or more
    else:
        assert longest <= 10
