"""Child bars and the tqdm and rich bridges, in-process with a private runtime.

The real libraries run here (tqdm, tqdm.notebook, tqdm.rich, tqdm.contrib.concurrent, rich);
what a kernel's cell receives is checked in ``test_bars_kernel.py``.
"""

from __future__ import annotations

import io
import threading

import pytest
import tqdm
import tqdm.auto
import tqdm.notebook
import tqdm.rich
import tqdm.std
from tqdm.contrib.concurrent import thread_map

from jupyter_taskstream import integrations
from jupyter_taskstream.integrations import tqdm as tqdm_bridge

from ..kernel_fixtures import rt  # noqa: F401  (fixture)


class DefinedBefore(tqdm.std.tqdm):
    """A library's subclass, defined before the bridge is installed (like Hugging Face's)."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("disable", None)  # what huggingface_hub passes: off when stderr is no tty
        super().__init__(*args, **kwargs)


@pytest.fixture
def bridged():
    integrations.enable()
    yield
    integrations.disable()


def bars(task) -> list[tuple]:
    return [(b["desc"], b["parent"], b["current"], b["total"], b["closed"]) for b in task.snapshot()["bars"]]


def test_nested_loops_make_one_task_and_one_child_bar_at_a_time(rt):
    with rt.task("train") as t:
        for _ in rt.progress(range(30), desc="epoch"):
            for _ in rt.progress(range(10), desc="batch"):
                assert len(t.snapshot()["bars"]) == 1
    assert rt.tasks() == [t] and t.current == 30 and t.snapshot()["bars"] == []
    with rt.task("deep") as d:
        for _ in rt.progress(range(3)):
            for _ in rt.progress(range(100), desc="mid"):
                for _ in rt.progress(range(2), desc="inner", leave=True):
                    pass
                (mid,) = [b for b in d.snapshot()["bars"] if b["desc"] == "mid"]
                (inner,) = [b for b in d.snapshot()["bars"] if b["desc"] == "inner"]
                assert inner["parent"] == mid["id"] and mid["parent"] == "main" and inner["closed"]
    assert len(rt.tasks()) == 2


def test_update_drives_the_main_bar_so_a_loop_inside_is_a_child(rt):
    with rt.task("files", total=2) as t:
        for _ in range(2):
            for _ in rt.progress(range(4), desc="chunks", leave=True):
                pass
            t.update()
    assert (t.current, t.total) == (2, 2)
    assert bars(t) == [("chunks", "main", 4, 4, True)]


@pytest.mark.parametrize(
    "make",
    [
        lambda: tqdm.std.tqdm(range(1000), desc="std", miniters=1000, mininterval=0),
        lambda: tqdm.auto.tqdm(range(1000), desc="auto", miniters=1000),
        lambda: tqdm.notebook.tqdm(range(1000), desc="notebook", miniters=1000),
        lambda: tqdm.std.trange(1000, desc="trange", miniters=1000),
        lambda: tqdm.rich.tqdm(range(1000), desc="rich", miniters=1000),
        lambda: DefinedBefore(range(1000), desc="before", miniters=1000, file=io.StringIO()),
        lambda: pytest.importorskip("huggingface_hub.utils").tqdm(range(1000), desc="hf", miniters=1000),
    ],
    ids=["std", "auto", "notebook", "trange", "tqdm.rich", "subclass-before", "huggingface_hub"],
)
def test_every_kind_of_tqdm_bar_feeds_the_task_with_exact_counts(rt, bridged, make):
    with rt.task("t") as t:
        outer = make()
        for _ in outer:
            for _ in tqdm.std.tqdm(range(7), desc="inner", leave=False):
                pass
    assert (t.current, t.total) == (1000, 1000)
    assert t.snapshot()["message"] == outer.desc
    assert t.snapshot()["bars"] == []  # the inner bars were transient
    assert t.snapshot()["log"] == [], "bar text reached the task log"


def test_a_subclass_defined_after_the_bridge_and_postfix_and_units(rt, bridged):
    class DefinedAfter(tqdm.auto.tqdm):
        pass

    with rt.task("t") as t:
        with tqdm.std.tqdm(total=10, desc="outer") as outer:
            bar = DefinedAfter(total=4096, unit="B", desc="download", leave=True)
            bar.update(4096)
            bar.set_postfix(speed="fast")
            bar.close()
            outer.update(10)
    assert bars(t) == [("download", "main", 4096, 4096, True)]
    assert t.snapshot()["bars"][0]["unit"] == "B" and "speed=fast" in t.snapshot()["bars"][0]["postfix"]


def test_disabled_bars_stay_invisible_and_write_goes_to_the_log(rt, bridged):
    with rt.task("t") as t:
        for _ in tqdm.std.tqdm(range(5), disable=True):
            pass
        tqdm.std.tqdm.write("a line from tqdm.write")
        for _ in tqdm.std.tqdm(range(3), desc="counted"):
            pass
    assert (t.current, t.snapshot()["message"]) == (3, "counted")
    assert [line["text"] for line in t.snapshot()["log"]] == ["a line from tqdm.write"]


def test_thread_map_parent_bar_feeds_the_task(rt, bridged):
    with rt.task("t") as t:
        out = thread_map(lambda x: x * 2, range(50), max_workers=4)
    assert out == [x * 2 for x in range(50)] and (t.current, t.total) == (50, 50)


def test_tqdm_notebook_never_creates_its_widget_inside_a_task(rt, bridged, monkeypatch):
    made = []
    original = tqdm.notebook.tqdm_notebook.status_printer

    def spy(*args, **kwargs):
        made.append(args)
        return original(*args, **kwargs)

    monkeypatch.setattr(tqdm.notebook.tqdm_notebook, "status_printer", staticmethod(spy))
    with rt.task("t") as t:
        for _ in tqdm.notebook.tqdm(range(5), desc="nb"):
            pass
    assert made == [] and t.current == 5
    tqdm.notebook.tqdm(range(5), display=False).close()  # outside a task: tqdm's own widget
    assert len(made) == 1


def test_outside_tasks_tqdm_draws_as_without_the_bridge(bridged):
    plain = io.StringIO()
    for _ in tqdm.std.tqdm(range(3), file=plain, desc="x", mininterval=0, ascii=True, bar_format="{desc} {n}/{total}"):
        pass
    assert plain.getvalue().split("\r")[-1].startswith("x 3/3")


def test_disabling_the_bridge_restores_the_original_methods():
    originals = {name: vars(tqdm.std.tqdm)[name] for name in ("__init__", "close")}
    nb_init = vars(tqdm.notebook.tqdm_notebook)["__init__"]
    integrations.enable()
    integrations.enable()  # idempotent: wrapped once
    assert vars(tqdm.std.tqdm)["__init__"] is not originals["__init__"]
    assert vars(tqdm.std.tqdm)["__init__"].__wrapped__ in (originals["__init__"], originals["__init__"].func)
    integrations.disable()
    assert {name: vars(tqdm.std.tqdm)[name] for name in originals} == originals
    assert vars(tqdm.notebook.tqdm_notebook)["__init__"] is nb_init
    assert not tqdm_bridge.installed()


def test_bars_in_threads_the_task_starts_are_children_of_the_innermost_bar(rt, bridged):
    import contextvars

    with rt.task("t") as t:
        with tqdm.std.tqdm(total=2, desc="jobs") as jobs:
            ctx = contextvars.copy_context()
            worker = threading.Thread(target=ctx.run, args=(lambda: [None for _ in tqdm.std.tqdm(range(9), desc="w", leave=True)],))
            worker.start()
            worker.join()
            jobs.update(2)
    assert bars(t) == [("w", "main", 9, 9, True)]


def test_rich_progress_feeds_bars_and_draws_nothing(rt, bridged):
    from rich.progress import Progress, track

    with rt.task("t") as t:
        for _ in track(range(20), description="outer"):
            with Progress(transient=False) as progress:
                job = progress.add_task("inner", total=5)
                for _ in range(5):
                    progress.advance(job)
    assert (t.current, t.total, t.snapshot()["message"]) == (20, 20, "outer")
    assert bars(t) == [("inner", "main", 5, 5, True)]
    assert t.snapshot()["log"] == [], "rich drew into the task log"
