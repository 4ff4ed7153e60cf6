"""The hub: the jupyter-server extension that keeps tasks and serves them (server side).

Runs inside the Jupyter server process; never imports IPython, ipywidgets or the kernel
side. `app` wires it up; `rest`, `streams`, `ingest` and `page` are its HTTP handlers;
`registry` (split into `gate`, `commit`, `commands`, `duplicates`, `recovery`,
`subscription`) keeps the tasks; `eventlog`, `store` and `sse` are its log, storage and
wire format; `kernels` follows the kernels that publish to it; `tornado_push` holds the
tornado internals of the fast SSE path. The contract with kernels is `..protocol`.
"""
