"""What print() pays to find ``sys.stdout.write``: the router's designs against a file.

``python -m benchmarks.write_lookup [RUNS]`` prints 100,000 lines of
``print("line", i, "of the benchmark output", file=s)`` (six ``write`` lookups and calls per
line) to each stream below, RUNS times in turn, and prints the median per stream. Every
stream but the file appends to a list, as a thread a task's block owns does: what differs
is only how ``write`` is found. A diagnostic for case 2 (issue 16, goal 2), not a case.
"""

from __future__ import annotations

import functools
import os
import statistics
import sys
import threading
import time

from jupyter_taskstream.kernel.capture import _router, thread_entries

LINES = 100_000


def _loop(stream) -> float:
    start = time.perf_counter()
    for i in range(LINES):
        print("line", i, "of the benchmark output", file=stream)
    return time.perf_counter() - start


def streams(chunks: list) -> dict[str, object]:
    """The streams compared, by label."""

    class Plain:  # the floor: ``write`` an instance attribute
        pass

    plain = Plain()
    plain.write = chunks.append

    # The router's design until this round: a property whose getter is C, plus __getattr__
    # to pass every other attribute to the stream it replaced.
    local = threading.local()
    local.write = chunks.append

    class Before:
        write = property(functools.partial(getattr, local, "write"))

        def __getattr__(self, name):
            raise AttributeError(name)

    router = _router("stdout", open(os.devnull, "w"))
    thread_entries(router)["write"] = chunks.append  # what `claim` sets once the sender is told
    return {
        "a file (os.devnull)": open(os.devnull, "w"),
        "plain attribute (floor)": plain,
        "property over threading.local + __getattr__ (before)": Before(),
        "StreamRouter: a threading.local (now)": router,
    }


def main(argv: list[str]) -> None:
    runs = int(argv[0]) if argv else 9
    chunks: list = []
    cases = streams(chunks)
    times: dict[str, list[float]] = {label: [] for label in cases}
    for _ in range(runs):
        for label, stream in cases.items():
            chunks.clear()
            times[label].append(_loop(stream))
    file_ms = statistics.median(times["a file (os.devnull)"]) * 1e3
    print(f"{LINES:,} print() lines, median of {runs} runs, streams in turn")
    for label, samples in times.items():
        ms = statistics.median(samples) * 1e3
        print(f"{label:56} {ms:8.1f} ms  {ms / file_ms:5.2f}× the file")


if __name__ == "__main__":
    main(sys.argv[1:])
