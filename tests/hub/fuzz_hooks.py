"""Schemathesis hooks for tests/hub/test_schemathesis.py (loaded through ``SCHEMATHESIS_HOOKS``).

``before_call`` keeps the run fast without narrowing what is checked: long-polls and
streams that would legitimately wait (``wait=60``, a stream of a task that never ends)
get a short ``timeout``/``wait`` when the generated value is a valid long one or absent;
invalid values are sent as generated, so the hub's refusals are still exercised.
``after_call`` records every request (operation, generation mode, status) for the test.
"""

from __future__ import annotations

import json
import os
import re

import schemathesis

_DECIMAL = re.compile(r"[0-9]{1,18}(\.[0-9]{1,18})?")
#: Seconds a fuzzed long-poll or stream may wait at most.
SHORT = "0.05"


def _short(value) -> bool:
    return isinstance(value, str) and _DECIMAL.fullmatch(value) is not None and float(value) <= float(SHORT)


@schemathesis.hook
def before_call(context, case, kwargs) -> None:
    path, method = case.operation.path, case.method.upper()
    if method != "GET" or not isinstance(case.query, dict):
        return
    if path.endswith(("/events", "/commands")):
        value = case.query.get("timeout")
        if value is None or value == "" or (isinstance(value, str) and _DECIMAL.fullmatch(value) and not _short(value)):
            case.query["timeout"] = SHORT
    elif path.endswith("/tasks/{task_id}"):
        value = case.query.get("wait")
        if isinstance(value, str) and _DECIMAL.fullmatch(value) and not _short(value):
            case.query["wait"] = SHORT


@schemathesis.hook
def after_call(context, case, response) -> None:
    meta = case.meta
    record = {
        "op": f"{case.method.upper()} {case.operation.path}",
        "mode": meta.generation.mode.value if meta is not None else "unknown",
        "phase": str(meta.phase.name) if meta is not None else "unknown",
        "status": response.status_code,
    }
    with open(os.environ["TASKSTREAM_FUZZ_LOG"], "a", encoding="utf-8") as f:
        f.write(json.dumps(record) + "\n")
