"""The extension app: options, kernel hand-off, and tasks failing with their kernel."""

from __future__ import annotations

import asyncio
import os
import signal

import httpx
import pytest

from jupyter_taskstream.hub.app import ENV_SECRET, ENV_URL, TaskStreamApp

from ..conftest import read_sse, wait_for
from .test_handlers import API, log


@pytest.fixture
def taskstream_config():
    return {"heartbeat_interval": 0.5, "retry_ms": 100, "kernel_check_interval": 0.2, "retention_events": 50}


def test_options_are_documented_traitlets():
    for name in [
        "retention_events", "heartbeat_interval", "progress_rate_hz", "max_log_event_bytes", "max_tasks",
        "snapshot_log_lines", "subscriber_backlog", "write_timeout", "retry_ms", "max_body_bytes",
        "kernel_check_interval", "kernel_hub_url", "registry_class",
    ]:  # fmt: skip
        trait = TaskStreamApp.class_traits()[name]
        assert trait.metadata.get("config") is True, name
        assert len(trait.help) > 20, name
    assert TaskStreamApp.retention_events.default_value == 10_000
    assert TaskStreamApp.heartbeat_interval.default_value == 15
    assert TaskStreamApp.progress_rate_hz.default_value == 10


async def test_config_reaches_the_registry(registry):
    """c.TaskStreamApp.<option> (see test_config for every option)."""
    assert registry.retention_events == 50


async def test_kernels_are_handed_the_hub_url_and_a_secret_not_the_token(jp_serverapp, api_url):
    kernel_env = jp_serverapp.web_app.settings["taskstream_kernels"].kernel_env
    assert kernel_env[ENV_URL] == api_url
    secret = kernel_env[ENV_SECRET]
    assert secret == jp_serverapp.web_app.settings["taskstream_secret"]
    assert secret != jp_serverapp.identity_provider.token and len(secret) >= 32
    # Only kernels get it: the server's own environment (which terminals inherit) does not.
    assert secret not in os.environ.values() and api_url not in os.environ.values()
    async with httpx.AsyncClient(headers={"X-TaskStream-Secret": secret}) as kernel:
        created = await kernel.post(f"{kernel_env[ENV_URL]}/tasks", json={"name": "from env"})
        assert created.status_code == 201


async def start_kernel(client) -> str:
    r = await client.post("api/kernels", json={"name": "python3"})
    assert r.status_code == 201, r.text
    return r.json()["id"]


async def test_tasks_fail_and_streams_end_when_their_kernel_is_shut_down(client, publisher, jp_serverapp):
    kernel_id = await start_kernel(client)
    body = {"name": "in kernel", "id": "kt1", "kernel_id": kernel_id}
    assert (await publisher.post(f"{API}/tasks", json=body)).status_code == 201
    await publisher.post(f"{API}/tasks/kt1/events", json={"events": [log("working")]})
    stream = read_sse(client, f"{API}/tasks/kt1/events", until=lambda ev: ev[-1][1] == "end", timeout=30)
    reader = asyncio.ensure_future(stream)
    assert (await client.delete(f"api/kernels/{kernel_id}")).status_code == 204
    events = await reader
    assert events[-1][1] == "end"
    snapshot = (await client.get(f"{API}/tasks/kt1")).json()
    assert snapshot["status"] == "failed"
    assert snapshot["error"]["type"] == "KernelDied" and kernel_id in snapshot["error"]["message"]


async def test_tasks_fail_when_their_kernel_dies(client, publisher, jp_serverapp):
    kernel_id = await start_kernel(client)
    body = {"name": "doomed", "id": "kt2", "kernel_id": kernel_id}
    assert (await publisher.post(f"{API}/tasks", json=body)).status_code == 201
    await publisher.post(f"{API}/tasks/kt2/events", json={"events": [log("working")]})
    km = jp_serverapp.kernel_manager.get_kernel(kernel_id)
    await wait_for(lambda: km.provisioner and km.provisioner.process, message="the kernel process")
    os.kill(km.provisioner.process.pid, signal.SIGKILL)

    async def failed():
        return (await client.get(f"{API}/tasks/kt2")).json()["status"] == "failed"

    await wait_for(failed, timeout=30, interval=0.1, message="the task to fail with its kernel")
    snapshot = (await client.get(f"{API}/tasks/kt2")).json()
    assert "died" in snapshot["error"]["message"]
    await client.delete(f"api/kernels/{kernel_id}")


async def test_tasks_of_a_kernel_this_server_does_not_manage_are_not_failed(publisher, jp_serverapp):
    """nbval or a script may run a kernel with the hand-off env: the hub cannot judge its liveness."""
    body = {"name": "external", "id": "ext1", "kernel_id": "not-a-kernel-of-this-server"}
    assert (await publisher.post(f"{API}/tasks", json=body)).status_code == 201
    await publisher.post(f"{API}/tasks/ext1/events", json={"events": [log("working")]})
    (app,) = jp_serverapp.extension_manager.extension_apps["jupyter_taskstream"]
    await app.kernels.check_kernels()
    assert jp_serverapp.web_app.settings["taskstream_registry"].get("ext1").status == "running"
