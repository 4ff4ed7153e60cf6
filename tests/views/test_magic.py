"""``%%taskstream`` and ``%taskstream`` in a real kernel started by the test server."""

from __future__ import annotations

import pytest

from ..conftest import wait_for
from ..kernel_fixtures import kernel_session

pytestmark = pytest.mark.timeout(120)
API = "taskstream/api"
WIDGET_MIME = "application/vnd.jupyter.widget-view+json"


def hub_status(registry, task_id):
    """The task's status as the hub's readers see it, or None before it has been delivered."""
    try:
        return registry.snapshot(task_id)["status"]
    except KeyError:
        return None


def displays(k, msg_id):
    return [m for m in k.of(msg_id) if m["msg_type"] == "display_data"]


def widget_states(k, model_id):
    """Every state update the kernel sent for one widget model, in order."""
    out = []
    for m in k.messages:
        if m["msg_type"] == "comm_msg" and m["content"]["comm_id"] == model_id:
            data = m["content"]["data"]
            if data.get("method") == "update":
                out.append(data["state"])
    return out


def merged_state(k, model_id):
    state = {}
    for m in k.messages:
        if m["msg_type"] == "comm_open" and m["content"]["comm_id"] == model_id:
            state.update(m["content"]["data"]["state"])
    for update in widget_states(k, model_id):
        state.update(update)
    return state


async def test_background_cell_wait_cancel_and_listing(jp_serverapp, client, registry):
    async with kernel_session(client, jp_serverapp) as (kernel_id, k):
        await k.run("%load_ext jupyter_taskstream\nimport jupyter_taskstream as ts, time")

        # A background cell: returns at once, shows its widget, the kernel stays free.
        cell = k.start(
            "%%taskstream my job --total 20\n"
            "for i in ts.progress(range(20)):\n"
            "    print('secret line', i)\n"
            "    time.sleep(0.05)\n"
        )
        await wait_for(lambda: k.idle(cell), 10, message="the background cell to return")
        other = await k.run("print('other cell'); x = 41 + 1")
        assert other == "other cell\n"
        shown = displays(k, cell)
        assert len(shown) == 1
        data = shown[0]["content"]["data"]
        assert WIDGET_MIME in data and "my job" in data["text/plain"] and "my job" in data["text/html"]
        display_id = shown[0]["content"]["transient"]["display_id"]
        model_id = data[WIDGET_MIME]["model_id"]
        task_id = (await k.run("print(ts.last().id)")).strip()
        await wait_for(lambda: hub_status(registry, task_id) == "completed", 20, message="the task to complete")

        # Output went to the task, never to a cell; the widget reached the final state.
        assert "secret line" not in "".join(k.stdout(m["parent_header"].get("msg_id", "")) for m in k.messages)
        await wait_for(lambda: merged_state(k, model_id).get("status") == "completed", 10, message="final widget state")
        final = merged_state(k, model_id)
        assert final["fraction"] == 1.0 and final["meter"].startswith("20/20")
        assert final["log"][-1] == "secret line 19"
        # The display itself was updated with the final state, in the cell that showed it.
        await wait_for(
            lambda: any(
                m["msg_type"] == "update_display_data" and m["content"]["transient"]["display_id"] == display_id
                for m in k.of(cell)
            ),
            10,
            message="the final display update in the starting cell",
        )
        update = [m for m in k.of(cell) if m["msg_type"] == "update_display_data"][-1]["content"]["data"]
        assert "completed" in update["text/plain"] and "completed" in update["text/html"]
        assert "secret line 19" in update["text/html"]
        # ...alone: a saved notebook must not hold a widget view whose model is gone.
        assert WIDGET_MIME not in update
        # Updates were coalesced: far fewer than one per iteration.
        assert len(widget_states(k, model_id)) <= 20

        # --wait blocks until the end and re-raises a failure in the cell.
        waited = k.start("%%taskstream --wait\nfor i in ts.progress(range(3)):\n    time.sleep(0.05)\nprint('done')")
        await wait_for(lambda: k.idle(waited), 20, message="the --wait cell")
        waited_id = (await k.run("print(ts.last().id)")).strip()
        await wait_for(lambda: hub_status(registry, waited_id) == "completed", 10, message="the waited task in the hub")
        failing = k.start("%%taskstream failing --wait --no-widget\nraise ValueError('bad input 42')")
        await wait_for(lambda: k.idle(failing), 20, message="the failing --wait cell")
        errors = [m["content"] for m in k.of(failing) if m["msg_type"] == "error"]
        assert errors and errors[0]["ename"] == "ValueError" and "bad input 42" in errors[0]["evalue"]
        assert displays(k, failing) == []  # --no-widget
        failed_id = (await k.run("print(ts.last().id)")).strip()
        await wait_for(lambda: hub_status(registry, failed_id) == "failed", 10, message="the failure in the hub")
        snapshot = registry.get(failed_id).snapshot()
        assert snapshot["status"] == "failed" and "bad input 42" in snapshot["error"]["traceback"]

        # %taskstream cancel stops a running background task; %taskstream lists tasks.
        await k.run("%%taskstream --no-widget forever\nwhile True:\n    time.sleep(0.01)\n    ts.current().update()")
        forever = (await k.run("print(ts.last().id)")).strip()
        out = await k.run(f"%taskstream cancel {forever}")
        assert out.startswith(f"Cancelling {forever}")
        await wait_for(lambda: hub_status(registry, forever) == "cancelled", 15, message="the cancel")
        listing = await k.run("%taskstream")
        assert forever in listing and "cancelled" in listing and "my job" in listing

        # Bad input: a clear usage error, not a traceback from deep inside.
        bad = k.start("%%taskstream --total -3\npass")
        await wait_for(lambda: k.idle(bad), 10, message="the bad cell")
        stderr = "".join(m["content"]["text"] for m in k.of(bad) if m["msg_type"] == "stream")
        assert "UsageError" in stderr and "--total must be >= 0" in stderr  # IPython prints usage errors
        unknown = k.start("%taskstream cancel nosuchtask")
        await wait_for(lambda: k.idle(unknown), 10, message="the unknown id")
        errors = [m["content"] for m in k.of(unknown) if m["msg_type"] == "error"]
        assert errors and "nosuchtask" in errors[0]["evalue"]


async def test_widget_cancel_button_message_cancels_the_task(jp_serverapp, client, registry):
    """The widget's Cancel button sends a custom comm message; the kernel ends the task."""
    async with kernel_session(client, jp_serverapp) as (kernel_id, k):
        await k.run("import jupyter_taskstream as ts, time")
        # A loop that never calls into the runtime: only the grace-period interrupt stops it.
        cell = k.start(
            "ts.config.cancel_grace_period = 0.3\n"
            "def spin():\n    while True:\n        pass\n"
            "h = ts.run(spin, name='spinner')"
        )
        await wait_for(lambda: k.idle(cell), 10, message="run() to return")
        data = displays(k, cell)[0]["content"]["data"]
        model_id = data[WIDGET_MIME]["model_id"]
        task_id = (await k.run("print(h.id)")).strip()
        await wait_for(lambda: hub_status(registry, task_id) == "running", 10, message="the task to run")
        msg = k.kc.session.msg(
            "comm_msg", {"comm_id": model_id, "data": {"method": "custom", "content": {"event": "cancel"}}}
        )
        k.kc.shell_channel.send(msg)
        await wait_for(lambda: hub_status(registry, task_id) == "cancelled", 15, message="the widget cancel")
        await wait_for(lambda: merged_state(k, model_id).get("status") == "cancelled", 10, message="widget shows it")
        # Between the click and the end, the widget said it was cancelling.
        assert "cancelling" in [state.get("display_status") for state in widget_states(k, model_id)]


async def test_top_level_await_runs_in_the_task_and_its_asyncio_tasks_belong_to_it(jp_serverapp, client, registry):
    async with kernel_session(client, jp_serverapp) as (kernel_id, k):
        await k.run("%load_ext jupyter_taskstream\nimport jupyter_taskstream as ts, asyncio")
        cell = k.start(
            "%%taskstream awaiting --wait --no-widget\n"
            "async def child(i):\n"
            "    await asyncio.sleep(0.01 * i)\n"
            "    print('child', i, ts.current() is me)\n"
            "me = ts.current()\n"
            "await asyncio.sleep(0.05)\n"
            "await asyncio.gather(*(asyncio.create_task(child(i)) for i in range(3)))\n"
            "print('body done')\n"
        )
        await wait_for(lambda: k.idle(cell), 20, message="the awaiting cell")
        assert not [m for m in k.of(cell) if m["msg_type"] == "error"], k.of(cell)
        assert k.stdout(cell) == ""  # the output is the task's, not the cell's
        task_id = (await k.run("print(ts.last().id)")).strip()
        await wait_for(lambda: hub_status(registry, task_id) == "completed", 10, message="the task in the hub")
        log = (await client.get(f"{API}/tasks/{task_id}/log")).json()["events"]
        assert [e["data"]["text"] for e in log] == ["child 0 True", "child 1 True", "child 2 True", "body done"]


async def test_interrupt_during_wait_cancels_the_task_and_fails_the_cell(jp_serverapp, client, registry):
    async with kernel_session(client, jp_serverapp) as (kernel_id, k):
        await k.run("%load_ext jupyter_taskstream\nimport jupyter_taskstream as ts, time\nts.config.cancel_grace_period = 0.5")
        cell = k.start("%%taskstream stuck --wait --no-widget\nprint('started', flush=True)\nwhile True:\n    time.sleep(0.01)")
        await wait_for(lambda: k.idle(cell) or registry_has(registry, "stuck", "running"), 20, message="the task to run")
        assert (await client.post(f"api/kernels/{kernel_id}/interrupt")).status_code == 204
        await wait_for(lambda: k.idle(cell), 20, message="the interrupted cell")
        errors = [m["content"] for m in k.of(cell) if m["msg_type"] == "error"]
        assert errors and errors[0]["ename"] == "KeyboardInterrupt", k.of(cell)
        replies = [m for m in k.messages if m["msg_type"] == "execute_result" and m["parent_header"].get("msg_id") == cell]
        assert not replies
        task_id = (await k.run("print(ts.last().id)")).strip()
        await wait_for(lambda: hub_status(registry, task_id) == "cancelled", 15, message="the task cancelled")
        # The next cell runs normally (the kernel was not broken by the interrupt).
        assert (await k.run("print('next')")) == "next\n"


def registry_has(registry, name, status):
    return any(t.name == name and t.status == status for t in registry.tasks())
