// One task drawn two ways: a compact one-line row and the full card under it. The ONE
// source of both, for the dashboard (dashboard.js, which the hub serves this file to) and
// the JupyterLab Tasks panel (src/panel.ts imports this very file; the Lab build bundles it;
// taskview.d.ts beside it gives TypeScript its types).
//
// Self-contained ES module, plain JS, no build step, no imports, no globals: the page that
// uses it owns the task model, the transport and the layout, and passes in what this module
// cannot know (the terminal statuses, the clock, the actions, what the host adds). Nothing
// here touches `document` beyond creating elements, nor reads the URL. Its styles are
// taskview.css beside it, on `--ts-*` variables each host sets (the dashboard its palette,
// the panel JupyterLab's theme variables).
//
// A task record is `{id, snap, log: [{id, stream, text}], etaAt}`: `snap` is the hub's
// snapshot (REST and SSE shape, `display_status` included), `etaAt` the server time at
// which `snap.progress.eta` was last true. Every task-supplied string reaches the DOM through
// textContent, a property or an attribute, never through innerHTML.

/** Formatting in tqdm's conventions: MM:SS (H:MM:SS), it/s or s/it. */
export function formatDuration(seconds) {
  const total = Math.max(0, Math.floor(seconds));
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const sec = total % 60;
  const two = (n) => String(n).padStart(2, "0");
  return h ? h + ":" + two(m) + ":" + two(sec) : two(m) + ":" + two(sec);
}

// Made once: Number.prototype.toLocaleString builds a formatter on every call, which showed
// as the top of the profile while scrolling 1,000 rows.
const INTEGER = new Intl.NumberFormat("en-US");
const SMALL = new Intl.NumberFormat("en-US", { maximumFractionDigits: 2 });
const LARGE = new Intl.NumberFormat("en-US", { maximumFractionDigits: 1 });

export function formatNumber(n) {
  if (typeof n !== "number" || !Number.isFinite(n)) return "?";
  if (Number.isInteger(n)) return INTEGER.format(n);
  return (n < 10 ? SMALL : LARGE).format(n);
}

export function formatCount(p) {
  const unit = p.unit ? " " + p.unit : "";
  const total = typeof p.total === "number" ? " / " + formatNumber(p.total) : "";
  return formatNumber(p.current || 0) + total + unit;
}

export function formatRate(rate, unit) {
  if (typeof rate !== "number" || !(rate > 0)) return "";
  const u = unit || "it";
  if (rate < 1) return (1 / rate).toFixed(2) + " s/" + u;
  const digits = rate >= 100 ? 0 : rate >= 10 ? 1 : 2;
  return rate.toFixed(digits) + " " + u + "/s";
}

export function stripAnsi(text) {
  // IPython tracebacks and coloured output carry terminal escapes; show the words only.
  return String(text).replace(/\x1b\[[0-9;?]*[ -/]*[@-~]/g, "");
}

export function errorText(error) {
  if (!error) return "";
  const head = [error.type, error.message].filter(Boolean).join(": ");
  const raw = Array.isArray(error.traceback) ? error.traceback.join("\n") : error.traceback || "";
  const tb = stripAnsi(raw).trimEnd();
  if (!tb) return head;
  return tb.includes(error.message || "\u0000") ? tb : tb + "\n" + head;
}

/** A log line's text as shown: without its newline and terminal escapes. */
export function lineText(text) {
  return stripAnsi(text.endsWith("\n") ? text.slice(0, -1) : text);
}

export function parseTime(iso) {
  const ms = iso ? Date.parse(iso) : NaN;
  return Number.isNaN(ms) ? null : ms;
}

/** Child bars as the snapshot's optional `bars` field lists them, in one tolerant shape. */
export function childBars(snap) {
  if (!Array.isArray(snap.bars)) return [];
  return snap.bars
    .filter((b) => b && typeof b === "object")
    .map((b) => {
      const total = typeof b.total === "number" ? b.total : null;
      const current = typeof b.current === "number" ? b.current : typeof b.n === "number" ? b.n : 0;
      let fraction = typeof b.fraction === "number" ? b.fraction : null;
      if (fraction === null && total) fraction = Math.min(1, current / total);
      const name = [b.name, b.desc, b.label, b.id].find((x) => typeof x === "string" && x) || "";
      return { name, current, total, fraction, unit: typeof b.unit === "string" ? b.unit : "it" };
    });
}

function el(tag, cls, parent) {
  const node = document.createElement(tag);
  if (cls) node.className = cls;
  if (parent) parent.appendChild(node);
  return node;
}

const LOG_LINES_SHOWN = 200;

/**
 * The row and card factories, bound to what the host knows.
 *
 * options.terminal   Set of terminal statuses (the page takes protocol.TERMINAL_STATUSES from its config)
 * options.now        () => epoch ms on the server's clock
 * options.linkFor    (id) => href of a link to the task (the dashboard's #task=<id>)
 * options.onToggle   (task) => expand or collapse (the host re-lays out)
 * options.onSelect   (task, checked) => selection changed
 * options.onCancel   (task, button) => ask the hub to cancel
 * options.onDelete   (task, button) => ask the hub to delete
 * options.selectable false: no selection checkbox on the row (a host without bulk actions)
 * options.rowActions true: Cancel/Delete buttons on the row itself, not only on the card
 * options.lastLine   true: the row also says its newest news (the error of a failed task,
 *                    else the message, else the newest log line), for a narrow host
 * options.cardActions (task) => [{label, cls, title, run}]: more buttons on the card, made
 *                    once per card so a click never lands on a redrawn one
 */
export function createTaskViews(options) {
  const terminal = options.terminal;
  const now = options.now;

  const isFinal = (s) => terminal.has(s.status);
  // The hub computes display_status; a task with none yet (a bare id) shows its status.
  const shown = (s) => s.display_status || s.status;

  function fractionOf(s) {
    const p = s.progress || {};
    return typeof p.fraction === "number" ? p.fraction : null;
  }

  function paintBar(track, bar, s) {
    const fraction = fractionOf(s);
    const final = isFinal(s);
    track.classList.toggle("ts-indeterminate", fraction === null && s.status === "running");
    const width = fraction === null ? (final ? 100 : 0) : Math.round(fraction * 1000) / 10;
    bar.style.width = width + "%";
    if (fraction === null) track.removeAttribute("aria-valuenow");
    else track.setAttribute("aria-valuenow", String(width));
  }

  function elapsedText(t) {
    const s = t.snap;
    const started = parseTime(s.started);
    if (started === null) return "";
    const finished = parseTime(s.finished);
    return formatDuration(((finished !== null ? finished : now()) - started) / 1000);
  }

  function etaText(t) {
    const s = t.snap;
    const p = s.progress || {};
    if (isFinal(s) || typeof p.eta !== "number") return "";
    // The ETA was true when it arrived; count it down between updates, like a clock would.
    return formatDuration(Math.max(0, p.eta - (now() - t.etaAt) / 1000));
  }

  function countText(s) {
    const p = s.progress || {};
    // A pending task with nothing counted yet has nothing to say but its status.
    const idle = s.status === "pending" && !p.current && typeof p.total !== "number";
    return idle ? "" : formatCount(p);
  }

  // ---- the compact row ----------------------------------------------------------------

  /** A row's elements; `root` is the list item, the card goes in `root` under `line`. */
  function createRow() {
    const root = el("div", "ts-task");
    root.setAttribute("role", "listitem");
    root.tabIndex = -1;
    const line = el("div", "ts-rowline", root);
    const select = el("input", "ts-select", options.selectable === false ? null : line);
    select.type = "checkbox";
    select.tabIndex = -1; // the row takes the tab stop; Space selects
    const toggle = el("button", "ts-toggle", line);
    toggle.type = "button";
    toggle.tabIndex = -1;
    const name = el("span", "ts-name", line);
    const status = el("span", "ts-status", line);
    const track = el("span", "ts-track", line);
    track.setAttribute("role", "progressbar");
    track.setAttribute("aria-valuemin", "0");
    track.setAttribute("aria-valuemax", "100");
    const bar = el("span", "ts-bar", track);
    const kids = el("span", "ts-kids", line);
    const count = el("span", "ts-count", line);
    const rate = el("span", "ts-rate", line);
    const time = el("span", "ts-time", line);
    const origin = el("span", "ts-origin", line);
    const last = options.lastLine ? el("span", "ts-last", line) : null;
    const view = { root, line, select, toggle, name, status, track, bar, kids, count, rate, time, origin,
                   last, cancel: null, del: null, task: null, card: null };
    if (options.rowActions) {
      view.cancel = actionButton(line, "ts-cancel ts-row-action", "\u25A0", (b) => view.task && options.onCancel(view.task, b));
      view.del = actionButton(line, "ts-delete ts-row-action", "\u2715", (b) => view.task && options.onDelete(view.task, b));
    }
    select.addEventListener("change", () => view.task && options.onSelect(view.task, select.checked));
    toggle.addEventListener("click", () => view.task && options.onToggle(view.task));
    name.addEventListener("click", () => view.task && options.onToggle(view.task));
    return view;
  }

  function actionButton(parent, cls, glyph, run) {
    const b = el("button", cls, parent);
    b.type = "button";
    b.textContent = glyph;
    b.addEventListener("click", (e) => {
      e.stopPropagation();
      run(b);
    });
    return b;
  }

  /** The newest news of a task, for a row's last line: [text, is it an error]. */
  function lastNews(t) {
    const s = t.snap;
    if (isFinal(s) && s.error) return [[s.error.type, s.error.message].filter(Boolean).join(": "), true];
    if (s.message) return [s.message, false];
    const newest = t.log.length ? t.log[t.log.length - 1] : null;
    return newest ? [lineText(newest.text), newest.stream === "stderr"] : ["", false];
  }

  /** Draw `t` into a row view (a recycled one may have shown another task). */
  function renderRow(view, t, { selected = false, expanded = false } = {}) {
    const s = t.snap;
    const p = s.progress || {};
    const st = shown(s);
    if (view.task !== t) {
      view.task = t;
      if (view.cancel) delete view.cancel.dataset.pending;
      if (view.card) {
        view.card.root.remove();
        view.card = null;
      }
    }
    view.root.dataset.taskId = t.id;
    view.root.dataset.status = st;
    view.root.id = "task-" + t.id;
    view.select.checked = selected;
    view.select.setAttribute("aria-label", "Select " + s.name);
    view.toggle.setAttribute("aria-expanded", String(expanded));
    view.toggle.setAttribute("aria-label", (expanded ? "Hide details of " : "Show details of ") + s.name);
    view.root.classList.toggle("ts-expanded", expanded);
    view.root.classList.toggle("ts-selected", selected);
    view.name.textContent = s.name;
    view.name.title = s.message ? s.name + "\n" + s.message : s.name;
    view.status.textContent = st;
    view.status.dataset.status = st;
    paintBar(view.track, view.bar, s);
    view.track.setAttribute("aria-label", "Progress of " + s.name);
    const kids = childBars(s);
    view.kids.textContent = kids.length ? "+" + kids.length : "";
    view.kids.title = kids.length ? kids.map((b) => b.name + " " + formatCount(b)).join("\n") : "";
    view.count.textContent = countText(s);
    view.rate.textContent = formatRate(p.rate, p.unit);
    renderRowTime(view, t);
    view.origin.textContent = s.kernel_id ? "kernel " + s.kernel_id.slice(0, 8) : "API";
    view.origin.title = s.kernel_id ? "kernel " + s.kernel_id : "created through the HTTP API";
    if (view.last) {
      const [text, bad] = lastNews(t);
      view.last.textContent = text;
      view.last.title = text;
      view.last.classList.toggle("ts-stderr", bad);
    }
    if (view.cancel) {
      const final = isFinal(s);
      view.cancel.hidden = final;
      view.cancel.disabled = st === "cancelling" || view.cancel.dataset.pending === "1";
      view.cancel.title = "Cancel task";
      view.cancel.setAttribute("aria-label", "Cancel " + s.name);
      view.del.hidden = !final;
      view.del.title = "Delete task";
      view.del.setAttribute("aria-label", "Delete " + s.name);
    }
    const pct = fractionOf(s);
    view.root.setAttribute(
      "aria-label",
      s.name + ", " + st + (pct === null ? "" : ", " + Math.floor(pct * 100) + "%"),
    );
    if (expanded) {
      if (!view.card) {
        view.card = createCard();
        view.root.appendChild(view.card.root);
      }
      renderCard(view.card, t);
    } else if (view.card) {
      view.card.root.remove();
      view.card = null;
    }
  }

  /** Elapsed and ETA only: what changes every second while a task runs. */
  function renderRowTime(view, t) {
    const elapsed = elapsedText(t);
    const eta = etaText(t);
    view.time.textContent = elapsed + (eta ? " \u00b7 ETA " + eta : "");
    if (view.card) renderCardTime(view.card, t);
  }

  // ---- the full card --------------------------------------------------------------------

  function createCard() {
    const root = el("div", "ts-card");
    const head = el("div", "ts-card-head", root);
    const message = el("div", "ts-message", head);
    el("span", "ts-spacer", head);
    const link = el("a", "ts-id", head);
    link.title = "Link to this task";
    const cancel = el("button", "ts-cancel ts-button", head);
    cancel.type = "button";
    cancel.textContent = "Cancel";
    const del = el("button", "ts-delete ts-button", head);
    del.type = "button";
    del.textContent = "Delete";
    // Count and rate are on the row just above; the card adds what the row has no room for.
    const meta = el("div", "ts-meta", root);
    const pct = el("span", "ts-pct", meta);
    const elapsed = el("span", "ts-elapsed", meta);
    const eta = el("span", "ts-eta", meta);
    const when = el("span", "ts-when", meta);
    const bars = el("div", "ts-children", root);
    const log = el("div", "ts-log", root);
    log.setAttribute("role", "log");
    log.tabIndex = 0;
    const error = el("pre", "ts-error", root);
    const view = { root, head, message, link, cancel, del, pct, elapsed, eta, when, bars, log, error,
                   shownLogId: 0, follow: true, task: null };
    cancel.addEventListener("click", () => view.task && options.onCancel(view.task, cancel));
    del.addEventListener("click", () => view.task && options.onDelete(view.task, del));
    log.addEventListener("scroll", () => {
      view.follow = log.scrollHeight - log.scrollTop - log.clientHeight < 4;
    });
    return view;
  }

  function renderCard(v, t) {
    const s = t.snap;
    const st = shown(s);
    const final = isFinal(s);
    if (!v.task && options.cardActions) {
      for (const a of options.cardActions(t)) {
        const b = el("button", "ts-button " + a.cls, null);
        b.type = "button";
        b.textContent = a.label;
        b.title = a.title;
        b.addEventListener("click", (e) => {
          e.stopPropagation();
          a.run();
        });
        v.head.insertBefore(b, v.link);
      }
    }
    v.task = t;
    v.message.textContent = s.message || "";
    v.link.href = options.linkFor(t.id);
    v.link.textContent = t.id;
    v.cancel.hidden = final;
    v.cancel.disabled = st === "cancelling" || v.cancel.dataset.pending === "1";
    v.cancel.setAttribute("aria-label", "Cancel " + s.name);
    v.del.hidden = !final;
    v.del.setAttribute("aria-label", "Delete " + s.name);
    const fraction = fractionOf(s);
    v.pct.textContent = fraction === null ? "" : Math.floor(fraction * 100) + "% done";
    renderCardTime(v, t);
    renderChildren(v, s);
    renderLog(v, t);
    const err = final && s.error ? errorText(s.error) : "";
    v.error.textContent = err;
    v.error.hidden = !err;
  }

  function renderCardTime(v, t) {
    const s = t.snap;
    const elapsed = elapsedText(t);
    v.elapsed.textContent = elapsed ? "elapsed " + elapsed : "";
    const eta = etaText(t);
    v.eta.textContent = eta ? "ETA " + eta : "";
    const finished = parseTime(s.finished);
    const started = parseTime(s.started);
    const created = parseTime(s.created);
    if (finished !== null) v.when.textContent = "finished " + new Date(finished).toLocaleTimeString();
    else if (started !== null) v.when.textContent = "started " + new Date(started).toLocaleTimeString();
    else if (created !== null) v.when.textContent = "created " + new Date(created).toLocaleTimeString();
    else v.when.textContent = "";
  }

  function renderChildren(v, s) {
    const kids = childBars(s);
    while (v.bars.childElementCount > kids.length) v.bars.lastElementChild.remove();
    kids.forEach((b, i) => {
      let row = v.bars.children[i];
      if (!row) {
        row = el("div", "ts-child", v.bars);
        el("span", "ts-child-name", row);
        const track = el("span", "ts-track", row);
        track.setAttribute("role", "progressbar");
        el("span", "ts-bar", track);
        el("span", "ts-child-count", row);
      }
      const [name, track, count] = row.children;
      name.textContent = b.name;
      track.setAttribute("aria-label", b.name || "child bar");
      const width = b.fraction === null ? 0 : Math.round(b.fraction * 1000) / 10;
      track.firstElementChild.style.width = width + "%";
      count.textContent = formatCount(b);
    });
    v.bars.hidden = kids.length === 0;
  }

  function renderLog(v, t) {
    const box = v.log;
    const lines = t.log.length > LOG_LINES_SHOWN ? t.log.slice(-LOG_LINES_SHOWN) : t.log;
    const newest = lines.length ? lines[lines.length - 1].id : 0;
    box.hidden = lines.length === 0;
    if (newest === v.shownLogId && box.childElementCount === lines.length) return;
    const oldest = lines.length ? lines[0].id : Infinity;
    let first = box.firstElementChild;
    while (first && Number(first.dataset.id) < oldest) {
      const next = first.nextElementSibling;
      first.remove();
      first = next;
    }
    for (const line of lines) {
      if (line.id <= v.shownLogId) continue;
      const row = el("div", "ts-line", box);
      row.dataset.id = String(line.id);
      if (line.stream === "stderr") row.classList.add("ts-stderr");
      row.textContent = lineText(line.text);
    }
    v.shownLogId = newest;
    // Follow the output only while the reader is at the bottom (or has not scrolled yet).
    if (v.follow) box.scrollTop = box.scrollHeight;
  }

  return { createRow, renderRow, renderRowTime, createCard, renderCard, isFinal, shown };
}
