"""Schemathesis against a real hub with a token: every operation, valid and invalid input.

The description under test is the one the server serves (``openapi.json``, behind auth);
schemathesis runs its default checks (server errors, schema and header conformance of
responses and SSE events, status codes, content types, negative data rejected, positive
data accepted, the stateful phase following the description's links). The test then
proves from the request record that every operation was exercised with valid and invalid
input, that there were at least ``MIN_REQUESTS`` requests, and that none got a 5xx.
"""

from __future__ import annotations

import asyncio
import collections
import json
import logging
import os
import pathlib
import random
import sys
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MIN_REQUESTS = int(os.environ.get("TASKSTREAM_FUZZ_MIN_REQUESTS", "5000"))
MAX_EXAMPLES = os.environ.get("TASKSTREAM_FUZZ_MAX_EXAMPLES", "100")
#: Seconds schemathesis runs: fuzzing and the stateful phase repeat until they are spent.
MAX_TIME = os.environ.get("TASKSTREAM_FUZZ_MAX_TIME", "200")
#: A new seed each run, so CI keeps exploring; a failure names it (TASKSTREAM_FUZZ_SEED=N repeats it).
SEED = os.environ.get("TASKSTREAM_FUZZ_SEED") or str(random.randrange(2**31))
#: The budget of the whole run. Unloaded (CI), the first round makes 10,000+ requests in its
#: 200 s; on a loaded machine (this one's 2 cores shared by several test runs made 5,000 in the
#: same time) rounds of fuzzing with new seeds top it up to MIN_REQUESTS, within this.
MAX_SECONDS = 420
#: Credentials per security scheme of the description: schemathesis picks the one each operation
#: takes (the user's token; the publish secret for a kernel's command stream).
CONFIG = """
[auth.openapi.token]
api_key = "token ${TASKSTREAM_FUZZ_TOKEN}"

[auth.openapi.publishSecret]
api_key = "${TASKSTREAM_FUZZ_SECRET}"
"""


def recorded(record: pathlib.Path) -> int:
    """Requests the hooks have recorded so far."""
    if not record.exists():
        return 0
    with record.open("rb") as f:
        return sum(1 for _ in f)


@pytest.fixture
def taskstream_config() -> dict:
    # Memory: the fuzzer measures the API, not the disk; heartbeats slower than a fuzz request.
    return {"store": "jupyter_taskstream.hub.store.MemoryStore", "heartbeat_interval": 5.0, "retry_ms": 100}


@pytest.mark.timeout(MAX_SECONDS + 120)
async def test_fuzz_every_operation(server_url, jp_auth_header, jp_serverapp, tmp_path):
    token = jp_auth_header["Authorization"].split(" ", 1)[1]
    record = tmp_path / "requests.ndjson"
    config = tmp_path / "schemathesis.toml"
    config.write_text(CONFIG)
    report = tmp_path / "report"
    base = [
        sys.executable, "-m", "schemathesis.cli", "--config-file", str(config),
        # The description as the server serves it (behind auth like every endpoint).
        "run", f"{server_url}taskstream/api/openapi.json?token={token}",
        "--url", server_url.rstrip("/"),
        "--max-examples", MAX_EXAMPLES,
        # One worker each: with two threads, Hypothesis's lambda descriptions raced in CPython
        # 3.11's ast ("AST constructor recursion depth mismatch"); processes are used instead.
        "--workers", "1",
        "--request-timeout", "10",
        "--suppress-health-check", "all",
        "--generation-database", "none",
    ]  # fmt: skip
    # Generating inputs costs more than answering them: four processes share the budget. The
    # stateful phase needs every operation (it follows links between them); the others split.
    runs = {
        "lists": ["--phases", "examples,coverage,fuzzing", "--include-path-regex",
                  r"^/taskstream/api/(tasks|openapi\.json|kernels/.*)$"],
        "streams": ["--phases", "examples,coverage,fuzzing", "--include-path-regex", r"^/taskstream/api/events$"],
        "task": ["--phases", "examples,coverage,fuzzing", "--include-path-regex", r"^/taskstream/api/tasks/\{"],
        # The HTML page is a browser's, tested in test_dashboard.py.
        # The publish socket is a WebSocket, which an HTTP fuzzer cannot speak (a valid request is
        # an upgrade, after which its kept-alive connection is no longer HTTP): test_pubsocket.py.
        "stateful": ["--phases", "stateful", "--exclude-path", "/taskstream/",
                     "--exclude-path", "/taskstream/api/events/socket"],
    }  # fmt: skip
    env = {**os.environ, "PYTHONPATH": ROOT, "SCHEMATHESIS_HOOKS": "tests.hub.fuzz_hooks",
           "TASKSTREAM_FUZZ_LOG": str(record),
           "TASKSTREAM_FUZZ_TOKEN": token, "NO_COLOR": "1", "COLUMNS": "150",
           "TASKSTREAM_FUZZ_SECRET": jp_serverapp.web_app.settings["taskstream_secret"]}  # fmt: skip

    async def run(name: str, extra: list[str], seed: str = SEED, max_time: str = MAX_TIME) -> tuple[int, str]:
        argv = [*base, *extra, "--seed", seed, "--max-time", max_time, "--report", "junit",
                "--report-dir", str(report / name)]  # fmt: skip
        proc = await asyncio.create_subprocess_exec(*argv, env=env, cwd=tmp_path, stdout=asyncio.subprocess.PIPE,
                                                    stderr=asyncio.subprocess.STDOUT)  # fmt: skip
        output, _ = await proc.communicate()
        return proc.returncode, f"==== {name}\n" + output.decode(errors="replace")

    started = time.monotonic()
    # Thousands of refused requests would each be logged (and kept by pytest): errors only.
    logging.disable(logging.WARNING)
    try:
        results = await asyncio.gather(*(run(name, extra) for name, extra in runs.items()))
        rounds = 1
        while (count := recorded(record)) < MIN_REQUESTS and all(code == 0 for code, _ in results):
            # A loaded machine: more fuzzing, with new seeds, for about the time the rest needs.
            spent = time.monotonic() - started
            needed = (MIN_REQUESTS - count) * spent / max(count, 1) * 1.3 + 10
            budget = min(needed, MAX_SECONDS - spent - 20)
            if budget < 10:
                break
            rounds += 1
            seed = str(int(SEED) + rounds)
            fuzz = ["--phases", "fuzzing"]
            results += await asyncio.gather(*(
                run(f"{name}-{rounds}", [*fuzz, *extra[2:]], seed, f"{budget:.0f}")
                for name, extra in runs.items() if name != "stateful"
            ))  # fmt: skip
    finally:
        logging.disable(logging.NOTSET)
    elapsed = time.monotonic() - started
    text = "\n".join(out for _, out in results)
    requests = [json.loads(line) for line in record.read_text().splitlines()] if record.exists() else []
    summary = (f"{len(requests)} requests in {elapsed:.0f}s ({rounds} round(s)), seed {SEED} "
               f"(TASKSTREAM_FUZZ_SEED={SEED} repeats it)")  # fmt: skip
    print(summary)
    if os.environ.get("TASKSTREAM_FUZZ_OUTPUT"):
        with open(os.environ["TASKSTREAM_FUZZ_OUTPUT"], "w") as f:
            f.write(text + "\n" + summary + "\n")
    assert all(code == 0 for code, _ in results), f"schemathesis found problems ({summary}):\n{text[-30000:]}"
    assert "Authentication failed" not in text, text[-3000:]
    assert not [r for r in requests if r["status"] >= 500], "server errors"
    by_op = collections.defaultdict(collections.Counter)
    for r in requests:
        by_op[r["op"]][r["mode"]] += 1
    spec = json.loads((pathlib.Path(ROOT) / "jupyter_taskstream/hub/openapi.json").read_text())
    described = {f"{m.upper()} {p}" for p, item in spec["paths"].items() for m in item if m != "parameters"}
    described -= {"GET /taskstream/", "GET /taskstream/api/events/socket"}
    # Beside the described operations, schemathesis probes undeclared methods (405 with Allow).
    assert set(by_op) >= described, sorted(described - set(by_op))
    takes_input = {
        f"{m.upper()} {p}" for p, item in spec["paths"].items() for m, op in item.items()
        if m != "parameters" and (item.get("parameters") or op.get("parameters") or op.get("requestBody"))
    }  # fmt: skip
    for op in sorted(described):
        modes = by_op[op]
        # Invalid input needs some input: openapi.json takes none.
        assert modes["positive"] > 0 and (modes["negative"] > 0 or op not in takes_input), (op, modes)
    phases = collections.Counter(r["phase"] for r in requests)
    detail = f"{summary}; by phase {dict(phases)}; by operation {({op: dict(by_op[op]) for op in sorted(described)})}"
    print(detail)
    if os.environ.get("TASKSTREAM_FUZZ_OUTPUT"):
        with open(os.environ["TASKSTREAM_FUZZ_OUTPUT"], "a") as f:
            f.write(detail + "\n")
    assert phases["stateful"] > 0 and phases["fuzzing"] > 0 and phases["coverage"] > 0, phases
    assert len(requests) >= MIN_REQUESTS, detail
    assert elapsed < MAX_SECONDS, detail
