"""Paging a task's log back with ``before=`` over a real server: exact ids, the truncated flag, bad input."""

from __future__ import annotations

import pytest

from .test_handlers import API, assert_json_error, create, log, publish


@pytest.fixture
def taskstream_config() -> dict:
    # A small retention, so that a test can make the hub drop the oldest lines.
    return {"heartbeat_interval": 0.5, "retry_ms": 100, "retention_events": 50}


async def page(client, task_id, **params) -> dict:
    r = await client.get(f"{API}/tasks/{task_id}/log", params=params)
    assert r.status_code == 200, r.text
    return r.json()


async def test_before_pages_back_to_the_first_line(client):
    task = await create(client)
    await publish(client, task["id"], *(log(f"line {i}") for i in range(20)))
    # Events that are not lines sit between them and must not count against a page.
    await publish(client, task["id"], {"type": "progress", "data": {"current": 1}}, log("line 20"))
    everything = await page(client, task["id"])
    ids = [e["id"] for e in everything["events"]]
    assert len(ids) == 21 and ids == sorted(ids)

    newest = await page(client, task["id"], before=everything["last_event_id"] + 1, limit=8)
    assert [e["id"] for e in newest["events"]] == ids[-8:]
    assert newest["last_event_id"] == everything["last_event_id"]
    assert newest["truncated"] is False

    seen, before = [], everything["last_event_id"] + 1
    while True:
        back = await page(client, task["id"], before=before, limit=8)
        if not back["events"]:
            break
        assert len(back["events"]) <= 8
        seen = back["events"] + seen
        before = back["events"][0]["id"]
    assert [e["id"] for e in seen] == ids
    assert [e["data"]["text"] for e in seen] == [f"line {i}" for i in range(21)]

    # before and after together: the lines strictly between them.
    between = await page(client, task["id"], after=ids[3], before=ids[7], limit=100)
    assert [e["id"] for e in between["events"]] == ids[4:7]
    # tail below before: the last N lines under that id (a page size, like limit).
    last3 = await page(client, task["id"], before=ids[10], tail=3)
    assert [e["id"] for e in last3["events"]] == ids[7:10]
    # Below the first line there is nothing, and nothing was dropped.
    first = await page(client, task["id"], before=ids[0], limit=5)
    assert first["events"] == [] and first["truncated"] is False


async def test_before_says_when_retention_dropped_lines(client):
    task = await create(client)
    await publish(client, task["id"], *(log(f"line {i}") for i in range(100)))
    held = await page(client, task["id"], tail=1000)
    assert held["truncated"] is True
    kept = [e["id"] for e in held["events"]]
    assert 0 < len(kept) < 100
    # A page that fits in what is held is whole...
    top = await page(client, task["id"], before=kept[-1] + 1, limit=5)
    assert [e["id"] for e in top["events"]] == kept[-5:] and top["truncated"] is False
    # ...the one that reaches the dropped lines is short and says so.
    bottom = await page(client, task["id"], before=kept[3], limit=10)
    assert [e["id"] for e in bottom["events"]] == kept[:3] and bottom["truncated"] is True


async def test_before_rejects_bad_values(client):
    task = await create(client)
    url = f"{API}/tasks/{task['id']}/log"
    for bad in ("x", "-1", "0", "1.5", "1e3"):
        assert_json_error(await client.get(url, params={"before": bad}), 400, "before")
    assert_json_error(await client.get(url, params={"before": 5, "limit": 0}), 400, "limit")
    assert_json_error(await client.get(f"{API}/tasks/nosuchtask/log", params={"before": 5}), 404, "nosuchtask")
