// The TaskStream dashboard: every task of the server, live, from ONE EventSource on
// /taskstream/api/events (browsers allow six connections per origin on HTTP/1.1, so never
// one per task), falling back to polling the REST API while that stream is unavailable.
//
// Plain script, no build step. Every task-supplied string (name, message, log text, error)
// reaches the DOM through textContent or a property, never through innerHTML.
"use strict";

(function () {
  const config = JSON.parse(document.getElementById("taskstream-config").textContent);
  const API = config.apiUrl; // ends with "/"
  const FINAL = new Set(["completed", "failed", "cancelled"]);
  const LOG_LINES_KEPT = 200; // the box shows ~10; the rest scrolls, the full log stays in the hub
  const POLL_MS = 2000;
  // How long the stream may stay down (or never open: a proxy that buffers it) before polling.
  const STREAM_GRACE_MS = 3000;
  const MAX_FAILED_RECONNECTS = 3;
  const RETRY_MIN_MS = 1000;
  const RETRY_MAX_MS = 30000;
  // Elapsed times are measured on the server's clock: the local one may be skewed.
  const clockSkew = config.serverTime * 1000 - Date.now();
  const serverNow = () => Date.now() + clockSkew;

  const $ = (id) => document.getElementById(id);
  const ui = {
    app: $("ts-app"),
    active: $("ts-active"),
    activeEmpty: $("ts-active-empty"),
    finished: $("ts-finished"),
    finishedSection: $("ts-finished-section"),
    counts: $("ts-counts"),
    conn: $("ts-conn"),
    notice: $("ts-notice"),
  };

  /** id -> task record: {id, snap, log: [{id, stream, text}], lastLogId, polledThrough, etaAt, view} */
  const tasks = new Map();
  let loaded = false; // a first snapshot or poll has arrived
  let focusId = null; // a #task=<id> still to scroll to

  // ---- state --------------------------------------------------------------------------

  function blankSnapshot(id) {
    return {
      id, name: id, status: "pending", message: "", error: null, cancel_requested: false,
      progress: { current: 0, total: null, fraction: null, unit: "it", rate: null, eta: null },
      created: null, started: null, finished: null, kernel_id: null, last_event_id: 0,
    };
  }

  function ensureTask(id) {
    let t = tasks.get(id);
    if (!t) {
      t = { id, snap: blankSnapshot(id), log: [], lastLogId: 0, polledThrough: 0, etaAt: 0,
            firstSeen: serverNow(), view: null };
      tasks.set(id, t);
    }
    return t;
  }

  function parseTime(iso) {
    const ms = iso ? Date.parse(iso) : NaN;
    return Number.isNaN(ms) ? null : ms;
  }

  function applySnapshot(t, snap) {
    const before = t.snap.progress || {};
    const after = snap.progress || {};
    // A poll repeating the same progress must not restart the ETA's countdown.
    if (before.eta !== after.eta || before.current !== after.current) t.etaAt = serverNow();
    t.snap = Object.assign({}, snap);
    if (Array.isArray(snap.log)) addLines(t, snap.log);
    delete t.snap.log;
  }

  /** Append log lines newer than what the task has; replays and snapshots never duplicate. */
  function addLines(t, lines) {
    for (const line of lines) {
      if (typeof line.id !== "number" || line.id <= t.lastLogId) continue;
      t.log.push({ id: line.id, stream: line.stream || "stdout", text: String(line.text) });
      t.lastLogId = line.id;
    }
    if (t.log.length > LOG_LINES_KEPT) t.log.splice(0, t.log.length - LOG_LINES_KEPT);
  }

  function markStarted(t) {
    if (t.snap.status === "pending") t.snap.status = "running";
    if (!t.snap.started) t.snap.started = new Date(serverNow()).toISOString();
  }

  /** Fold one event of the all-tasks stream into the state (the hub's README lists them). */
  function applyEvent(type, data, eventId) {
    const id = data && data.task;
    if (typeof id !== "string") return;
    if (type === "deleted") {
      removeTask(id);
      return;
    }
    const t = ensureTask(id);
    const s = t.snap;
    if (type === "status") {
      if (typeof data.name === "string") s.name = data.name;
      if (!FINAL.has(s.status)) s.status = data.status;
      if (typeof data.message === "string") s.message = data.message;
      if (data.error) s.error = data.error;
      if (data.cancel_requested) s.cancel_requested = true;
      if (data.status !== "pending" && !s.started) s.started = new Date(serverNow()).toISOString();
      if (FINAL.has(data.status) && !s.finished) s.finished = new Date(serverNow()).toISOString();
    } else if (type === "progress") {
      markStarted(t);
      // unit (and message) come only when they change: keep the last ones.
      const unit = typeof data.unit === "string" ? data.unit : (s.progress || {}).unit;
      s.progress = {
        current: data.current, total: data.total, fraction: data.fraction,
        unit: unit || "it", rate: data.rate, eta: data.eta,
      };
      if (typeof data.message === "string") s.message = data.message;
      t.etaAt = serverNow();
    } else if (type === "log") {
      markStarted(t);
      addLines(t, [{ id: eventId, stream: data.stream, text: data.text }]);
    } else if (type === "end") {
      const snap = Object.assign({}, data);
      delete snap.task;
      applySnapshot(t, snap); // the final word: exact times, status and error
    }
    if (eventId > s.last_event_id) s.last_event_id = eventId;
    schedule(t);
  }

  /** A full list (stream snapshot or poll): add and update its tasks, drop the others. */
  function applyTaskList(list, { withLog }) {
    const seen = new Set();
    for (const snap of list) {
      seen.add(snap.id);
      const t = ensureTask(snap.id);
      applySnapshot(t, withLog ? snap : Object.assign({}, snap, { log: undefined }));
      schedule(t);
    }
    for (const id of Array.from(tasks.keys())) if (!seen.has(id)) removeTask(id);
    loaded = true;
    schedule(null);
  }

  function removeTask(id) {
    const t = tasks.get(id);
    if (!t) return;
    tasks.delete(id);
    if (t.view) t.view.root.remove();
    schedule(null);
  }

  // ---- rendering ----------------------------------------------------------------------

  const dirty = new Set();
  const following = new Set(); // tasks whose log box should show its newest line
  let layoutDirty = false;
  let frame = 0;

  /** Render at most once per frame, however many events arrive. */
  function schedule(t) {
    if (t) dirty.add(t);
    layoutDirty = true;
    if (!frame) frame = requestAnimationFrame(flush);
  }

  function flush() {
    frame = 0;
    for (const t of dirty) if (tasks.get(t.id) === t) renderTask(t);
    dirty.clear();
    if (layoutDirty) layout();
    layoutDirty = false;
    for (const t of following) if (t.view) t.view.log.scrollTop = t.view.log.scrollHeight;
    following.clear();
    applyFocus();
  }

  function el(tag, cls, parent) {
    const node = document.createElement(tag);
    if (cls) node.className = cls;
    if (parent) parent.appendChild(node);
    return node;
  }

  function buildView(t) {
    const root = el("article", "ts-task");
    root.id = "task-" + t.id;
    root.dataset.taskId = t.id;
    const head = el("header", "ts-task-head", root);
    const name = el("h3", "ts-name", head);
    const status = el("span", "ts-status", head);
    el("span", "ts-spacer", head);
    const link = el("a", "ts-id", head);
    link.href = "#task=" + encodeURIComponent(t.id);
    link.textContent = t.id;
    link.title = "Link to this task";
    const cancel = el("button", "ts-cancel", head);
    cancel.type = "button";
    cancel.textContent = "Cancel";
    cancel.title = "Ask the task to stop";
    cancel.addEventListener("click", () => requestCancel(t, cancel));
    const track = el("div", "ts-track", root);
    track.setAttribute("role", "progressbar");
    track.setAttribute("aria-valuemin", "0");
    track.setAttribute("aria-valuemax", "100");
    const bar = el("div", "ts-bar", track);
    const meta = el("div", "ts-meta", root);
    const count = el("span", "ts-count", meta);
    const pct = el("span", "ts-pct", meta);
    const rate = el("span", "ts-rate", meta);
    const elapsed = el("span", "ts-elapsed", meta);
    const eta = el("span", "ts-eta", meta);
    const when = el("span", "ts-when", meta);
    const message = el("div", "ts-message", root);
    const log = el("div", "ts-log", root);
    log.setAttribute("role", "log");
    log.tabIndex = 0;
    const error = el("pre", "ts-error", root);
    t.view = { root, name, status, cancel, track, bar, count, pct, rate, elapsed, eta, when,
               message, log, error, shownLogId: 0 };
  }

  function shownStatus(s) {
    return s.cancel_requested && !FINAL.has(s.status) ? "cancelling" : s.status;
  }

  function renderTask(t) {
    if (!t.view) buildView(t);
    const v = t.view;
    const s = t.snap;
    const p = s.progress || {};
    const status = shownStatus(s);
    const final = FINAL.has(s.status);
    v.root.dataset.status = status;
    v.name.textContent = s.name;
    v.name.title = s.name;
    v.status.textContent = status;
    v.status.dataset.status = status;
    v.cancel.hidden = final;
    if (status === "cancelling") v.cancel.disabled = true;

    const fraction = typeof p.fraction === "number" ? p.fraction : null;
    const indeterminate = fraction === null && !final;
    v.track.classList.toggle("ts-indeterminate", indeterminate && s.status === "running");
    const width = fraction === null ? (final ? 100 : 0) : Math.round(fraction * 1000) / 10;
    v.bar.style.width = width + "%";
    if (fraction === null) v.track.removeAttribute("aria-valuenow");
    else v.track.setAttribute("aria-valuenow", String(width));
    // A pending task with nothing counted yet has nothing to say but its status.
    const idle = s.status === "pending" && !p.current && typeof p.total !== "number";
    v.count.textContent = idle ? "" : formatCount(p);
    v.pct.textContent = fraction === null ? "" : Math.floor(fraction * 100) + "%";
    v.rate.textContent = formatRate(p.rate, p.unit);
    v.message.textContent = s.message || "";
    v.message.hidden = !s.message;
    renderTimes(t);
    renderLog(t);

    const err = final && s.error ? errorText(s.error) : "";
    v.error.textContent = err;
    v.error.hidden = !err;
  }

  function renderTimes(t) {
    const v = t.view;
    const s = t.snap;
    const p = s.progress || {};
    const started = parseTime(s.started);
    const finished = parseTime(s.finished);
    const end = finished !== null ? finished : serverNow();
    v.elapsed.textContent = started === null ? "" : "elapsed " + formatDuration((end - started) / 1000);
    let eta = "";
    if (!FINAL.has(s.status) && typeof p.eta === "number") {
      // The ETA was true when it arrived; count it down between updates, like a clock would.
      eta = "ETA " + formatDuration(Math.max(0, p.eta - (serverNow() - t.etaAt) / 1000));
    }
    v.eta.textContent = eta;
    const created = parseTime(s.created);
    if (finished !== null) {
      v.when.textContent = "finished " + new Date(finished).toLocaleTimeString();
    } else if (started !== null) {
      v.when.textContent = "started " + new Date(started).toLocaleTimeString();
    } else if (created !== null) {
      v.when.textContent = "created " + new Date(created).toLocaleTimeString();
    } else {
      v.when.textContent = "";
    }
  }

  function renderLog(t) {
    const v = t.view;
    const box = v.log;
    const newest = t.log.length ? t.log[t.log.length - 1].id : 0;
    if (newest === v.shownLogId && box.childElementCount === t.log.length) {
      box.hidden = t.log.length === 0;
      return;
    }
    // Follow the output only when the reader is already at the bottom.
    const atBottom = box.scrollHeight - box.scrollTop - box.clientHeight < 4;
    let first = box.firstElementChild;
    const oldest = t.log.length ? t.log[0].id : Infinity;
    while (first && Number(first.dataset.id) < oldest) {
      const next = first.nextElementSibling;
      first.remove();
      first = next;
    }
    for (const line of t.log) {
      if (line.id <= v.shownLogId) continue;
      const row = el("div", "ts-line", box);
      row.dataset.id = String(line.id);
      if (line.stream === "stderr") row.classList.add("ts-stderr");
      row.textContent = stripAnsi(line.text.endsWith("\n") ? line.text.slice(0, -1) : line.text);
    }
    v.shownLogId = newest;
    box.hidden = t.log.length === 0;
    // Scrolled after layout: a card built this frame is not in the document yet.
    if (atBottom) following.add(t);
  }

  function sortKey(t) {
    const s = t.snap;
    const time = FINAL.has(s.status) ? parseTime(s.finished) : parseTime(s.created);
    return time !== null ? time : t.firstSeen;
  }

  /** Running tasks on top (newest first), finished ones below (most recently finished first). */
  function layout() {
    const active = [];
    const finished = [];
    for (const t of tasks.values()) {
      if (!t.view) renderTask(t);
      (FINAL.has(t.snap.status) ? finished : active).push(t);
    }
    const byKey = (a, b) => sortKey(b) - sortKey(a);
    place(ui.active, active.sort(byKey));
    place(ui.finished, finished.sort(byKey));
    ui.activeEmpty.hidden = !loaded || active.length > 0;
    ui.finishedSection.hidden = finished.length === 0;
    const parts = [active.length + " running"];
    if (finished.length) parts.push(finished.length + " finished");
    ui.counts.textContent = loaded ? parts.join(" \u00b7 ") : "";
    document.title = active.length ? "(" + active.length + ") TaskStream" : "TaskStream";
  }

  function place(container, list) {
    list.forEach((t, i) => {
      const node = t.view.root;
      if (container.children[i] !== node) container.insertBefore(node, container.children[i] || null);
    });
    while (container.children.length > list.length) container.lastElementChild.remove();
  }

  // ---- formatting (tqdm's conventions: MM:SS, it/s or s/it) ---------------------------

  function formatDuration(seconds) {
    const total = Math.max(0, Math.floor(seconds));
    const h = Math.floor(total / 3600);
    const m = Math.floor((total % 3600) / 60);
    const sec = total % 60;
    const two = (n) => String(n).padStart(2, "0");
    return h ? h + ":" + two(m) + ":" + two(sec) : two(m) + ":" + two(sec);
  }

  function formatNumber(n) {
    if (typeof n !== "number" || !Number.isFinite(n)) return "?";
    if (Number.isInteger(n)) return n.toLocaleString("en-US");
    return n.toLocaleString("en-US", { maximumFractionDigits: n < 10 ? 2 : 1 });
  }

  function formatCount(p) {
    const unit = p.unit ? " " + p.unit : "";
    const total = typeof p.total === "number" ? " / " + formatNumber(p.total) : "";
    return formatNumber(p.current || 0) + total + unit;
  }

  function formatRate(rate, unit) {
    if (typeof rate !== "number" || !(rate > 0)) return "";
    const u = unit || "it";
    if (rate < 1) return (1 / rate).toFixed(2) + " s/" + u;
    const digits = rate >= 100 ? 0 : rate >= 10 ? 1 : 2;
    return rate.toFixed(digits) + " " + u + "/s";
  }

  function stripAnsi(text) {
    // IPython tracebacks and coloured output carry terminal escapes; show the words only.
    return text.replace(/\x1b\[[0-9;?]*[ -/]*[@-~]/g, "");
  }

  function errorText(error) {
    const head = [error.type, error.message].filter(Boolean).join(": ");
    const tb = stripAnsi(error.traceback || "").trimEnd();
    if (!tb) return head;
    return tb.includes(error.message || "\u0000") ? tb : tb + "\n" + head;
  }

  // ---- #task=<id>: scroll to and highlight one task -----------------------------------

  function readFragment() {
    const m = /^#task=(.+)$/.exec(location.hash);
    focusId = null;
    if (!m) return;
    try {
      focusId = decodeURIComponent(m[1]);
    } catch (e) {
      focusId = m[1];
    }
    schedule(null);
  }

  function applyFocus() {
    if (focusId === null) return;
    const t = tasks.get(focusId);
    if (!t || !t.view) {
      if (loaded) showNotice("Task " + focusId + " is not on this server (finished tasks are removed after a while).");
      return;
    }
    for (const node of document.querySelectorAll(".ts-task.ts-focused")) node.classList.remove("ts-focused");
    t.view.root.classList.add("ts-focused");
    t.view.root.scrollIntoView({ block: "center" });
    showNotice("");
    focusId = null;
  }

  function showNotice(text) {
    ui.notice.textContent = text;
    ui.notice.hidden = !text;
  }

  // ---- cancel -------------------------------------------------------------------------

  function xsrfToken() {
    // Jupyter checks the header against the _xsrf cookie; the cookie is the current truth.
    const m = /(?:^|;\s*)_xsrf=([^;]*)/.exec(document.cookie);
    return m ? decodeURIComponent(m[1]) : config.xsrfToken;
  }

  async function requestCancel(t, button) {
    button.disabled = true;
    try {
      const r = await fetch(API + "tasks/" + encodeURIComponent(t.id) + "/cancel", {
        method: "POST",
        credentials: "same-origin",
        headers: { "X-XSRFToken": xsrfToken(), Accept: "application/json" },
      });
      if (r.ok) {
        t.snap.cancel_requested = true; // "cancelling" until the task ends; the stream confirms
      } else if (r.status !== 409) {
        // 409: it finished meanwhile, and its end is on the way. Anything else: say so.
        button.disabled = false;
        button.title = "Cancel failed: HTTP " + r.status;
      }
    } catch (e) {
      button.disabled = false;
      button.title = "Cancel failed: " + e;
    }
    schedule(t);
  }

  // ---- transport: one EventSource, polling while it is unavailable --------------------

  let source = null;
  let lastEventId = null; // last id the stream delivered; a new EventSource resumes from it
  let graceTimer = 0;
  let retryTimer = 0;
  let retryDelay = RETRY_MIN_MS;
  let failures = 0; // errors of the current stream since it was last open
  let polling = false;
  let pollTimer = 0;

  function setMode(mode, text) {
    ui.conn.dataset.mode = mode;
    ui.conn.textContent = text;
    document.body.dataset.mode = mode;
  }

  function openStream() {
    clearTimeout(retryTimer);
    retryTimer = 0;
    // EventSource sends Last-Event-ID only on its own reconnects; a new one says it in the query.
    const url = API + "events" + (lastEventId !== null ? "?last_event_id=" + lastEventId : "");
    const es = new EventSource(url);
    source = es;
    const on = (type, handler) =>
      es.addEventListener(type, (e) => {
        if (source !== es) return;
        const id = Number(e.lastEventId);
        if (e.lastEventId !== "" && Number.isFinite(id)) lastEventId = id;
        let data;
        try {
          data = JSON.parse(e.data);
        } catch (err) {
          return;
        }
        handler(data, id);
      });
    on("snapshot", (data) => applyTaskList(data.tasks || [], { withLog: true }));
    for (const type of ["status", "progress", "log", "end", "deleted"]) {
      on(type, (data, id) => applyEvent(type, data, id));
    }
    es.addEventListener("open", () => {
      if (source !== es) return;
      clearTimeout(graceTimer);
      graceTimer = 0;
      retryDelay = RETRY_MIN_MS;
      failures = 0;
      stopPolling();
      setMode("live", "Live");
    });
    es.addEventListener("error", () => {
      if (source !== es) return;
      // CLOSED: a non-200 answer (e.g. logged out), EventSource gave up for good. While
      // polling, this was a retry of a stream already known to be down: back off again.
      if (es.readyState === EventSource.CLOSED || polling) {
        fallBack();
        return;
      }
      // CONNECTING: the browser retries by itself (after the server's retry: delay); poll
      // if it is not back soon, or after a few failed attempts in a row.
      failures += 1;
      if (failures >= MAX_FAILED_RECONNECTS) {
        fallBack();
        return;
      }
      setMode("connecting", "Reconnecting\u2026");
      armGrace(es);
    });
    armGrace(es); // a stream that never opens (a proxy buffering it) counts as unavailable
  }

  function armGrace(es) {
    if (graceTimer) return;
    graceTimer = setTimeout(() => {
      graceTimer = 0;
      if (source === es && es.readyState !== EventSource.OPEN) fallBack();
    }, STREAM_GRACE_MS);
  }

  function fallBack() {
    failures = 0;
    if (source) source.close();
    source = null;
    clearTimeout(graceTimer);
    graceTimer = 0;
    startPolling();
    // Try the stream again later, backing off so a broken proxy is not hammered.
    const delay = retryDelay * (1 + Math.random() * 0.5);
    retryDelay = Math.min(retryDelay * 2, RETRY_MAX_MS);
    clearTimeout(retryTimer);
    retryTimer = setTimeout(openStream, delay);
  }

  function startPolling() {
    if (polling) return;
    polling = true;
    setMode("polling", "Polling");
    poll();
  }

  function stopPolling() {
    polling = false;
    clearTimeout(pollTimer);
    pollTimer = 0;
  }

  async function getJSON(url) {
    const r = await fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } });
    if (!r.ok) {
      const err = new Error("HTTP " + r.status);
      err.status = r.status;
      throw err;
    }
    return r.json();
  }

  async function poll() {
    if (!polling) return;
    try {
      const body = await getJSON(API + "tasks");
      if (!polling) return;
      applyTaskList(body.tasks || [], { withLog: false });
      // Fetch log lines only for tasks that changed since their last fetch.
      const stale = (body.tasks || [])
        .map((snap) => tasks.get(snap.id))
        .filter((t) => t && t.snap.last_event_id > t.polledThrough);
      await Promise.all(stale.map(pollLog));
      if (polling) setMode("polling", "Polling");
    } catch (e) {
      if (polling) {
        setMode("offline", e.status === 403 ? "Not logged in: reload the page" : "Offline, retrying\u2026");
      }
    }
    if (polling) pollTimer = setTimeout(poll, POLL_MS);
  }

  async function pollLog(t) {
    try {
      const url = API + "tasks/" + encodeURIComponent(t.id) + "/log?after=" + t.lastLogId;
      const body = await getJSON(url);
      addLines(t, body.events.map((e) => ({ id: e.id, stream: e.data.stream, text: e.data.text })));
      t.polledThrough = body.last_event_id;
      schedule(t);
    } catch (e) {
      if (e.status !== 404) throw e; // 404: deleted meanwhile; the next list drops it
    }
  }

  // ---- start --------------------------------------------------------------------------

  ui.app.hidden = false;
  readFragment();
  window.addEventListener("hashchange", readFragment);
  // Elapsed and ETA tick between events.
  setInterval(() => {
    for (const t of tasks.values()) if (t.view && !FINAL.has(t.snap.status)) renderTimes(t);
  }, 1000);
  openStream();
})();
