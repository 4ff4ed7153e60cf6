"""The benchmark entry point works end to end on a tiny size (no timing is asserted).

The suite's numbers are targets the benchmark reports (benchmarks/RESULTS.md), never
pass/fail conditions of the unit tests: this only proves `python -m benchmarks` runs a
real hub case against its peer and writes well-formed results.
"""

from __future__ import annotations

import json
import math

import pytest

# The peers come with the ``bench`` extra: pip install -e ".[test,bench]".
for _peer in ("psutil", "sse_starlette", "uvicorn"):
    pytest.importorskip(_peer, reason='the benchmark peers need pip install -e ".[bench]"')

from benchmarks.run import main  # noqa: E402


def test_fanout_case_runs_and_writes_results(tmp_path):
    code = main(["--smoke", "--cases", "4", "--runs", "1", "--warmup", "0", "--out", str(tmp_path)])
    assert code == 0
    doc = json.loads((tmp_path / "results.json").read_text())
    assert doc["machine"]["cores_logical"] >= 1 and doc["machine"]["python"]
    (case,) = doc["cases"]
    assert case["case"] == 4 and case["error"] is None
    assert case["rows"], "the case reported no rows"
    # Quick (and smoke) mode does not pretend: the CPU per event of a few events read in 10 ms
    # ticks is a row that says it was not measured, with no value and no verdict.
    cpu = next(r for r in case["rows"] if r["metric"].startswith("server CPU per delivered event"))
    assert cpu["note"].startswith("not measured in quick mode:") and cpu["values"] == [] and cpu["met"] is None
    for row in case["rows"]:
        if row is cpu:
            continue
        assert row["runs"] == 1 and isinstance(row["median"], (int, float))
        assert row["peer"] and isinstance(row["peer_median"], (int, float))
        assert row["ratio"] is None or math.isfinite(row["ratio"])
    lost = next(r for r in case["rows"] if r["metric"].startswith("lost events"))
    assert lost["median"] == 0 and lost["peer_median"] == 0
    markdown = (tmp_path / "RESULTS.md").read_text()
    assert "## Case 4" in markdown and "| metric |" in markdown
    assert "| server CPU per delivered event | not measured |" in markdown


def test_the_write_lookup_diagnostic_prints_every_design(capsys):
    """``python -m benchmarks.write_lookup``: the numbers ANALYSIS.md quotes come from it."""
    from benchmarks import write_lookup

    write_lookup.main(["1"])
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("100,000 print() lines")
    rows = {line.split("  ")[0].strip(): line for line in out[1:]}
    assert set(rows) == set(write_lookup.streams([]))
    assert all("× the file" in line for line in rows.values())


def test_the_finished_budget_diagnostic_holds_what_it_allows(capsys):
    """``python -m benchmarks.finished_budget``: a small run, the budgeted file loads within it."""
    from benchmarks import finished_budget

    rows = finished_budget.main(["6", "300", "700"])
    unbounded = [r for r in rows if r["budget"] == finished_budget.UNBOUNDED]
    budgeted = [r for r in rows if r["budget"] == 700]
    assert [r["held"] for r in unbounded] == [6 * 304] * 2  # 300 lines, three statuses, the end
    assert all(r["held"] <= 700 for r in budgeted) and budgeted[0]["file"] < unbounded[0]["file"]
    assert "events held" in capsys.readouterr().out
