// Text for counts, rates, durations and errors, as the dashboard writes them (tqdm's style).

import { IProgress, ITask, runSeconds } from './model';

export function formatDuration(seconds: number): string {
  const total = Math.max(0, Math.floor(seconds));
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const s = total % 60;
  const two = (n: number) => String(n).padStart(2, '0');
  return h ? `${h}:${two(m)}:${two(s)}` : `${two(m)}:${two(s)}`;
}

export function formatNumber(n: unknown): string {
  if (typeof n !== 'number' || !Number.isFinite(n)) {
    return '?';
  }
  if (Number.isInteger(n)) {
    return n.toLocaleString('en-US');
  }
  return n.toLocaleString('en-US', { maximumFractionDigits: n < 10 ? 2 : 1 });
}

export function formatCount(p: IProgress): string {
  const unit = p.unit ? ' ' + p.unit : '';
  const total = typeof p.total === 'number' ? '/' + formatNumber(p.total) : '';
  return formatNumber(p.current || 0) + total + unit;
}

export function formatRate(rate: number | null | undefined, unit: string | undefined): string {
  if (typeof rate !== 'number' || !(rate > 0)) {
    return '';
  }
  const u = unit || 'it';
  if (rate < 1) {
    return (1 / rate).toFixed(2) + ' s/' + u;
  }
  const digits = rate >= 100 ? 0 : rate >= 10 ? 1 : 2;
  return rate.toFixed(digits) + ' ' + u + '/s';
}

/** "12/100 it · 3.50 it/s · 00:04<00:25": what the row's meter line says. */
export function formatMeter(t: ITask, final: boolean): string {
  const s = t.snap;
  const p = s.progress || ({} as IProgress);
  const parts: string[] = [];
  // Nothing counted and no total: a count would only say "0 it".
  const idle = !p.current && typeof p.total !== 'number';
  if (!idle) {
    parts.push(formatCount(p));
  }
  const rate = formatRate(p.rate, p.unit);
  if (rate && !final) {
    parts.push(rate);
  }
  const ran = runSeconds(s);
  if (ran !== null) {
    let time = formatDuration(ran);
    if (!final && typeof p.eta === 'number') {
      // The ETA was true when it arrived; count it down between updates.
      time += '<' + formatDuration(Math.max(0, p.eta - (Date.now() - t.etaAt) / 1000));
    }
    parts.push(time);
  }
  return parts.join(' · ');
}

export function stripAnsi(text: string): string {
  // IPython tracebacks and coloured output carry terminal escapes: show the words only.
  // eslint-disable-next-line no-control-regex
  return text.replace(/\x1b\[[0-9;?]*[ -/]*[@-~]/g, '');
}

export function errorText(error: ITask['snap']['error']): string {
  if (!error) {
    return '';
  }
  const head = [error.type, error.message].filter(Boolean).join(': ');
  const raw = Array.isArray(error.traceback) ? error.traceback.join('\n') : error.traceback || '';
  const tb = stripAnsi(raw).trimEnd();
  if (!tb) {
    return head;
  }
  return tb.includes(error.message || '\u0000') ? tb : tb + '\n' + head;
}

export function lineText(text: string): string {
  return stripAnsi(text.endsWith('\n') ? text.slice(0, -1) : text);
}
