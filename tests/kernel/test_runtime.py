"""The kernel-side runtime in-process, without a hub: tasks, progress, run, cancel, views."""

from __future__ import annotations

import asyncio
import itertools
import sys
import threading
import time

import pytest
from traitlets import TraitError

import jupyter_taskstream as ts
from jupyter_taskstream import api as runtime_module
from jupyter_taskstream.views.console import ConsoleBar
from jupyter_taskstream.errors import TaskCancelled, TaskFinished, TaskNotFound, ValidationError
from jupyter_taskstream.views.meter import format_bar, format_interval, format_meter, format_rate, format_snapshot
from jupyter_taskstream.kernel.runtime import Runtime

from ..kernel_fixtures import lines, rt, wait_until  # noqa: F401

pytestmark = pytest.mark.timeout(30)


# ---- task() as context manager and decorator ------------------------------------------------


def test_task_context_manager_counts_and_completes(rt):
    with rt.task("load", total=4) as t:
        assert t.status == "running" and rt.current() is t
        t.update()
        t.update(2)
        t.set(message="almost")
        t.update()
        t.log("a line\nanother")
    snap = t.snapshot()
    assert t.status == "completed" and rt.current() is None
    assert snap["progress"] == {**snap["progress"], "current": 4, "total": 4, "fraction": 1.0}
    assert snap["message"] == "almost" and snap["finished"] and snap["error"] is None
    assert [e["text"] for e in snap["log"]] == ["a line", "another"]
    assert rt.last() is t and rt.tasks() == [t]


def test_failure_records_type_message_and_traceback(rt):
    def parse_config():
        raise KeyError("missing key")

    with pytest.raises(KeyError):
        with rt.task("parse") as t:
            parse_config()
    error = t.snapshot()["error"]
    assert t.status == "failed"
    assert error["type"] == "KeyError" and "missing key" in error["message"]
    assert "parse_config" in error["traceback"] and error["traceback"].startswith("Traceback")
    assert "jupyter_taskstream" not in error["traceback"]  # the runtime's own frames are dropped


def test_decorator_makes_a_new_task_per_call(rt):
    @rt.task("double")
    def double(x):
        rt.current().update(x)
        return 2 * x

    assert double(3) == 6 and double(4) == 8
    first, second = rt.tasks()
    assert first.id != second.id and first.name == second.name == "double"
    assert (first.current, second.current, first.status) == (3, 4, "completed")


def test_async_decorator_and_bare_decorator(rt):
    @rt.task("fetch")
    async def fetch():
        await asyncio.sleep(0)
        return rt.current().name

    @rt.task
    def named_after_function():
        return rt.current().name

    assert asyncio.run(fetch()) == "fetch"
    assert named_after_function() == "named_after_function"


def test_nested_task_is_a_separate_task_and_output_goes_to_the_innermost(rt):
    with rt.task("outer") as outer:
        print("to outer")
        with rt.task("inner") as inner:
            print("to inner")
        print("outer again")
    assert lines(outer) == ["to outer", "outer again"] and lines(inner) == ["to inner"]
    assert rt.tasks() == [outer, inner]


def test_a_task_runs_once(rt):
    t = rt.task("once")
    with t:
        pass
    with pytest.raises(TaskFinished, match="already finished"):
        with t:
            pass


@pytest.mark.parametrize(
    ("call", "field"),
    [
        (lambda rt: rt.task("x", total=-1), "total"),
        (lambda rt: rt.task("", total=1), "name"),
        (lambda rt: rt.task("x", unit=""), "unit"),
        (lambda rt: rt.progress([], total=-1), "total"),
        (lambda rt: rt.progress([], total=float("nan")), "total"),
        (lambda rt: rt.progress([], desc=3), "desc"),
    ],
)
def test_bad_input_names_the_field(rt, call, field):
    with pytest.raises(ValueError, match=field) as info:
        call(rt)
    assert isinstance(info.value, ValidationError) and info.value.field == field


def test_bad_updates_name_the_problem(rt):
    with rt.task("x") as t:
        with pytest.raises(ValidationError, match="n must be"):
            t.update(-1)
        with pytest.raises(ValidationError, match="current"):
            t.set(current="5")
        with pytest.raises(ValidationError, match="message"):
            t.set(message=5)
        with pytest.raises(TypeError, match="text must be a str"):
            t.log(b"bytes")
    with pytest.raises(TypeError, match="needs an iterable"):
        rt.progress(5)
    with pytest.raises(TypeError, match="needs a callable"):
        rt.run(5)
    with pytest.raises(TaskNotFound):
        rt.get("nope")


def test_config_rejects_bad_values_by_name():
    with pytest.raises(TraitError, match="cancel_grace_period"):
        ts.config.cancel_grace_period = -1
    with pytest.raises(TraitError, match="console"):
        ts.config.console = "maybe"


# ---- progress() ---------------------------------------------------------------------------------


def test_progress_outside_a_task_makes_one_with_total_from_len(rt):
    seen = list(rt.progress(range(1000), desc="squares"))
    t = rt.last()
    assert seen == list(range(1000))
    assert (t.name, t.status, t.current, t.total) == ("squares", "completed", 1000, 1000)


def test_progress_of_a_generator_has_no_total(rt):
    assert sum(rt.progress(x for x in range(10))) == 45
    assert (rt.last().current, rt.last().total, rt.last().name) == (10, None, "progress")


def test_progress_drives_the_current_task_and_nested_loops_are_its_child_bars(rt):
    seen = []
    with rt.task("epochs") as t:
        for _ in rt.progress(range(3), desc="epoch"):
            for i in rt.progress(range(5), desc="batch"):
                if i == 2:
                    seen.append([(b["desc"], b["parent"], b["total"], b["closed"]) for b in t.snapshot()["bars"]])
    assert rt.tasks() == [t], "nested loops made tasks of their own"
    assert (t.current, t.total, t.snapshot()["message"]) == (3, 3, "epoch")
    assert seen == [[("batch", "main", 5, False)]] * 3  # one child bar at a time
    assert t.snapshot()["bars"] == []  # transient by default: gone once closed


def test_progress_stopped_early_completes_with_the_count_so_far(rt):
    for i in rt.progress(range(100)):
        if i == 9:
            break
    assert (rt.last().status, rt.last().current) == ("completed", 9)


def test_progress_counts_across_many_checkpoints(rt):
    # A long fast loop: the stride grows, the final count is still exact.
    assert sum(1 for _ in rt.progress(itertools.repeat(None, 300_000))) == 300_000
    assert rt.last().current == 300_000


def test_progress_over_a_tuple_counts_exactly_and_breaks_like_a_range(rt):
    items = tuple(range(50_000))
    assert sum(rt.progress(items)) == sum(items)
    assert (rt.last().current, rt.last().total) == (50_000, 50_000)
    for x in rt.progress(items):
        if x == 30_000:  # well past the first strides
            break
    assert (rt.last().status, rt.last().current) == ("completed", 30_000)


def test_a_strided_loop_count_stays_live_while_its_body_blocks(rt):
    # The stride grows over the fast first half; then the body blocks mid-stride. No
    # checkpoint comes, yet the pump reads the position off the range's iterator.
    gate, seen = threading.Event(), []

    def loop():
        for i in rt.progress(range(400_000), desc="live"):
            if i == 200_000:
                gate.wait(10)
            seen.append(i)

    t = rt.run(loop)
    wait_until(lambda: t.current == 200_000, timeout=10)  # the loop drives the run's task
    assert len(seen) == 200_000 and t.status == "running"
    gate.set()
    assert t.wait(10) and t.current == 400_000


def test_progress_over_a_range_past_sys_maxsize_has_no_total(rt):
    for i in rt.progress(range(2**64), desc="huge"):
        if i == 5:
            break
    assert (rt.last().current, rt.last().total) == (5, None)


def test_an_exception_from_the_iterable_fails_the_loop_task(rt):
    def broken():
        yield 1
        raise OSError("disk gone")

    with pytest.raises(OSError):
        for _ in rt.progress(broken(), desc="read"):
            pass
    assert rt.last().status == "failed" and rt.last().snapshot()["error"]["type"] == "OSError"


# ---- run(), wait, result, cancel ----------------------------------------------------------------


def test_run_returns_at_once_and_result_waits(rt):
    gate = threading.Event()

    def work(x, *, y):
        gate.wait(5)
        return x + y

    t = rt.run(work, 1, y=2, name="add")
    assert t.status == "running" and not t.wait(0.01)
    with pytest.raises(TimeoutError, match="still running"):
        t.result(timeout=0.01)
    gate.set()
    assert t.result(5) == 3 and t.status == "completed" and t.name == "add"


def test_run_reraises_the_task_exception(rt):
    def fail():
        raise ValueError("bad value")

    t = rt.run(fail)
    with pytest.raises(ValueError, match="bad value"):
        t.result(5)
    assert t.status == "failed" and t.snapshot()["error"]["message"] == "bad value"


def test_run_a_coroutine_function(rt):
    async def answer():
        await asyncio.sleep(0)
        return 42

    assert rt.run(answer).result(5) == 42


def test_cancel_raises_at_the_next_progress_step(rt):
    steps = []

    def loop():
        for i in rt.progress(itertools.count(), desc="forever"):
            steps.append(i)
            time.sleep(0.001)

    t = rt.run(loop)
    wait_until(lambda: len(steps) > 5)
    assert t.cancel() is True
    assert t.status in ("cancelling", "cancelled")
    with pytest.raises(TaskCancelled, match="was cancelled"):
        t.result(5)
    assert t.status == "cancelled" and t.cancel() is False


def test_cancel_raises_at_update_and_set_and_cancelled_reports_it(rt):
    seen = {}

    def work():
        while not rt.cancelled():
            time.sleep(0.001)
        seen["cancelled"] = True
        rt.current().update()

    t = rt.run(work)
    t.cancel()
    with pytest.raises(TaskCancelled):
        t.result(5)
    assert seen == {"cancelled": True}
    with rt.task("x") as u:
        u.cancel()
        with pytest.raises(TaskCancelled):
            u.set(current=1)
        assert rt.cancelled()


def test_a_tight_loop_is_interrupted_after_the_grace_period(rt):
    started = threading.Event()

    def spin():
        started.set()
        n = 0
        while True:  # never calls the runtime
            n += 1

    t = rt.run(spin)
    started.wait(5)
    t.cancel()
    assert t.status == "cancelling" and t.snapshot()["cancelling"] and t.snapshot()["status"] == "running"
    assert t.wait(5), "the loop was not interrupted"
    assert t.status == "cancelled" and t.snapshot()["cancelling"] is False


def test_a_strided_loop_whose_items_turn_slow_is_still_cancelled(rt):
    # Fast items grow the stride to many thousands; then each item takes 10 ms, so the next
    # checkpoint is far away. The cancel lands through the grace-period interrupt instead.
    slow = threading.Event()

    def loop():
        for i in rt.progress(range(10**7)):
            if i >= 500_000:
                slow.set()
                time.sleep(0.01)

    t = rt.run(loop)  # the fixture's grace period is 0.2 s
    slow.wait(10)
    t.cancel()
    assert t.wait(5), "the loop was not cancelled"
    assert t.status == "cancelled" and 500_000 <= t.current < 10**7


def test_code_that_swallows_the_interrupt_is_asked_again(rt):
    caught = []

    def stubborn():
        while True:
            try:
                while True:
                    pass
            except Exception as e:  # swallows the first TaskCancelled
                if caught:
                    raise
                caught.append(e)

    t = rt.run(stubborn)
    t.cancel()
    assert t.wait(5) and t.status == "cancelled" and isinstance(caught[0], TaskCancelled)


def test_a_with_task_on_this_thread_is_interrupted(rt):
    with pytest.raises(TaskCancelled):
        with rt.task("spin here") as t:
            threading.Timer(0.05, t.cancel).start()
            while True:
                pass
    assert t.status == "cancelled"


def test_tasks_and_last_and_forgetting_old_finished_tasks():
    r = Runtime(publisher=None, kernel_id=None)
    r.config.max_tasks = 3
    made = []
    for _ in range(5):  # one after another: tasks are forgotten in the order they finish
        made.append(r.run(lambda: None))
        made[-1].wait(5)
    assert r.last() is made[-1]
    assert r.tasks() == made[-3:]
    r.close()


def test_module_level_api_uses_the_default_runtime(monkeypatch):
    mine = Runtime(ts.config, publisher=None, kernel_id=None)
    monkeypatch.setattr(runtime_module, "_default", mine)
    with ts.task("top", total=2) as t:
        for _ in ts.progress(range(2)):
            assert ts.current() is t and not ts.cancelled()
    assert ts.run(lambda: 7).result(5) == 7
    assert ts.tasks()[0] is t and ts.get(t.id) is t and ts.last().status == "completed"
    assert ts.connect_hub() is False
    mine.close()


# ---- views: snapshot, watch, format helpers, console --------------------------------------------


def test_snapshot_has_the_hub_shape_and_local_extras(rt):
    from jupyter_taskstream.protocol import TaskState

    hub_keys = set(TaskState("x", "x", now=0).snapshot())
    with rt.task("shape", total=10) as t:
        t.update(5)
        print("partial line", end="")
        snap = t.snapshot()
    assert set(snap) == hub_keys | {"cancelling", "log", "partial", "elapsed"}
    assert snap["progress"]["fraction"] == 0.5 and snap["partial"] == "partial line"
    assert snap["status"] == "running" and snap["started"].endswith("Z")
    assert lines(t) == ["partial line"]  # flushed as a line when the task ended


def test_watch_is_coalesced_and_gets_the_final_state_last(rt):
    calls = []
    done = threading.Event()

    def work():
        t = rt.current()
        deadline = time.monotonic() + 0.6
        while time.monotonic() < deadline:
            t.update()
        print("bye")

    t = rt.run(work)
    start = time.monotonic()
    threads = set()

    def view(snap):
        threads.add(threading.current_thread().name)
        calls.append((time.monotonic(), snap))
        if snap["status"] == "completed":
            done.set()

    t.watch(view)
    assert done.wait(5)
    elapsed = time.monotonic() - start
    statuses = [s["status"] for _, s in calls]
    assert statuses[-1] == "completed" and "completed" not in statuses[:-1]
    assert calls[-1][1]["log"][-1]["text"] == "bye"
    assert 2 <= len(calls) <= elapsed / 0.09 + 2, "watchers must be called at most ~10/s"
    assert all(b - a >= 0.08 for (a, _), (b, _) in zip(calls, calls[1:-1]))
    assert threads == {"taskstream-views"}  # the pump, never the task's own thread


def test_watch_after_the_end_is_called_once_with_the_final_state(rt):
    with rt.task("done already") as t:
        t.update(3)
    got = []
    t.watch(got.append)
    wait_until(lambda: got)
    rt._pump.run_once()  # another pass must not call it again
    assert len(got) == 1 and got[0]["status"] == "completed" and got[0]["progress"]["current"] == 3


def test_a_failing_watcher_does_not_stop_the_others(rt):
    got = []
    with rt.task("w") as t:
        t.watch(lambda snap: 1 / 0)
        t.watch(got.append)
    wait_until(lambda: got and got[-1]["status"] == "completed")


def test_format_helpers():
    assert format_interval(3) == "00:03" and format_interval(3725) == "1:02:05" and format_interval(None) == "?"
    assert format_rate(10) == "10.00 it/s" and format_rate(0.5, "file") == "2.00 s/file"
    assert format_meter(30, 100, elapsed=3, rate=10) == "30/100 [00:03<00:07, 10.00 it/s]"
    assert format_meter(5, None, 2, None, "B") == "5 B [00:02, ? B/s]"
    assert format_bar(0.5, 10) == "█████     " and format_bar(1, 4, ascii=True) == "####"
    snap = {
        "name": "copy", "status": "running", "cancelling": True, "elapsed": 1.0, "error": None,
        "progress": {"current": 1, "total": 4, "fraction": 0.25, "unit": "it", "rate": 1.0, "eta": 3.0},
    }  # fmt: skip
    line = format_snapshot(snap, width=80)
    assert line.startswith("copy:  25%|") and line.endswith("1/4 [00:01<00:03, 1.00 it/s] cancelling")


def test_console_bar_rewrites_one_line_and_ends_with_the_final_one(rt):
    import io

    out = io.StringIO()
    bar = ConsoleBar(out, width=60)
    with rt.task("console", total=2) as t:
        t.update()
        bar.show(t.snapshot())
    bar.show(t.snapshot())
    text = out.getvalue()
    assert text.count("\r\x1b[K") == 2 and text.endswith("completed\n")
    assert text.count("\n") == 1 and "1/2 [00:00<?" in text


def test_importing_the_package_stays_light():
    import subprocess

    code = (
        "import sys, jupyter_taskstream as ts; ts.task; "
        "heavy = [m for m in ('IPython', 'ipywidgets', 'tornado', 'jupyter_server', 'httpx') if m in sys.modules]; "
        "print(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_the_view_hook_sees_every_started_task():
    shown = []
    r = Runtime(publisher=None, kernel_id=None, view=lambda task, has_hub: shown.append((task.name, has_hub)))
    with r.task("a"):
        pass
    r.run(lambda: None, name="b").wait(5)
    assert shown == [("a", False), ("b", False)]
    r.close()


def test_a_task_made_directly_runs_on_the_default_runtime(monkeypatch):
    mine = Runtime(ts.config, publisher=None, kernel_id=None)
    monkeypatch.setattr(runtime_module, "_default", mine)
    with ts.Task("direct", total=1) as t:
        t.update()
    assert mine.get(t.id) is t and t.status == "completed"
    mine.close()


class _Model:
    """Stands for a model whose memory a failed task must not keep (weakly referenceable)."""

    def __init__(self) -> None:
        self.weights = bytearray(200 * 2**20)


def test_a_failed_task_keeps_its_traceback_text_not_its_frames(rt):
    # Issue 15, defect 11: the finished task kept the exception with its traceback, so every
    # frame of the failed code and its locals (200 MB here) for up to 1,000 tasks.
    import gc
    import weakref

    refs = []

    def train():
        model = _Model()
        refs.append(weakref.ref(model))
        raise ValueError("diverged")

    handle = rt.run(train)
    assert handle.wait(10) and handle.status == "failed"
    assert "in train" in handle.snapshot()["error"]["traceback"]  # the text stays
    gc.collect()
    assert refs[0]() is None, "the failed frame's model is still alive"
    with pytest.raises(ValueError, match="diverged"):
        handle.result()  # the error is still there to re-raise

    def in_a_block():
        try:
            with ts_task("block", rt):
                model = _Model()
                refs.append(weakref.ref(model))
                raise KeyError("lost")
        except KeyError as e:
            assert e.__traceback__ is not None  # the caller's exception keeps its frames
            return rt.last()

    block = in_a_block()
    gc.collect()
    assert block.status == "failed" and refs[1]() is None
    assert isinstance(block.exception(), KeyError) and block.exception().__traceback__ is None


def ts_task(name, runtime):
    from jupyter_taskstream.kernel.task import Task

    return Task(name, runtime=runtime)


def test_a_bar_sends_no_rate_or_eta_past_the_contracts_range():
    """What the hub refuses (openapi.json: 0 to 1e308) is not sent: such a measure is unknown."""
    from jupyter_taskstream.kernel.bars import Bar
    from jupyter_taskstream.protocol import validate_bars

    bar = Bar("b1", "main", "fast", total=1e308, unit="it", leave=True)
    bar.current, bar.rate = 1e308, 1.093e308  # 1e308 counted in 0.915 s
    slow = Bar("b2", "main", "slow", total=1e308, unit="it", leave=True)
    slow.rate = 0.5  # 2e308 seconds left
    states = [bar.state(), slow.state()]
    assert states[0]["rate"] is None and states[1]["eta"] is None and states[1]["rate"] == 0.5
    validate_bars(states, "bars", [])
