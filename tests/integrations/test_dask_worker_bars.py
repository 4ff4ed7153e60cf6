"""``ts.progress`` and tqdm inside Dask task functions feed the submitting task's child bars.

On the session's real ``LocalCluster(processes=True, n_workers=2)``: the bars travel from
the workers on Dask's event stream (no connection to anything else), each worker's loop a
child bar ``[worker-address] desc`` with its exact final count, and two tasks at once each
get their own. tests/integrations/test_dask_kernel_e2e.py reads such bars over REST.
"""

from __future__ import annotations

import re
import threading

import pytest

pytest.importorskip("distributed")
pytest.importorskip("tqdm")

from ..kernel_fixtures import lines, rt  # noqa: E402,F401
from . import dask_helpers as h  # noqa: E402

pytestmark = [pytest.mark.timeout(90), pytest.mark.usefixtures("dask_bridge")]

BAR = re.compile(r"^\[(tcp://[^\]]+)\] (.*)$")


def worker_bars(task) -> dict[str, dict]:
    """The task's child bars from workers (not its per-key-prefix bars), by the worker-side description."""
    out = {}
    for bar in task.snapshot()["bars"]:
        if bar["unit"] == "key":
            continue  # a bar of the task's Dask keys, per key prefix
        match = BAR.match(bar["desc"])
        assert match, f"a child bar not named after its worker: {bar}"
        out[match.group(2)] = {**bar, "worker": match.group(1)}
    return out


def test_progress_loops_on_workers_are_child_bars_with_exact_counts(rt, dask_client, dask_cluster):
    with rt.task("loops") as t:
        futures = [dask_client.submit(h.loop_with_progress, 40 + i, f"loop {i}", 0.005, pure=False) for i in range(4)]
        assert dask_client.gather(futures) == [40, 41, 42, 43]
    snap = t.snapshot()
    # The Dask keys still count on the main bar; the loops are child bars beside it.
    assert (snap["progress"]["current"], snap["progress"]["total"]) == (4, 4)
    bars = worker_bars(t)
    assert set(bars) == {f"loop {i}" for i in range(4)}
    for i in range(4):
        bar = bars[f"loop {i}"]
        assert (bar["current"], bar["total"], bar["closed"]) == (40 + i, 40 + i, True)
        assert bar["parent"] == "main" and bar["unit"] == "it"
        assert bar["worker"] in dask_cluster.scheduler_info["workers"]


def test_tqdm_on_workers_is_a_child_bar_and_draws_nothing_there(rt, dask_client):
    with rt.task("tqdm") as t:
        futures = dask_client.map(h.loop_with_tqdm, [30, 31], [f"tq {i}" for i in range(2)], pause=0.005, pure=False)
        assert dask_client.gather(futures) == [30, 31]
    bars = worker_bars(t)
    assert {(d, b["current"], b["total"], b["closed"]) for d, b in bars.items()} == {
        ("tq 0", 30, 30, True),
        ("tq 1", 31, 31, True),
    }
    # Nothing of tqdm's own drawing reached the task's log (the bar drew into nothing).
    assert not any("it/s" in line or "%|" in line for line in lines(t))


def test_two_tasks_at_once_get_only_their_own_bars(rt, dask_client):
    start = threading.Barrier(2)

    def body(marker):
        start.wait()
        futures = [
            dask_client.submit(h.loop_with_progress, 20, f"{marker} {i}", 0.01, pure=False) for i in range(3)
        ]
        dask_client.gather(futures)

    one, two = rt.run(body, "one"), rt.run(body, "two")
    assert one.result(60) is None and two.result(60) is None
    for task, marker in ((one, "one"), (two, "two")):
        bars = worker_bars(task)
        assert set(bars) == {f"{marker} {i}" for i in range(3)}
        assert all((b["current"], b["total"], b["closed"]) == (20, 20, True) for b in bars.values())


def test_a_nested_loop_on_a_worker_is_nested_under_its_outer_loop(rt, dask_client):
    with rt.task("nested") as t:
        assert dask_client.submit(h.nested_loops, 3, 7, pure=False).result() == 21
    bars = {bar["id"]: bar for bar in t.snapshot()["bars"] if bar["unit"] != "key"}
    (outer,) = [bar for bar in bars.values() if bar["desc"].endswith("] outer")]
    (inner,) = [bar for bar in bars.values() if bar["desc"] == "inner"]  # named once, by its parent
    assert (outer["parent"], outer["current"], outer["total"], outer["closed"]) == ("main", 3, 3, True)
    assert (inner["parent"], inner["current"], inner["total"], inner["closed"]) == (outer["id"], 7, 7, True)


def test_code_outside_tasks_keeps_plain_tqdm_on_workers(dask_client):
    # No task submitted it: the key runs with no current task, tqdm is tqdm.
    assert dask_client.submit(h.loop_with_tqdm, 5, "plain", pure=False).result() == 5
