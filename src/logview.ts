// "Open log": a task's whole log in a main-area tab. It pages through the history with the
// hub's log endpoint (after=<event id>, a page at a time) and then follows the live lines the
// shared stream brings, without a second stream: ids tell which lines it already has.

import { Widget } from '@lumino/widgets';

import { TaskApi } from './api';
import { lineText } from './format';
import { FINAL, ILogLine, shownStatus, TaskStore } from './model';

const PAGE = 1000;

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
    this.node.append(this._head, this._note, this._box);
    store.logAppended.connect(this._onLive, this);
    store.changed.connect(this._renderHead, this);
    this._renderHead();
    void this._loadHistory();
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

  private async _loadHistory(): Promise<void> {
    let after = 0;
    this._note.textContent = 'Loading the log…';
    try {
      for (;;) {
        const page = await this.api.log(this.taskId, after, PAGE);
        if (page.truncated && after === 0) {
          this._truncated = true;
        }
        this._append(TaskApi.lines(page));
        if (page.events.length < PAGE || page.last_event_id <= after) {
          break;
        }
        after = page.last_event_id;
        if (this.isDisposed) {
          return;
        }
      }
    } catch (err) {
      this._note.textContent = `Could not load the log: ${(err as Error).message}`;
      return;
    }
    this._loaded = true;
    // Live lines that arrived while the history loaded, in order, without the ones it had.
    this._append(this._pending);
    this._pending = [];
    const t = this.store.tasks.get(this.taskId);
    const dropped = t && typeof t.snap.log_dropped === 'number' ? (t.snap.log_dropped as number) : 0;
    this._note.textContent =
      this._truncated || dropped
        ? `The oldest ${dropped || 'few'} lines are gone (the hub keeps the newest ones).`
        : '';
    this._note.hidden = !this._note.textContent;
    if (t && FINAL.has(t.snap.status)) {
      this.node.dataset.complete = 'true';
    }
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
      const row = document.createElement('div');
      row.className = 'jp-TaskStream-logLine';
      if (line.stream === 'stderr') {
        row.classList.add('jp-mod-stderr');
      }
      row.textContent = lineText(line.text);
      fragment.appendChild(row);
    }
    box.appendChild(fragment);
    if (atBottom) {
      box.scrollTop = box.scrollHeight;
    }
  }

  dispose(): void {
    this.store.logAppended.disconnect(this._onLive, this);
    this.store.changed.disconnect(this._renderHead, this);
    super.dispose();
  }

  private _head: HTMLElement;
  private _note: HTMLElement;
  private _box: HTMLElement;
  private _lastId = 0;
  private _loaded = false;
  private _truncated = false;
  private _pending: ILogLine[] = [];
}
