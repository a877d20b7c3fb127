"""`python -m benchmarks [--only mfu,gpipe] [--quick] [--reps N]`: run the benchmarks, write results.md/.json.

A full run writes benchmarks/results.md and results.json; --quick or --only write to benchmarks/_work/ unless
--out says otherwise, so a smoke check never replaces the results of a full run.
"""
from __future__ import annotations

import argparse
import importlib
import os
import sys
import time
import traceback
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing is downloaded: every model is built from scratch
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from benchmarks import machine, render  # noqa: E402
from benchmarks.common import PACKAGE, WORK, Options, Section  # noqa: E402

BENCHMARKS = ("mfu", "gpipe", "sweep", "input_pipeline", "reports_time", "memory", "step_profile", "tries",
              "encoders")


def parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.splitlines()[0])
    p.add_argument("--only", help=f"comma-separated subset of: {', '.join(BENCHMARKS)}")
    p.add_argument("--quick", action="store_true", help="smaller workloads and 2 repetitions: a smoke check")
    p.add_argument("--reps", type=int, help="repetitions after warm-up (default 5; 2 with --quick)")
    p.add_argument("--threads", type=int, default=1,
                   help="torch CPU threads (default 1: on a shared 2-core machine two threads can be 10x slower; "
                        "the MFU and tries sections compare 1 and 2)")
    p.add_argument("--no-compile", dest="compile", action="store_false",
                   help="skip timing torch.compile in tries (compiling takes over a minute; --quick skips it too)")
    p.add_argument("--reports", action="store_true",
                   help="run `popnb reports` into benchmarks/_work/reports and time it (as long as `make reports` "
                        "takes) instead of reading reports/runs.json")
    p.add_argument("--out", type=Path, help="folder for results.md/.json (default: benchmarks/, or "
                                            "benchmarks/_work/ with --quick or --only)")
    args = p.parse_args(argv)
    args.only = BENCHMARKS if args.only is None else tuple(x.strip() for x in args.only.split(",") if x.strip())
    unknown = [x for x in args.only if x not in BENCHMARKS]
    if unknown:
        p.error(f"--only: unknown benchmark(s) {', '.join(unknown)}; choose from {', '.join(BENCHMARKS)}")
    if args.reps is not None and args.reps < 1:
        p.error("--reps must be at least 1")
    return args


def run_one(name: str, opts: Options) -> Section:
    """benchmarks.<name>.run(opts), timed; an exception becomes the section's error (the others still run)."""
    tick = time.perf_counter()
    try:
        section = importlib.import_module(f"benchmarks.{name}").run(opts)
    except Exception as err:  # noqa: BLE001 -- one failing benchmark must not lose the others' results
        traceback.print_exc()
        section = Section(name, name, error=f"{type(err).__name__}: {err}")
    section.seconds = time.perf_counter() - tick
    print(f"{name:<16} {section.seconds:7.1f} s" + (f"  FAILED: {section.error}" if section.error else ""), flush=True)
    return section


def main(argv: list[str] | None = None) -> int:
    args = parse(sys.argv[1:] if argv is None else argv)
    import torch

    default_threads = torch.get_num_threads()
    torch.set_num_threads(args.threads)
    opts = Options(reps=args.reps or (2 if args.quick else 5), quick=args.quick, threads=args.threads,
                   default_threads=default_threads, compile=args.compile and not args.quick, reports=args.reports)
    info = machine.describe(args.threads, default_threads)
    started, tick = time.strftime("%Y-%m-%d %H:%M:%S %z"), time.perf_counter()
    sections = [run_one(name, opts) for name in args.only]
    command = "python -m benchmarks" + "".join(f" {a}" for a in (sys.argv[1:] if argv is None else argv))
    run = {"command": command, "started": started, "wall_s": time.perf_counter() - tick, "reps": opts.reps,
           "warmup": opts.warmup, "quick": opts.quick, "machine": machine.finish(info)}
    out = args.out or (WORK if args.quick or args.only != BENCHMARKS else PACKAGE)
    md, js = render.write(out, run, sections)
    print(f"wrote {md} and {js} ({run['wall_s'] / 60:.1f} min)")
    return 1 if any(s.error for s in sections) else 0


if __name__ == "__main__":
    sys.exit(main())
