// The Tasks panel: every task of the server in compact rows, running ones first, windowed so
// that only the rows in view (and a few around them) exist in the DOM: a thousand tasks cost
// what a screenful does. Rows and cards are drawn by the dashboard's own taskview.js (one
// source for both; the Lab build bundles it): a row unfolds to the card (child bars, last log
// lines, the traceback of a failed task, Open log / Go to cell). Row views are recycled as
// the window moves. Every task-supplied string goes through textContent, never innerHTML.

import { Notification } from '@jupyterlab/apputils';
import { Widget } from '@lumino/widgets';

import { createTaskViews, IRowView, ITaskViews } from '../jupyter_taskstream/hub/static/taskview.js';
import { TaskApi } from './api';
import { FINAL, ITask, TaskStore } from './model';
import { SharedTaskStream } from './stream';

/** Height of a folded row, in px (CSS keeps it: .jp-TaskStream-panel's --ts-row-height). */
export const ROW_HEIGHT = 62;
const CARD_ESTIMATE = 260;
const OVERSCAN_PX = 300;

export type Filter = 'all' | 'active' | 'completed' | 'failed' | 'cancelled';
const FILTERS: Record<Filter, string> = {
  all: 'All',
  active: 'Running',
  completed: 'Completed',
  failed: 'Failed',
  cancelled: 'Cancelled'
};

export interface IPanelActions {
  openLog(id: string): void;
  /** Scroll to the cell that started the task; false when its notebook is not open. */
  goToCell(id: string): Promise<boolean>;
}

function el<K extends keyof HTMLElementTagNameMap>(tag: K, cls: string, parent?: HTMLElement): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  node.className = cls;
  if (parent) {
    parent.appendChild(node);
  }
  return node;
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
    for (const [value, label] of Object.entries(FILTERS)) {
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
    this._views = this._createViews();

    store.changed.connect(this._onChanged, this);
    stream.stateChanged.connect(this._renderConnection, this);
    this._renderConnection();
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
        this._mounted.get(id)?.root.classList.remove('jp-mod-flash');
      }
    }, 2500);
  }

  protected onAfterShow(): void {
    this.onAfterAttach();
  }

  protected onAfterAttach(): void {
    this._place(new Set(), true);
    this._startClock();
  }

  protected onBeforeDetach(): void {
    // Also how dispose() stops it: a disposed widget is detached first.
    window.clearInterval(this._clock);
    this._clock = 0;
  }

  protected onResize(): void {
    this._scheduleLayout();
  }

  /** The shared row/card views, bound to what the panel knows and does. */
  private _createViews(): ITaskViews {
    const failed = (what: string, button: HTMLButtonElement) => (err: Error) => {
      delete button.dataset.pending;
      button.disabled = false;
      Notification.error(`Could not ${what} the task: ${err.message}`, { autoClose: 5000 });
    };
    return createTaskViews({
      terminal: FINAL,
      // The model's etaAt is on the local clock, and so are these.
      now: () => Date.now(),
      linkFor: id => `${this.api.dashboardUrl}#task=${encodeURIComponent(id)}`,
      onToggle: t => this._toggle(t.id),
      onSelect: () => undefined,
      onCancel: (t, button) => {
        button.disabled = true;
        button.dataset.pending = '1';
        this.api.cancel(t.id).catch(failed('cancel', button));
      },
      onDelete: (t, button) => {
        button.disabled = true;
        this.api.remove(t.id).catch(failed('delete', button));
      },
      selectable: false,
      rowActions: true,
      lastLine: true,
      cardActions: t => {
        const actions = [
          {
            label: 'Open log',
            cls: 'jp-TaskStream-openLog',
            title: 'Open the whole log in a tab that follows it live',
            run: () => this.actions.openLog(t.id)
          }
        ];
        if (t.snap.kernel_id) {
          actions.push({
            label: 'Go to cell',
            cls: 'jp-TaskStream-goToCell',
            title: 'Scroll to the cell that started this task',
            run: () =>
              void this.actions.goToCell(t.id).then(found => {
                if (!found) {
                  Notification.info('The notebook that started this task is not open in this window.', {
                    autoClose: 4000
                  });
                }
              })
          });
        }
        return actions;
      }
    });
  }

  /** A shared row, made a panel row: the whole line unfolds it, so does Enter on it. */
  private _createRow(): IRowView {
    const view = this._views.createRow();
    const root = view.root;
    root.classList.add('jp-TaskStream-row');
    root.tabIndex = 0;
    view.line.addEventListener('click', event => {
      const target = event.target as HTMLElement;
      // The name and the toggle unfold it themselves; buttons do their own thing.
      if (view.task && !target.closest('button, .ts-name')) {
        this._toggle(view.task.id);
      }
    });
    root.addEventListener('keydown', event => {
      if ((event.key === 'Enter' || event.key === ' ') && event.target === root && view.task) {
        event.preventDefault();
        this._toggle(view.task.id);
      }
    });
    return view;
  }

  private _toggle(id: string): void {
    if (this._expanded.has(id)) {
      this._expanded.delete(id);
    } else {
      this._expanded.add(id);
    }
    this._place(new Set([id]), false);
  }

  private _startClock(): void {
    if (!this._clock) {
      // Elapsed times and ETAs tick between events, on the rows in view only.
      this._clock = window.setInterval(() => {
        for (const v of this._mounted.values()) {
          if (this.isVisible && v.task && !FINAL.has(v.task.snap.status)) {
            this._views.renderRowTime(v, v.task);
          }
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

  /** Scrolling or resizing: place the window again over the same list (no re-sort). */
  private _scheduleLayout(): void {
    if (!this._frame) {
      this._frame = requestAnimationFrame(() => {
        this._frame = 0;
        this._place(new Set(), false, false);
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
    return this._expanded.has(id) ? (this._heights.get(id) ?? CARD_ESTIMATE) : ROW_HEIGHT;
  }

  /** Order and filter (unless only the window moved), then place the window of rows;
   * (re)render the visible ones that changed. */
  private _place(dirty: Set<string>, all: boolean, relist = true): void {
    if (!this.isAttached) {
      return;
    }
    if (this._stale) {
      all = relist = true;
      this._stale = false;
    }
    if (relist) {
      this._relist();
    }
    const offsets = this._offsets;
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
    let end = lo;
    while (end < this._list.length && offsets[end] < bottom) {
      end++;
    }
    const keep = new Set(this._list.slice(lo, end).map(t => t.id));
    // Rows that left the window go back to the pool first, so the new ones reuse them.
    for (const [id, view] of this._mounted) {
      if (!keep.has(id)) {
        view.root.remove();
        view.task = null;
        this._mounted.delete(id);
        this._pool.push(view);
      }
    }
    const measure: IRowView[] = [];
    for (let i = lo; i < end; i++) {
      const t = this._list[i];
      let view = this._mounted.get(t.id);
      const fresh = !view;
      if (!view) {
        view = this._pool.pop() ?? this._createRow();
        this._mounted.set(t.id, view);
        this._scroller.appendChild(view.root);
      }
      const topPx = `${offsets[i]}px`;
      if (view.root.style.top !== topPx) {
        view.root.style.top = topPx; // only when changed: an equal value still dirties the style
      }
      if (fresh || all || dirty.has(t.id)) {
        const expanded = this._expanded.has(t.id);
        this._views.renderRow(view, t, { expanded });
        view.root.classList.toggle('jp-mod-flash', this._flash === t.id);
        if (expanded) {
          measure.push(view);
        }
      }
    }
    // Unfolded rows have the height of their content: measure, and place again if it moved.
    let moved = false;
    for (const view of measure) {
      const h = view.root.offsetHeight;
      if (h && h !== this._heights.get(view.task!.id)) {
        this._heights.set(view.task!.id, h);
        moved = true;
      }
    }
    if (moved) {
      this._placeRows();
      this._place(new Set(), false, false);
    }
  }

  /** The tasks to show, in order (running first), their counts and the empty-list text. */
  private _relist(): void {
    const ordered = this.store.ordered();
    const running = ordered.filter(t => !FINAL.has(t.snap.status)).length;
    this._counts.textContent = ordered.length ? `${running} running · ${ordered.length} in all` : '';
    this._list = ordered.filter(t => this._matches(t));
    this._placeRows();
    this._empty.textContent = !this.store.loaded
      ? 'Connecting to the hub…'
      : this._list.length
        ? ''
        : ordered.length
          ? 'No task matches the filter.'
          : 'No tasks yet. Start one with %%taskstream in a notebook.';
    this._empty.hidden = this._list.length > 0;
  }

  /** Each row's offset from the list and the row heights; the sizer as tall as all rows. */
  private _placeRows(): void {
    const offsets = new Array<number>(this._list.length);
    let y = 0;
    for (let i = 0; i < this._list.length; i++) {
      offsets[i] = y;
      y += this._height(this._list[i].id);
    }
    this._offsets = offsets;
    this._sizer.style.height = `${y}px`;
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
  private _views: ITaskViews;
  private _filterValue: Filter = 'all';
  private _list: ITask[] = [];
  private _offsets: number[] = [];
  /** id -> the row view showing it; `_pool` holds row views out of the DOM, for reuse. */
  private _mounted = new Map<string, IRowView>();
  private _pool: IRowView[] = [];
  private _expanded = new Set<string>();
  private _heights = new Map<string, number>();
  private _flash: string | null = null;
  private _frame = 0;
  private _clock = 0;
  private _stale = false;
}
