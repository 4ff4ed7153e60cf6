"""Tasks of child processes as child bars of the task that started them (no kernel, no hub).

Real Python child processes run real scripts; what they report arrives over the kernel's
real worker socket and is read back from the submitting task's snapshot.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from jupyter_taskstream.integrations import processes
from jupyter_taskstream.kernel import childtasks, parentlink, workerlink
from jupyter_taskstream.protocol import ENV_PARENT

from ..kernel_fixtures import lines, rt  # noqa: F401  (rt is a fixture)

pytestmark = pytest.mark.timeout(120)

SCRIPT = """
import jupyter_taskstream as ts
with ts.task("inner", total=4) as t:
    print("hello")
    for _ in range(4):
        t.update()
    for _ in ts.progress(range(6), desc="nested", leave=True):
        pass
"""


@pytest.fixture(autouse=True)
def patched():
    """The process bridges installed for the test, the originals back afterwards."""
    processes.install()
    yield
    processes.uninstall()


def bars(task):
    return {b["desc"]: b for b in task.snapshot()["bars"]}


def run_child(code: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], check=False, **kwargs)


def test_a_python_childs_task_is_a_child_bar_with_its_lines_tagged(rt):
    with rt.task("outer") as t:
        child = subprocess.Popen([sys.executable, "-c", SCRIPT])
        assert child.wait() == 0
    found = bars(t)
    inner = found[f"[pid {child.pid}] inner"]
    assert (inner["parent"], inner["current"], inner["total"], inner["closed"]) == ("main", 4, 4, True)
    nested = found["nested"]
    assert (nested["parent"], nested["current"], nested["total"], nested["closed"]) == (inner["id"], 6, 6, True)
    assert lines(t) == [f"[pid {child.pid}] hello"]


def test_a_child_started_on_a_pseudo_terminal_reports_too(rt):
    # IPython's !cmd runs through pexpect, on ptyprocess: its environment names the task too.
    import ptyprocess.ptyprocess  # noqa: F401  (so the bridge patches it)

    processes.install()
    from ptyprocess import PtyProcess

    with rt.task("outer") as t:
        child = PtyProcess.spawn([sys.executable, "-c", SCRIPT])
        while True:
            try:
                child.read(4096)
            except EOFError:
                break
        child.wait()
    assert child.exitstatus == 0
    inner = bars(t)[f"[pid {child.pid}] inner"]
    assert (inner["current"], inner["total"], inner["closed"]) == (4, 4, True)


def test_a_failing_child_task_says_so_in_the_submitting_task(rt):
    code = "import jupyter_taskstream as ts\nwith ts.task('bad'):\n    raise ValueError('nope')\n"
    with rt.task("outer") as t:
        done = run_child(code, stderr=subprocess.DEVNULL)
    assert done.returncode == 1
    [bar] = t.snapshot()["bars"]
    assert bar["closed"] and bar["desc"].endswith("] bad")
    assert [line.split("] ", 1)[1] for line in lines(t, "stderr")] == ["task 'bad' failed: ValueError: nope"]


def test_a_child_killed_mid_task_leaves_its_bar_closed_at_its_last_count(rt):
    code = (
        "import os, jupyter_taskstream as ts\n"
        "with ts.task('killed', total=10) as t:\n"
        "    t.update(3)\n"
        "    t.set(message='three')\n"
        "    __import__('jupyter_taskstream.api').api.default_runtime()._pump.run_once()\n"  # progress out now, as the pump would
        "    os._exit(9)\n"
    )
    with rt.task("outer") as t:
        done = run_child(code)
    assert done.returncode == 9
    [bar] = t.snapshot()["bars"]
    assert (bar["current"], bar["total"], bar["postfix"], bar["closed"]) == (3, 10, "three", True)


def test_the_child_environment_names_the_task_and_keeps_the_callers(rt):
    show = "import os; print(os.environ.get('X'), os.environ.get('%s', 'none'))" % ENV_PARENT
    outside = subprocess.run([sys.executable, "-c", show], capture_output=True, text=True, env={**os.environ, "X": "1"})
    assert outside.stdout == "1 none\n"  # outside a task the environment is the caller's, exactly
    with rt.task("outer") as t:
        inside = subprocess.run([sys.executable, "-c", show], capture_output=True, text=True, env={**os.environ, "X": "2"})
    assert inside.stdout == f"2 {workerlink.link().address}|{t.id}\n"


def test_no_child_runtime_outside_children_or_when_the_kernel_is_gone(monkeypatch, tmp_path):
    monkeypatch.delenv(ENV_PARENT, raising=False)
    assert parentlink.child_runtime() is None
    monkeypatch.setenv(ENV_PARENT, f"{tmp_path / 'gone.sock'}|t1")
    assert parentlink.current_parent() == (str(tmp_path / "gone.sock"), "t1")
    assert parentlink.child_runtime() is None  # its own runtime, as without the extension


def test_an_unreadable_message_is_reported_once_and_changes_nothing(rt):
    children = childtasks.ChildTasks(123)
    with rt.task("outer") as t:
        children.receive(t, "{not json")
        children.receive(t, json.dumps({"event": {"task": "unknown", "type": "progress", "data": {}}}))
        children.receive(t, json.dumps({"spec": {"id": "c1"}}))  # no name
    assert t.snapshot()["bars"] == []
    assert [line for line in lines(t, "stderr") if "progress message could not be read" in line]


def test_a_forked_copy_of_the_worker_link_never_touches_the_kernels_sockets(rt):
    # A task ending in a forked worker runs the settlers it inherited: the kernel's link must
    # not read the kernel's sockets there (other workers' lines) nor wait on a lock a kernel
    # thread held at the fork (here: held by this thread, for certain).
    import signal

    server = workerlink.link()
    with rt.task("outer") as t:
        with server._accept_lock:
            pid = os.fork()
            if pid == 0:  # the child: settle must return at once; the alarm ends a hang
                signal.signal(signal.SIGALRM, signal.SIG_DFL)  # not pytest-timeout's handler
                signal.alarm(10)
                code = 1
                try:
                    from jupyter_taskstream.kernel.childpipes import settle

                    settle(t)
                    code = 0
                finally:
                    os._exit(code)
        _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert os.path.exists(server.address)
