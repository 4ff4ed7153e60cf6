"""Captured text as lines, the way a terminal shows it.

`LineBuffer` keeps the pending partial line of one stream and turns written text into
complete lines: a carriage return rewrites the pending line (so a tqdm text bar stays one
line), and a partial line longer than `MAX_PARTIAL_CHARS` is cut into a line of its own,
so a writer that never sends a newline cannot grow memory without bound. Used for a task's
captured writes (`tasklog`), for child processes' pipes (`childpipes`) and for pool
workers' lines (`workerlink`).
"""

from __future__ import annotations

from ..protocol import JoinedLines

__all__ = ["MAX_PARTIAL_CHARS", "LineBuffer", "no_run_over", "visible_text"]

#: A partial line longer than this is emitted as a line of its own, so a writer that never
#: sends a newline cannot grow memory without bound.
MAX_PARTIAL_CHARS = 64 * 1024


def visible_text(line: str) -> str:
    """What a terminal shows of one line: the text after its last carriage return."""
    stripped = line.rstrip("\r")
    cut = stripped.rfind("\r")
    return stripped if cut < 0 else stripped[cut + 1 :]


def no_run_over(text: str, limit: int) -> bool:
    """True if ``text`` has no run of more than ``limit`` characters without a newline.

    Looks for a newline in each aligned window of ``limit // 2`` characters: a few C-level
    searches per 64 KiB instead of measuring every line. It may answer False for a run of
    half the limit or more; callers then measure the lines.
    """
    half = max(limit // 2, 1)
    for start in range(0, len(text) - half + 1, half):
        if text.find("\n", start, start + half) < 0:
            return False
    return True


class LineBuffer:
    """The pending partial line of one stream of one task."""

    __slots__ = ("partial", "cut")

    def __init__(self) -> None:
        self.partial = ""
        #: The pending line was just emitted for being too long; its newline ends nothing new.
        self.cut = False

    def feed(self, text: str) -> list[str]:
        """Add written text; return the lines it completed (without their newline)."""
        if "\n" not in text:
            pending = self.partial + text
            if "\r" in pending:
                # Keep trailing CRs: "abc\r" + "\n" is the line "abc", "abc\r" + "d" is "d".
                trailing = len(pending) - len(pending.rstrip("\r"))
                pending = visible_text(pending) + "\r" * trailing
            if len(pending) > MAX_PARTIAL_CHARS:
                self.partial, self.cut = "", True
                return [pending]
            self.partial, self.cut = pending, False
            return []
        parts = text.split("\n")
        parts[0] = self.partial + parts[0]
        self.partial = ""
        tail = parts.pop()
        # A batch of many lines with no carriage return (the usual case) needs no rewrite.
        if "\r" in text or "\r" in parts[0]:
            lines = [visible_text(p) if "\r" in p else p for p in parts]
        else:
            lines = parts
        if self.cut and not lines[0]:
            del lines[0]
        self.cut = False
        if tail:
            lines.extend(self.feed(tail))
        return lines

    def feed_joined(self, text: str) -> list[str] | JoinedLines:
        """`feed`, but plain lines (no carriage return; what print() writes) come back joined:
        one count of newlines instead of a string per line. See `JoinedLines`."""
        last = text.rfind("\n")
        if last < 0 or self.cut or "\r" in text or "\r" in self.partial or len(text) - last > MAX_PARTIAL_CHARS:
            return self.feed(text)
        body = self.partial + text[:last] if self.partial else text[:last]
        self.partial = text[last + 1 :]
        return JoinedLines(body, text.count("\n", 0, last) + 1)

    def flush(self) -> str | None:
        """The pending partial line as it shows, and forget it; None when there is none."""
        if not self.partial:
            return None
        line, self.partial = visible_text(self.partial), ""
        return line

    def peek(self) -> str:
        """The pending partial line as a terminal would show it now."""
        return visible_text(self.partial) if self.partial else ""
