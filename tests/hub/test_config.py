"""Configuration: each option declared once, set on TaskStreamApp, and old class paths still load."""

from __future__ import annotations

import pytest

from jupyter_taskstream.hub.app import TaskStreamApp
from jupyter_taskstream.hub.classpaths import MOVED_CLASSES
from jupyter_taskstream.hub.options import RegistryOptions
from jupyter_taskstream.hub.registry import TaskRegistry
from jupyter_taskstream.hub.store import MemoryStore, SQLiteStore, TaskStore

SET = {
    "retention_events": 50,
    "retention_all_events": 500,
    "progress_rate_hz": 4.0,
    "max_log_event_bytes": 1000,
    "max_tasks": 7,
    "retention_finished_events": 3000,
    "snapshot_log_lines": 9,
    "all_snapshot_log_lines": 3,
    "subscriber_backlog": 77,
}


@pytest.fixture
def taskstream_config():
    # Old dotted paths, as configuration files written before the hub/ move name them.
    return {
        "heartbeat_interval": 0.5,
        "retry_ms": 100,
        "store": "jupyter_taskstream.store.MemoryStore",
        "registry_class": "jupyter_taskstream.registry.TaskRegistry",
        **SET,
    }


def test_each_registry_option_is_declared_once():
    names = set(RegistryOptions.class_own_traits())
    assert names == set(SET)
    for cls in (TaskStreamApp, TaskRegistry, TaskStore, MemoryStore, SQLiteStore):
        again = names & set(cls.class_own_traits())
        assert not again, f"{cls.__name__} declares {again} again"
    for name in names:
        # The app's option *is* the registry's: one declaration, one default, one help.
        assert TaskStreamApp.class_traits()[name] is TaskRegistry.class_traits()[name]
        assert TaskStreamApp.class_traits()[name].metadata.get("config") is True


async def test_options_set_on_the_app_reach_the_registry_and_its_store(registry):
    assert {name: getattr(registry, name) for name in SET} == SET
    # Retention is decided once, by the registry's logs; a store deletes what they trimmed.
    assert not hasattr(registry.store, "retention_events")


async def test_old_class_paths_in_config_still_load(registry):
    assert type(registry) is TaskRegistry
    assert type(registry.store) is MemoryStore


@pytest.mark.parametrize(("old", "new"), sorted(MOVED_CLASSES.items()))
def test_every_moved_class_path_resolves_to_the_class_now_there(old, new):
    trait = TaskStreamApp.class_traits()["registry_class" if "registry" in old else "store"]
    resolved = trait.validate(None, old)
    assert f"{resolved.__module__}.{resolved.__qualname__}" == new
    assert trait.validate(None, new) is resolved
    assert TaskStreamApp.class_traits()["store"].validate(None, "jupyter_taskstream.store.SQLiteStore") is SQLiteStore
