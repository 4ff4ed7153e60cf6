"""How events become rows of the SQLite store's tables (`store`).

Log lines, the bulk of what a hub stores, go in runs: consecutive ids of one task's stream in
one ``lines`` row. Every other event is one ``events`` row.
"""

from __future__ import annotations

import json

from .eventlog import LineEvent

__all__ = ["rows_and_runs", "without_trimmed"]


def rows_and_runs(events: list) -> tuple[list[tuple], list[list]]:
    """``events`` as rows of the ``events`` table and runs of plain log lines for ``lines``.

    A run is ``[first id, last id, task, stream, [texts]]``: lines of one task's stream with
    consecutive ids, as a published batch leaves them. Markers and other events are rows.
    """
    rows: list[tuple] = []
    runs: list[list] = []
    run: list = [0, -1, None, None, None]
    for e in events:
        if type(e) is LineEvent:
            stream, text = e.stream, e.text
        else:
            data = e.data
            if e.type != "log" or len(data) != 2 or "text" not in data:
                rows.append((e.id, e.task, e.type, json.dumps(data, ensure_ascii=False)))
                continue
            stream, text = data["stream"], data["text"]
        if e.id == run[1] + 1 and e.task == run[2] and stream == run[3]:
            run[1] = e.id
            run[4].append(text)
            continue
        run = [e.id, e.id, e.task, stream, [text]]
        runs.append(run)
    return rows, runs


def without_trimmed(runs: list[list], trims: dict[str, int]) -> list[list]:
    """``runs`` without the lines their task's log already trimmed (in the same transaction).

    A burst longer than the retention trims inside the run it just wrote: cut here, that run is
    encoded once, instead of written whole and then read, cut and rewritten (`SQLiteStore._prune`).
    """
    if not trims:
        return runs
    kept = []
    for first, last, task, stream, texts in runs:
        through = trims.get(task, 0)
        if last <= through:
            continue
        if first <= through:
            first, texts = through + 1, texts[through + 1 - first :]
        kept.append([first, last, task, stream, texts])
    return kept
