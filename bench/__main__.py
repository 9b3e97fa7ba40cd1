"""``python -m bench [--quick] [--only B1,B3] [--runs N] [--out BENCHMARKS.md]``.

Runs each selected benchmark ``runs`` times, every run in a fresh process
(``python -m bench.worker``), takes each figure's median, and writes the report.
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench._common import machine
from bench.report import Summary, render, summarize
from bench.worker import MODULES

#: runs per benchmark in the full run (B1, B2, B4 and B8 repeat inside one run or take long)
FULL_RUNS = {
    "B1": 1,
    "B1PG": 1,
    "B1F": 1,
    "B2": 1,
    "B3": 3,
    "B4": 1,
    "B5": 3,
    "B6": 3,
    "B7": 3,
    "B8": 1,
    "B9": 1,
}


def run_worker(name: str, quick: bool) -> dict[str, Any]:
    command = [sys.executable, "-m", "bench.worker", name, *(["--quick"] if quick else [])]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{name} failed:\n{done.stderr[-4000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes, one run each (CI)")
    parser.add_argument("--only", default="", help="comma-separated, e.g. B1,B3")
    parser.add_argument("--runs", type=int, default=None, help="runs per benchmark")
    parser.add_argument("--out", type=Path, default=None, help="default BENCHMARKS.md (full)")
    args = parser.parse_args(argv)
    names = [n.strip().upper() for n in args.only.split(",") if n.strip()] or sorted(MODULES)
    unknown = [n for n in names if n not in MODULES]
    if unknown:
        parser.error(f"unknown benchmarks: {', '.join(unknown)}")
    out = args.out or (None if args.quick else Path("BENCHMARKS.md"))
    started = datetime.now(UTC)
    info = machine()
    summaries: list[Summary] = []
    failed = False
    for name in names:
        runs = args.runs or (1 if args.quick else FULL_RUNS[name])
        results = []
        clock = time.perf_counter()
        for n in range(runs):
            print(f"{name} run {n + 1}/{runs} ...", file=sys.stderr, flush=True)
            try:
                results.append(run_worker(name, args.quick))
            except RuntimeError as exc:
                print(str(exc), file=sys.stderr)
                failed = True
                break
        if results:
            summary = summarize(name, results, time.perf_counter() - clock)
            summaries.append(summary)
            for check in summary.checks:
                mark = "met" if check.met else "NOT MET"
                print(f"  {check.name}: {check.value:.4g} {check.unit} ({mark})", file=sys.stderr)
    command = "python -m bench " + shlex.join(argv if argv is not None else sys.argv[1:])
    text = render(summaries, info, command.strip(), started, quick=args.quick)
    if out is not None:
        out.write_text(text, encoding="utf-8")
        print(f"wrote {out}", file=sys.stderr)
    else:
        print(text)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
