// The tasks of the server as this tab knows them: snapshots folded with the events of the
// all-tasks stream (README, "Events and the SSE format"). Rendering lives elsewhere; this
// module only keeps state and says what changed.

import { ISignal, Signal } from '@lumino/signaling';

export const FINAL = new Set(['completed', 'failed', 'cancelled']);
/** Log lines kept per task in the panel; the whole log stays in the hub ("Open log"). */
export const LOG_LINES_KEPT = 50;

export interface IProgress {
  current: number;
  total: number | null;
  fraction: number | null;
  unit: string;
  rate: number | null;
  eta: number | null;
}

/** A child bar (library bars inside a task), when the hub's snapshot carries "bars". */
export interface IBar {
  id?: string;
  desc?: string;
  name?: string;
  current?: number;
  total?: number | null;
  fraction?: number | null;
  unit?: string;
  closed?: boolean;
}

export interface ILogLine {
  id: number;
  stream: string;
  text: string;
}

export interface ISnapshot {
  id: string;
  name: string;
  status: string;
  display_status?: string;
  progress: IProgress;
  message: string;
  kernel_id: string | null;
  created: string | null;
  started: string | null;
  finished: string | null;
  error: { type?: string; message?: string; traceback?: string | string[] } | null;
  cancel_requested: boolean;
  last_event_id: number;
  bars?: IBar[];
  log?: ILogLine[];
  [key: string]: unknown;
}

export interface ITask {
  id: string;
  snap: ISnapshot;
  log: ILogLine[];
  lastLogId: number;
  /** Local time (ms) when the ETA in the snapshot was true. */
  etaAt: number;
  firstSeen: number;
}

/** An event of the all-tasks stream, as relayed between tabs. */
export interface IStreamEvent {
  type: string;
  id: number;
  data: any;
}

/** The status to show: the hub's ``display_status`` ('cancelling' for a live task asked to
 * stop), kept current between snapshots by the events folded in since. */
/** Snapshot fields the live events keep current. */
const EVENT_FIELDS = new Set([
  'name', 'status', 'display_status', 'progress', 'message', 'error', 'cancel_requested',
  'started', 'finished', 'last_event_id', 'bars', 'log'
]);

export function shownStatus(s: ISnapshot): string {
  if (FINAL.has(s.status)) {
    return s.status;
  }
  return s.cancel_requested || s.display_status === 'cancelling' ? 'cancelling' : s.status;
}

export function isActive(t: ITask): boolean {
  return !FINAL.has(t.snap.status);
}

function blank(id: string): ISnapshot {
  return {
    id,
    name: id,
    status: 'pending',
    message: '',
    error: null,
    cancel_requested: false,
    progress: { current: 0, total: null, fraction: null, unit: 'it', rate: null, eta: null },
    created: null,
    started: null,
    finished: null,
    kernel_id: null,
    last_event_id: 0
  };
}

export function parseTime(iso: string | null | undefined): number | null {
  const ms = iso ? Date.parse(iso) : NaN;
  return Number.isNaN(ms) ? null : ms;
}

/** Seconds a task ran (to now while it runs), or null before it started. */
export function runSeconds(s: ISnapshot): number | null {
  const started = parseTime(s.started) ?? parseTime(s.created);
  if (started === null) {
    return null;
  }
  const end = parseTime(s.finished) ?? Date.now();
  return Math.max(0, (end - started) / 1000);
}

/**
 * Every task of the server, in this tab.
 *
 * `changed` fires at most once per animation frame with the ids that changed (an empty set
 * after a whole list arrived); `ended` fires once per task that reached a final status on
 * the live stream (not for tasks that were already finished in a snapshot).
 */
export class TaskStore {
  readonly tasks = new Map<string, ITask>();
  /** The newest event id folded in: where a new stream resumes. */
  lastEventId = 0;
  loaded = false;

  get changed(): ISignal<this, Set<string>> {
    return this._changed;
  }
  get ended(): ISignal<this, ITask> {
    return this._ended;
  }
  get logAppended(): ISignal<this, { id: string; lines: ILogLine[] }> {
    return this._logAppended;
  }
  /** A live event named a task this tab had no snapshot of (its kernel, times are unknown). */
  get unknownTask(): ISignal<this, string> {
    return this._unknownTask;
  }

  /** Merge a snapshot fetched for one task (after `unknownTask`) into what events built. */
  mergeSnapshot(snap: ISnapshot): void {
    const t = this.tasks.get(snap.id);
    if (!t) {
      return; // deleted meanwhile
    }
    if (snap.last_event_id >= t.snap.last_event_id) {
      this._applySnapshot(t, { ...snap, log: undefined });
    } else {
      // Events ran ahead of it: take only what events never carry (kernel, creation time...).
      for (const [key, value] of Object.entries(snap)) {
        if (!EVENT_FIELDS.has(key)) {
          t.snap[key] = value;
        }
      }
    }
    this._schedule(t.id);
  }

  /** Tasks in panel order: active ones first (newest first), then finished (latest first). */
  ordered(): ITask[] {
    const active: ITask[] = [];
    const done: ITask[] = [];
    for (const t of this.tasks.values()) {
      (isActive(t) ? active : done).push(t);
    }
    // Each task's key once, not once per comparison (a date parse each).
    const keys = new Map<ITask, number>();
    for (const t of this.tasks.values()) {
      const s = t.snap;
      const time = FINAL.has(s.status) ? parseTime(s.finished) : parseTime(s.created);
      keys.set(t, time ?? t.firstSeen);
    }
    const byKey = (a: ITask, b: ITask) => keys.get(b)! - keys.get(a)! || (a.id < b.id ? -1 : 1);
    active.sort(byKey);
    done.sort(byKey);
    return active.concat(done);
  }

  /** A whole list (the stream's snapshot or a tab's relayed copy): replaces the state. */
  applyList(list: ISnapshot[], lastEventId: number): void {
    const seen = new Set<string>();
    const ended: ITask[] = [];
    for (const snap of list) {
      if (!snap || typeof snap.id !== 'string') {
        continue;
      }
      seen.add(snap.id);
      const t = this.tasks.get(snap.id);
      // A task seen running that a later list (a poll, a resumed stream) shows finished ended
      // meanwhile; one first seen finished did so before this tab looked: no news.
      if (t && this.loaded && !FINAL.has(t.snap.status) && FINAL.has(snap.status)) {
        ended.push(t);
      }
      this._applySnapshot(this._ensure(snap.id), snap);
    }
    for (const id of Array.from(this.tasks.keys())) {
      if (!seen.has(id)) {
        this.tasks.delete(id);
      }
    }
    if (lastEventId > this.lastEventId || lastEventId < this.lastEventId) {
      // A fresh snapshot after an unknown id (e.g. a hub restart) may go back: follow it.
      this.lastEventId = lastEventId;
    }
    this.loaded = true;
    for (const t of ended) {
      this._ended.emit(t);
    }
    this._schedule(null);
  }

  /** Fold one live event of the all-tasks stream in. */
  applyEvent(ev: IStreamEvent): void {
    const { type, data } = ev;
    const eventId = ev.id;
    if (eventId > this.lastEventId) {
      this.lastEventId = eventId;
    }
    const id = data && data.task;
    if (typeof id !== 'string') {
      return;
    }
    if (type === 'deleted') {
      if (this.tasks.delete(id)) {
        this._schedule(null);
      }
      return;
    }
    const known = this.tasks.has(id);
    const t = this._ensure(id);
    if (!known && type !== 'end') {
      this._unknownTask.emit(id);
    }
    const s = t.snap;
    const wasFinal = FINAL.has(s.status);
    if (type === 'status') {
      if (typeof data.name === 'string') {
        s.name = data.name;
      }
      if (!wasFinal && typeof data.status === 'string') {
        s.status = data.status;
      }
      if (typeof data.message === 'string') {
        s.message = data.message;
      }
      if (data.error) {
        s.error = data.error;
      }
      if (data.cancel_requested) {
        s.cancel_requested = true;
      }
      const now = new Date().toISOString();
      if (data.status !== 'pending' && !s.started) {
        s.started = now;
      }
      if (FINAL.has(data.status) && !s.finished) {
        s.finished = now;
      }
      s.display_status = shownStatus(s);
    } else if (type === 'progress') {
      this._markStarted(t);
      const unit = typeof data.unit === 'string' ? data.unit : s.progress?.unit;
      s.progress = {
        current: data.current,
        total: data.total,
        fraction: data.fraction,
        unit: unit || 'it',
        rate: data.rate,
        eta: data.eta
      };
      if (Array.isArray(data.bars)) {
        s.bars = data.bars;
      }
      if (typeof data.message === 'string') {
        s.message = data.message;
      }
      t.etaAt = Date.now();
    } else if (type === 'log') {
      this._markStarted(t);
      this._addLines(t, [{ id: eventId, stream: data.stream || 'stdout', text: String(data.text ?? '') }]);
    } else if (type === 'end') {
      const snap = { ...data };
      delete snap.task;
      this._applySnapshot(t, snap);
    } else if (type === 'bars' && Array.isArray(data.bars)) {
      s.bars = data.bars;
    }
    if (eventId > s.last_event_id) {
      s.last_event_id = eventId;
    }
    if (!wasFinal && FINAL.has(s.status)) {
      this._ended.emit(t);
    }
    this._schedule(id);
  }

  /** The whole state as a list of snapshots with their kept log: what a joining tab gets. */
  serialize(): ISnapshot[] {
    return Array.from(this.tasks.values()).map(t => ({ ...t.snap, log: t.log.slice() }));
  }

  private _ensure(id: string): ITask {
    let t = this.tasks.get(id);
    if (!t) {
      t = { id, snap: blank(id), log: [], lastLogId: 0, etaAt: Date.now(), firstSeen: Date.now() };
      this.tasks.set(id, t);
    }
    return t;
  }

  private _applySnapshot(t: ITask, snap: ISnapshot): void {
    const before = t.snap.progress || ({} as IProgress);
    const after = snap.progress || ({} as IProgress);
    if (before.eta !== after.eta || before.current !== after.current) {
      t.etaAt = Date.now();
    }
    const log = snap.log;
    t.snap = { ...snap };
    delete t.snap.log;
    if (Array.isArray(log)) {
      this._addLines(t, log);
    }
  }

  private _markStarted(t: ITask): void {
    if (t.snap.status === 'pending') {
      t.snap.status = 'running';
      t.snap.display_status = shownStatus(t.snap);
    }
    if (!t.snap.started) {
      t.snap.started = new Date().toISOString();
    }
  }

  private _addLines(t: ITask, lines: ILogLine[]): void {
    const added: ILogLine[] = [];
    for (const line of lines) {
      // Every line has its own id (the hub splits batches): an id already seen is a replay.
      if (typeof line.id !== 'number' || line.id <= t.lastLogId) {
        continue;
      }
      const clean = { id: line.id, stream: line.stream || 'stdout', text: String(line.text) };
      t.log.push(clean);
      added.push(clean);
      t.lastLogId = line.id;
    }
    if (t.log.length > LOG_LINES_KEPT) {
      t.log.splice(0, t.log.length - LOG_LINES_KEPT);
    }
    if (added.length) {
      this._logAppended.emit({ id: t.id, lines: added });
    }
  }

  private _schedule(id: string | null): void {
    if (id !== null) {
      this._dirty.add(id);
    }
    if (this._frame) {
      return;
    }
    const flush = () => {
      this._frame = 0;
      const dirty = this._dirty;
      this._dirty = new Set();
      this._changed.emit(dirty);
    };
    // A hidden tab gets no animation frames; a timer keeps its state (and toasts) current.
    this._frame = document.hidden ? (setTimeout(flush, 250) as unknown as number) : requestAnimationFrame(flush);
    this._frameIsTimer = document.hidden;
  }

  dispose(): void {
    if (this._frame) {
      this._frameIsTimer ? clearTimeout(this._frame) : cancelAnimationFrame(this._frame);
    }
    Signal.clearData(this);
  }

  private _dirty = new Set<string>();
  private _frame = 0;
  private _frameIsTimer = false;
  private _changed = new Signal<this, Set<string>>(this);
  private _ended = new Signal<this, ITask>(this);
  private _logAppended = new Signal<this, { id: string; lines: ILogLine[] }>(this);
  private _unknownTask = new Signal<this, string>(this);
}
