// The Tasks panel: every task of the server in compact rows, running ones first, windowed so
// that only the rows in view (and a few around them) exist in the DOM: a thousand tasks cost
// what a screenful does. A click on a row unfolds its details (child bars, last log lines,
// the traceback of a failed task, Open log / Go to cell). Every task-supplied string goes
// through textContent, never innerHTML.

import { Notification } from '@jupyterlab/apputils';
import { deleteIcon, LabIcon, stopIcon } from '@jupyterlab/ui-components';
import { Widget } from '@lumino/widgets';

import { TaskApi } from './api';
import { errorText, formatCount, formatMeter, lineText } from './format';
import { FINAL, IBar, ITask, shownStatus, TaskStore } from './model';
import { SharedTaskStream } from './stream';

/** Height of a folded row, in px (CSS keeps it: .jp-TaskStream-row). */
export const ROW_HEIGHT = 62;
const OVERSCAN_PX = 300;
const DETAIL_LOG_LINES = 10;

export type Filter = 'all' | 'active' | 'completed' | 'failed' | 'cancelled';
const FILTERS: [Filter, string][] = [
  ['all', 'All'],
  ['active', 'Running'],
  ['completed', 'Completed'],
  ['failed', 'Failed'],
  ['cancelled', 'Cancelled']
];

export interface IPanelActions {
  openLog(id: string): void;
  /** Scroll to the cell that started the task; false when its notebook is not open. */
  goToCell(id: string): Promise<boolean>;
}

interface IRowView {
  id: string;
  root: HTMLElement;
  name: HTMLElement;
  status: HTMLElement;
  cancel: HTMLButtonElement;
  remove: HTMLButtonElement;
  track: HTMLElement;
  bar: HTMLElement;
  meter: HTMLElement;
  last: HTMLElement;
  details: HTMLElement | null;
}

function el<K extends keyof HTMLElementTagNameMap>(tag: K, cls: string, parent?: HTMLElement): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  node.className = cls;
  if (parent) {
    parent.appendChild(node);
  }
  return node;
}

function iconButton(icon: LabIcon, cls: string, label: string, parent: HTMLElement): HTMLButtonElement {
  const button = el('button', `jp-TaskStream-iconButton ${cls}`, parent);
  button.type = 'button';
  button.title = label;
  button.setAttribute('aria-label', label);
  icon.element({ container: button, tag: 'span', elementSize: 'small' } as any);
  return button;
}

export class TasksPanel extends Widget {
  constructor(
    readonly store: TaskStore,
    readonly stream: SharedTaskStream,
    readonly api: TaskApi,
    readonly actions: IPanelActions
  ) {
    super();
    this.addClass('jp-TaskStream-panel');
    this.id = 'jupyter-taskstream-panel';
    this.title.caption = 'Tasks: progress, logs and cancel of long-running work';

    const head = el('div', 'jp-TaskStream-head', this.node);
    el('h2', 'jp-TaskStream-title', head).textContent = 'Tasks';
    this._counts = el('span', 'jp-TaskStream-counts', head);
    el('span', 'jp-TaskStream-spacer', head);
    this._conn = el('span', 'jp-TaskStream-conn', head);
    const toolbar = el('div', 'jp-TaskStream-toolbar', this.node);
    this._filter = el('select', 'jp-TaskStream-filter jp-mod-styled', toolbar);
    this._filter.setAttribute('aria-label', 'Show tasks by status');
    for (const [value, label] of FILTERS) {
      const option = el('option', '', this._filter);
      option.value = value;
      option.textContent = label;
    }
    this._filter.addEventListener('change', () => this.setFilter(this._filter.value as Filter));
    const dashboard = el('a', 'jp-TaskStream-dashboardLink', toolbar);
    dashboard.href = api.dashboardUrl;
    dashboard.target = '_blank';
    dashboard.rel = 'noopener';
    dashboard.textContent = 'Dashboard ↗';
    dashboard.title = 'Open the standalone TaskStream dashboard in a new browser tab';

    this._scroller = el('div', 'jp-TaskStream-scroller', this.node);
    this._scroller.setAttribute('role', 'list');
    this._sizer = el('div', 'jp-TaskStream-sizer', this._scroller);
    this._empty = el('div', 'jp-TaskStream-empty', this.node);
    this._scroller.addEventListener('scroll', () => this._scheduleLayout(), { passive: true });

    store.changed.connect(this._onChanged, this);
    stream.stateChanged.connect(this._renderConnection, this);
    this._renderConnection();
  }

  get filter(): Filter {
    return this._filterValue;
  }

  setFilter(filter: Filter): void {
    this._filterValue = filter;
    this._filter.value = filter;
    this._scroller.scrollTop = 0;
    this._place(new Set(), true);
  }

  /** Unfold a task's row, scroll it into view and highlight it (a toast's "Show"). */
  showTask(id: string): void {
    const t = this.store.tasks.get(id);
    if (!t) {
      return;
    }
    if (!this._matches(t)) {
      this.setFilter('all');
    }
    this._expanded.add(id);
    this._flash = id;
    this._place(new Set([id]), true);
    const index = this._list.findIndex(x => x.id === id);
    if (index >= 0) {
      this._scroller.scrollTop = Math.max(0, this._offsets[index] - 8);
      this._place(new Set(), true);
    }
    window.setTimeout(() => {
      if (this._flash === id) {
        this._flash = null;
        this._views.get(id)?.root.classList.remove('jp-mod-flash');
      }
    }, 2500);
  }

  protected onAfterShow(): void {
    this._place(new Set(), true);
    this._startClock();
  }

  protected onAfterAttach(): void {
    this._place(new Set(), true);
    this._startClock();
  }

  protected onBeforeDetach(): void {
    window.clearInterval(this._clock);
    this._clock = 0;
  }

  protected onResize(): void {
    this._scheduleLayout();
  }

  dispose(): void {
    window.clearInterval(this._clock);
    super.dispose();
  }

  private _startClock(): void {
    if (!this._clock) {
      // Elapsed times and ETAs tick between events.
      this._clock = window.setInterval(() => {
        if (this.isVisible) {
          this._place(new Set(this._list.filter(t => !FINAL.has(t.snap.status)).map(t => t.id)), false);
        }
      }, 1000);
    }
  }

  private _onChanged(_: TaskStore, dirty: Set<string>): void {
    if (!this.isVisible) {
      this._stale = true;
      return;
    }
    this._place(dirty, dirty.size === 0);
  }

  private _scheduleLayout(): void {
    if (!this._frame) {
      this._frame = requestAnimationFrame(() => {
        this._frame = 0;
        this._place(new Set(), false);
      });
    }
  }

  private _matches(t: ITask): boolean {
    const f = this._filterValue;
    if (f === 'all') {
      return true;
    }
    if (f === 'active') {
      return !FINAL.has(t.snap.status);
    }
    return t.snap.status === f;
  }

  private _height(id: string): number {
    return this._expanded.has(id) ? (this._heights.get(id) ?? 240) : ROW_HEIGHT;
  }

  /** Order, filter, size and place the rows; (re)render the visible ones that changed. */
  private _place(dirty: Set<string>, all: boolean): void {
    if (!this.isAttached) {
      return;
    }
    if (this._stale) {
      all = true;
      this._stale = false;
    }
    const ordered = this.store.ordered();
    let running = 0;
    for (const t of ordered) {
      if (!FINAL.has(t.snap.status)) {
        running += 1;
      }
    }
    this._counts.textContent = ordered.length ? `${running} running · ${ordered.length} in all` : '';
    this._list = ordered.filter(t => this._matches(t));
    const offsets = new Array<number>(this._list.length);
    let y = 0;
    for (let i = 0; i < this._list.length; i++) {
      offsets[i] = y;
      y += this._height(this._list[i].id);
    }
    this._offsets = offsets;
    this._sizer.style.height = `${y}px`;
    this._empty.textContent = !this.store.loaded
      ? 'Connecting to the hub…'
      : this._list.length
        ? ''
        : ordered.length
          ? 'No task matches the filter.'
          : 'No tasks yet. Start one with %%taskstream in a notebook.';
    this._empty.hidden = this._list.length > 0;

    const top = this._scroller.scrollTop - OVERSCAN_PX;
    const bottom = this._scroller.scrollTop + (this._scroller.clientHeight || 600) + OVERSCAN_PX;
    // First row whose bottom is below `top` (binary search on the offsets).
    let lo = 0;
    let hi = this._list.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (offsets[mid] + this._height(this._list[mid].id) <= top) {
        lo = mid + 1;
      } else {
        hi = mid;
      }
    }
    const keep = new Set<string>();
    const measure: IRowView[] = [];
    for (let i = lo; i < this._list.length && offsets[i] < bottom; i++) {
      const t = this._list[i];
      keep.add(t.id);
      let view = this._views.get(t.id);
      const fresh = !view;
      if (!view) {
        view = this._buildRow(t.id);
        this._views.set(t.id, view);
        this._scroller.appendChild(view.root);
      }
      view.root.style.top = `${offsets[i]}px`;
      if (fresh || all || dirty.has(t.id)) {
        this._renderRow(view, t);
        if (this._expanded.has(t.id)) {
          measure.push(view);
        }
      }
    }
    for (const [id, view] of this._views) {
      if (!keep.has(id)) {
        view.root.remove();
        this._views.delete(id);
      }
    }
    // Unfolded rows have the height of their content: measure, and place again if it moved.
    let moved = false;
    for (const view of measure) {
      const h = view.root.offsetHeight;
      if (h && h !== this._heights.get(view.id)) {
        this._heights.set(view.id, h);
        moved = true;
      }
    }
    if (moved) {
      this._place(new Set(), false);
    }
  }

  private _buildRow(id: string): IRowView {
    const root = el('div', 'jp-TaskStream-row');
    root.dataset.taskId = id;
    root.setAttribute('role', 'listitem');
    const line1 = el('div', 'jp-TaskStream-line1', root);
    const name = el('span', 'jp-TaskStream-name', line1);
    const status = el('span', 'jp-TaskStream-status', line1);
    const cancel = iconButton(stopIcon, 'jp-TaskStream-cancel', 'Cancel task', line1);
    const remove = iconButton(deleteIcon, 'jp-TaskStream-delete', 'Delete task', line1);
    const track = el('div', 'jp-TaskStream-track', root);
    track.setAttribute('role', 'progressbar');
    track.setAttribute('aria-valuemin', '0');
    track.setAttribute('aria-valuemax', '100');
    const bar = el('div', 'jp-TaskStream-bar', track);
    const line3 = el('div', 'jp-TaskStream-line3', root);
    const meter = el('span', 'jp-TaskStream-meter', line3);
    const last = el('span', 'jp-TaskStream-last', line3);
    const view: IRowView = { id, root, name, status, cancel, remove, track, bar, meter, last, details: null };

    cancel.addEventListener('click', event => {
      event.stopPropagation();
      cancel.disabled = true;
      this._cancelling.add(id);
      this.api.cancel(id).catch(err => {
        this._cancelling.delete(id);
        cancel.disabled = false;
        Notification.error(`Could not cancel the task: ${err.message}`, { autoClose: 5000 });
      });
    });
    remove.addEventListener('click', event => {
      event.stopPropagation();
      remove.disabled = true;
      this.api.remove(id).catch(err => {
        remove.disabled = false;
        Notification.error(`Could not delete the task: ${err.message}`, { autoClose: 5000 });
      });
    });
    const toggle = () => {
      if (this._expanded.has(id)) {
        this._expanded.delete(id);
      } else {
        this._expanded.add(id);
      }
      this._place(new Set([id]), false);
    };
    for (const part of [line1, track, line3]) {
      part.addEventListener('click', toggle);
    }
    root.tabIndex = 0;
    root.addEventListener('keydown', event => {
      if ((event.key === 'Enter' || event.key === ' ') && event.target === root) {
        event.preventDefault();
        toggle();
      }
    });
    return view;
  }

  private _renderRow(v: IRowView, t: ITask): void {
    const s = t.snap;
    const p = s.progress || ({} as ITask['snap']['progress']);
    const status = shownStatus(s);
    const final = FINAL.has(s.status);
    v.root.dataset.status = status;
    v.root.classList.toggle('jp-mod-expanded', this._expanded.has(t.id));
    v.root.classList.toggle('jp-mod-flash', this._flash === t.id);
    v.name.textContent = s.name;
    v.name.title = s.name;
    v.status.textContent = status;
    v.cancel.hidden = final;
    v.cancel.disabled = status === 'cancelling' || this._cancelling.has(t.id);
    v.remove.hidden = !final;
    const fraction = typeof p.fraction === 'number' ? p.fraction : null;
    const width = fraction === null ? (final ? 100 : 0) : Math.round(fraction * 1000) / 10;
    v.bar.style.width = `${width}%`;
    v.track.classList.toggle('jp-mod-indeterminate', fraction === null && s.status === 'running');
    if (fraction === null) {
      v.track.removeAttribute('aria-valuenow');
    } else {
      v.track.setAttribute('aria-valuenow', String(width));
    }
    v.meter.textContent = formatMeter(t, final);
    // The one line a folded row has: the error of a failed task, else the message, else the
    // newest log line (stderr in red).
    const newest = t.log.length ? t.log[t.log.length - 1] : null;
    let last = '';
    let stderr = false;
    if (final && s.error) {
      last = [s.error.type, s.error.message].filter(Boolean).join(': ');
      stderr = true;
    } else if (s.message) {
      last = s.message;
    } else if (newest) {
      last = lineText(newest.text);
      stderr = newest.stream === 'stderr';
    }
    v.last.textContent = last;
    v.last.title = last;
    v.last.classList.toggle('jp-mod-stderr', stderr);

    if (this._expanded.has(t.id)) {
      this._renderDetails(v, t);
    } else if (v.details) {
      v.details.remove();
      v.details = null;
    }
  }

  private _renderDetails(v: IRowView, t: ITask): void {
    const s = t.snap;
    if (!v.details) {
      v.details = el('div', 'jp-TaskStream-details', v.root);
      el('div', 'jp-TaskStream-detailContent', v.details);
      this._buildActions(v.details, t);
    }
    const d = v.details.firstElementChild as HTMLElement;
    d.replaceChildren();
    const bars = Array.isArray(s.bars) ? s.bars.filter((b: IBar) => b && !b.closed) : [];
    if (bars.length) {
      const list = el('div', 'jp-TaskStream-bars', d);
      for (const b of bars) {
        const row = el('div', 'jp-TaskStream-child', list);
        el('span', 'jp-TaskStream-childName', row).textContent = String(b.desc || b.name || '');
        const track = el('span', 'jp-TaskStream-track jp-TaskStream-childTrack', row);
        const fraction =
          typeof b.fraction === 'number'
            ? b.fraction
            : typeof b.total === 'number' && b.total > 0
              ? Math.min(1, (b.current || 0) / b.total)
              : null;
        el('span', 'jp-TaskStream-bar', track).style.width = `${fraction === null ? 0 : Math.round(fraction * 1000) / 10}%`;
        el('span', 'jp-TaskStream-childCount', row).textContent = formatCount({
          current: b.current || 0,
          total: typeof b.total === 'number' ? b.total : null,
          unit: b.unit || 'it',
          fraction,
          rate: null,
          eta: null
        });
      }
    }
    if (s.message) {
      el('div', 'jp-TaskStream-message', d).textContent = s.message;
    }
    const lines = t.log.slice(-DETAIL_LOG_LINES);
    if (lines.length) {
      const box = el('div', 'jp-TaskStream-log', d);
      box.setAttribute('role', 'log');
      for (const line of lines) {
        const row = el('div', 'jp-TaskStream-logLine', box);
        if (line.stream === 'stderr') {
          row.classList.add('jp-mod-stderr');
        }
        row.textContent = lineText(line.text);
      }
    }
    if (FINAL.has(s.status) && s.error) {
      const err = el('pre', 'jp-TaskStream-traceback', d);
      err.textContent = errorText(s.error);
    }
  }

  /** The detail buttons, built once per unfolded row so a click never lands on a rebuilt one. */
  private _buildActions(d: HTMLElement, t: ITask): void {
    const s = t.snap;
    const actions = el('div', 'jp-TaskStream-actions', d);
    const button = (label: string, cls: string, title: string, run: () => void) => {
      const b = el('button', `jp-Button jp-mod-minimal jp-mod-styled ${cls}`, actions);
      b.type = 'button';
      b.textContent = label;
      b.title = title;
      b.addEventListener('click', e => {
        e.stopPropagation();
        run();
      });
      return b;
    };
    button('Open log', 'jp-TaskStream-openLog', 'Open the whole log in a tab that follows it live', () =>
      this.actions.openLog(t.id)
    );
    if (s.kernel_id) {
      button('Go to cell', 'jp-TaskStream-goToCell', 'Scroll to the cell that started this task', () => {
        void this.actions.goToCell(t.id).then(found => {
          if (!found) {
            Notification.info('The notebook that started this task is not open in this window.', {
              autoClose: 4000
            });
          }
        });
      });
    }
    el('span', 'jp-TaskStream-taskId', actions).textContent = t.id;
  }

  private _renderConnection(): void {
    const role = this.stream.role;
    const conn = this.stream.connection;
    this._conn.dataset.connection = conn;
    this._conn.dataset.role = role;
    const how =
      conn === 'stream' ? 'live' : conn === 'polling' ? 'polling (the stream is unavailable)' : 'connecting…';
    const who =
      role === 'leader'
        ? 'this tab holds the stream shared by all tabs'
        : role === 'follower'
          ? 'shared from another tab'
          : 'own stream';
    this._conn.title = `${how}; ${who}`;
    this.node.dataset.role = role;
  }

  private _counts: HTMLElement;
  private _conn: HTMLElement;
  private _filter: HTMLSelectElement;
  private _scroller: HTMLElement;
  private _sizer: HTMLElement;
  private _empty: HTMLElement;
  private _filterValue: Filter = 'all';
  private _list: ITask[] = [];
  private _offsets: number[] = [];
  private _views = new Map<string, IRowView>();
  private _expanded = new Set<string>();
  private _heights = new Map<string, number>();
  private _flash: string | null = null;
  /** Tasks whose Cancel was clicked here: the button stays disabled until the task ends. */
  private _cancelling = new Set<string>();
  private _frame = 0;
  private _clock = 0;
  private _stale = false;
}
