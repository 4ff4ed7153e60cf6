"""A task that fans out to a real LocalCluster (2 worker processes): progress, output, cancel.

One cluster for the Dask tests (the session's `dask_cluster` fixture in conftest: worker
processes take a second to start). The runtime runs
in-process without a hub (the `rt` fixture); tests/integrations/test_dask_kernel_e2e.py
goes through a real kernel and the hub's REST API.
"""

from __future__ import annotations

import re
import threading
import time

import pytest

distributed = pytest.importorskip("distributed")

from jupyter_taskstream.integrations.dask import tracker_of  # noqa: E402

from ..kernel_fixtures import lines, rt, wait_until  # noqa: E402,F401
from . import dask_helpers as h  # noqa: E402

pytestmark = [pytest.mark.timeout(60), pytest.mark.usefixtures("dask_bridge")]

@pytest.fixture
def cluster(dask_cluster):
    return dask_cluster


@pytest.fixture
def client(dask_client):
    return dask_client


TAG = re.compile(r"^\[(tcp://[^\]]+)\] (.*)$")


def worker_lines(task) -> list[tuple[str, str]]:
    """``(worker address, text)`` of the task's log lines that came from workers."""
    return [m.groups() for m in map(TAG.match, lines(task)) if m]


def test_map_counts_keys_and_every_worker_line_reaches_the_task(rt, client, cluster):
    with rt.task("fan out") as t:
        futures = client.map(h.shout, range(20), marker="a")
        assert client.gather(futures) == list(range(20))
    snap = t.snapshot()
    assert t.status == "completed"
    assert (snap["progress"]["current"], snap["progress"]["total"]) == (20, 20)
    assert snap["message"] == "shout 20/20"
    got = worker_lines(t)
    # Every line, once, tagged with the address of a worker of this cluster.
    assert sorted(text for _, text in got) == sorted(h.expected_lines("a", range(20)))
    assert {addr for addr, _ in got} <= set(cluster.scheduler_info["workers"])
    # One worker's lines of one key keep their order.
    for x in range(20):
        mine = [text for _, text in got if text.endswith(f" {x}")]
        assert mine == h.expected_lines("a", [x])


def test_groups_per_key_prefix_like_dask_progress(rt, client):
    seen = []
    with rt.task("groups") as t:
        # What child bars will draw from: the per-prefix rows, after every change.
        tracker_of(t).watch(lambda groups: seen.append(groups.rows()))
        incs = client.map(h.inc, range(5))
        adds = [client.submit(h.add, i, 10) for i in range(3)]
        total = client.submit(sum, incs)
        assert client.gather(adds + [total]) == [10, 11, 12, 15]
    rows = tracker_of(t).groups.rows()
    assert rows == [("inc", 5, 0, 5), ("add", 3, 0, 3), ("sum", 1, 0, 1)]
    snap = t.snapshot()
    assert (snap["progress"]["current"], snap["progress"]["total"]) == (9, 9)
    assert snap["message"] == "inc 5/5 · add 3/3 · sum 1/1"
    assert seen[0] == [("inc", 0, 0, 5)] and seen[-1] == rows


def test_compute_and_persist_count_every_key_of_the_graph_like_dask_progress(rt, client):
    db = pytest.importorskip("dask.bag")
    dask = pytest.importorskip("dask")
    with rt.task("bag") as t:
        bag = db.from_sequence(range(40), npartitions=4).map(h.inc)
        persisted = bag.persist()
        assert client.compute(persisted.sum()).result() == sum(range(1, 41))
        assert dask.compute(bag.map(h.inc).sum())[0] == sum(range(2, 42))  # the default client's get
    rows = tracker_of(t).groups.rows()
    snap = t.snapshot()
    assert all(done == total for _, done, erred, total in rows) and not any(r[2] for r in rows)
    # Intermediate keys count too, grouped by prefix as Dask's progress() groups them.
    assert snap["progress"]["current"] == snap["progress"]["total"] == sum(r[3] for r in rows) > 10
    assert any(prefix.endswith("inc") and total >= 4 for prefix, _, _, total in rows)
    assert any(prefix == "sum-aggregate" for prefix, *_ in rows)


def test_dask_progress_text_bar_inside_a_task_leaves_the_log_clean(rt, client):
    with rt.task("with progress()") as t:
        futures = client.map(h.inc, range(8), pure=False)
        distributed.progress(futures, notebook=False)
        print("after progress")
    assert lines(t) == ["after progress"]
    assert t.snapshot()["progress"]["current"] == 8


def test_a_failed_future_is_logged_and_fails_the_task_as_the_code_does(rt, client):
    with pytest.raises(ValueError, match="three"):
        with rt.task("fails") as t:
            futures = client.map(h.fail_on_three, range(6))
            client.gather(futures)
    assert t.status == "failed"
    wait_until(lambda: any("failed" in line for line in lines(t)), message="the failure's log line")
    (line,) = [line for line in lines(t) if line.startswith("dask: key")]
    assert repr(futures[3].key) in line and "ValueError: three is not allowed" in line
    # The code that caught the error leaves the task completed, with the line still there.
    with rt.task("catches") as t2:
        future = client.submit(h.fail_on_three, 3, key="catch-3")
        assert isinstance(future.exception(), ValueError)
    wait_until(lambda: any("catch-3" in line for line in lines(t2)))
    assert t2.status == "completed" and t2.snapshot()["message"] == "catch 0/1 (1 failed)"


def test_two_tasks_at_once_each_get_their_own_lines(rt, client):
    start = threading.Barrier(2)

    def body(marker):
        start.wait()
        futures = [client.submit(h.shout, x, marker=marker, pure=False) for x in range(10)]
        client.gather(futures)

    one, two = rt.run(body, "one"), rt.run(body, "two")
    assert one.result(30) is None and two.result(30) is None
    for task, marker in ((one, "one"), (two, "two")):
        assert sorted(text for _, text in worker_lines(task)) == sorted(h.expected_lines(marker, range(10)))
        assert task.snapshot()["progress"]["current"] == 10


def test_code_outside_tasks_keeps_dasks_print_forwarding(client, capsys):
    assert client._event_handlers["print"] is distributed.client._handle_print
    assert client.submit(h.outside, "outside the task", pure=False).result() == "outside the task"
    seen = []
    wait_until(lambda: seen.append(capsys.readouterr().out) or "outside the task" in "".join(seen))


def test_cancel_cancels_the_futures_and_ends_the_task_within_5s(rt, client):
    submitted = []

    def body():
        submitted.extend(client.map(h.sleep_then, range(6), seconds=6.0))
        client.gather(submitted)

    t = rt.run(body, name="busy")
    wait_until(lambda: tracker_of(t).groups.total == 6, message="the futures to be submitted")
    wait_until(lambda: any(client.processing().values()), message="the cluster to be busy")
    started = time.monotonic()
    assert t.cancel()
    assert t.wait(5), "the task did not end within 5 s of its cancel"
    assert time.monotonic() - started < 5
    assert t.status == "cancelled" and t.snapshot()["error"] is None
    assert all(f.cancelled() for f in submitted)
    keys = {f.key for f in submitted}

    def forgotten():
        processing = {k for ks in client.processing().values() for k in ks}
        return not keys & processing

    wait_until(forgotten, timeout=15, message="the scheduler to drop the cancelled keys")
