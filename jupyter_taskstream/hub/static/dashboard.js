// The TaskStream dashboard: every task of the server, live, from ONE EventSource on
// /taskstream/api/events (browsers allow six connections per origin on HTTP/1.1, so never
// one per task), falling back to polling the REST API while that stream is unavailable.
//
// One compact row per task, a row expands to its card (taskview.js draws both). The list
// is windowed: only rows near the viewport exist in the DOM, so 1,000 tasks cost what 40
// do; an event for a task off screen updates the model and nothing else. Search, filters
// and sort live in the URL's fragment (#q=..&status=..&kernel=..&sort=..&task=<id>), so a
// link reproduces the view; #task=<id> opens and highlights one task.
//
// ES module, no build step. Every task-supplied string reaches the DOM through textContent
// or a property, never through innerHTML (taskview.js says the same for its part).

const config = JSON.parse(document.getElementById("taskstream-config").textContent);
// Asked for first, before anything else loads: the first rows are drawn from it (firstPaint).
const firstList = getJSON(config.apiUrl + "tasks").catch(() => null);
// The views come from the URL the page gives (it carries the file's version), preloaded by
// the page, so this costs no extra round trip.
const { createTaskViews, parseTime } = await import(config.viewsUrl);

const API = config.apiUrl; // ends with "/"
// The hub's terminal statuses (protocol.TERMINAL_STATUSES), not a copy kept here.
const FINAL = new Set(config.terminalStatuses);
const DISPLAY_STATUSES = config.displayStatuses;
const LOG_LINES_KEPT = 200; // the card shows ~10 and scrolls; the full log stays in the hub
const POLL_MS = 2000;
// How long the stream may stay down (or never open: a proxy that buffers it) before polling.
const STREAM_GRACE_MS = 3000;
const MAX_FAILED_RECONNECTS = 3;
const RETRY_MIN_MS = 1000;
const RETRY_MAX_MS = 30000;
const ROW_HEIGHT = 34; // px, the CSS's --ts-row-height: a collapsed row's fixed height
const CARD_ESTIMATE = 300; // px, an expanded row's height before it was ever measured
const OVERSCAN_PX = 8 * ROW_HEIGHT; // rows kept above and below the viewport
const BULK_CONCURRENCY = 4; // requests in flight for a bulk action
// Elapsed times are measured on the server's clock: the local one may be skewed.
const clockSkew = config.serverTime * 1000 - Date.now();
const serverNow = () => Date.now() + clockSkew;

const $ = (id) => document.getElementById(id);
const ui = {
  app: $("ts-app"),
  counts: $("ts-counts"),
  conn: $("ts-conn"),
  notice: $("ts-notice"),
  search: $("ts-search"),
  status: $("ts-filter-status"),
  kernel: $("ts-filter-kernel"),
  sort: $("ts-sort"),
  selectAll: $("ts-select-all"),
  bulk: $("ts-bulk"),
  bulkCount: $("ts-bulk-count"),
  bulkCancel: $("ts-bulk-cancel"),
  bulkDelete: $("ts-bulk-delete"),
  bulkClear: $("ts-bulk-clear"),
  confirm: $("ts-confirm"),
  confirmText: $("ts-confirm-text"),
  confirmYes: $("ts-confirm-yes"),
  confirmNo: $("ts-confirm-no"),
  scroller: $("ts-scroller"),
  rows: $("ts-rows"),
  empty: $("ts-empty"),
};

/** id -> task record: {id, snap, log, lastLogId, polledThrough, etaAt, firstSeen, text} */
const tasks = new Map();
let loaded = false; // a first list of tasks has arrived
let listSeen = false; // ... from the stream's snapshot or a poll, not only the first paint's

// ---- view state -------------------------------------------------------------------------

const view = {
  q: "", // search text
  status: "", // "", "active", "finished" or a display status
  kernel: "", // "", "api" (no kernel) or a kernel id
  sort: "", // "" (running first, newest first), "start", "name", "progress"
};
const expanded = new Set(); // ids shown as cards
const selected = new Set(); // ids ticked for a bulk action
let highlightId = null; // the #task=<id> task
let pendingFocus = null; // a #task=<id> still to scroll to once it exists
let activeId = null; // the keyboard's current row

const views = createTaskViews({
  terminal: FINAL,
  now: serverNow,
  linkFor: (id) => "#" + hashFor({ task: id }),
  onToggle: (t) => {
    activeId = t.id;
    toggleExpanded(t.id);
  },
  onSelect: (t, checked) => {
    if (checked) selected.add(t.id);
    else selected.delete(t.id);
    schedule(t);
    renderBulk();
  },
  onCancel: (t, button) => requestCancel(t, button),
  onDelete: (t, button) => confirmThen("Delete \u201c" + t.snap.name + "\u201d and its log?", "Delete",
                                       () => requestDelete(t, button)),
});

// ---- state ------------------------------------------------------------------------------

function blankSnapshot(id) {
  return {
    id, name: id, status: "pending", display_status: "pending", message: "", error: null,
    cancel_requested: false, created: null, started: null, finished: null, kernel_id: null,
    progress: { current: 0, total: null, fraction: null, unit: "it", rate: null, eta: null },
    last_event_id: 0,
  };
}

function ensureTask(id) {
  let t = tasks.get(id);
  if (!t) {
    t = { id, snap: blankSnapshot(id), log: [], lastLogId: 0, polledThrough: 0, etaAt: 0,
          firstSeen: serverNow(), text: null };
    tasks.set(id, t);
    orderDirty = true;
  }
  return t;
}

function applySnapshot(t, snap) {
  const before = t.snap;
  const bp = before.progress || {};
  const ap = snap.progress || {};
  // A poll repeating the same progress must not restart the ETA's countdown.
  if (bp.eta !== ap.eta || bp.current !== ap.current) t.etaAt = serverNow();
  if (before.status !== snap.status || before.display_status !== snap.display_status ||
      before.name !== snap.name || before.message !== snap.message || bp.fraction !== ap.fraction ||
      before.kernel_id !== snap.kernel_id) {
    orderDirty = true;
  }
  t.snap = Object.assign({}, snap);
  if (!t.snap.display_status) t.snap.display_status = t.snap.status;
  t.text = null;
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
  const s = t.snap;
  if (s.status === "pending") {
    s.status = "running";
    if (s.display_status === "pending") s.display_status = "running";
    orderDirty = true;
  }
  if (!s.started) s.started = new Date(serverNow()).toISOString();
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
    if (typeof data.display_status === "string") {
      s.display_status = data.display_status;
    } else {
      // A status event says only what changed; snapshots (and `end`) carry the hub's
      // display_status, and until the next one a request to stop is what it would say.
      s.display_status = s.cancel_requested && !FINAL.has(s.status) ? "cancelling" : s.status;
    }
    if (data.status !== "pending" && !s.started) s.started = new Date(serverNow()).toISOString();
    if (FINAL.has(data.status) && !s.finished) s.finished = new Date(serverNow()).toISOString();
    t.text = null;
    orderDirty = true;
  } else if (type === "progress") {
    markStarted(t);
    // unit (and message) come only when they change: keep the last ones.
    const unit = typeof data.unit === "string" ? data.unit : (s.progress || {}).unit;
    s.progress = {
      current: data.current, total: data.total, fraction: data.fraction,
      unit: unit || "it", rate: data.rate, eta: data.eta,
    };
    if (Array.isArray(data.bars)) s.bars = data.bars;
    if (typeof data.message === "string" && data.message !== s.message) {
      s.message = data.message;
      t.text = null;
      if (view.q) orderDirty = true;
    }
    if (view.sort === "progress") orderDirty = true;
    t.etaAt = serverNow();
  } else if (type === "log") {
    markStarted(t);
    addLines(t, [{ id: eventId, stream: data.stream, text: data.text }]);
  } else if (type === "end") {
    const snap = Object.assign({}, data);
    delete snap.task;
    applySnapshot(t, snap); // the final word: exact times, status and error
    orderDirty = true;
  }
  if (eventId > s.last_event_id) t.snap.last_event_id = eventId;
  schedule(t);
}

/** A full list (stream snapshot or poll): add and update its tasks, drop the others. */
function applyTaskList(list, { withLog }) {
  listSeen = true;
  const seen = new Set();
  for (const snap of list) {
    seen.add(snap.id);
    const t = ensureTask(snap.id);
    applySnapshot(t, withLog ? snap : Object.assign({}, snap, { log: undefined }));
    dirty.add(t);
  }
  for (const id of Array.from(tasks.keys())) if (!seen.has(id)) removeTask(id);
  loaded = true;
  orderDirty = true;
  schedule(null);
}

function removeTask(id) {
  if (!tasks.delete(id)) return;
  expanded.delete(id);
  heights.delete(id);
  if (selected.delete(id)) renderBulk();
  orderDirty = true;
  schedule(null);
}

// ---- filter and sort --------------------------------------------------------------------

function searchText(t) {
  if (t.text === null) t.text = (t.snap.name + "\n" + (t.snap.message || "") + "\n" + t.id).toLowerCase();
  return t.text;
}

function matches(t) {
  const s = t.snap;
  const st = s.display_status || s.status;
  if (view.status === "active" ? FINAL.has(s.status)
      : view.status === "finished" ? !FINAL.has(s.status)
      : view.status && st !== view.status) {
    return false;
  }
  if (view.kernel === "api" ? s.kernel_id : view.kernel && s.kernel_id !== view.kernel) return false;
  return !view.q || searchText(t).includes(view.q.toLowerCase());
}

function timeOf(t, field) {
  const v = parseTime(t.snap[field]);
  return v !== null ? v : null;
}

/** Newest first: finished ones by when they finished, the others by when they started. */
function recency(t) {
  const s = t.snap;
  const time = FINAL.has(s.status) ? timeOf(t, "finished") : timeOf(t, "started") ?? timeOf(t, "created");
  return time !== null ? time : t.firstSeen;
}

// Made once: localeCompare builds a collator on every call.
const collator = new Intl.Collator(undefined, { numeric: true });
const byName = (a, b) => collator.compare(a.snap.name, b.snap.name) || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);
const startOf = (t) => timeOf(t, "started") ?? timeOf(t, "created") ?? t.firstSeen;
const fractionOf = (t) => {
  const f = (t.snap.progress || {}).fraction;
  return typeof f === "number" ? f : -1;
};
/** Each sort as a key of two numbers, computed once per task (not once per comparison). */
const SORT_KEYS = {
  // Running (and pending) first, each group newest first.
  "": (t) => [FINAL.has(t.snap.status) ? 1 : 0, -recency(t)],
  start: (t) => [-startOf(t), 0],
  name: () => [0, 0],
  progress: (t) => [-fractionOf(t), 0],
};

let order = []; // the shown tasks, in order
let orderIndex = new Map(); // id -> index in order
let offsets = new Float64Array(1); // offsets[i]: top of row i; offsets[order.length]: total height
const heights = new Map(); // id -> measured height of an expanded row
let orderDirty = true;
let heightsDirty = false;

function rebuildOrder() {
  const list = [];
  const keyOf = SORT_KEYS[view.sort] || SORT_KEYS[""];
  for (const t of tasks.values()) {
    if (matches(t) || t.id === highlightId) {
      t.key = keyOf(t);
      list.push(t);
    }
  }
  // Equal times keep the hub's order (newest first; the sort is stable); equal progress goes by name.
  const tie = view.sort === "name" || view.sort === "progress" ? byName : () => 0;
  list.sort((a, b) => a.key[0] - b.key[0] || a.key[1] - b.key[1] || tie(a, b));
  order = list;
  orderIndex = new Map(list.map((t, i) => [t.id, i]));
  orderDirty = false;
  heightsDirty = true;
}

function rebuildOffsets() {
  offsets = new Float64Array(order.length + 1);
  let y = 0;
  for (let i = 0; i < order.length; i++) {
    offsets[i] = y;
    const id = order[i].id;
    y += expanded.has(id) ? heights.get(id) || CARD_ESTIMATE : ROW_HEIGHT;
  }
  offsets[order.length] = y;
  heightsDirty = false;
}

/** Index of the row at vertical position y (binary search over offsets). */
function indexAt(y) {
  let lo = 0;
  let hi = order.length - 1;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if (offsets[mid] <= y) lo = mid;
    else hi = mid - 1;
  }
  return Math.max(0, lo);
}

// ---- rendering: a window of rows over the list -------------------------------------------

const dirty = new Set(); // tasks changed since the last frame
const mounted = new Map(); // id -> row view, in the DOM
const pool = []; // row views out of the DOM, for reuse
let frame = 0;
let kernelsKey = "";

/** Render at most once per frame, however many events arrive. */
function schedule(t) {
  if (t) dirty.add(t);
  if (!frame) frame = requestAnimationFrame(flush);
}

function flush() {
  if (frame) cancelAnimationFrame(frame);
  frame = 0;
  if (orderDirty) {
    rebuildOrder();
    renderSummary();
  }
  if (heightsDirty) rebuildOffsets();
  renderWindow();
  // Cards have their true height only once drawn: measure, and place again if one changed.
  let changed = false;
  for (const [id, v] of mounted) {
    if (!expanded.has(id)) continue;
    const h = v.root.offsetHeight;
    if (h && heights.get(id) !== h) {
      heights.set(id, h);
      changed = true;
    }
  }
  if (changed) {
    rebuildOffsets();
    renderWindow();
  }
  dirty.clear();
  applyFocus();
}

function renderWindow() {
  ui.rows.style.height = offsets[order.length] + "px";
  const top = ui.scroller.scrollTop;
  const height = ui.scroller.clientHeight || window.innerHeight;
  const want = new Set();
  let first = 0;
  let last = -1;
  if (order.length) {
    first = indexAt(Math.max(0, top - OVERSCAN_PX));
    last = indexAt(top + height + OVERSCAN_PX);
  }
  for (let i = first; i <= last; i++) want.add(order[i].id);
  // The keyboard's row stays mounted while it has focus, so focus is never dropped.
  const focusedId = document.activeElement && document.activeElement.closest &&
    document.activeElement.closest(".ts-task")?.dataset.taskId;
  for (const [id, v] of mounted) {
    if (want.has(id) || (id === focusedId && orderIndex.has(id))) continue;
    v.root.remove();
    v.task = null;
    v.placed = null;
    mounted.delete(id);
    pool.push(v);
  }
  const place = (t, i) => {
    let v = mounted.get(t.id);
    const fresh = !v;
    if (fresh) {
      v = pool.pop() || views.createRow();
      mounted.set(t.id, v);
      ui.rows.appendChild(v.root);
    }
    if (fresh || dirty.has(t) || v.task !== t || v.stale) {
      views.renderRow(v, t, { selected: selected.has(t.id), expanded: expanded.has(t.id) });
      v.stale = false;
    }
    // Written only when changed: even an equal value dirties the row's style.
    const placed = offsets[i] + "/" + (i + 1) + "/" + order.length + "/" + (t.id === activeId) + "/" +
      (t.id === highlightId);
    if (v.placed === placed) return;
    v.placed = placed;
    v.root.style.transform = "translateY(" + offsets[i] + "px)";
    v.root.setAttribute("aria-posinset", String(i + 1));
    v.root.setAttribute("aria-setsize", String(order.length));
    v.root.tabIndex = t.id === activeId ? 0 : -1;
    v.root.classList.toggle("ts-active", t.id === activeId);
    v.root.classList.toggle("ts-focused", t.id === highlightId);
  };
  for (let i = first; i <= last; i++) place(order[i], i);
  if (focusedId && mounted.has(focusedId) && !want.has(focusedId)) place(order[orderIndex.get(focusedId)], orderIndex.get(focusedId));
  // The DOM's order is the list's, for screen readers and Tab, whatever the recycling did.
  const inOrder = Array.from(mounted.keys()).sort((a, b) => orderIndex.get(a) - orderIndex.get(b));
  let node = ui.rows.firstElementChild;
  for (const id of inOrder) {
    const root = mounted.get(id).root;
    if (node !== root) ui.rows.insertBefore(root, node);
    else node = node.nextElementSibling;
  }
  const empty = !loaded || order.length > 0 ? "" : tasks.size ? "No task matches the search and filters." :
    "No tasks yet. Start one from a notebook with %%taskstream, or POST to taskstream/api/tasks.";
  if (ui.empty.textContent !== empty) ui.empty.textContent = empty;
  ui.empty.hidden = !empty;
}

/** Counts, the title, the kernel filter's options, the select-all box. */
function renderSummary() {
  let active = 0;
  const kernels = new Set();
  for (const t of tasks.values()) {
    if (!FINAL.has(t.snap.status)) active += 1;
    if (t.snap.kernel_id) kernels.add(t.snap.kernel_id);
  }
  const finished = tasks.size - active;
  const parts = [active + " running"];
  if (finished) parts.push(finished + " finished");
  if (order.length !== tasks.size) parts.push(order.length + " shown");
  ui.counts.textContent = loaded ? parts.join(" \u00b7 ") : "";
  document.title = active ? "(" + active + ") TaskStream" : "TaskStream";
  const key = Array.from(kernels).sort().join(",");
  if (key !== kernelsKey) {
    kernelsKey = key;
    fillKernelOptions(Array.from(kernels).sort());
  }
  renderBulk();
}

function option(select, value, label) {
  const o = document.createElement("option");
  o.value = value;
  o.textContent = label;
  select.appendChild(o);
}

function fillKernelOptions(kernels) {
  const keep = view.kernel;
  ui.kernel.replaceChildren();
  option(ui.kernel, "", "All origins");
  option(ui.kernel, "api", "HTTP API (no kernel)");
  for (const k of kernels) option(ui.kernel, k, "kernel " + k.slice(0, 8));
  // A kernel from the URL that has no task (yet) stays selectable.
  if (keep && keep !== "api" && !kernels.includes(keep)) option(ui.kernel, keep, "kernel " + keep.slice(0, 8));
  ui.kernel.value = keep;
}

function fillStatusOptions() {
  option(ui.status, "", "All statuses");
  option(ui.status, "active", "Not finished");
  option(ui.status, "finished", "Finished");
  for (const s of DISPLAY_STATUSES) option(ui.status, s, s);
}

function markAllStale() {
  for (const v of mounted.values()) v.stale = true;
}

function toggleExpanded(id) {
  if (expanded.has(id)) expanded.delete(id);
  else expanded.add(id);
  const t = tasks.get(id);
  heightsDirty = true;
  if (t) schedule(t);
  else schedule(null);
}

// ---- the URL's fragment: search, filters, sort and #task=<id> -------------------------

function hashFor(extra = {}) {
  const params = new URLSearchParams();
  if (view.q) params.set("q", view.q);
  if (view.status) params.set("status", view.status);
  if (view.kernel) params.set("kernel", view.kernel);
  if (view.sort) params.set("sort", view.sort);
  if (extra.task) params.set("task", extra.task);
  return params.toString();
}

function writeHash() {
  const hash = hashFor(highlightId ? { task: highlightId } : {});
  // replaceState: typing in the search box must not fill the history, nor fire hashchange.
  history.replaceState(history.state, "", hash ? "#" + hash : location.pathname + location.search);
}

function readHash() {
  const params = new URLSearchParams(location.hash.replace(/^#/, ""));
  view.q = params.get("q") || "";
  view.status = params.get("status") || "";
  view.kernel = params.get("kernel") || "";
  view.sort = Object.hasOwn(SORT_KEYS, params.get("sort")) ? params.get("sort") : "";
  const task = params.get("task");
  highlightId = task || null;
  pendingFocus = task || null;
  if (task) expanded.add(task);
  ui.search.value = view.q;
  ui.status.value = view.status;
  if (ui.status.value !== view.status) ui.status.value = "";
  if (view.kernel && !Array.from(ui.kernel.options).some((o) => o.value === view.kernel)) {
    fillKernelOptions(kernelsKey ? kernelsKey.split(",") : []);
  }
  ui.kernel.value = view.kernel;
  ui.sort.value = view.sort;
  orderDirty = true;
  markAllStale();
  schedule(null);
}

function onFilterChange() {
  view.q = ui.search.value.trim();
  view.status = ui.status.value;
  view.kernel = ui.kernel.value;
  view.sort = ui.sort.value;
  writeHash();
  orderDirty = true;
  markAllStale(); // the cards' links carry the view
  // Show the top of the new list, not wherever the old one was scrolled to.
  ui.scroller.scrollTop = 0;
  flush();
}

/** Scroll a #task=<id> into the middle of the list once it exists, and say if it does not. */
function applyFocus() {
  if (pendingFocus === null) return;
  const i = orderIndex.get(pendingFocus);
  if (i === undefined) {
    if (loaded) showNotice("Task " + pendingFocus + " is not on this server (finished tasks are removed after a while).");
    return;
  }
  const id = pendingFocus;
  pendingFocus = null;
  activeId = id;
  showNotice("");
  scrollToIndex(i, "center");
  const v = mounted.get(id);
  if (v) v.root.focus({ preventScroll: true });
}

function scrollToIndex(i, block) {
  const top = offsets[i];
  const bottom = offsets[i + 1];
  const s = ui.scroller;
  if (block === "center") {
    s.scrollTop = Math.max(0, top - (s.clientHeight - Math.min(bottom - top, s.clientHeight)) / 2);
  } else if (top < s.scrollTop) {
    s.scrollTop = top;
  } else if (bottom > s.scrollTop + s.clientHeight) {
    s.scrollTop = Math.min(top, bottom - s.clientHeight);
  }
  renderWindow();
}

function showNotice(text) {
  ui.notice.textContent = text;
  ui.notice.hidden = !text;
}

// ---- keyboard -----------------------------------------------------------------------------

function moveTo(i) {
  if (!order.length) return;
  i = Math.max(0, Math.min(order.length - 1, i));
  activeId = order[i].id;
  scrollToIndex(i, "nearest");
  const v = mounted.get(activeId);
  if (v) v.root.focus({ preventScroll: true });
}

function onListKey(e) {
  const row = e.target.closest && e.target.closest(".ts-task");
  // Keys inside a card's log, buttons and links keep their own meaning.
  if (e.target !== ui.scroller && e.target !== row) return;
  const current = activeId !== null && orderIndex.has(activeId) ? orderIndex.get(activeId) : -1;
  const page = Math.max(1, Math.floor(ui.scroller.clientHeight / ROW_HEIGHT) - 1);
  const moves = {
    ArrowDown: current + 1,
    ArrowUp: current < 0 ? 0 : current - 1,
    PageDown: current + page,
    PageUp: Math.max(0, current - page),
    Home: 0,
    End: order.length - 1,
  };
  if (e.key in moves) {
    e.preventDefault();
    moveTo(moves[e.key]);
  } else if ((e.key === "Enter" || e.key === " ") && current >= 0) {
    e.preventDefault();
    const id = order[current].id;
    if (e.key === "Enter") {
      toggleExpanded(id);
    } else {
      if (selected.has(id)) selected.delete(id);
      else selected.add(id);
      renderBulk();
      schedule(tasks.get(id));
    }
  }
}

function onGlobalKey(e) {
  const t = e.target;
  const typing = t && (t.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(t.tagName));
  if (e.key === "/" && !typing && !e.ctrlKey && !e.metaKey && !e.altKey) {
    e.preventDefault();
    ui.search.focus();
    ui.search.select();
  } else if (e.key === "Escape" && t === ui.search) {
    if (ui.search.value) {
      ui.search.value = "";
      onFilterChange();
    } else {
      ui.scroller.focus();
    }
  } else if (e.key === "ArrowDown" && t === ui.search) {
    e.preventDefault();
    moveTo(0);
  }
}

// ---- bulk actions -------------------------------------------------------------------------

function selectedTasks() {
  const out = [];
  for (const id of selected) {
    const t = tasks.get(id);
    if (t) out.push(t);
  }
  return out;
}

function renderBulk() {
  const chosen = selectedTasks();
  const running = chosen.filter((t) => !FINAL.has(t.snap.status) && !t.snap.cancel_requested);
  const finished = chosen.filter((t) => FINAL.has(t.snap.status));
  ui.bulk.hidden = chosen.length === 0;
  ui.bulkCount.textContent = chosen.length + " selected";
  ui.bulkCancel.textContent = "Cancel running (" + running.length + ")";
  ui.bulkCancel.disabled = running.length === 0;
  ui.bulkDelete.textContent = "Delete finished (" + finished.length + ")";
  ui.bulkDelete.disabled = finished.length === 0;
  let shownSelected = 0;
  for (const t of order) if (selected.has(t.id)) shownSelected += 1;
  ui.selectAll.checked = order.length > 0 && shownSelected === order.length;
  ui.selectAll.indeterminate = shownSelected > 0 && shownSelected < order.length;
}

let confirmAction = null;

/** One confirmation in the page (no native dialog): `text`, a `verb` button, and Back. */
function confirmThen(text, verb, action) {
  confirmAction = action;
  ui.confirmText.textContent = text;
  ui.confirmYes.textContent = verb;
  ui.confirm.hidden = false;
  ui.confirmYes.focus();
}

function closeConfirm() {
  confirmAction = null;
  ui.confirm.hidden = true;
}

/** Run `fn` over `items` with a few requests in flight; the count of successes. */
async function inBatches(items, fn) {
  let ok = 0;
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const item = items[next++];
      if (await fn(item)) ok += 1;
    }
  };
  await Promise.all(Array.from({ length: Math.min(BULK_CONCURRENCY, items.length) }, worker));
  return ok;
}

function bulkCancel() {
  const running = selectedTasks().filter((t) => !FINAL.has(t.snap.status) && !t.snap.cancel_requested);
  if (!running.length) return;
  confirmThen("Cancel " + running.length + " running task" + (running.length === 1 ? "" : "s") + "?",
    "Cancel tasks", async () => {
      const ok = await inBatches(running, (t) => requestCancel(t, null));
      for (const t of running) selected.delete(t.id);
      showNotice(ok === running.length ? "" : (running.length - ok) + " of " + running.length + " could not be cancelled.");
      markAllStale();
      renderBulk();
      schedule(null);
    });
}

function bulkDelete() {
  const finished = selectedTasks().filter((t) => FINAL.has(t.snap.status));
  if (!finished.length) return;
  confirmThen("Delete " + finished.length + " finished task" + (finished.length === 1 ? "" : "s") +
    " and their logs?", "Delete tasks", async () => {
    const ok = await inBatches(finished, (t) => requestDelete(t, null));
    showNotice(ok === finished.length ? "" : (finished.length - ok) + " of " + finished.length + " could not be deleted.");
    renderBulk();
  });
}

function selectAllShown() {
  const all = ui.selectAll.checked;
  for (const t of order) {
    if (all) selected.add(t.id);
    else selected.delete(t.id);
  }
  markAllStale();
  renderBulk();
  schedule(null);
}

// ---- cancel and delete ------------------------------------------------------------------

function xsrfToken() {
  // Jupyter checks the header against the _xsrf cookie; the cookie is the current truth.
  const m = /(?:^|;\s*)_xsrf=([^;]*)/.exec(document.cookie);
  return m ? decodeURIComponent(m[1]) : config.xsrfToken;
}

function send(method, path) {
  return fetch(API + path, {
    method,
    credentials: "same-origin",
    headers: { "X-XSRFToken": xsrfToken(), Accept: "application/json" },
  });
}

async function requestCancel(t, button) {
  if (button) {
    button.disabled = true;
    button.dataset.pending = "1";
  }
  let ok = false;
  try {
    const r = await send("POST", "tasks/" + encodeURIComponent(t.id) + "/cancel");
    // 409: it finished meanwhile, and its end is on the way.
    ok = r.ok || r.status === 409;
    if (r.ok && !FINAL.has(t.snap.status)) {
      // "cancelling" until the task ends; the stream's status event confirms it.
      t.snap.cancel_requested = true;
      t.snap.display_status = "cancelling";
    } else if (!ok && button) {
      button.title = "Cancel failed: HTTP " + r.status;
    }
  } catch (e) {
    if (button) button.title = "Cancel failed: " + e;
  }
  if (button) delete button.dataset.pending;
  orderDirty = true;
  schedule(t);
  return ok;
}

async function requestDelete(t, button) {
  if (button) button.disabled = true;
  let ok = false;
  try {
    const r = await send("DELETE", "tasks/" + encodeURIComponent(t.id));
    // 404: gone already. The stream's `deleted` event says the same to every page.
    ok = r.ok || r.status === 404;
    if (ok) removeTask(t.id);
    else if (button) button.title = "Delete failed: HTTP " + r.status;
  } catch (e) {
    if (button) button.title = "Delete failed: " + e;
  }
  if (button && !ok) button.disabled = false;
  return ok;
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

/**
 * The first rows come from GET tasks, and only then does the stream open.
 *
 * The hub builds the stream's first event, every task with its latest log lines (1.5 MB at
 * 1,000 tasks), before it answers anything else; the plain list is several times quicker.
 * So the rows are drawn from the list first, and the stream's snapshot, newer and with the
 * log lines, replaces it a moment later (events in between are in that snapshot).
 */
async function firstPaint() {
  const body = await firstList; // null on failure: the stream (or polling) brings the tasks anyway
  if (!body || listSeen) return;
  applyTaskList(body.tasks || [], { withLog: false });
  listSeen = false; // the stream's snapshot, with the log lines, still has to come
  flush();
}

fillStatusOptions();
fillKernelOptions([]);
ui.app.hidden = false;
readHash();
window.addEventListener("hashchange", readHash);
ui.search.addEventListener("input", onFilterChange);
for (const select of [ui.status, ui.kernel, ui.sort]) select.addEventListener("change", onFilterChange);
ui.scroller.addEventListener("scroll", () => schedule(null), { passive: true });
ui.scroller.addEventListener("keydown", onListKey);
ui.rows.addEventListener("mousedown", (e) => {
  const row = e.target.closest(".ts-task");
  if (row) activeId = row.dataset.taskId;
});
document.addEventListener("keydown", onGlobalKey);
window.addEventListener("resize", () => schedule(null));
ui.selectAll.addEventListener("change", selectAllShown);
ui.bulkCancel.addEventListener("click", bulkCancel);
ui.bulkDelete.addEventListener("click", bulkDelete);
ui.bulkClear.addEventListener("click", () => {
  selected.clear();
  markAllStale();
  renderBulk();
  schedule(null);
});
ui.confirmYes.addEventListener("click", () => {
  const action = confirmAction;
  closeConfirm();
  if (action) action();
});
ui.confirmNo.addEventListener("click", closeConfirm);
// Elapsed and ETA tick between events, for the rows on screen only.
setInterval(() => {
  for (const v of mounted.values()) if (v.task && !FINAL.has(v.task.snap.status)) views.renderRowTime(v, v.task);
}, 1000);
firstPaint().then(openStream);

// For tests and the benchmark: what the page holds, without reaching into its closures.
window.taskstreamDashboard = {
  get total() { return tasks.size; },
  get shown() { return order.length; },
  get mounted() { return mounted.size; },
  /** The stream's snapshot (or a poll) has arrived, not only the first paint's list. */
  get synced() { return listSeen; },
};
