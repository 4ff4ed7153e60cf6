"""Settings of the kernel-side runtime: one traitlets object, ``jupyter_taskstream.config``.

Change a setting by assigning to it, e.g. ``ts.config.cancel_grace_period = 5.0``; a bad
value raises `traitlets.TraitError` naming the setting. Settings are read when they are
used, so a change applies to tasks and publishers created afterwards (the publisher and
its buffer are built when the first task starts).
"""

from __future__ import annotations

from traitlets import Bool, Float, HasTraits, Int, TraitError, Unicode, validate

__all__ = ["RuntimeConfig"]


class RuntimeConfig(HasTraits):
    """What the runtime does when there is a choice; every default says why in its help."""

    cancel_grace_period = Float(
        2.0,
        min=0.0,
        help="Seconds a cancelled task has to reach its next progress()/update()/set() before "
        "TaskCancelled is raised in its thread asynchronously; long enough for cooperative code "
        "to stop cleanly, short enough that a stuck loop does not look ignored.",
    ).tag(config=True)
    view_interval = Float(
        0.1,
        min=0.01,
        help="Seconds between view refreshes (watch() callbacks, progress sent to the hub, the "
        "console bar): 10/s looks live and stays far under Jupyter's IOPub rate limits.",
    ).tag(config=True)
    log_lines = Int(
        100,
        min=0,
        help="Captured lines each task keeps locally for snapshot()['log']; the hub keeps the full log.",
    ).tag(config=True)
    max_tasks = Int(
        1000,
        min=1,
        help="Finished tasks ts.tasks() remembers; older finished ones are forgotten first.",
    ).tag(config=True)
    max_buffered_events = Int(
        1_000_000,
        min=100,
        help="Events (one per log line) buffered for the hub while it is slow or unreachable: "
        "a flood of a million print() lines fits while the hub catches up, in about 90 bytes a "
        "short line (~90 MB when full). Beyond this, old log lines are dropped first (with one "
        "warning); latest progress and statuses are kept.",
    ).tag(config=True)
    max_batch_events = Int(
        50_000,
        min=1,
        help="Events (one per log line) sent in one request at most (and about 2 MB, under the hub's "
        "4 MB body limit). Batches only grow this large while output piles up faster than the hub "
        "answers: then fewer, larger requests keep up with a print() loop, where many small ones "
        "would each wait for the interpreter lock and fall behind.",
    ).tag(config=True)
    max_backoff = Float(
        5.0,
        min=0.01,
        help="Longest wait between retries when the hub is unreachable; short enough that "
        "output shows up soon after the server comes back.",
    ).tag(config=True)
    request_timeout = Float(
        10.0,
        min=0.1,
        help="Seconds one request to the hub may take before it is retried.",
    ).tag(config=True)
    console = Unicode(
        "auto",
        help="Text bar on stderr: 'auto' shows it outside a kernel when stderr is a terminal, "
        "'on' always, 'off' never.",
    ).tag(config=True)
    echo = Unicode(
        "auto",
        help="Also write a task's captured lines to the process's own stdout and stderr: 'auto' "
        "does so outside a kernel (a script keeps its output, as without the extension; in a "
        "kernel the task's widget shows it), 'on' always, 'off' never.",
    ).tag(config=True)
    widget = Unicode(
        "auto",
        help="Notebook widget for tasks started by a cell: 'auto' shows it in a kernel when "
        "ipywidgets and anywidget are installed, 'on' always tries, 'off' never.",
    ).tag(config=True)
    widget_log_lines = Int(
        20,
        min=0,
        help="Lines the widget's live log pane shows; enough to follow, small enough to stay cheap.",
    ).tag(config=True)
    publish = Bool(
        True,
        help="Send tasks to the hub when the kernel was started by a server with the extension.",
    ).tag(config=True)

    @validate("console", "echo", "widget")
    def _check_mode(self, proposal):
        if proposal["value"] not in ("auto", "on", "off"):
            name = proposal["trait"].name
            raise TraitError(f"{name} must be 'auto', 'on' or 'off', not {proposal['value']!r}")
        return proposal["value"]
