// The status-bar item: how many tasks run, and one bar for all of them; a click opens the panel.

import { Widget } from '@lumino/widgets';

import { FINAL, TaskStore } from './model';

export class TaskStatusItem extends Widget {
  constructor(
    readonly store: TaskStore,
    onClick: () => void
  ) {
    super();
    this.addClass('jp-TaskStream-statusItem');
    this.node.title = 'Tasks: click to open the Tasks panel';
    this.node.setAttribute('role', 'button');
    this._label = document.createElement('span');
    this._label.className = 'jp-TaskStream-statusLabel';
    this._track = document.createElement('span');
    this._track.className = 'jp-TaskStream-track jp-TaskStream-statusTrack';
    this._bar = document.createElement('span');
    this._bar.className = 'jp-TaskStream-bar';
    this._track.appendChild(this._bar);
    this.node.append(this._label, this._track);
    this.node.addEventListener('click', onClick);
    store.changed.connect(this._render, this);
    this._render();
  }

  private _render(): void {
    let running = 0;
    let done = 0;
    let known = 0;
    for (const t of this.store.tasks.values()) {
      if (FINAL.has(t.snap.status)) {
        continue;
      }
      running += 1;
      const f = t.snap.progress?.fraction;
      if (typeof f === 'number') {
        done += f;
        known += 1;
      }
    }
    this.node.dataset.running = String(running);
    this._label.textContent = running ? `${running} running` : 'Tasks';
    // The mean of the bars that know their total: a task with no total adds no fraction.
    const overall = known ? done / known : 0;
    this._track.hidden = running === 0;
    this._bar.style.width = `${Math.round(overall * 1000) / 10}%`;
    this.node.title = running
      ? `${running} task${running === 1 ? '' : 's'} running` +
        (known ? `, ${Math.floor(overall * 100)}% done overall` : '') +
        ': click to open the Tasks panel'
      : 'No task running: click to open the Tasks panel';
  }

  dispose(): void {
    this.store.changed.disconnect(this._render, this);
    super.dispose();
  }

  private _label: HTMLElement;
  private _track: HTMLElement;
  private _bar: HTMLElement;
}
