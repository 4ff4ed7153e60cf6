"""The Dask integration stays out of the way: nothing imports dask, and it turns on by itself.

Each check runs in a fresh interpreter, so what is imported is exactly what the code imported.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytest.importorskip("distributed")

pytestmark = pytest.mark.timeout(60)
ROOT = Path(__file__).resolve().parents[2]


def run(code: str) -> str:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=50)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def test_tasks_never_import_dask():
    out = run("""
        import sys
        import jupyter_taskstream as ts
        from jupyter_taskstream.kernel.runtime import Runtime
        rt = Runtime(publisher=None, kernel_id=None)
        with rt.task("plain") as t:
            print("in the task")
        rt.close(2)
        print(sorted(m for m in sys.modules if m.split(".")[0] in ("dask", "distributed")))
        print("jupyter_taskstream.integrations.dask" in sys.modules)
    """)
    assert out.splitlines() == ["[]", "False"]


def test_dask_imported_inside_a_task_turns_the_integration_on():
    out = run("""
        import jupyter_taskstream as ts
        with ts.task("imports dask") as t:
            import dask, dask.bag
            dask.bag.from_sequence(range(10), npartitions=2).sum().compute(scheduler="sync")
        import distributed
        from jupyter_taskstream.integrations import dask as integration
        rows = integration.tracker_of(t).groups.rows()
        print(t.snapshot()["progress"]["current"] > 0, sum(r[3] for r in rows) > 0)
        print(getattr(distributed.Client._graph_to_futures, "__taskstream__", False))
    """)
    assert out.splitlines() == ["True True", "True"]


def test_dask_imported_before_the_first_task_turns_it_on_at_that_task():
    out = run("""
        import distributed
        import jupyter_taskstream as ts
        print(getattr(distributed.Client._graph_to_futures, "__taskstream__", False))
        with ts.task("first"):
            pass
        print(getattr(distributed.Client._graph_to_futures, "__taskstream__", False))
    """)
    assert out.splitlines() == ["False", "True"]


def test_import_distributed_first_after_the_bridges_are_on():
    # ``import distributed`` imports dask first: dask's hook must not touch the half-loaded
    # distributed (ImportError: cannot import name 'Client' from partially initialized module).
    out = run("""
        from jupyter_taskstream import integrations
        integrations.enable()
        import distributed
        print(getattr(distributed.Client._graph_to_futures, "__taskstream__", False))
    """)
    assert out.splitlines() == ["True"]
