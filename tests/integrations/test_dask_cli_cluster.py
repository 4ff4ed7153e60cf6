"""Tasks against clusters of separate processes started with the ``dask`` command lines.

One cluster whose workers have jupyter_taskstream (their output reaches the task), and
one whose worker does not (progress still shows; the task says once why the workers'
output is missing; the work runs as usual). Processes are stopped by pid.
"""

from __future__ import annotations

import operator
import re
import time

import pytest

distributed = pytest.importorskip("distributed")


from ..kernel_fixtures import lines, rt, wait_until  # noqa: E402,F401
from . import dask_helpers as h  # noqa: E402
from .cli_cluster import CAN_HIDE_PACKAGE, CliCluster  # noqa: E402

pytestmark = [pytest.mark.timeout(90), pytest.mark.usefixtures("dask_bridge")]

TAG = re.compile(r"^\[(tcp://[^\]]+)\] (.*)$")


def _cluster(tmp_path_factory, name: str, n_workers: int, bare: bool):
    cluster = CliCluster(tmp_path_factory.mktemp(name), n_workers=n_workers, bare=bare)
    try:
        client = distributed.Client(cluster.address)
        client.wait_for_workers(n_workers, timeout=60)
    except BaseException:
        cluster.stop()
        raise
    return cluster, client


@pytest.fixture(scope="module")
def cli(tmp_path_factory):
    """``(cluster, client)``: a scheduler and 2 workers with the package, as processes."""
    cluster, client = _cluster(tmp_path_factory, "cli", 2, bare=False)
    yield cluster, client
    client.close()
    cluster.stop()
    assert all(p.poll() is not None for p in cluster.processes)


@pytest.fixture(scope="module")
def bare(tmp_path_factory):
    """``(cluster, client)``: a scheduler and 1 worker that cannot import jupyter_taskstream."""
    if not CAN_HIDE_PACKAGE:
        pytest.skip("jupyter_taskstream is installed in site-packages: a worker cannot be started without it")
    cluster, client = _cluster(tmp_path_factory, "bare", 1, bare=True)
    yield cluster, client
    client.close()
    cluster.stop()


def test_cli_workers_output_and_progress_reach_the_task(rt, cli):
    cluster, client = cli
    workers = set(client.scheduler_info()["workers"])
    with rt.task("cli") as t:
        assert client.gather(client.map(h.shout, range(12), marker="cli")) == list(range(12))
    snap = t.snapshot()
    assert (snap["progress"]["current"], snap["progress"]["total"]) == (12, 12)
    assert snap["message"] == "shout 12/12"
    got = [m.groups() for m in map(TAG.match, lines(t)) if m]
    assert sorted(text for _, text in got) == sorted(h.expected_lines("cli", range(12)))
    assert {addr for addr, _ in got} <= workers
    assert not [line for line in lines(t) if line.startswith("dask: the workers")]


def test_cli_cancel_ends_the_task_within_5s(rt, cli):
    cluster, client = cli
    submitted = []

    def body():
        submitted.extend(client.map(h.sleep_then, range(4), seconds=6.0, pure=False))
        client.gather(submitted)

    t = rt.run(body, name="cli busy")
    wait_until(lambda: any(client.processing().values()), message="the cluster to be busy")
    started = time.monotonic()
    t.cancel()
    assert t.wait(5) and time.monotonic() - started < 5
    assert t.status == "cancelled" and all(f.cancelled() for f in submitted)


def test_cli_outside_tasks_dask_print_still_reaches_the_client(cli, capsys):
    _, client = cli
    client.submit(h.outside, "cli outside", pure=False).result()
    seen = []
    wait_until(lambda: seen.append(capsys.readouterr().out) or "cli outside" in "".join(seen))


def test_worker_without_the_package_degrades_with_one_message(rt, bare):
    cluster, client = bare
    assert client.run(lambda: __import__("importlib.util").util.find_spec("jupyter_taskstream") is None)
    # The worker cannot import this test's modules either: the work is builtins and operator.
    with rt.task("bare") as t:
        assert client.gather(client.map(exec, [f"print('bare {x}')" for x in range(8)])) == [None] * 8
        assert client.submit(operator.add, 1, 1).result() == 2
    assert t.status == "completed"
    snap = t.snapshot()
    assert (snap["progress"]["current"], snap["progress"]["total"]) == (9, 9)
    assert snap["message"] == "exec 8/8 · add 1/1"
    said = [line for line in lines(t) if line.startswith("dask: ")]
    assert len(said) == 1, lines(t)
    assert "not forwarded" in said[0] and "jupyter_taskstream" in said[0]
    assert not [line for line in lines(t) if TAG.match(line)]
    # A second task is told once too; the work keeps running as usual.
    with rt.task("bare again") as t2:
        assert client.submit(operator.add, 2, 2).result() == 4
    assert [line for line in lines(t2) if line.startswith("dask: ")] == said
    assert all(p.poll() is None for p in cluster.processes), "a process of the cluster died"


def test_worker_without_the_package_runs_tqdm_as_plain_tqdm(rt, bare):
    _, client = bare
    # Checked on the worker: tqdm drew its own text, counted all, and nothing failed.
    code = (
        "import io\nfrom tqdm import tqdm\nout = io.StringIO()\nbar = tqdm(range(5), file=out)\n"
        "for _ in bar: pass\nassert bar.n == 5 and '5/5' in out.getvalue(), out.getvalue()"
    )
    with rt.task("bare tqdm") as t:
        assert client.submit(exec, code, pure=False).result() is None
    assert t.status == "completed"
    assert [bar for bar in t.snapshot()["bars"] if bar["unit"] != "key"] == []


def test_worker_without_the_package_keeps_dasks_print_forwarding(bare, capsys):
    _, client = bare
    code = "from dask.distributed import print as p; p('from the bare worker')"
    client.submit(exec, code, pure=False).result()
    seen = []
    wait_until(lambda: seen.append(capsys.readouterr().out) or "from the bare worker" in "".join(seen))
