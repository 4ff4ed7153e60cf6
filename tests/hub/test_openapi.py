"""The OpenAPI description: served behind auth, shipped in the package, and in step with the README."""

from __future__ import annotations

import json
import pathlib
import re

from jupyter_taskstream.hub.openapi import OPENAPI_PATH
from jupyter_taskstream.hub.rest import default_handlers

ROOT = pathlib.Path(__file__).resolve().parent.parent.parent
METHODS = ("get", "post", "put", "patch", "delete")


def described() -> dict:
    return json.loads(OPENAPI_PATH.read_text())


def operations(spec: dict) -> set[tuple[str, str]]:
    return {(m.upper(), path) for path, item in spec["paths"].items() for m in item if m in METHODS}


def readme_endpoints() -> set[tuple[str, str]]:
    text = (ROOT / "README.md").read_text()
    section = text[text.index("## The hub: HTTP API"):]
    section = section[: section.index("\n## ", 1)]
    found = set()
    for cell in re.findall(r"^\| `([A-Z]+ [^`]+)` \|", section, re.MULTILINE):
        method, path = cell.split(" ", 1)
        found.add((method, path.split("?")[0].replace("{id}", "{task_id}")))
    return found


def test_readme_table_and_description_agree():
    readme, spec = readme_endpoints(), operations(described())
    assert readme, "no endpoint table found in the README"
    assert readme - spec == set(), f"in the README, not in openapi.json: {sorted(readme - spec)}"
    assert spec - readme == set(), f"in openapi.json, not in the README: {sorted(spec - readme)}"


def test_description_covers_every_route():
    """Every route of the hub (but the catch-all 404) has a path in the description."""
    spec_paths = [re.sub(r"\{[a-z_]+\}", "X", p) for p in described()["paths"]]
    for pattern, _handler in default_handlers:
        if pattern.endswith(".*"):
            continue
        regex = re.sub(r"\(\?P<[a-z_]+>[^)]*\)", "X", pattern)
        assert any(re.fullmatch(regex, p) for p in spec_paths), pattern


def test_description_is_valid_openapi_3_2():
    from schemathesis.specs.openapi.definitions import OPENAPI_32_VALIDATOR  # 3.2's own meta-schema

    spec = described()
    assert spec["openapi"].startswith("3.2")
    OPENAPI_32_VALIDATOR.validate(spec)
    streams = [op for item in spec["paths"].values() for op in item.values()
               if isinstance(op, dict) and "text/event-stream" in json.dumps(op.get("responses", {}))]  # fmt: skip
    assert len(streams) == 3
    for op in streams:
        assert "itemSchema" in op["responses"]["200"]["content"]["text/event-stream"]


async def test_served_behind_auth(client, anon):
    r = await client.get("taskstream/api/openapi.json")
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/json")
    assert r.json() == described()
    r = await anon.get("taskstream/api/openapi.json")
    assert r.status_code == 403 and r.headers["content-type"].startswith("application/json")


def event_validators(schema_name: str) -> dict:
    """Per SSE event name, a validator of its JSON payload (the variant's ``contentSchema``)."""
    import jsonschema_rs

    spec = described()
    validators = {}
    for variant in spec["components"]["schemas"][schema_name]["oneOf"]:
        name = variant["properties"]["event"]["const"]
        content = variant["properties"]["data"]["contentSchema"]
        root = {"$schema": "https://json-schema.org/draft/2020-12/schema", "components": spec["components"], **content}
        validators[name] = jsonschema_rs.Draft202012Validator(root, validate_formats=True)
    return validators


async def test_stream_events_match_the_description(client, registry):
    """Every kind of event, from the real streams, against the per-event schemas (itemSchema)."""
    from ..conftest import read_sse

    api = "taskstream/api"
    one, every = event_validators("TaskEvent"), event_validators("AllTasksEvent")
    task = (await client.post(f"{api}/tasks", json={"name": "checked", "total": 2, "unit": "step"})).json()
    events = [
        {"type": "progress", "data": {"current": 1, "message": "half"}},
        {"type": "log", "data": {"stream": "stderr", "text": "warn"}},
        {"type": "log", "data": {"lines": ["a", "b"]}},
        {"type": "status", "data": {"status": "failed", "message": "no", "error": {"type": "E", "message": "m"}}},
    ]
    cursor = registry.last_event_id
    r = await client.post(f"{api}/tasks/{task['id']}/events", json={"events": events})
    assert r.status_code == 204
    other = (await client.post(f"{api}/tasks", json={"name": "cancelled"})).json()
    await client.post(f"{api}/tasks/{other['id']}/cancel")
    assert (await client.delete(f"{api}/tasks/{other['id']}")).status_code == 204

    fresh = await read_sse(client, f"{api}/tasks/{task['id']}/events")
    replay = await read_sse(client, f"{api}/tasks/{task['id']}/events", headers={"Last-Event-ID": "0"})
    everything = await read_sse(client, f"{api}/events?timeout=0.2", headers={"Last-Event-ID": str(cursor - 1)})
    snapshot_all = await read_sse(client, f"{api}/events?limit=1")
    seen = set()
    for received, validators in ((fresh, one), (replay, one), (everything, every), (snapshot_all, every)):
        for _id, name, data in received:
            validators[name].validate(data)
            seen.add((validators is every, name))
    assert seen >= {(False, n) for n in ("snapshot", "status", "progress", "log", "end")}
    assert seen >= {(True, n) for n in ("snapshot", "status", "progress", "log", "end", "deleted")}
    # A payload that breaks the description is caught (the validators are not vacuous).
    assert not one["progress"].is_valid({"current": -1})
    assert not every["log"].is_valid({"stream": "stdout", "text": "no task"})
