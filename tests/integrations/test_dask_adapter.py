"""What the Dask integration relies on of distributed's private parts: fails loudly on an upgrade that changes them.

Each adapter names its reliance in its docstring: `integrations.dask.patch_graph_to_futures`
(``Client._graph_to_futures``), `integrations.dask_keys.KeyStream` (``Client._stream_handlers``)
and `integrations.dask_worker_bars.hook_run_task` (``distributed.worker._run_task``).
"""

from __future__ import annotations

import inspect

import pytest

distributed = pytest.importorskip("distributed")

from distributed import worker as worker_module  # noqa: E402

from jupyter_taskstream.integrations.dask_keys import REPORTS  # noqa: E402


def _original(function):
    return getattr(function, "__wrapped__", function)


def test_graph_to_futures_takes_the_graph_and_keys_first():
    params = list(inspect.signature(_original(distributed.Client._graph_to_futures)).parameters)
    assert params[:3] == ["self", "expr", "keys"]


def test_the_client_handles_key_reports_through_its_stream_handlers_table():
    source = inspect.getsource(distributed.Client._handle_report)
    assert "self._stream_handlers[op]" in source and "handler(**msg)" in source
    init = inspect.getsource(distributed.Client.__init__)
    for name in REPORTS:
        assert f'"{name}"' in init, f"Client._stream_handlers has no {name!r} any more"
    # The fields each report carries, as the wrappers pass them on.
    assert list(inspect.signature(distributed.Client._handle_key_in_memory).parameters)[:2] == ["self", "key"]
    assert list(inspect.signature(distributed.Client._handle_task_erred).parameters) == [
        "self", "key", "exception", "traceback",
    ]
    assert list(inspect.signature(distributed.Client._handle_cancelled_keys).parameters)[:2] == ["self", "keys"]


def test_workers_run_each_key_through_the_module_level_run_task():
    params = list(inspect.signature(_original(worker_module._run_task)).parameters)
    assert params[:4] == ["task", "data", "execution_state", "key"]
    # Looked up as a module global at each call, so wrapping the module attribute takes effect.
    assert "_run_task,\n" in inspect.getsource(distributed.Worker.execute)
