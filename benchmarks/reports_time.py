"""`make reports` end to end: wall time per notebook and in total, against a 10-minute goal.

By default this reads reports/runs.json, the record `popnb reports` leaves (one entry per notebook: status,
seconds, start time), and reports it as the single run it is. With --reports it runs `popnb reports` into
benchmarks/_work/reports itself (about a quarter of an hour), timing the whole command and its peak RSS.
"""
from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.common import ROOT, Figure, Options, Section, rss_mib
from benchmarks.render import pipe_table
from benchmarks.rss import RssPoll

GOAL_S = 600.0
RECORDS = "runs.json"  # popnb.reports.runner.RECORDS, read without importing the runner


def read_records(folder: Path) -> list[dict]:
    """The notebook records of <folder>/runs.json, in start order ([] when absent or unreadable)."""
    try:
        records = json.loads((folder / RECORDS).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    return sorted(records.values(), key=lambda r: r["started"])


def one_run(records: list[dict], slack_s: float = 60.0) -> bool:
    """Whether the records come from one `popnb reports` run: each notebook started within slack_s of the end of
    the one before (an `--only` run keeps older records of the other notebooks)."""
    return all(b["started"] - (a["started"] + a["seconds"]) < slack_s for a, b in zip(records, records[1:]))


def run_reports(out: Path, log: Path) -> dict:
    """`popnb reports --out out` in a subprocess -> wall seconds, exit code, peak RSS MiB of its largest process
    (runner or notebook kernel) and of all of them together."""
    log.parent.mkdir(parents=True, exist_ok=True)
    tick = time.perf_counter()
    with open(log, "a", encoding="utf-8") as sink:
        proc = subprocess.Popen([sys.executable, "-m", "popnb", "reports", "--out", str(out)], cwd=ROOT,
                                stdout=sink, stderr=sink)
        rss = RssPoll(proc.pid, every=0.5, tree=True).start()
        proc.wait()
    rss.stop()
    return {"wall_s": time.perf_counter() - tick, "returncode": proc.returncode,
            "peak_process_mib": rss_mib(rss.hwm_kib), "peak_total_mib": rss_mib(max(k for _, k in rss.samples))}


def notebook_table(records: list[dict]) -> str:
    rows = [[r["name"], r["status"], f"{r['seconds']:.1f}", time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(
        r["started"]))] for r in records]
    rows.append(["total", "", f"{sum(r['seconds'] for r in records):.1f}", ""])
    return pipe_table(["notebook", "status", "seconds", "started"], rows)


def run(opts: Options) -> Section:
    section = Section("reports_time", "5. `make reports` end to end (demo data)")
    if opts.reports:
        folder = opts.work / "reports"
        measured = run_reports(folder, opts.work / "logs" / "reports.log")
        source = (f"measured in this run: `popnb reports --out {folder.relative_to(ROOT)}` took "
                  f"{measured['wall_s']:.0f} s wall time (interpreter start and index included), exit code "
                  f"{measured['returncode']}; peak RSS {measured['peak_process_mib']:,.0f} MiB for its largest "
                  f"process (runner or notebook kernel), {measured['peak_total_mib']:,.0f} MiB for all together")
        section.data = measured
    else:
        folder = ROOT / "reports"
        source = (f"read from `reports/{RECORDS}`, the record of the last `popnb reports`; not rerun here "
                  "(pass `--reports` to time a run and its memory)")
    records = read_records(folder)
    if not records:
        section.notes.append(f"No `{RECORDS}` in {folder}: run `make reports` first, or pass `--reports`.")
        return section
    total = section.data.get("wall_s", sum(r["seconds"] for r in records))
    failed = [r["name"] for r in records if r["status"] != "ok"]
    single = "one run" if one_run(records) else "records of several runs (an --only run kept older ones)"
    section.figures.append(Figure("`make reports` wall time / 10 min", [total / GOAL_S], 1.0, higher=False, unit="",
                                  note=f"{total / 60:.1f} min; {single}: a single measurement, not a median"))
    section.notes += [source + ".", notebook_table(records)]
    if failed:
        section.notes.append(f"**Failed notebooks:** {', '.join(failed)}")
    section.data |= {"records": records, "total_s": total, "one_run": one_run(records)}
    return section
