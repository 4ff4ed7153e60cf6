"""Cases 12-13: the Dask integration on a real 2-process LocalCluster, in this process.

Case 12 times a graph of 10,000 tiny keys (``client.map`` + ``gather``) three ways in one
run, interleaved: inside a task (the integration counts every future and tags the graph),
outside any task (plain Dask, the integration does nothing), and plain Dask with its own
``distributed.progress()`` text bar (written to a throwaway stream). Case 13 has a worker
print 1,000 timestamped lines a second inside a task and measures when each reaches the
task's log in this process (the kernel side; the hub is measured by cases 2-3).

The runtime is a private one without a hub (as in the tests), so the numbers are the
integration's own cost. Workers inherit this process's ``sys.path`` (spawn), so they import
this module for the printing function.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import time

from benchmarks.harness import BenchConfig, Row, percentile

__all__ = ["case12", "case13", "print_lines"]


def print_lines(n: int, rate: float) -> int:
    """On a worker: print ``n`` lines carrying their wall-clock time, ``rate`` lines a second."""
    start = time.time()
    for i in range(n):
        due = start + i / rate
        pause = due - time.time()
        if pause > 0:
            time.sleep(pause)
        print(f"line {i} at {time.time():.6f}")
    return n


@contextlib.contextmanager
def _cluster_and_runtime():
    from distributed import Client, LocalCluster

    from jupyter_taskstream import integrations
    from jupyter_taskstream.kernel.config import RuntimeConfig
    from jupyter_taskstream.kernel.runtime import Runtime

    # The bridges, as `jupyter_taskstream.api` turns them on with its default runtime (a
    # private runtime does not): without this, "integration on" would measure plain Dask.
    integrations.enable()
    rt = Runtime(RuntimeConfig(log_lines=20_000), publisher=None, kernel_id=None)
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0") as cluster:
        with Client(cluster) as client:
            with rt.task("warm up"):
                client.gather(client.map(abs, range(100)))  # registers the worker plugin once
            yield client, rt
    rt.close(2)
    integrations.disable()


def _case10(cfg: BenchConfig) -> list[Row]:
    from distributed import progress

    n = cfg.pick(10_000, 2_000, 200)
    times: dict[str, list[float]] = {"with": [], "without": [], "progress": []}
    #: CPU seconds of this (the client's) process: what the integration adds, apart from the
    #: cluster's processes and from other load on the machine.
    cpu: dict[str, list[float]] = {"with": [], "without": [], "progress": []}
    counted: list[float] = []

    with _cluster_and_runtime() as (client, rt):

        def without(i: int) -> None:
            client.gather(client.map(abs, range(-i * n, -i * n + n)))

        def with_integration(i: int) -> None:
            with rt.task("bench: dask map") as t:
                client.gather(client.map(abs, range(-i * n, -i * n + n)))
            counted.append(t.snapshot()["progress"]["current"])

        def with_progress(i: int) -> None:
            futures = client.map(abs, range(-i * n, -i * n + n))
            with contextlib.redirect_stdout(io.StringIO()):
                progress(futures, notebook=False)
            client.gather(futures)

        variants = {"without": without, "with": with_integration, "progress": with_progress}
        names = list(variants)
        for run in range(cfg.warmup + cfg.runs):
            # A different order each run, so drifting machine load favours no variant.
            for name in names[run % 3 :] + names[: run % 3]:
                # Distinct keys per run and variant: nothing is served from an earlier run.
                salt = run * 3 + names.index(name) + 1
                c0, t0 = time.process_time(), time.perf_counter()
                variants[name](salt)
                elapsed, used = time.perf_counter() - t0, time.process_time() - c0
                if run >= cfg.warmup:
                    times[name].append(elapsed)
                    cpu[name].append(used)
    note = f"{n:,} keys of abs() on LocalCluster(n_workers=2, threads_per_worker=1, processes=True)"
    return [
        Row(12, f"wall time, {n:,} tiny keys, in a task (integration on)", "s", times["with"],
            peer="plain Dask, no task", peer_values=times["without"], target="≤ 1.05× plain Dask",
            check=lambda m, p: p is not None and m <= 1.05 * p, note=note),
        Row(12, f"wall time, {n:,} tiny keys, Dask's progress() text bar", "s", times["progress"],
            peer="plain Dask, no task", peer_values=times["without"], note="for comparison"),
        Row(12, "client process CPU, in a task (integration on)", "s", cpu["with"],
            peer="plain Dask, no task", peer_values=cpu["without"], note="the client's share: what the integration adds"),
        Row(12, "client process CPU, Dask's progress() text bar", "s", cpu["progress"],
            peer="plain Dask, no task", peer_values=cpu["without"], note="for comparison"),
        Row(12, "keys counted on the task's bar", "keys", counted, target=f"= {n:,}",
            check=lambda m, p: m == n),
    ]


def _case11(cfg: BenchConfig) -> list[Row]:
    seconds = cfg.pick(3.0, 1.0, 0.3)
    rate = 1000.0
    n = int(seconds * rate)
    p50s, p95s, lost = [], [], []
    with _cluster_and_runtime() as (client, rt):
        for run in range(cfg.warmup + cfg.runs):
            latencies: list[float] = []
            with rt.task("bench: worker prints") as t:
                original = t.log

                def log(text: str, original=original) -> None:
                    now = time.time()
                    for line in text.split("\n"):
                        at = line.rpartition(" at ")[2]
                        with contextlib.suppress(ValueError):
                            latencies.append((now - float(at)) * 1000)
                    original(text)

                t.log = log  # type: ignore[method-assign]
                client.submit(print_lines, n, rate, pure=False).result()
            if run >= cfg.warmup:
                p50s.append(percentile(latencies, 50))
                p95s.append(percentile(latencies, 95))
                lost.append(n - len(latencies))
    note = f"{n:,} lines at {rate:,.0f} lines/s from one worker, to the task's log in this process"
    return [
        Row(13, "worker print → task log, p50", "ms", p50s, target="≤ 250 ms", check=lambda m, p: m <= 250, note=note),
        Row(13, "worker print → task log, p95", "ms", p95s, note=note),
        Row(13, "worker lines lost", "lines", lost, target="0", check=lambda m, p: m == 0),
    ]


async def case12(cfg: BenchConfig) -> list[Row]:
    """10,000 tiny keys: integration on vs plain Dask vs Dask's progress()."""
    return await asyncio.to_thread(_case10, cfg)


async def case13(cfg: BenchConfig) -> list[Row]:
    """Latency of worker prints at 1,000 lines/s to the task's log."""
    return await asyncio.to_thread(_case11, cfg)
