// One all-tasks stream per browser, not per tab.
//
// Local Jupyter speaks HTTP/1.1, where a browser opens about six connections per origin: an
// EventSource in every Lab tab would starve Lab's own requests (saves, kernels, contents).
// So the tabs of one origin (and base_url) elect a leader with the Web Locks API: the tab
// holding the lock opens the one EventSource on <base_url>taskstream/api/events and relays
// every event over a BroadcastChannel; the others follow from the channel and ask the leader
// for its whole state when they join. When the leader tab closes, its lock is released, the
// next tab in the lock's queue takes over and resumes the stream from the last event id it
// has seen (the hub replays what was missed, or sends a fresh snapshot).
//
// Where Web Locks are missing (a page served over plain http from another host is not a
// secure context), every tab keeps its own stream: correct, just not shared.

import { ISignal, Signal } from '@lumino/signaling';

import { TaskApi } from './api';
import { ISnapshot, IStreamEvent, TaskStore } from './model';

/** The event types of the all-tasks stream that change a task (README's table). */
const EVENT_TYPES = ['status', 'progress', 'log', 'end', 'deleted', 'bars'];
/** After this many failed opens in a row the leader polls the REST API meanwhile. */
const MAX_FAILED_OPENS = 3;
const POLL_MS = 3000;
const RETRY_STREAM_MS = 30000;

type Message =
  | { kind: 'hello'; from: string }
  | { kind: 'state'; to?: string; tasks: ISnapshot[]; lastEventId: number; connection: Connection }
  | { kind: 'event'; ev: IStreamEvent }
  | { kind: 'task'; snap: ISnapshot }
  | { kind: 'connection'; connection: Connection };

export type Role = 'starting' | 'leader' | 'follower' | 'alone';
export type Connection = 'connecting' | 'stream' | 'polling';

export class SharedTaskStream {
  constructor(readonly store: TaskStore, readonly api: TaskApi) {
    this._name = `jupyter-taskstream:${new URL(api.settings.baseUrl, location.href).href}`;
    store.unknownTask.connect((_, id) => this._fetchTask(id));
  }

  /** A task first seen on the live stream: the leader fetches its snapshot once for all tabs. */
  private _fetchTask(id: string): void {
    if (!this._leads()) {
      return;
    }
    this.api
      .get(id)
      .then(snap => {
        this.store.mergeSnapshot(snap);
        this._post({ kind: 'task', snap });
      })
      .catch(() => undefined); // deleted meanwhile, or the hub is away: events still flow
  }

  get role(): Role {
    return this._role;
  }
  get connection(): Connection {
    return this._connection;
  }
  /** Fires when the role or the leader's connection changes. */
  get stateChanged(): ISignal<this, void> {
    return this._stateChanged;
  }

  start(): void {
    const locks = (navigator as any).locks;
    if (!locks || typeof BroadcastChannel === 'undefined') {
      this._setRole('alone');
      this._connect();
      return;
    }
    this._channel = new BroadcastChannel(this._name);
    this._channel.onmessage = (e: MessageEvent<Message>) => this._onMessage(e.data);
    this._setRole('follower');
    this._post({ kind: 'hello', from: this._tabId });
    // Ask again until someone answers: the leader may itself still be waiting for its snapshot.
    this._helloTimer = window.setInterval(() => {
      if (this._role === 'follower' && !this.store.loaded) {
        this._post({ kind: 'hello', from: this._tabId });
      }
    }, 2000);
    locks
      .request(this._name, () => {
        if (this._disposed) {
          return undefined;
        }
        this._setRole('leader');
        this._connect();
        // Held until this tab goes away (or dispose()): then the next tab leads.
        return new Promise<void>(resolve => (this._releaseLock = resolve));
      })
      .catch((err: unknown) => console.warn('jupyter-taskstream: no lock for the shared stream', err));
  }

  dispose(): void {
    if (this._disposed) {
      return;
    }
    this._disposed = true;
    this._closeSource();
    window.clearInterval(this._helloTimer);
    window.clearTimeout(this._pollTimer);
    window.clearTimeout(this._retryTimer);
    this._channel?.close();
    this._releaseLock?.();
    Signal.clearData(this);
  }

  private _leads(): boolean {
    return this._role === 'leader' || this._role === 'alone';
  }

  private _onMessage(msg: Message): void {
    if (!msg || this._disposed) {
      return;
    }
    if (msg.kind === 'hello') {
      if (this._role === 'leader' && this.store.loaded) {
        this._post(this._stateMessage(msg.from));
      }
      return;
    }
    if (this._role !== 'follower') {
      return; // a leader's own state is the truth; an old leader's late messages are not
    }
    if (msg.kind === 'state') {
      if (msg.to && msg.to !== this._tabId && this.store.loaded) {
        return; // an answer to another tab's hello: this tab is already current
      }
      this.store.applyList(msg.tasks, msg.lastEventId);
      this._setConnection(msg.connection);
    } else if (msg.kind === 'event') {
      this.store.applyEvent(msg.ev);
    } else if (msg.kind === 'task') {
      this.store.mergeSnapshot(msg.snap);
    } else if (msg.kind === 'connection') {
      this._setConnection(msg.connection);
    }
  }

  private _stateMessage(to?: string): Message {
    return {
      kind: 'state',
      to,
      tasks: this.store.serialize(),
      lastEventId: this.store.lastEventId,
      connection: this._connection
    };
  }

  private _post(msg: Message): void {
    try {
      this._channel?.postMessage(msg);
    } catch (err) {
      console.warn('jupyter-taskstream: could not relay to the other tabs', err);
    }
  }

  private _connect(): void {
    if (this._disposed || !this._leads()) {
      return;
    }
    this._closeSource();
    this._setConnection(this._connection === 'polling' ? 'polling' : 'connecting');
    const source = new EventSource(this.api.eventsUrl(this.store.lastEventId), { withCredentials: true });
    this._source = source;
    let opened = false;
    source.onopen = () => {
      opened = true;
      this._failedOpens = 0;
    };
    source.addEventListener('snapshot', (e: MessageEvent) => {
      const data = JSON.parse(e.data);
      this.store.applyList(data.tasks || [], Number(e.lastEventId) || 0);
      this._stopPolling();
      this._setConnection('stream');
      this._post(this._stateMessage());
    });
    for (const type of EVENT_TYPES) {
      source.addEventListener(type, (e: MessageEvent) => {
        const ev: IStreamEvent = { type, id: Number(e.lastEventId) || 0, data: JSON.parse(e.data) };
        this.store.applyEvent(ev);
        this._post({ kind: 'event', ev });
        if (this._connection !== 'stream') {
          this._stopPolling();
          this._setConnection('stream'); // a resume replays events without a snapshot
        }
      });
    }
    source.onerror = () => {
      if (source.readyState === EventSource.CLOSED || !opened) {
        // A non-200 answer (or a proxy that never lets the stream open) ends EventSource's
        // own retries: count it, reopen with backoff, and poll once it keeps failing.
        this._failedOpens += 1;
        source.close();
        if (this._source === source) {
          this._source = null;
        }
        if (this._failedOpens >= MAX_FAILED_OPENS) {
          this._startPolling();
          this._retryTimer = window.setTimeout(() => this._connect(), RETRY_STREAM_MS);
        } else {
          const delay = 500 * 2 ** this._failedOpens * (1 + Math.random());
          this._retryTimer = window.setTimeout(() => this._connect(), delay);
        }
      } else {
        this._setConnection('connecting'); // EventSource reconnects by itself, with Last-Event-ID
      }
    };
  }

  private _closeSource(): void {
    if (this._source) {
      this._source.close();
      this._source = null;
    }
  }

  private _startPolling(): void {
    if (this._connection === 'polling') {
      return;
    }
    this._setConnection('polling');
    const poll = async () => {
      if (this._disposed || this._connection !== 'polling') {
        return;
      }
      try {
        const tasks = await this.api.list();
        if (this._connection === 'polling') {
          // Keep the log lines this tab has: the list carries none.
          const known = new Map(this.store.serialize().map(s => [s.id, s.log]));
          this.store.applyList(
            tasks.map(s => ({ ...s, log: known.get(s.id) || [] })),
            this.store.lastEventId
          );
          this._post(this._stateMessage());
        }
      } catch (err) {
        console.warn('jupyter-taskstream: polling failed', err);
      }
      this._pollTimer = window.setTimeout(poll, POLL_MS);
    };
    void poll();
  }

  private _stopPolling(): void {
    window.clearTimeout(this._pollTimer);
    window.clearTimeout(this._retryTimer);
  }

  private _setRole(role: Role): void {
    if (this._role !== role) {
      this._role = role;
      this._stateChanged.emit();
    }
  }

  private _setConnection(connection: Connection): void {
    if (this._connection !== connection) {
      this._connection = connection;
      if (this._role === 'leader') {
        this._post({ kind: 'connection', connection });
      }
      this._stateChanged.emit();
    }
  }

  private _name: string;
  private _tabId = Math.random().toString(36).slice(2);
  private _role: Role = 'starting';
  private _connection: Connection = 'connecting';
  private _channel: BroadcastChannel | null = null;
  private _source: EventSource | null = null;
  private _releaseLock: (() => void) | null = null;
  private _failedOpens = 0;
  private _helloTimer = 0;
  private _pollTimer = 0;
  private _retryTimer = 0;
  private _disposed = false;
  private _stateChanged = new Signal<this, void>(this);
}
