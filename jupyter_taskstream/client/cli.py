"""``jupyter taskstream``: start a server with the dashboard, or talk to a running one.

    jupyter taskstream                     start a server and open the dashboard
    jupyter taskstream ls [--status S]     a table of tasks
    jupyter taskstream watch [ID]          live bars and the latest output (Ctrl-C leaves, never cancels)
    jupyter taskstream logs ID [-f] [--tail N]
    jupyter taskstream cancel ID | rm ID | open [ID]

Every command takes ``--json`` (machine-readable output) and ``--url``/``--token`` (default:
the running server, as ``jupyter server list`` finds it, or JUPYTER_TASKSTREAM_URL/_TOKEN).
Subcommands never import the server: `jupyter_taskstream.command` starts one for the bare command.

Exit status: 0 fine; 1 an error (one line on stderr, never a traceback), or a watched task
that failed or was cancelled; 2 a usage error; 130 interrupted.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
import webbrowser
from collections import deque
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from ..protocol import STATUSES, TERMINAL_STATUSES
from .errors import ClientError
from .sync import Client

__all__ = ["COMMANDS", "is_client_command", "main", "run"]

COMMANDS = ("ls", "watch", "logs", "cancel", "rm", "open")
#: Options that come before a subcommand and take a value.
_VALUE_OPTIONS = ("--url", "--token")
#: Log lines `watch` shows under the bars.
WATCH_LOG_LINES = 8


def is_client_command(argv: Sequence[str]) -> bool:
    """True when ``argv`` names a subcommand (after any ``--url``/``--token``/``--json``)."""
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg in _VALUE_OPTIONS:
            i += 2
        elif arg == "--json" or arg.split("=", 1)[0] in _VALUE_OPTIONS:
            i += 1
        else:
            return arg in COMMANDS
    return False


def main(argv: Sequence[str] | None = None) -> None:
    """Run a client subcommand (``ls``, ``watch``, ...) and exit with its status."""
    sys.exit(run(list(sys.argv[1:] if argv is None else argv)))


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="machine-readable output")
    common.add_argument("--url", default=argparse.SUPPRESS, help="the server's URL (with base_url)")
    common.add_argument("--token", default=argparse.SUPPRESS, help="the server's token")
    parser = argparse.ArgumentParser(
        prog="jupyter taskstream", parents=[common], description="Tasks of a running Jupyter server."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    ls = sub.add_parser("ls", parents=[common], help="list tasks")
    ls.add_argument("--status", choices=STATUSES, help="only tasks with this status")
    watch = sub.add_parser("watch", parents=[common], help="live progress of one task or all")
    watch.add_argument("id", nargs="?", help="the task (default: every task)")
    logs = sub.add_parser("logs", parents=[common], help="a task's output")
    logs.add_argument("id")
    logs.add_argument("-f", "--follow", action="store_true", help="keep printing until the task ends")
    logs.add_argument("--tail", type=_positive, help="only the last N lines")
    for name, text in (("cancel", "ask a task to stop"), ("rm", "remove a finished task")):
        sub.add_parser(name, parents=[common], help=text).add_argument("id")
    opener = sub.add_parser("open", parents=[common], help="the dashboard in a browser")
    opener.add_argument("id", nargs="?")
    return parser


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, not {text!r}")
    return value


def run(argv: Sequence[str], out=None, err=None) -> int:
    """Run a subcommand; the exit status. Errors are one line on ``err``, never a traceback."""
    out = out or sys.stdout
    err = err or sys.stderr
    args = build_parser().parse_args(argv)
    as_json = getattr(args, "json", False)
    try:
        with Client(getattr(args, "url", None), getattr(args, "token", None)) as client:
            return COMMAND_FUNCTIONS[args.command](client, args, out, as_json)
    except ClientError as e:
        print(f"jupyter taskstream: {e}", file=err)
        return 1
    except ValueError as e:  # a malformed --url
        print(f"jupyter taskstream: {e}", file=err)
        return 1
    except KeyboardInterrupt:
        return 130
    except ImportError as e:
        if e.name is None or not e.name.startswith("rich"):
            raise
        print("jupyter taskstream: tables and bars need rich: pip install 'jupyter_taskstream[cli]' "
              "(or use --json)", file=err)  # fmt: skip
        return 1
    except BrokenPipeError:  # `... | head`
        return 0


# ---- commands ---------------------------------------------------------------------------------


def cmd_ls(client: Client, args: argparse.Namespace, out, as_json: bool) -> int:
    tasks = client.tasks(args.status)
    if as_json:
        _print_json(tasks, out)
        return 0
    from rich.table import Table

    table = Table(box=None, header_style="bold", pad_edge=False)
    for column in ("ID", "NAME", "STATUS", "PROGRESS", "ELAPSED"):
        table.add_column(column, no_wrap=column != "NAME", overflow="fold")
    for task in tasks:
        table.add_row(task["id"], task["name"], task["display_status"], format_progress(task), format_elapsed(task))
    console = _console(out)
    if tasks:
        console.print(table)
    else:
        console.print("no tasks" + (f" with status {args.status}" if args.status else ""))
    return 0


def cmd_logs(client: Client, args: argparse.Namespace, out, as_json: bool) -> int:
    log = client.log(args.id, tail=args.tail)
    for event in log["events"]:
        _print_line(event["id"], event["data"], out, as_json)
    if not args.follow:
        return 0
    for event in client.follow(args.id, last_event_id=log["last_event_id"]):
        if event.type == "log":
            _print_line(event.id, event.data, out, as_json)
        elif event.type == "snapshot" and event.data:  # the resume point was too old
            for line in event.data.get("log", []):
                _print_line(line["id"], line, out, as_json)
    return 0


def cmd_cancel(client: Client, args: argparse.Namespace, out, as_json: bool) -> int:
    task = client.cancel(args.id)
    if as_json:
        _print_json(task, out)
    else:
        print(f"asked {task['name']!r} ({task['id']}) to stop: {task['display_status']}", file=out)
    return 0


def cmd_rm(client: Client, args: argparse.Namespace, out, as_json: bool) -> int:
    client.delete(args.id)
    if as_json:
        _print_json({"deleted": args.id}, out)
    else:
        print(f"removed {args.id}", file=out)
    return 0


def cmd_open(client: Client, args: argparse.Namespace, out, as_json: bool) -> int:
    if args.id is not None:
        client.get(args.id)  # a clear "no task" instead of a dashboard that shows nothing
    url = client.dashboard_url(args.id, with_token=True)
    opened = webbrowser.open(url)
    if as_json:
        _print_json({"url": client.dashboard_url(args.id), "opened": opened}, out)
    else:
        print(("opened " if opened else "open this URL in a browser: ") + client.dashboard_url(args.id), file=out)
    return 0


def cmd_watch(client: Client, args: argparse.Namespace, out, as_json: bool) -> int:
    board = Board(args.id)
    stream = client.follow(args.id)
    # The first event before any display: an unknown task or a refused token is one line.
    events = itertools.chain([next(stream)], stream)
    if as_json:
        try:
            for event in events:
                board.apply(event)
                _print_json({"id": event.id, "type": event.type, "task": event.task, "data": event.data}, out)
        except KeyboardInterrupt:
            return 130
        return board.exit_status()
    from rich.live import Live

    console = _console(out)
    try:
        with Live(get_renderable=board.render, console=console, refresh_per_second=8, transient=False):
            for event in events:
                board.apply(event)
    except KeyboardInterrupt:
        console.print("stopped watching; the task keeps running (cancel it with `jupyter taskstream cancel ID`)")
        return 130
    if args.id is not None:
        task = board.tasks.get(args.id, {})
        console.print(f"{task.get('name', args.id)}: {task.get('status', 'gone')}")
    return board.exit_status()


COMMAND_FUNCTIONS = {
    "ls": cmd_ls,
    "watch": cmd_watch,
    "logs": cmd_logs,
    "cancel": cmd_cancel,
    "rm": cmd_rm,
    "open": cmd_open,
}


class Board:
    """What `watch` shows: the tasks' latest snapshots and output, folded from stream events."""

    def __init__(self, task_id: str | None):
        self.task_id = task_id
        self.tasks: dict[str, dict] = {}
        self.lines: deque[tuple[str, str, str]] = deque(maxlen=WATCH_LOG_LINES)

    def apply(self, event: Any) -> None:
        data = event.data if isinstance(event.data, dict) else {}
        if event.type == "snapshot":
            snapshots = data.get("tasks", [data] if "id" in data else [])
            for snap in snapshots:
                self.tasks[snap["id"]] = snap
                for line in snap.get("log", [])[-WATCH_LOG_LINES:]:
                    self.lines.append((snap["id"], line.get("stream", "stdout"), line.get("text", "")))
            return
        task = self.tasks.setdefault(event.task or "", {"id": event.task, "name": data.get("name", event.task)})
        if event.type == "end":
            self.tasks[event.task] = {**task, **data}
        elif event.type == "status":
            task["status"] = data.get("status", task.get("status"))
            if "name" in data:
                task["name"] = data["name"]
            if data.get("cancel_requested"):
                task["cancel_requested"] = True
            if "message" in data:
                task["message"] = data["message"]
            if task["status"] in TERMINAL_STATUSES:
                task["finished"] = task.get("finished") or _now_iso()
            elif task.get("started") is None:
                task["started"] = _now_iso()
        elif event.type == "progress":
            task["progress"] = {**task.get("progress", {}), **{k: v for k, v in data.items() if k != "task"}}
            if "message" in data:
                task["message"] = data["message"]
            task.setdefault("status", "running")
        elif event.type == "log":
            self.lines.append((event.task, data.get("stream", "stdout"), data.get("text", "")))
        elif event.type == "deleted":
            self.tasks.pop(event.task, None)

    def exit_status(self) -> int:
        """1 when the watched task failed or was cancelled."""
        if self.task_id is None:
            return 0
        return 0 if self.tasks.get(self.task_id, {}).get("status") == "completed" else 1

    def render(self) -> Any:
        from rich.console import Group
        from rich.progress_bar import ProgressBar
        from rich.table import Table
        from rich.text import Text

        table = Table.grid(padding=(0, 1))
        for _ in range(5):
            table.add_column()
        shown = [t for t in self.tasks.values() if t.get("id")]
        if self.task_id is None:
            # Live tasks first, then the most recently created finished ones.
            shown.sort(key=lambda t: (t.get("status") in TERMINAL_STATUSES, _neg_time(t.get("created"))))
            shown = shown[:20]
        for task in shown:
            progress = task.get("progress") or {}
            total, current = progress.get("total"), progress.get("current", 0)
            status = _display(task)
            bar = ProgressBar(total=total or None, completed=current, width=30,
                              pulse=total is None and status == "running")  # fmt: skip
            table.add_row(Text(str(task.get("name", task["id"])), style="bold"), bar, format_progress(task),
                          Text(status, style=_STATUS_STYLE.get(status, "")), format_elapsed(task))  # fmt: skip
        lines = [
            Text.assemble((f"{self._label(tid)}", "dim"), (text, "red" if stream == "stderr" else ""))
            for tid, stream, text in self.lines
            if self.task_id is None or tid == self.task_id
        ]
        if not shown:
            return Text("no tasks yet", style="dim")
        return Group(table, *lines)

    def _label(self, task_id: str) -> str:
        if self.task_id is not None:
            return "  "
        return f"  {self.tasks.get(task_id, {}).get('name', task_id)}: "


_STATUS_STYLE = {"completed": "green", "failed": "red", "cancelled": "yellow", "cancelling": "yellow",
                 "running": "cyan"}  # fmt: skip


def _display(task: dict) -> str:
    status = task.get("status", "pending")
    if task.get("cancel_requested") and status not in TERMINAL_STATUSES:
        return "cancelling"
    return status


def format_progress(task: dict) -> str:
    """``40/100 it 40%`` (or ``40 it`` without a total)."""
    p = task.get("progress") or {}
    current, total, unit = p.get("current", 0), p.get("total"), p.get("unit", "it")
    if total is None:
        return f"{current:g} {unit}"
    pct = "" if p.get("fraction") is None else f" {p['fraction'] * 100:.0f}%"
    if p.get("fraction") is None and total:
        pct = f" {min(current / total, 1) * 100:.0f}%"
    return f"{current:g}/{total:g} {unit}{pct}"


def format_elapsed(task: dict, now: float | None = None) -> str:
    """Run time so far (or in all, for a finished task): ``42s``, ``3m05s``, ``2h01m``."""
    started = _epoch(task.get("started"))
    if started is None:
        return "-"
    end = _epoch(task.get("finished")) or (time.time() if now is None else now)
    seconds = max(0, int(end - started))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


def _epoch(iso: str | None) -> float | None:
    if not iso:
        return None
    try:
        return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def _neg_time(iso: str | None) -> float:
    return -(_epoch(iso) or 0.0)


def _now_iso() -> str:
    from ..protocol import iso_time

    return iso_time(time.time())


def _print_line(event_id: Any, data: dict, out, as_json: bool) -> None:
    if as_json:
        _print_json({"id": event_id, **data}, out)
    else:
        print(data.get("text", ""), file=out, flush=True)


def _print_json(value: Any, out) -> None:
    print(json.dumps(value, ensure_ascii=False), file=out, flush=True)


def _console(out):
    from rich.console import Console

    return Console(file=out, highlight=False)


if __name__ == "__main__":
    main()
