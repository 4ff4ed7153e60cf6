"""Case 11: the dashboard page at 1,000 tasks in headless Chromium, today's page against the old one.

The scenario of issue 18: 1,000 tasks, a third running, 20 log lines each, made through the
hub's batch endpoint (``POST /taskstream/api/events``). The same scenario is loaded into two
hubs side by side: this tree's, and the whole package as of commit ``28ff68f`` (the card
page before the compact rows), extracted with ``git archive`` and run from a temporary
directory. Everything is measured inside the page, on its own clock:

- first rows: ``performance.now()`` (from navigation start) at the first frame painted after
  the first task row or card is in the DOM; ``cfg.runs`` fresh loads, median;
- new log line: a line published to a visible running task's open card, from just before
  the POST to the frame that shows it (wall clocks of one machine), p95 of 50;
- search: typing a task's full name into the search box until the frame with only its row
  (the old page has no search);
- scrolling: every row from top to bottom a viewport per frame, ``cfg.runs`` passes; per
  pass the longest task the Long Tasks API reports (0: none over 50 ms) and the longest gap
  between frames. On a loaded machine a task's wall time includes time the renderer waited
  for a core, so the load average is in the first row's note.

Quick mode loads only this tree's page (one hub, one browser): the old page's figures are the
full run's reference and do not change with this tree.

Needs Playwright for Python and a Chromium (``TASKSTREAM_CHROMIUM``, default /usr/bin/chromium).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import httpx

from .harness import ROOT, BenchConfig, HubServer, Row, median, percentile

__all__ = ["case11"]

OLD_COMMIT = "28ff68f"
CHROMIUM = os.environ.get("TASKSTREAM_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
VIEWPORT = {"width": 1200, "height": 800}
LOG_LINES = 20
#: Installed before any page script: records when rows first paint and when probe lines show.
PROBE_SCRIPT = """
(() => {
  const after_paint = (fn) => requestAnimationFrame(() => setTimeout(fn, 0));
  window.__ts = { firstRows: null, seen: {}, longTasks: [] };
  try {
    new PerformanceObserver((list) => {
      for (const e of list.getEntries()) window.__ts.longTasks.push(e.duration);
    }).observe({ type: "longtask", buffered: true });
  } catch (e) {}
  const mo = new MutationObserver((records) => {
    if (window.__ts.firstRows === null && document.querySelector(".ts-task")) {
      window.__ts.firstRows = -1;
      after_paint(() => { window.__ts.firstRows = performance.now(); });
    }
    for (const r of records) {
      for (const n of r.addedNodes) {
        if (n.nodeType !== 1) continue;
        const lines = n.classList.contains("ts-line") ? [n] : n.querySelectorAll(".ts-line");
        for (const line of lines) {
          const m = /^probe (\\d+)$/.exec(line.textContent);
          if (m && !(m[1] in window.__ts.seen)) {
            window.__ts.seen[m[1]] = -1;
            after_paint(() => { window.__ts.seen[m[1]] = Date.now(); });
          }
        }
      }
    }
  });
  mo.observe(document, { childList: true, subtree: true });
})();
"""


class OldHubServer(HubServer):
    """The hub of an older commit, from a ``git archive`` of its package in a temporary directory."""

    name = "hub-old"

    def __init__(self, commit: str, **options):
        super().__init__(**options)
        self.src = Path(tempfile.mkdtemp(prefix="tsbench-oldsrc-"))
        archive = subprocess.run(["git", "-C", str(ROOT), "archive", commit, "jupyter_taskstream"],
                                 check=True, capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", str(self.src)], input=archive, check=True)

    def env(self) -> dict[str, str]:
        env = super().env()
        env["PYTHONPATH"] = os.pathsep.join([str(self.src), str(ROOT)])  # the old package wins
        return env

    def stop(self) -> None:
        super().stop()
        shutil.rmtree(self.src, ignore_errors=True)


async def populate(server: HubServer, n: int) -> list[str]:
    """``n`` tasks, every third left running, each with 20 lines; the running ids, newest first."""
    running = []
    async with httpx.AsyncClient(timeout=60, headers=server.headers) as client:
        for start in range(0, n, 100):
            specs, events = [], []
            for i in range(start, min(n, start + 100)):
                tid = f"t{i:04d}"
                specs.append({"id": tid, "name": f"job {i:04d}", "total": 100, "unit": "file"})
                events.append({"task": tid, "type": "progress",
                               "data": {"current": (i * 7) % 100, "message": f"step of job {i:04d}"}})
                events.append({"task": tid, "type": "log",
                               "data": {"stream": "stdout", "lines": [f"job {i:04d} line {j}" for j in range(LOG_LINES)]}})
                if i % 3:
                    events.append({"task": tid, "type": "status", "data": {"status": "completed"}})
                else:
                    running.append(tid)
            r = await client.post(server.api + "/events", json={"tasks": specs, "events": events, "protocol": 2})
            if r.status_code not in (200, 204):
                raise RuntimeError(f"populate: HTTP {r.status_code}: {r.text[:300]}")
    return list(reversed(running))


async def _load(browser, url: str) -> tuple[object, object]:
    context = await browser.new_context(viewport=VIEWPORT)
    await context.add_init_script(PROBE_SCRIPT)
    page = await context.new_page()
    await page.goto(url)
    return context, page


async def _first_rows(browser, url: str, total: int, timeout_ms: float = 60_000) -> tuple[float, int]:
    """ms from navigation start to the first painted rows, and the page's element count once loaded."""
    context, page = await _load(browser, url)
    try:
        await page.wait_for_function("() => window.__ts.firstRows > 0", timeout=timeout_ms)
        first = await page.evaluate("window.__ts.firstRows")
        await page.wait_for_function(
            "n => document.querySelectorAll('.ts-status').length > 0 && "
            "(window.taskstreamDashboard ? window.taskstreamDashboard.synced && window.taskstreamDashboard.total === n"
            " : document.querySelectorAll('.ts-task').length === n)", arg=total, timeout=timeout_ms)
        nodes = await page.evaluate("document.getElementsByTagName('*').length")
        return first, nodes
    finally:
        await context.close()


async def _log_latency(browser, server: HubServer, url: str, task_id: str, probes: int) -> list[float]:
    """ms from just before each POST of a line to the frame that shows it in the task's open card."""
    context, page = await _load(browser, url + f"#task={task_id}")
    out = []
    try:
        await page.wait_for_function(
            "id => { const c = document.querySelector(`[data-task-id='${id}'] .ts-log`) ||"
            " document.querySelector(`#task-${id} .ts-log`); return c && c.children.length > 0; }",
            arg=task_id, timeout=60_000)
        async with httpx.AsyncClient(timeout=30, headers=server.headers) as client:
            for i in range(probes):
                sent = time.time() * 1000
                r = await client.post(f"{server.api}/tasks/{task_id}/events",
                                      json={"events": [{"type": "log", "data": {"stream": "stdout", "text": f"probe {i}"}}]})
                r.raise_for_status()
                await page.wait_for_function("i => window.__ts.seen[i] > 0", arg=str(i), timeout=10_000)
                out.append(await page.evaluate("i => window.__ts.seen[i]", str(i)) - sent)
    finally:
        await context.close()
    return out


async def _search(browser, url: str, names: list[str]) -> list[float]:
    """ms from setting the search box to the painted frame with only the named task's row."""
    context, page = await _load(browser, url)
    out = []
    try:
        await page.wait_for_function("() => window.taskstreamDashboard && window.taskstreamDashboard.synced", timeout=60_000)
        for name in names:
            ms = await page.evaluate(
                """name => new Promise((resolve) => {
                     const box = document.getElementById("ts-search");
                     const t0 = performance.now();
                     box.value = name;
                     box.dispatchEvent(new Event("input", { bubbles: true }));
                     const check = () => {
                       if (performance.now() - t0 > 10000) { resolve(NaN); return; }
                       const rows = document.querySelectorAll(".ts-task");
                       if (rows.length === 1 && rows[0].querySelector(".ts-name").textContent === name) {
                         requestAnimationFrame(() => setTimeout(() => resolve(performance.now() - t0), 0));
                       } else requestAnimationFrame(check);
                     };
                     check();
                   })""", name)
            out.append(ms)
            await page.evaluate("""() => { const b = document.getElementById("ts-search"); b.value = "";
                                          b.dispatchEvent(new Event("input", { bubbles: true })); }""")
    finally:
        await context.close()
    return out


async def _scroll(browser, url: str, total: int, passes: int) -> tuple[list[float], list[float]]:
    """Scroll every row past, a viewport a frame, ``passes`` times: per pass, the longest long
    task in ms (0: none over 50 ms) and the longest gap between frames."""
    context, page = await _load(browser, url)
    long_tasks, gaps = [], []
    try:
        await page.wait_for_function(
            "n => window.taskstreamDashboard ? window.taskstreamDashboard.synced && window.taskstreamDashboard.total === n"
            " : document.querySelectorAll('.ts-task').length === n", arg=total, timeout=60_000)
        # The load's own work (the stream's 1.5 MB snapshot) is the first-rows metric's, not scrolling's.
        await page.wait_for_timeout(1000)
        for _ in range(passes):
            long_task, gap = await page.evaluate(
                """() => new Promise((resolve) => {
                     const s = document.getElementById("ts-scroller") || document.scrollingElement;
                     s.scrollTop = 0;
                     window.__ts.longTasks = [];
                     let last = performance.now(), gap = 0;
                     const step = (now) => {
                       gap = Math.max(gap, now - last);
                       last = now;
                       if (s.scrollTop + s.clientHeight >= s.scrollHeight - 1) {
                         setTimeout(() => resolve([Math.max(0, ...window.__ts.longTasks), gap]), 100);
                         return;
                       }
                       s.scrollTop += s.clientHeight;
                       requestAnimationFrame(step);
                     };
                     requestAnimationFrame((now) => { last = now; requestAnimationFrame(step); });
                   })""")
            long_tasks.append(long_task)
            gaps.append(gap)
    finally:
        await context.close()
    return long_tasks, gaps


async def case11(cfg: BenchConfig) -> list[Row]:
    try:
        from playwright.async_api import async_playwright
    except ImportError as e:
        raise RuntimeError("case 11 needs Playwright for Python (pip install playwright)") from e
    if not os.path.exists(CHROMIUM):
        raise RuntimeError(f"case 11 needs Chromium at {CHROMIUM} (or TASKSTREAM_CHROMIUM)")
    n = cfg.pick(1000, 1000, 60)
    probes = cfg.pick(50, 20, 5)
    loads = max(cfg.runs, 1)
    results: dict[str, dict] = {}
    pw = await async_playwright().start()
    try:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        # Quick mode loads this tree's page only: the old page is the reference of the full run
        # (its figures do not change with this tree), and a second hub and its loads are half the case.
        pages = [("new", lambda: HubServer(max_tasks=n))]
        if not cfg.quick:
            pages.append(("old", lambda: OldHubServer(OLD_COMMIT, max_tasks=n)))
        for label, make in pages:
            server = make()
            with server:
                running = await populate(server, n)
                url = f"{server.base}/taskstream/?token={server.token}"
                r: dict = {"first": [], "nodes": []}
                for i in range(cfg.warmup + loads):
                    first, nodes = await _first_rows(browser, url, n)
                    if i >= cfg.warmup:
                        r["first"].append(first)
                        r["nodes"].append(nodes)
                # The newest running task: the top of both pages.
                r["log"] = await _log_latency(browser, server, url, running[0], probes)
                names = [f"job {(i * 421 + 7) % n:04d}" for i in range(loads)]
                r["search"] = await _search(browser, url, names) if label == "new" else []
                r["long_task"], r["gap"] = await _scroll(browser, url, n, loads)
                results[label] = r
        await browser.close()
    finally:
        await pw.stop()
    new = results["new"]
    unloaded = {"first": [], "nodes": [], "log": [], "long_task": [], "gap": []}
    old = results.get("old", unloaded)
    peer = f"page at {OLD_COMMIT}" if "old" in results else f"page at {OLD_COMMIT} (full mode only)"
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    scenario = (f"{n} tasks ({(n + 2) // 3} running), {LOG_LINES} lines each, {VIEWPORT['width']}x{VIEWPORT['height']};"
                f" load average at the end {load} on {os.cpu_count()} cores")
    return [
        Row(11, "first rows painted after navigation start (median of loads)", "ms", new["first"], peer, old["first"],
            "< 500 ms", lambda m, p: m < 500, note=scenario),
        Row(11, "DOM elements once loaded", "", [float(x) for x in new["nodes"]], peer, [float(x) for x in old["nodes"]],
            "< 4,000", lambda m, p: m < 4000),
        Row(11, f"new log line of a visible running task, p95 of {probes}", "ms",
            [percentile(new["log"], 95)], peer, [percentile(old["log"], 95)] if old["log"] else [], "< 150 ms",
            lambda m, p: m < 150, note=f"medians: {median(new['log']):.0f} ms now"
            + (f", {median(old['log']):.0f} ms before" if old["log"] else "")),
        Row(11, "search narrowing to one task, typed to painted", "ms", new["search"], None, [],
            "< 100 ms", lambda m, p: m < 100, note="the old page has no search"),
        Row(11, "longest task while scrolling through all rows, per pass (0: none over 50 ms)", "ms",
            new["long_task"], peer,
            old["long_task"], "< 50 ms", lambda m, p: m < 50),
        Row(11, "longest gap between frames while scrolling, per pass", "ms", new["gap"], peer, old["gap"]),
    ]
