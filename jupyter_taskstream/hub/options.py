"""The registry's options, declared once for the app and the registry.

Users set them on the app, as documented (``c.TaskStreamApp.retention_events = ...``).
`TaskStreamApp` and `TaskRegistry` both inherit this class, so each option has one
declaration, one default and one help text; the app hands its values to the registry it
builds with `registry_options` (one loop over these names, nothing copied by hand). Traitlets
also reads ``c.RegistryOptions.<name>`` for both, which is harmless.
"""

from __future__ import annotations

from typing import Any

from traitlets import Float, Int
from traitlets.config import LoggingConfigurable

__all__ = ["RegistryOptions"]


class RegistryOptions(LoggingConfigurable):
    """Retention, coalescing and fan-out limits of the task registry."""

    retention_events = Int(
        10_000,
        config=True,
        help="Events kept per task, in memory and on disk. A client resuming from an older event id "
        "gets a fresh snapshot instead of a replay; 10,000 keeps a long log resumable at modest memory.",
    )
    retention_all_events = Int(
        100_000,
        config=True,
        help="Events kept in the all-tasks log that /taskstream/api/events resumes from.",
    )
    retention_finished_events = Int(
        1_000_000,
        min=0,
        config=True,
        help="Events kept across the logs of all finished tasks, in memory and on disk (each kept "
        "line costs the hub ~220 bytes). Past it, the oldest finished tasks' logs are cut to their "
        "newest snapshot_log_lines events; the lines cut count in each task's log_dropped.",
    )
    progress_rate_hz = Float(
        10.0,
        config=True,
        help="Progress events sent per task per second at most (latest value wins); "
        "10/s looks smooth and keeps a tight loop from flooding clients.",
    )
    max_log_event_bytes = Int(
        64 * 1024,
        config=True,
        help="Log text longer than this (UTF-8 bytes) is split into several log events, never cut.",
    )
    max_tasks = Int(
        1000,
        config=True,
        help="Finished tasks kept; when more finish, the oldest finished ones are removed.",
    )
    snapshot_log_lines = Int(
        100,
        config=True,
        help="Log lines sent with a snapshot, so a new viewer sees recent output at once.",
    )
    all_snapshot_log_lines = Int(
        20,
        config=True,
        help="Log lines per task in the all-tasks snapshot; kept small because a dashboard "
        "with 1,000 finished tasks gets it on every load (the log endpoint has the rest).",
    )
    subscriber_backlog = Int(
        5000,
        config=True,
        help="Events an SSE subscriber may fall behind before it is disconnected; it then "
        "reconnects and resumes by id, instead of growing the server's memory.",
    )

    def registry_options(self) -> dict[str, Any]:
        """This object's values of every option declared here, to build a registry with."""
        return {name: getattr(self, name) for name in RegistryOptions.class_own_traits()}
