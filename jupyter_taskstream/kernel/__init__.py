"""The kernel side: what runs inside a Jupyter kernel (or any Python process) to run tasks.

`runtime.Runtime` (tasks, the view thread, the hub connection), `task.Task` with
`taskcore.TaskCore` and its parts (`tasklog`, `reporting`, `watchers`, `interrupt`),
`progress` (the loop wrapper), `capture` and `context` (output and task context),
`childpipes`, `workerlink` and `workerside` (output of child processes and pool workers),
`publisher`/`outbox` and `commands` (the two HTTP streams to the hub), `sampler` (the view
thread), `config`, `host` (what is known about the kernel process), `diagnostics` (the
runtime's own warnings) and `_compat` (other libraries' private parts, in one place).

Nothing here imports the views, the hub, tornado or jupyter_server; IPython and ipykernel
are only consulted when the process has loaded them already. Front ends plug in through
`Runtime(view=...)`; `jupyter_taskstream.api` wires the default runtime to `views.auto`.
"""
