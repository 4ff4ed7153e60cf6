"""Child processes of a task, in this process (no kernel): real subprocesses, pools and joblib.

Every case asserts the exact lines in the task's log, stdout and stderr apart; pool workers'
lines carry the ``[pid N] `` tag of the worker that wrote them.
"""

from __future__ import annotations

import concurrent.futures
import multiprocessing
import os
import re
import subprocess
import sys
import threading

import pytest

from jupyter_taskstream.integrations import processes

from ..kernel_fixtures import lines, rt, wait_until  # noqa: F401  (rt is a fixture)
from . import workers

pytestmark = pytest.mark.timeout(120)
TAGGED = re.compile(r"^\[pid (\d+)\] (.*)$")


@pytest.fixture(autouse=True)
def patched():
    """The process bridges installed for the test, the originals back afterwards."""
    import joblib.externals.loky.process_executor  # noqa: F401  (so its executor is patched too)

    processes.install()
    yield
    processes.uninstall()


def untag(entries, stream):
    """``(pid, text)`` of each tagged line of ``stream``."""
    out = []
    for e in entries:
        if e["stream"] == stream:
            m = TAGGED.match(e["text"])
            assert m, f"untagged worker line: {e['text']!r}"
            out.append((int(m.group(1)), m.group(2)))
    return out


def log(task):
    return task.snapshot()["log"]


# ---- subprocess and os.system ----------------------------------------------------------


def test_subprocess_calls_go_to_the_task_stdout_and_stderr_apart(rt, capfd):
    with rt.task("sub") as t:
        done = subprocess.run(["sh", "-c", "echo one; echo two >&2; echo three; exit 4"])
        out = subprocess.check_output([sys.executable, "-c", "import sys; print('kept'); print('e', file=sys.stderr)"])
        code = subprocess.call(["echo", "called"])
        subprocess.check_call(["echo", "checked"])
        with pytest.raises(subprocess.CalledProcessError):
            subprocess.check_call(["false"])
    assert done.returncode == 4 and done.stdout is None and out == b"kept\n" and code == 0
    assert lines(t, "stdout") == ["one", "three", "called", "checked"]
    assert lines(t, "stderr") == ["two", "e"]
    assert capfd.readouterr() == ("", "")


def test_explicit_pipes_and_files_stay_the_users(rt, tmp_path):
    path = tmp_path / "out.txt"
    with rt.task("mine") as t:
        captured = subprocess.run(["sh", "-c", "echo a; echo b >&2"], capture_output=True, text=True)
        with open(path, "w") as f:
            subprocess.run(["echo", "to file"], stdout=f)
        merged = subprocess.run(["sh", "-c", "echo x; echo y >&2"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    assert (captured.stdout, captured.stderr) == ("a\n", "b\n")
    assert path.read_text() == "to file\n" and merged.stdout == b"x\ny\n"
    assert lines(t) == []


def test_os_system_returns_the_same_wait_status(rt):
    with rt.task("system") as t:
        assert os.system("echo y; echo z >&2; exit 3") == 768
        assert os.system("true") == 0
        assert os.system("kill -9 $$") == 9
    assert lines(t, "stdout") == ["y"] and lines(t, "stderr") == ["z"]


def test_fifty_megabytes_from_a_child_without_deadlock(rt):
    script = "import sys\nline = 'x' * 99 + '\\n'\nfor _ in range(500_000): sys.stdout.write(line)\n"
    rt.config.log_lines = 10
    with rt.task("big") as t:
        assert subprocess.run([sys.executable, "-c", script], timeout=60).returncode == 0
    assert t.snapshot()["log"][-1]["text"] == "x" * 99
    assert t._log.count == 500_000


def test_a_child_sees_a_terminal_only_where_it_would_have(rt):
    probe = [sys.executable, "-c", "import sys; print(sys.stdout.isatty(), sys.stderr.isatty())"]
    without = subprocess.run(probe, stdout=subprocess.PIPE, text=True).stdout.strip()
    with rt.task("tty") as t:
        subprocess.run(probe)
    # Here fd 1 and 2 are whatever pytest left (pipes or files): the child answers the same.
    expected = f"{os.isatty(1)} {os.isatty(2)}"
    assert lines(t, "stdout") == [expected]
    assert without == "False False"


def test_a_terminal_fd_gives_the_child_a_pseudo_terminal(rt):
    import pty

    parent, child = pty.openpty()
    saved = os.dup(1)
    os.dup2(child, 1)
    try:
        with rt.task("pty") as t:
            subprocess.run([sys.executable, "-c", "import sys; print('tty', sys.stdout.isatty())"])
    finally:
        os.dup2(saved, 1)
        for fd in (saved, parent, child):
            os.close(fd)
    assert lines(t, "stdout") == ["tty True"]


def test_two_tasks_running_children_at_once_get_none_of_each_others_lines(rt):
    def job(tag):
        with rt.task(tag) as t:
            subprocess.run(["sh", "-c", f"for i in 1 2 3 4 5; do echo {tag} $i; sleep 0.02; done"])
        return t

    results = {}
    threads = [threading.Thread(target=lambda tag=tag: results.setdefault(tag, job(tag))) for tag in ("left", "right")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    for tag in ("left", "right"):
        assert lines(results[tag]) == [f"{tag} {i}" for i in range(1, 6)]


def test_children_running_at_once_are_tagged_with_their_pid(rt):
    with rt.task("both") as t:
        a = subprocess.Popen(["sh", "-c", "sleep 0.3; echo from a"])
        b = subprocess.Popen(["sh", "-c", "sleep 0.3; echo from b"])
        a.wait(), b.wait()
    assert sorted(lines(t)) == sorted([f"[pid {a.pid}] from a", f"[pid {b.pid}] from b"])


def test_outside_tasks_nothing_changes(capfd):
    subprocess.run(["echo", "plain"])
    assert os.system("echo sys") == 0
    assert capfd.readouterr().out == "plain\nsys\n"


def test_uninstall_restores_the_very_originals():
    import joblib.externals.loky.process_executor as loky
    import multiprocessing.pool
    import multiprocessing.process

    import ptyprocess.ptyprocess as pty

    def originals() -> dict:
        return {
            "pty": vars(pty.PtyProcess)["spawn"],
            "init": subprocess.Popen.__init__,
            "wait": subprocess.Popen.wait,
            "system": os.system,
            "map": multiprocessing.pool.Pool.map,
            "start": multiprocessing.process.BaseProcess.start,
            "submit": concurrent.futures.ProcessPoolExecutor.submit,
            "loky": loky.ProcessPoolExecutor.submit,
        }

    processes.uninstall()
    before = originals()
    processes.install()
    assert subprocess.Popen.__init__ is not before["init"] and os.system is not before["system"]
    assert loky.ProcessPoolExecutor.submit is not before["loky"]
    assert vars(pty.PtyProcess)["spawn"] is not before["pty"]
    processes.uninstall()
    after = originals()
    assert all(after[k] is before[k] for k in before), [k for k in before if after[k] is not before[k]]


# ---- process pools -----------------------------------------------------------------------


@pytest.mark.parametrize("method", ["fork", "spawn", "forkserver"])
def test_pool_workers_print_into_the_submitting_task(rt, method, capfd):
    ctx = multiprocessing.get_context(method)
    with rt.task(method) as t:
        with ctx.Pool(2) as pool:
            assert pool.map(workers.shout, range(4)) == [0, 2, 4, 6]
            assert pool.apply_async(workers.shout, (10,)).get(30) == 20
            assert sorted(pool.imap_unordered(workers.shout, [11, 12])) == [22, 24]
            worker_pids = {child.pid for child in multiprocessing.active_children()}
    entries = log(t)
    out, err = untag(entries, "stdout"), untag(entries, "stderr")
    assert sorted(text for _, text in out) == sorted(f"out {x}" for x in (0, 1, 2, 3, 10, 11, 12))
    assert sorted(text for _, text in err) == sorted(f"err {x}" for x in (0, 1, 2, 3, 10, 11, 12))
    assert {p for p, _ in out} <= worker_pids
    assert "out" not in capfd.readouterr().out


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_a_process_started_in_a_task_prints_into_it(rt, method):
    ctx = multiprocessing.get_context(method)
    with rt.task("process") as t:
        p = ctx.Process(target=workers.shout, args=(5,))
        p.start()
        p.join(30)
    assert [e["text"] for e in log(t)] == [f"[pid {p.pid}] out 5", f"[pid {p.pid}] err 5"]


def test_process_pool_executor_lines_in_order_per_worker(rt):
    with rt.task("executor") as t:
        with concurrent.futures.ProcessPoolExecutor(2) as ex:
            pids = list(ex.map(workers.lines, [0, 100], [50, 50]))
    by_pid: dict[int, list[str]] = {}
    for p, text in untag(log(t), "stdout"):
        by_pid.setdefault(p, []).append(text)
    got = sorted(by_pid.values())
    if len(set(pids)) == 2:
        assert got == [[f"line {i}" for i in range(50)], [f"line {i}" for i in range(100, 150)]]
    else:  # one worker ran both items
        assert got == [[f"line {i}" for i in range(50)] + [f"line {i}" for i in range(100, 150)]]


def test_joblib_loky_workers_print_into_the_task(rt, capfd):
    import joblib

    with rt.task("joblib") as t:
        assert joblib.Parallel(n_jobs=2)(joblib.delayed(workers.shout)(i) for i in range(4)) == [0, 2, 4, 6]
    entries = log(t)
    assert sorted(text for _, text in untag(entries, "stdout")) == [f"out {i}" for i in range(4)]
    assert sorted(text for _, text in untag(entries, "stderr")) == [f"err {i}" for i in range(4)]
    assert "out" not in capfd.readouterr().out


def test_a_pool_made_outside_the_task_gives_each_item_to_the_task_that_submitted_it(rt, capfd):
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(1) as pool:
        pool.map(workers.pid, range(2))  # workers up before any task
        with rt.task("first") as first:
            pool.map(workers.shout, [1])
        pool.map(workers.shout, [2])  # outside any task: where it would go without the extension
        with rt.task("second") as second:
            pool.map(workers.shout, [3])
    assert [text for _, text in untag(log(first), "stdout")] == ["out 1"]
    assert [text for _, text in untag(log(second), "stdout")] == ["out 3"]
    assert "out 1" not in capfd.readouterr().out


def test_two_tasks_sharing_a_pool_at_once_get_only_their_own_items_lines(rt):
    ctx = multiprocessing.get_context("spawn")
    results = {}
    with ctx.Pool(2) as pool:
        pool.map(workers.pid, range(2))

        def job(tag):
            with rt.task(tag) as t:
                pool.starmap(workers.slow_lines, [(tag, 5, 0.01), (tag, 5, 0.01)])
            results[tag] = t

        threads = [threading.Thread(target=job, args=(tag,)) for tag in ("left", "right")]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
    for tag in ("left", "right"):
        assert sorted(text for _, text in untag(log(results[tag]), "stdout")) == sorted([f"{tag} {i}" for i in range(5)] * 2)


def test_integrations_disable_restores_the_originals_and_enable_patches_again():
    from jupyter_taskstream import integrations

    processes.uninstall()
    original_init, original_system = subprocess.Popen.__init__, os.system
    integrations.enable()
    assert subprocess.Popen.__init__ is not original_init
    integrations.disable()
    assert subprocess.Popen.__init__ is original_init and os.system is original_system
    integrations.enable()
