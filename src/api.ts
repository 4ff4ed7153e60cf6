// The hub's REST endpoints, through JupyterLab's ServerConnection: it adds the auth header
// and the XSRF token that POST and DELETE need, under the server's base_url.

import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';

import { ILogLine, ISnapshot } from './model';

export const API_PATH = 'taskstream/api';

/** A page of ``GET tasks/{id}/log``. */
export interface ILogPage {
  events: { id: number; data: { stream?: string; text: string } }[];
  last_event_id: number;
  truncated: boolean;
}

export class TaskApi {
  constructor(readonly settings: ServerConnection.ISettings = ServerConnection.makeSettings()) {}

  /** A URL under the server's base_url (``parts`` are path segments, each encoded). */
  url(...parts: string[]): string {
    return URLExt.join(this.settings.baseUrl, API_PATH, ...parts.map(encodeURIComponent));
  }

  /** The standalone dashboard's address. */
  get dashboardUrl(): string {
    return URLExt.join(this.settings.baseUrl, 'taskstream') + '/';
  }

  /** The all-tasks SSE stream's URL, resuming after ``lastEventId`` when it is known. */
  eventsUrl(lastEventId: number): string {
    const query: Record<string, string> = {};
    if (lastEventId > 0) {
      query.last_event_id = String(lastEventId);
    }
    // Same origin: the login cookie authenticates. Elsewhere, as Lab does for its websockets.
    if (this.settings.appendToken && this.settings.token) {
      query.token = this.settings.token;
    }
    const search = URLExt.objectToQueryString(query);
    return this.url('events') + search;
  }

  async list(): Promise<ISnapshot[]> {
    const body = await this._json('GET', this.url('tasks'));
    return body.tasks as ISnapshot[];
  }

  async get(id: string): Promise<ISnapshot> {
    return this._json('GET', this.url('tasks', id));
  }

  async cancel(id: string): Promise<void> {
    await this._json('POST', this.url('tasks', id, 'cancel'), '{}');
  }

  async remove(id: string): Promise<void> {
    await this._json('DELETE', this.url('tasks', id));
  }

  /**
   * One page of a task's log: the lines after ``after`` (an event id; 0 for the start), or
   * with ``before`` the newest ``limit`` lines below that id, or with ``tail`` the last lines.
   */
  async log(id: string, query: { after?: number; before?: number; limit?: number; tail?: number }): Promise<ILogPage> {
    const params: Record<string, string> = {};
    for (const [key, value] of Object.entries(query)) {
      if (value !== undefined) {
        params[key] = String(value);
      }
    }
    return this._json('GET', this.url('tasks', id, 'log') + URLExt.objectToQueryString(params));
  }

  /** A whole page of lines from ``log`` as ``ILogLine``s. */
  static lines(page: ILogPage): ILogLine[] {
    return page.events.map(e => ({ id: e.id, stream: e.data.stream || 'stdout', text: String(e.data.text) }));
  }

  private async _json(method: string, url: string, body?: string): Promise<any> {
    const init: RequestInit = { method };
    if (body !== undefined) {
      init.body = body;
    }
    const response = await ServerConnection.makeRequest(url, init, this.settings);
    if (!response.ok) {
      let message = response.statusText;
      try {
        message = (await response.json()).message || message;
      } catch {
        // not JSON: keep the status text
      }
      throw new Error(`${method} ${url.replace(/token=[^&]*/, 'token=…')}: ${response.status} ${message}`);
    }
    return response.status === 204 ? null : response.json();
  }
}
