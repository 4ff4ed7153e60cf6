"""Fixtures of the integration tests."""

from __future__ import annotations

import pytest

from jupyter_taskstream import integrations


@pytest.fixture(scope="module")
def dask_bridge():
    """The library bridges on, as `jupyter_taskstream.api` turns them on with the default runtime
    (the tests drive private runtimes, which do not)."""
    integrations.enable()
    yield
    integrations.disable()


@pytest.fixture(scope="session")
def dask_cluster():
    """One real ``LocalCluster(processes=True, n_workers=2)`` for every in-process Dask test."""
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0"
    ) as cluster:
        yield cluster


@pytest.fixture(scope="session")
def dask_client(dask_cluster):
    """A client of `dask_cluster` (the default client while the tests run)."""
    distributed = pytest.importorskip("distributed")
    with distributed.Client(dask_cluster) as client:
        yield client
