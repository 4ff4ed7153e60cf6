// jupyter-taskstream's JupyterLab (and Notebook 7) extension: wires the shared task stream
// to the Tasks panel, the status-bar item, notifications and palette commands.
//
// One plugin on purpose: the parts share one store and one stream per tab, and every
// dependency but the application is optional, so the same plugin runs in Notebook 7
// (no ILabShell: the panel and a log go to the right sidebar, the status item to the right
// of the menu bar, as Notebook 7 has no status bar) and in a Lab without a status bar.

import { ILabShell, ILayoutRestorer, JupyterFrontEnd, JupyterFrontEndPlugin } from '@jupyterlab/application';
import { ICommandPalette, MainAreaWidget, Notification, WidgetTracker } from '@jupyterlab/apputils';
import { INotebookTracker, NotebookPanel } from '@jupyterlab/notebook';
import { ISettingRegistry } from '@jupyterlab/settingregistry';
import { IStatusBar } from '@jupyterlab/statusbar';
import { LabIcon } from '@jupyterlab/ui-components';

import { TaskApi } from './api';
import { formatDuration } from './format';
import { LogView } from './logview';
import { ITask, runSeconds, TaskStore } from './model';
import { TasksPanel } from './panel';
import { TaskStatusItem } from './statusbar';
import { SharedTaskStream } from './stream';

const PLUGIN_ID = 'jupyter-taskstream:plugin';

export namespace CommandIDs {
  export const openPanel = 'taskstream:open-panel';
  export const openLog = 'taskstream:open-log';
  export const cancelKernelTasks = 'taskstream:cancel-kernel-tasks';
  export const openDashboard = 'taskstream:open-dashboard';
}

const TASKS_SVG = `<svg xmlns="http://www.w3.org/2000/svg" width="16" viewBox="0 0 24 24">
  <g class="jp-icon3" fill="#616161">
    <rect x="3" y="4" width="18" height="3" rx="1.5" opacity="0.35"/>
    <rect x="3" y="4" width="12" height="3" rx="1.5"/>
    <rect x="3" y="10.5" width="18" height="3" rx="1.5" opacity="0.35"/>
    <rect x="3" y="10.5" width="6" height="3" rx="1.5"/>
    <rect x="3" y="17" width="18" height="3" rx="1.5"/>
  </g>
</svg>`;

export const tasksIcon = new LabIcon({ name: 'jupyter-taskstream:tasks', svgstr: TASKS_SVG });

type Outcome = 'always' | 'unless-current' | 'never';

/** What the settings say about notifications (schema/plugin.json). */
interface INotifySettings {
  notifyAfterSeconds: number;
  notifyFailed: Outcome;
  notifyCompleted: Outcome;
  notifyCancelled: Outcome;
}

const DEFAULT_NOTIFY: INotifySettings = {
  notifyAfterSeconds: 10,
  notifyFailed: 'always',
  notifyCompleted: 'unless-current',
  notifyCancelled: 'never'
};

/** The open notebook whose kernel runs ``kernelId``, if any. */
function notebookOfKernel(tracker: INotebookTracker | null, kernelId: string | null): NotebookPanel | null {
  if (!tracker || !kernelId) {
    return null;
  }
  return tracker.find(panel => panel.sessionContext.session?.kernel?.id === kernelId) ?? null;
}

/** The index of the cell that started ``task`` in ``panel``, or -1. */
function findCell(panel: NotebookPanel, task: ITask): number {
  const cells = panel.content.widgets;
  const selector = `[data-task-id="${CSS.escape(task.id)}"]`;
  // The live widget names its task; a finished one left text that does not, so fall back
  // to the output's text and then to a %%taskstream cell with the task's name.
  for (let i = 0; i < cells.length; i++) {
    if (cells[i].node.querySelector(selector)) {
      return i;
    }
  }
  for (let i = 0; i < cells.length; i++) {
    const model = cells[i].model as any;
    const outputs = model.outputs;
    if (!outputs) {
      continue;
    }
    for (let j = 0; j < outputs.length; j++) {
      const data = outputs.get(j).data || {};
      if (JSON.stringify(data).includes(task.id)) {
        return i;
      }
    }
  }
  const name = task.snap.name;
  for (let i = cells.length - 1; i >= 0; i--) {
    const source = cells[i].model.sharedModel.getSource();
    const first = source.split('\n', 1)[0];
    if (first.startsWith('%%taskstream') && first.includes(name)) {
      return i;
    }
  }
  return -1;
}

const plugin: JupyterFrontEndPlugin<void> = {
  id: PLUGIN_ID,
  description: 'A Tasks panel, a status-bar item and notifications for jupyter_taskstream tasks.',
  autoStart: true,
  optional: [ILabShell, ILayoutRestorer, ICommandPalette, IStatusBar, ISettingRegistry, INotebookTracker],
  activate: (
    app: JupyterFrontEnd,
    labShell: ILabShell | null,
    restorer: ILayoutRestorer | null,
    palette: ICommandPalette | null,
    statusBar: IStatusBar | null,
    settingRegistry: ISettingRegistry | null,
    notebooks: INotebookTracker | null
  ) => {
    const api = new TaskApi();
    const store = new TaskStore();
    const stream = new SharedTaskStream(store, api);
    stream.start();
    window.addEventListener('pagehide', () => stream.dispose());

    const logs = new WidgetTracker<MainAreaWidget<LogView>>({ namespace: 'jupyter-taskstream-log' });

    const panel = new TasksPanel(store, stream, api, {
      openLog: id => void app.commands.execute(CommandIDs.openLog, { id }),
      goToCell: async id => {
        const task = store.tasks.get(id);
        const nb = task ? notebookOfKernel(notebooks, task.snap.kernel_id) : null;
        if (!task || !nb) {
          return false;
        }
        const index = findCell(nb, task);
        if (index < 0) {
          return false;
        }
        app.shell.activateById(nb.id);
        nb.content.activeCellIndex = index;
        await nb.content.scrollToCell(nb.content.widgets[index], 'center');
        return true;
      }
    });
    panel.title.icon = tasksIcon;
    panel.title.caption = 'Tasks';
    // JupyterLab's left sidebar; Notebook 7 has no ILabShell and puts tools on the right
    // (View > Right Sidebar > Show Tasks), on its file browser and notebook pages alike.
    app.shell.add(panel, labShell ? 'left' : 'right', { rank: 650 });
    if (restorer) {
      restorer.add(panel, 'jupyter-taskstream-panel');
    }

    const { commands } = app;
    commands.addCommand(CommandIDs.openPanel, {
      label: 'Show Tasks Panel',
      caption: 'Open the Tasks panel (every task of the server, live)',
      icon: args => (args.isPalette ? undefined : tasksIcon),
      execute: args => {
        app.shell.activateById(panel.id);
        const id = args.id as string | undefined;
        if (id) {
          panel.showTask(id);
        }
      }
    });
    commands.addCommand(CommandIDs.openLog, {
      label: args => (args.id ? `Open Log of Task ${args.id}` : 'Open Task Log'),
      execute: args => {
        const id = args.id as string;
        if (!id) {
          return;
        }
        const open = logs.find(w => w.content.taskId === id);
        if (open) {
          app.shell.activateById(open.id);
          return open;
        }
        const content = new LogView(id, store, api);
        const widget = new MainAreaWidget({ content });
        widget.id = `jupyter-taskstream-log-${id}`;
        widget.title.icon = tasksIcon;
        widget.title.closable = true;
        void logs.add(widget);
        if (labShell) {
          app.shell.add(widget, 'main');
        } else {
          // Notebook 7's main area holds its one page (the notebook, the file browser) and
          // ignores a second widget: the log goes to the right sidebar, one log at a time
          // (the status item or "Show Tasks Panel" switches back to the list).
          const others: MainAreaWidget<LogView>[] = [];
          logs.forEach(other => other !== widget && others.push(other));
          others.forEach(other => other.dispose());
          app.shell.add(widget, 'right', { rank: 660 });
        }
        app.shell.activateById(widget.id);
        return widget;
      }
    });
    const currentKernelId = (): string | null =>
      notebooks?.currentWidget?.sessionContext.session?.kernel?.id ?? null;
    commands.addCommand(CommandIDs.cancelKernelTasks, {
      label: 'Cancel All Running Tasks of the Current Kernel',
      caption: "Ask every running task of the current notebook's kernel to stop",
      isEnabled: () => currentKernelId() !== null,
      execute: async () => {
        const kernelId = currentKernelId();
        const running = Array.from(store.tasks.values()).filter(
          t => t.snap.kernel_id === kernelId && !['completed', 'failed', 'cancelled'].includes(t.snap.status)
        );
        const results = await Promise.allSettled(running.map(t => api.cancel(t.id)));
        const failed = results.filter(r => r.status === 'rejected').length;
        const asked = running.length - failed;
        Notification.info(
          running.length
            ? `Asked ${asked} task${asked === 1 ? '' : 's'} to stop` + (failed ? ` (${failed} could not be reached)` : '')
            : 'The current kernel runs no task.',
          { autoClose: 4000 }
        );
      }
    });
    commands.addCommand(CommandIDs.openDashboard, {
      label: 'Open the TaskStream Dashboard',
      caption: 'The standalone dashboard, in a new browser tab',
      execute: () => {
        window.open(api.dashboardUrl, '_blank', 'noopener');
      }
    });
    if (palette) {
      const category = 'TaskStream';
      for (const command of [CommandIDs.openPanel, CommandIDs.cancelKernelTasks, CommandIDs.openDashboard]) {
        palette.addItem({ command, category });
      }
    }
    if (restorer) {
      void restorer.restore(logs, {
        command: CommandIDs.openLog,
        args: w => ({ id: w.content.taskId }),
        name: w => w.content.taskId
      });
    }

    const item = new TaskStatusItem(store, () => void commands.execute(CommandIDs.openPanel));
    if (statusBar) {
      statusBar.registerStatusItem(PLUGIN_ID, {
        item,
        align: 'left',
        rank: 4,
        isActive: () => true
      });
    } else if (!labShell) {
      // Notebook 7 has no status bar: the item goes to the right of its menu bar, after the
      // spacer (rank 900) and before the kernel status (10010), on every page.
      item.addClass('jp-TaskStream-menuItem');
      app.shell.add(item, 'menu', { rank: 1000 });
    }

    // Notifications: a task that ran at least the threshold ends, on the live stream.
    let notify: INotifySettings = { ...DEFAULT_NOTIFY };
    if (settingRegistry) {
      void settingRegistry
        .load(PLUGIN_ID)
        .then(settings => {
          const read = () => {
            notify = { ...DEFAULT_NOTIFY, ...(settings.composite as Partial<INotifySettings>) };
          };
          read();
          settings.changed.connect(read);
        })
        .catch(err => console.warn('jupyter-taskstream: settings not loaded', err));
    }
    store.ended.connect((_, task) => {
      const s = task.snap;
      const rule =
        s.status === 'failed' ? notify.notifyFailed : s.status === 'cancelled' ? notify.notifyCancelled : notify.notifyCompleted;
      const ran = runSeconds(s);
      if (rule === 'never' || ran === null || ran < notify.notifyAfterSeconds) {
        return;
      }
      if (rule === 'unless-current') {
        const current = app.shell.currentWidget;
        const nb = notebookOfKernel(notebooks, s.kernel_id);
        if (nb && current === nb && document.visibilityState === 'visible') {
          return; // the user is looking at the notebook (and its widget) already
        }
      }
      const type = s.status === 'failed' ? 'error' : s.status === 'cancelled' ? 'warning' : 'success';
      const message = `Task "${s.name}" ${s.status} after ${formatDuration(ran)}`;
      Notification.emit(message, type, {
        autoClose: s.status === 'failed' ? false : 8000,
        actions: [
          {
            label: 'Show',
            caption: 'Show the task in the Tasks panel',
            callback: () => void commands.execute(CommandIDs.openPanel, { id: task.id })
          },
          {
            label: 'Log',
            caption: "Open the task's log",
            callback: () => void commands.execute(CommandIDs.openLog, { id: task.id })
          }
        ]
      });
    });
  }
};

export default plugin;
