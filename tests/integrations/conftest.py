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
