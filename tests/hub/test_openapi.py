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
    for cell in re.findall(r"^\| `([A-Z]+ [^`]+)` \|", section, re.M):
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
