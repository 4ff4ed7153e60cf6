"""The task widget's synced state and its text/HTML fallbacks, without a kernel."""

from __future__ import annotations

import pytest
from ipywidgets.widgets import widget as widget_module

from jupyter_taskstream.errors import TaskCancelled
from jupyter_taskstream.views.html_state import render_html
from jupyter_taskstream.views.widget import TaskWidget, shared_layout

from ..kernel_fixtures import rt, wait_until  # noqa: F401  (rt is a fixture)

XSS = "<img src=x onerror=alert(1)>"
WIDGET_MIME = "application/vnd.jupyter.widget-view+json"


def test_widget_state_follows_the_task_to_its_end(rt):  # noqa: F811
    task = rt.task("fit", total=4)
    widget = TaskWidget(task, log_lines=2)
    task.watch(widget.show)
    with task:
        for i in range(4):
            task.log(f"line {i}")
            task.update()
    wait_until(lambda: widget.status == "completed", message="the final state")
    assert widget.task_id == task.id and widget.name == "fit"
    assert widget.fraction == 1.0 and widget.meter.startswith("4/4 [")
    assert widget.log == ["line 2", "line 3"]  # trimmed to log_lines
    assert widget.traceback == ""
    assert widget.final and widget.display_status == "completed"  # what widget.js shows, sent


def test_widget_sends_the_displayed_status_and_the_final_flag(rt):  # noqa: F811
    task = rt.task("stop me")
    widget = TaskWidget(task)
    with pytest.raises(TaskCancelled):
        with task:
            task.cancel()
            widget.show(task.snapshot())
            assert (widget.status, widget.display_status, widget.final) == ("running", "cancelling", False)
            task.update()  # raises TaskCancelled
    widget.show(task.snapshot())
    assert (widget.status, widget.display_status, widget.final) == ("cancelled", "cancelled", True)


def test_failed_task_shows_its_traceback(rt):  # noqa: F811
    task = rt.task("boom")
    widget = TaskWidget(task)
    task.watch(widget.show)
    with pytest.raises(ZeroDivisionError):
        with task:
            1 / 0
    wait_until(lambda: widget.status == "failed", message="failed state")
    assert "ZeroDivisionError" in widget.traceback and "1 / 0" in widget.traceback


def test_validators_clamp_and_trim(rt):  # noqa: F811
    widget = TaskWidget(rt.task("x"), log_lines=3)
    widget.fraction = 1.7
    assert widget.fraction == 1.0
    widget.fraction = None
    assert widget.fraction is None
    widget.log = [str(i) for i in range(10)]
    assert widget.log == ["7", "8", "9"]


def test_display_bundle_carries_escaped_text_and_html(rt):  # noqa: F811
    task = rt.task(XSS, total=2)
    widget = TaskWidget(task)
    with task:
        task.set(current=1, message=XSS)
        task.log(XSS)
    widget.show(task.snapshot())
    data, _ = widget._repr_mimebundle_()
    assert WIDGET_MIME in data
    assert XSS in data["text/plain"] and "completed" in data["text/plain"]
    html = data["text/html"]
    assert "<img" not in html and "&lt;img src=x onerror=alert(1)&gt;" in html
    assert "completed" in html


def test_render_html_shows_the_error_and_cancelling():
    snapshot = {
        "name": "n", "status": "running", "cancelling": True, "message": "",
        "progress": {"current": 1, "total": 4, "fraction": 0.25, "unit": "it", "rate": None, "eta": None},
        "log": [{"stream": "stdout", "text": "a"}], "error": None,
    }  # fmt: skip
    html = render_html(snapshot)
    assert "cancelling" in html and "width: 25.0%" in html and ">a</pre>" in html
    snapshot.update(status="failed", cancelling=False, error={"type": "E", "message": "m", "traceback": "TB <x>"})
    assert "TB &lt;x&gt;" in render_html(snapshot)


def test_child_bars_show_indented_in_the_widget_the_final_state_and_the_console(rt):  # noqa: F811
    import io

    from jupyter_taskstream.views.console import ConsoleBar
    from jupyter_taskstream.views.meter import format_snapshot_lines

    task = rt.task("train")
    widget = TaskWidget(task)
    with task:
        for epoch in rt.progress(range(2), desc="epoch"):
            for i in rt.progress(range(10), desc="batch"):
                if i == 5 and epoch == 0:
                    widget.show(task.snapshot())
                    assert [(b["desc"], b["depth"], b["closed"]) for b in widget.bars] == [("batch", 1, False)]
                    assert widget.bars[0]["meter"].startswith("5/10") and widget.bars[0]["fraction"] == 0.5
                    console = io.StringIO()
                    ConsoleBar(console, width=80).show(task.snapshot())
                    assert console.getvalue().count("\n") == 1 and "batch:  50%|" in console.getvalue()
            for _ in rt.progress(range(3), desc=XSS, leave=True):
                pass
    final = task.snapshot()
    widget.show(final)
    assert [(b["desc"], b["closed"]) for b in widget.bars] == [(XSS, True)]  # left; the transient one is gone
    lines = format_snapshot_lines(final)
    assert len(lines) == 2 and lines[1].startswith(f"  {XSS}: 100%|")
    html = render_html(final)
    assert 'class="taskstream-bar"' in html and "&lt;img" in html and XSS not in html


def test_closed_widgets_leave_no_model_behind_and_share_one_layout(rt):  # noqa: F811
    before = set(widget_module._instances)
    widgets = [TaskWidget(rt.task(f"t{i}")) for i in range(20)]
    assert len({w.layout.model_id for w in widgets}) == 1 and widgets[0].layout is shared_layout()
    for w in widgets:
        w.close()  # as display_task does when the task ends
    assert set(widget_module._instances) - before <= {shared_layout().model_id}
    shared_layout().close()  # e.g. Widget.close_all(): the next widget gets an open one
    assert TaskWidget(rt.task("after")).layout.comm is not None
