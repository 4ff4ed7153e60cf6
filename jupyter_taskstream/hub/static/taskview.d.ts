// Types of taskview.js for the JupyterLab build (src/panel.ts imports that file as is).
// The JavaScript is the one source; this only describes its exports.

export interface ITaskRecord {
  id: string;
  snap: any;
  log: { id: number; stream: string; text: string }[];
  /** When (on options.now's clock) snap.progress.eta was true. */
  etaAt: number;
}

export interface ICardAction {
  label: string;
  cls: string;
  title: string;
  run(): void;
}

export interface ITaskViewOptions {
  terminal: Set<string>;
  now(): number;
  linkFor(id: string): string;
  onToggle(task: ITaskRecord): void;
  onSelect(task: ITaskRecord, checked: boolean): void;
  onCancel(task: ITaskRecord, button: HTMLButtonElement): void;
  onDelete(task: ITaskRecord, button: HTMLButtonElement): void;
  selectable?: boolean;
  rowActions?: boolean;
  lastLine?: boolean;
  cardActions?(task: ITaskRecord): ICardAction[];
}

export interface IRowView {
  root: HTMLElement;
  line: HTMLElement;
  name: HTMLElement;
  task: ITaskRecord | null;
  card: { root: HTMLElement } | null;
  [part: string]: any;
}

export interface ITaskViews {
  createRow(): IRowView;
  renderRow(view: IRowView, task: ITaskRecord, state?: { selected?: boolean; expanded?: boolean }): void;
  renderRowTime(view: IRowView, task: ITaskRecord): void;
  isFinal(snap: any): boolean;
  shown(snap: any): string;
}

export function createTaskViews(options: ITaskViewOptions): ITaskViews;
export function formatDuration(seconds: number): string;
export function formatNumber(n: unknown): string;
export function formatCount(p: { current?: number; total?: number | null; unit?: string }): string;
export function formatRate(rate: number | null | undefined, unit: string | undefined): string;
export function stripAnsi(text: string): string;
export function errorText(error: any): string;
export function lineText(text: string): string;
export function parseTime(iso: string | null | undefined): number | null;
