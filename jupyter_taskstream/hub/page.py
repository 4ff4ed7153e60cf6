"""The dashboard page at ``/taskstream/``: a template with its config as JSON, static JS/CSS."""

from __future__ import annotations

import functools
import pathlib

import jinja2
from jupyter_server.auth.decorator import authorized
from jupyter_server.base.handlers import JupyterHandler
from jupyter_server.extension.handler import ExtensionHandlerMixin
from jupyter_server.utils import url_path_join
from tornado import web

from ..errors import TaskNotFound
from ..protocol import STATUSES, TERMINAL_STATUSES, display_status
from .base import AUTH_RESOURCE, SafeLogMixin
from .registry import TaskRegistry

__all__ = ["TaskPageHandler"]

TEMPLATES_DIR = pathlib.Path(__file__).parent / "templates"
#: Rows of the no-JS table per page.
NOSCRIPT_ROWS = 50


class TaskPageHandler(SafeLogMixin, ExtensionHandlerMixin, JupyterHandler):
    """``/taskstream/``: the live dashboard, with a server-rendered task table for browsers without JS."""

    auth_resource = AUTH_RESOURCE

    @property
    def content_security_policy(self) -> str:
        """Jupyter's policy, plus: scripts and styles only from the server's own files.

        Defence in depth for a page full of task-supplied text: even a string that reached
        the DOM as HTML could not run inline script. An admin-set policy is left alone.
        """
        if "Content-Security-Policy" in self.settings.get("headers", {}):
            return super().content_security_policy
        return "; ".join(
            [
                super().content_security_policy,
                "default-src 'self'",
                "script-src 'self'",
                "style-src 'self'",
                "img-src 'self' data:",
                "object-src 'none'",
                "base-uri 'none'",
            ]
        )

    @web.authenticated
    @authorized
    async def get(self) -> None:
        """The dashboard: config as a JSON block, JS and CSS as static files, a <noscript> table."""
        registry: TaskRegistry = self.settings["taskstream_registry"]
        # What protocol.display_status can return: the statuses, then "cancelling".
        shown = dict.fromkeys(display_status(s, cancel) for cancel in (False, True) for s in STATUSES)
        config = {
            "baseUrl": self.base_url,
            "apiUrl": url_path_join(self.base_url, "taskstream/api") + "/",
            "xsrfToken": self.xsrf_token.decode("ascii"),
            # Lets the page measure elapsed time on the server's clock, not a skewed local one.
            "serverTime": registry.clock(),
            # The script takes the statuses from the protocol module, not from a copy of its own.
            "terminalStatuses": sorted(TERMINAL_STATUSES),
            "displayStatuses": list(shown),
            "viewsUrl": self.static_url("taskview.js"),
        }
        # The no-JS table is paged (?page=N): a thousand rows would be ~280 kB of HTML that the
        # browser parses before the page's script may run, even with JavaScript on.
        raw = self.get_query_argument("page", "", strip=False) or "1"
        if not (raw.isascii() and raw.isdigit() and len(raw) <= 9 and int(raw) >= 1):
            raise web.HTTPError(400, "query argument page must be a page number from 1")
        # Only the page's tasks are snapshotted: the page is asked for while its list is too.
        tasks = registry.tasks()
        pages = max(1, -(-len(tasks) // NOSCRIPT_ROWS))
        number = min(int(raw), pages)
        first = (number - 1) * NOSCRIPT_ROWS
        rows = []
        for task in tasks[first : first + NOSCRIPT_ROWS]:
            try:
                rows.append(_row(self.base_url, registry.snapshot(task.id)))
            except TaskNotFound:
                continue  # created, not committed yet
        here = url_path_join(self.base_url, "taskstream") + "/"
        paging = {
            "first": first + 1,
            "last": first + len(rows),
            "total": len(tasks),
            "prev": f"{here}?page={number - 1}" if number > 1 else None,
            "next": f"{here}?page={number + 1}" if number < pages else None,
        }
        html = _page_template().render(
            config=config,
            rows=rows,
            paging=paging,
            list_url=config["apiUrl"] + "tasks",
            css_url=self.static_url("dashboard.css"),
            js_url=self.static_url("dashboard.js"),
            views_url=self.static_url("taskview.js"),
            views_css_url=self.static_url("taskview.css"),
            favicon_url=url_path_join(self.base_url, "static/favicon.ico"),
        )
        self.set_header("Content-Type", "text/html; charset=utf-8")
        self.finish(html)


def _row(base_url: str, task: dict) -> dict:
    """One task as the no-JS table shows it."""
    p = task["progress"]
    pct = "" if p["fraction"] is None else f"{p['fraction'] * 100:.0f}%"
    total = "" if p["total"] is None else f"/{p['total']:g}"
    return {
        "id": task["id"],
        "url": url_path_join(base_url, "taskstream/api/tasks", task["id"]),
        "name": task["name"],
        "status": task["status"],
        "progress": f"{p['current']:g}{total} {p['unit']} {pct}".strip(),
        "message": task["message"],
    }


@functools.lru_cache(maxsize=None)
def _page_template() -> jinja2.Template:
    """The dashboard page template; autoescaped, and its config goes through ``tojson``."""
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES_DIR), autoescape=True)
    return env.get_template("dashboard.html")
