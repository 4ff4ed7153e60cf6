// Text for counts, rates, durations, errors and log lines: the dashboard's own functions
// (hub/static/taskview.js, the one source of how a task is written), re-exported for Lab.

export {
  errorText,
  formatCount,
  formatDuration,
  formatNumber,
  formatRate,
  lineText,
  stripAnsi
} from '../jupyter_taskstream/hub/static/taskview.js';
