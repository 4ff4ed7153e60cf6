// "Open log": a task's whole log in a main-area tab. It opens on the newest lines (the hub's
// log endpoint with tail=), follows the live lines the shared stream brings (ids tell which
// it already has, so no second stream), and pages back through the history as the reader
// scrolls up (before=<first id shown>&limit=), keeping the lines in view where they were.

import { Widget } from '@lumino/widgets';

import { ILogPage, TaskApi } from './api';
import { lineText } from './format';
import { FINAL, ILogLine, shownStatus, TaskStore } from './model';

/** Lines per page, either way. */
export const PAGE = 500;
/** Fetch the page before when the reader is this close to the top (px). */
const NEAR_TOP_PX = 400;

export class LogView extends Widget {
  constructor(
    readonly taskId: string,
    readonly store: TaskStore,
    readonly api: TaskApi
  ) {
    super();
    this.addClass('jp-TaskStream-logView');
    this.node.dataset.taskId = taskId;
    this._head = document.createElement('div');
    this._head.className = 'jp-TaskStream-logHead';
    this._note = document.createElement('div');
    this._note.className = 'jp-TaskStream-logNote';
    this._box = document.createElement('div');
    this._box.className = 'jp-TaskStream-logBox';
    this._box.setAttribute('role', 'log');
    this._box.tabIndex = 0;
    this._box.addEventListener('scroll', () => this._onScroll(), { passive: true });
    this.node.append(this._head, this._note, this._box);
    store.logAppended.connect(this._onLive, this);
    store.changed.connect(this._renderHead, this);
    this._renderHead();
    void this._loadTail();
  }

  /** Lines shown so far. */
  get lineCount(): number {
    return this._box.childElementCount;
  }

  private _renderHead(): void {
    const t = this.store.tasks.get(this.taskId);
    const status = t ? shownStatus(t.snap) : 'deleted';
    this._head.textContent = `${t ? t.snap.name : this.taskId} · ${status}`;
    this._head.dataset.status = status;
    // MainAreaWidget mirrors its content's title.
    this.title.label = `Log: ${t ? t.snap.name : this.taskId}`;
  }

  private async _loadTail(): Promise<void> {
    this._setNote('Loading the log…');
    let page: ILogPage;
    try {
      page = await this.api.log(this.taskId, { tail: PAGE });
    } catch (err) {
      this._setNote(`Could not load the log: ${(err as Error).message}`);
      return;
    }
    if (this.isDisposed) {
      return;
    }
    const lines = TaskApi.lines(page);
    this._firstId = lines.length ? lines[0].id : page.last_event_id + 1;
    this._loaded = true;
    this._append(lines);
    // Live lines that arrived meanwhile, in order, without the ones it had.
    this._append(this._pending);
    this._pending = [];
    this._box.scrollTop = this._box.scrollHeight;
    this._atStart = lines.length < PAGE;
    this._gone = page.truncated;
    this._renderStart();
    const t = this.store.tasks.get(this.taskId);
    if (t && FINAL.has(t.snap.status)) {
      this.node.dataset.complete = 'true';
    }
    // A short tab, or a log that fits, may have nothing to scroll: look at the top now.
    this._onScroll();
  }

  /** Near the top: fetch the page before the first line shown and put it above. */
  private _onScroll(): void {
    // clientHeight 0: not on screen (a hidden tab), where "near the top" says nothing.
    const box = this._box;
    if (!this._loaded || this._atStart || this._paging || !box.clientHeight || box.scrollTop > NEAR_TOP_PX) {
      return;
    }
    this._paging = true;
    this._box.setAttribute('aria-busy', 'true');
    void this.api
      .log(this.taskId, { before: this._firstId, limit: PAGE })
      .then(page => {
        if (this.isDisposed) {
          return;
        }
        const lines = TaskApi.lines(page);
        this._prepend(lines);
        this._atStart = lines.length < PAGE;
        this._gone = this._gone || page.truncated;
        this._renderStart();
      })
      .catch(err => this._setNote(`Could not load older lines: ${(err as Error).message}`))
      .finally(() => {
        this._paging = false;
        this._box.removeAttribute('aria-busy');
        // Still at the top (a fast scroll, a short page): the next page, one at a time.
        if (!this.isDisposed && !this._atStart) {
          requestAnimationFrame(() => this._onScroll());
        }
      });
  }

  protected onAfterShow(): void {
    this._onScroll();
  }

  private _renderStart(): void {
    this.node.dataset.start = this._atStart ? 'true' : 'false';
    if (!this._atStart) {
      this._setNote('');
      return;
    }
    const t = this.store.tasks.get(this.taskId);
    const dropped = t && typeof t.snap.log_dropped === 'number' ? (t.snap.log_dropped as number) : 0;
    this._setNote(
      this._gone || dropped ? `The oldest ${dropped || 'few'} lines are gone (the hub keeps the newest ones).` : ''
    );
  }

  private _setNote(text: string): void {
    this._note.textContent = text;
    this._note.hidden = !text;
  }

  private _onLive(_: TaskStore, change: { id: string; lines: ILogLine[] }): void {
    if (change.id !== this.taskId) {
      return;
    }
    if (!this._loaded) {
      this._pending.push(...change.lines);
      return;
    }
    this._append(change.lines);
  }

  private _row(line: ILogLine): HTMLElement {
    const row = document.createElement('div');
    row.className = 'jp-TaskStream-logLine';
    row.dataset.id = String(line.id);
    if (line.stream === 'stderr') {
      row.classList.add('jp-mod-stderr');
    }
    row.textContent = lineText(line.text);
    return row;
  }

  private _append(lines: ILogLine[]): void {
    if (!lines.length) {
      return;
    }
    const box = this._box;
    // Follow the end only when the reader is already there.
    const atBottom = box.scrollHeight - box.scrollTop - box.clientHeight < 4;
    const fragment = document.createDocumentFragment();
    for (const line of lines) {
      if (line.id <= this._lastId) {
        continue;
      }
      this._lastId = line.id;
      fragment.appendChild(this._row(line));
    }
    box.appendChild(fragment);
    if (atBottom) {
      box.scrollTop = box.scrollHeight;
    }
  }

  /** Older lines above the first one, the lines in view staying where they are. */
  private _prepend(lines: ILogLine[]): void {
    const older = lines.filter(line => line.id < this._firstId);
    if (!older.length) {
      return;
    }
    const box = this._box;
    const fragment = document.createDocumentFragment();
    for (const line of older) {
      fragment.appendChild(this._row(line));
    }
    const before = box.scrollHeight;
    box.insertBefore(fragment, box.firstChild);
    box.scrollTop += box.scrollHeight - before;
    this._firstId = older[0].id;
  }

  dispose(): void {
    this.store.logAppended.disconnect(this._onLive, this);
    this.store.changed.disconnect(this._renderHead, this);
    super.dispose();
  }

  private _head: HTMLElement;
  private _note: HTMLElement;
  private _box: HTMLElement;
  /** Id of the newest line shown, and of the oldest: the cursors both ways. */
  private _lastId = 0;
  private _firstId = 0;
  private _loaded = false;
  /** The first line of the log is shown (or nothing older is left). */
  private _atStart = false;
  private _gone = false;
  private _paging = false;
  private _pending: ILogLine[] = [];
}
