"""Entry point: ``python -m benchmarks [--quick] [--cases 1,4] [--runs N] [--out DIR]``.

Runs each selected case (a warm-up, then at least five measured runs), prints a table of
medians with min/max, the peer's median measured in the same run and the ratio, and writes
``results.json`` and ``RESULTS.md`` with the machine the numbers came from.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import importlib
import json
import signal
import sys
import time
import traceback
from datetime import datetime, timezone
from pathlib import Path

if __package__ in (None, ""):  # `python benchmarks/run.py`
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    __package__ = "benchmarks"

from benchmarks.harness import BenchConfig, dump_json, machine_info, raise_nofile  # noqa: E402
from benchmarks.report import render_markdown, render_table  # noqa: E402

#: case number -> (module, function, title)
CASES = {
    1: ("kernel_cases", "case1", "per-iteration overhead of ts.progress() in a task publishing to a hub"),
    2: ("kernel_cases", "case2", "100,000 print() lines captured in a task and published"),
    3: ("kernel_cases", "case3", "latency from print() in a kernel to an SSE client"),
    4: ("hub_cases", "case4", "fan-out: many SSE subscribers on one task"),
    5: ("hub_cases", "case5", "memory per idle SSE connection"),
    6: ("hub_cases", "case6", "slow consumer among normal ones"),
    7: ("hub_cases", "case7", "cost per delivered update: polling, ETag, long-poll, SSE"),
    8: ("kernel_cases", "case8", "kernel-to-browser widget messages for a tight loop"),
    9: ("store_cases", "case9", "durable SQLite store vs in-memory store: throughput and latency"),
    10: ("bars_cases", "case10", "library bars inside tasks: tqdm bridge cost, nested loops, widget rate"),
    11: ("dashboard_cases", "case11", "dashboard page at 1,000 tasks in Chromium: this page vs the one before"),
    14: ("procs_cases", "case14", "4 process-pool workers print 100,000 lines in a task: until the hub has them, vs files"),
    12: ("dask_cases", "case12", "Dask: 10,000 tiny keys on a LocalCluster, integration on vs off vs progress()"),
    13: ("dask_cases", "case13", "Dask: worker prints at 1,000 lines/s to the task's log"),
}
HERE = Path(__file__).resolve().parent

#: Quick mode's plan for the cases whose fixed start dominates (a Dask cluster per case):
#: case -> (measured runs, warm-up runs, smoke sizes?, {metric prefix: why its quick sample
#: means nothing}). Their rows that check correctness (keys counted, lines lost) or take
#: hundreds of samples per run (latency percentiles) keep their meaning with one run and a
#: small size; a wall-time ratio held to 5 % does not, from one run on a shared machine, and
#: its rows say so. Kept here rather than in the cases, so the run fits in two minutes
#: however the cases change.
QUICK_PLANS: dict[int, tuple[int, int, bool, dict[str, str]]] = {
    12: (1, 0, True, {
        "wall time": "one run of a few hundred keys; a ratio held to 1.05x needs the full mode's 5 runs of 10,000",
        "client process CPU": "one run of a few hundred keys, read in 10 ms ticks",
    }),
    13: (1, 0, False, {}),
}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true",
                   help="under two minutes: smaller sizes, shorter runs, 3 measured runs instead of 5")
    p.add_argument("--cases", default=",".join(map(str, CASES)), help="comma-separated case numbers")
    p.add_argument("--runs", type=int, default=None, help="measured runs per case after the warm-up (5; 3 with --quick)")
    p.add_argument("--out", type=Path, default=HERE, help="directory for results.json and RESULTS.md")
    p.add_argument("--no-write", action="store_true", help="print the table only")
    p.add_argument("--merge", action="store_true",
                   help="replace only the cases run in an existing results.json, keep the others")
    p.add_argument("--warmup", type=int, default=1, help="warm-up runs per case, discarded")
    p.add_argument("--smoke", action="store_true", help=argparse.SUPPRESS)  # tiny sizes, for the test
    return p.parse_args(argv)


def run_case(number: int, cfg: BenchConfig) -> dict:
    """Run one case under its wall-clock bound; a failure is recorded, not raised."""
    module, func, title = CASES[number]
    t0 = time.monotonic()
    entry = {"case": number, "title": title, "rows": [], "error": None}
    unmeasured: dict[str, str] = {}
    if cfg.quick and number in QUICK_PLANS and not cfg.runs_given:
        runs, warmup, small, unmeasured = QUICK_PLANS[number]
        cfg = dataclasses.replace(cfg, runs=runs, warmup=min(warmup, cfg.warmup), smoke=cfg.smoke or small)
    try:
        fn = getattr(importlib.import_module(f"benchmarks.{module}"), func)
        rows = asyncio.run(asyncio.wait_for(fn(cfg), cfg.case_timeout))
        for i, row in enumerate(rows):
            why = next((w for prefix, w in unmeasured.items() if row.metric.startswith(prefix)), None)
            if why is not None:
                rows[i] = row.unmeasured(why)
        entry["rows"] = [r.to_json() for r in rows]
    except Exception as e:  # one broken case must not lose the others' results
        entry["error"] = f"{type(e).__name__}: {e}"
        entry["traceback"] = traceback.format_exc()
        print(f"case {number} failed: {entry['error']}", file=sys.stderr)
    entry["seconds"] = round(time.monotonic() - t0, 1)
    return entry


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    numbers = [int(x) for x in args.cases.split(",") if x.strip()]
    unknown = [n for n in numbers if n not in CASES]
    if unknown:
        print(f"unknown case(s): {unknown}; known: {sorted(CASES)}", file=sys.stderr)
        return 2
    raise_nofile()
    # SIGTERM unwinds like Ctrl-C, so every case's servers, kernels and clients are stopped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    runs = args.runs if args.runs is not None else (3 if args.quick or args.smoke else 5)
    cfg = BenchConfig(quick=args.quick, smoke=args.smoke, runs=max(1, runs), warmup=max(0, args.warmup),
                      case_timeout=120.0 if args.quick or args.smoke else 900.0, runs_given=args.runs is not None)
    started = datetime.now(timezone.utc)
    t0 = time.monotonic()
    results = []
    for n in numbers:
        print(f"case {n}: {CASES[n][2]} ...", file=sys.stderr, flush=True)
        results.append(run_case(n, cfg))
        print(render_table([results[-1]]), flush=True)
        print(f"case {n}: {results[-1]['seconds']:g} s", file=sys.stderr, flush=True)
    doc = {
        "command": "python -m benchmarks " + " ".join(argv if argv is not None else sys.argv[1:]),
        "quick": args.quick or args.smoke,
        "runs": cfg.runs,
        "warmup": cfg.warmup,
        "started": started.isoformat(timespec="seconds"),
        "seconds": round(time.monotonic() - t0, 1),
        "machine": machine_info(),
        "cases": results,
    }
    for entry in results:
        entry["command"], entry["started"] = doc["command"], doc["started"]
    if args.merge and (args.out / "results.json").exists():
        # The machine must be the same one for a merged table to mean anything.
        old = json.loads((args.out / "results.json").read_text())
        if old.get("machine", {}).get("cpu") == doc["machine"]["cpu"]:
            ran = {c["case"] for c in results}
            kept = [c for c in old["cases"] if c["case"] not in ran]
            for c in kept:
                c.setdefault("command", old["command"])
                c.setdefault("started", old["started"])
            doc["cases"] = sorted(kept + results, key=lambda c: c["case"])
            doc["command"], doc["started"] = old["command"], old["started"]
            doc["seconds"] = round(old["seconds"] + doc["seconds"], 1)
            doc["merged"] = sorted(ran)
    if not args.no_write:
        args.out.mkdir(parents=True, exist_ok=True)
        dump_json(args.out / "results.json", doc)
        (args.out / "RESULTS.md").write_text(render_markdown(doc))
        print(f"wrote {args.out / 'results.json'} and {args.out / 'RESULTS.md'}", file=sys.stderr)
    return 1 if any(c["error"] for c in results) else 0


if __name__ == "__main__":
    raise SystemExit(main())
