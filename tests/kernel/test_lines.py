"""Captured text as lines: carriage returns, endless lines, the newline search, joined runs."""

from __future__ import annotations

import random

import pytest

from jupyter_taskstream.kernel.lines import MAX_PARTIAL_CHARS, LineBuffer, no_run_over
from jupyter_taskstream.protocol import JoinedLines


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


def _writes(seed: int) -> list[str]:
    """Writes as programs make them: print()'s pieces, bars' carriage returns, endless runs."""
    rng = random.Random(seed)
    pieces = ["line", " ", "42", "\n", "\n\n", "", "x" * 40_000, "é𝄞\n", "tail"]
    if seed % 2:
        pieces += ["50%\r", "\r", "done\r\n"]
    return ["".join(rng.choice(pieces) for _ in range(rng.randrange(1, 40))) for _ in range(200)]


@pytest.mark.parametrize("seed", range(12))
def test_feed_joined_gives_the_lines_feed_gives(seed):
    split, joined_ = LineBuffer(), LineBuffer()
    got_joined = []
    want = []
    for text in _writes(seed):
        want += split.feed(text)
        out = joined_.feed_joined(text)
        assert isinstance(out, (list, JoinedLines))
        got_joined += list(out)
        assert (joined_.partial, joined_.cut) == (split.partial, split.cut)
    assert got_joined == want and want


def test_print_lines_come_joined_and_bar_lines_split():
    buffer = LineBuffer()
    out = buffer.feed_joined("partial ")
    assert out == [] and buffer.partial == "partial "
    out = buffer.feed_joined("one\ntwo\nthree\nfour")
    assert isinstance(out, JoinedLines) and out == ["partial one", "two", "three"] and buffer.partial == "four"
    out = buffer.feed_joined("\r 50%\r100%\n")  # a text bar: its carriage returns are rewritten
    assert type(out) is list and out == ["100%"]
