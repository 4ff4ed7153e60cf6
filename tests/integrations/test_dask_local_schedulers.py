"""dask.compute on Dask's local schedulers inside a task, and the private parts the integration relies on."""

from __future__ import annotations

import io
import time

import pytest

dask = pytest.importorskip("dask")
db = pytest.importorskip("dask.bag")

from dask.diagnostics import ProgressBar  # noqa: E402

from jupyter_taskstream.errors import TaskCancelled  # noqa: E402
from jupyter_taskstream.integrations import dask_progress  # noqa: E402
from jupyter_taskstream.integrations.dask import tracker_of  # noqa: E402

from ..kernel_fixtures import lines, rt, wait_until  # noqa: E402,F401

pytestmark = [pytest.mark.timeout(60), pytest.mark.usefixtures("dask_bridge")]


def _bag():
    return db.from_sequence(range(100), npartitions=10).map(lambda x: x + 1).sum()


@pytest.mark.parametrize("scheduler", ["threads", "sync", "processes"])
def test_dask_compute_counts_its_keys_on_the_task(rt, scheduler):
    with rt.task(f"local {scheduler}") as t:
        assert dask.compute(_bag(), scheduler=scheduler, num_workers=2) == (5050,)
    snap = t.snapshot()
    rows = tracker_of(t).groups.rows()
    total = sum(r[3] for r in rows)
    assert total >= 20 and all(done == tot for _, done, _, tot in rows)
    assert (snap["progress"]["current"], snap["progress"]["total"]) == (total, total)
    assert "sum-part 10/10" in snap["message"]
    # One child bar per key prefix, as Dask's progress() groups them, each complete.
    bars = {b["desc"]: (b["current"], b["total"], b["unit"]) for b in snap["bars"]}
    assert bars["sum-part"] == (10, 10, "key") and set(bars) == {r[0] for r in rows}


def test_progress_bar_inside_a_task_writes_no_bar_text(rt):
    out = io.StringIO()
    with rt.task("with bar") as t:
        with ProgressBar(out=out, dt=0.01):
            assert _bag().compute(scheduler="threads") == 5050
        print("after")
    assert out.getvalue() == ""
    assert lines(t) == ["after"]
    assert t.snapshot()["progress"]["current"] > 0
    # Outside a task the bar is Dask's as before.
    with ProgressBar(out=out):
        _bag().compute(scheduler="threads")
    assert "100% Completed" in out.getvalue()


def test_progress_bar_that_writes_to_stdout_leaves_the_log_clean(rt):
    with rt.task("stdout bar") as t:
        with ProgressBar(dt=0.01):
            _bag().compute(scheduler="threads")
    assert lines(t) == []


def test_cancel_stops_a_local_computation_at_its_next_key(rt):
    def slow(x):
        time.sleep(0.2)
        return x

    def body():
        dask.compute(db.from_sequence(range(60), npartitions=60).map(slow), scheduler="threads", num_workers=2)

    t = rt.run(body, name="local cancel")
    wait_until(lambda: t.snapshot()["progress"]["current"] >= 2, message="some keys done")
    started = time.monotonic()
    t.cancel()
    assert t.wait(5) and time.monotonic() - started < 5
    assert t.status == "cancelled" and isinstance(t.exception(), TaskCancelled)
    assert t.snapshot()["progress"]["current"] < 60


def test_outside_tasks_nothing_is_counted(rt):
    with rt.task("first"):
        pass  # turns the integration on
    before = dict(dask_progress._trackers)
    assert _bag().compute(scheduler="threads") == 5050
    assert dict(dask_progress._trackers) == before


# ---- what the adapters rely on (fail loudly when a Dask upgrade changes it) ----------------


def test_distributed_private_parts_the_adapter_relies_on():
    distributed = pytest.importorskip("distributed")
    import inspect

    from distributed.worker import Worker

    source = inspect.getsource(distributed.Client._graph_to_futures)
    assert "dask.get_annotations()" in source, "annotations of dask.annotate no longer reach the graph"
    assert "return futures" in source
    assert inspect.signature(distributed.Client._graph_to_futures.__wrapped__
                             if hasattr(distributed.Client._graph_to_futures, "__wrapped__")
                             else distributed.Client._graph_to_futures).parameters
    # The worker plugin finds the key a thread runs and that key's annotations.
    assert "active_threads" in inspect.getsource(Worker.__init__)
    from distributed.worker_state_machine import TaskState

    assert "annotations" in TaskState.__annotations__
    # Whole-graph counts come from Dask's own progress machinery (the scheduler's MultiProgress).
    from distributed.diagnostics.progressbar import MultiProgressBar

    bar_source = inspect.getsource(MultiProgressBar)
    assert "self._draw_bar(**response)" in bar_source and "self._draw_stop(**response)" in bar_source
    assert "async def listen" in bar_source and '"remaining": valmap(len, p.keys)' in bar_source
    # distributed.progress()'s text bar writes only from _draw_bar/_draw_stop.
    from distributed.diagnostics.progressbar import TextProgressBar

    for name in ("_draw_bar", "_draw_stop"):
        original = getattr(TextProgressBar, name)
        assert "sys.stdout.write" in inspect.getsource(getattr(original, "__wrapped__", original))
    # Dask's default handler of the "print" topic, which stays for code outside tasks.
    assert distributed.Client._default_event_handlers["print"] is distributed.client._handle_print


def test_dask_progress_bar_parts_the_adapter_relies_on():
    import inspect

    source = inspect.getsource(ProgressBar)
    for name in ("_start", "_finish", "_draw_bar"):
        assert hasattr(ProgressBar, name)
    assert source.count("self._file is not None") >= 2, "ProgressBar writes without checking self._file"
