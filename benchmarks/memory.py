"""Peak memory of the default training run: a `popnb train` subprocess, its RSS polled from /proc per epoch.

Each repetition trains the default pair for EPOCHS short epochs on the demo set; benchmarks.rss reads the child's
VmRSS every POLL seconds and the epoch lines it prints mark where each epoch ends, so each epoch gets its own
peak. The figure is the last epoch's peak over the second's (the first also holds start-up: imports, model,
cover cache); the whole run's peak is the child's VmHWM.
"""
from __future__ import annotations

import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.common import (
    Figure, Options, Section, demo_data, repeat, rss_mib, summarise, threads_label, use_cache,
)
from benchmarks.render import pipe_table
from benchmarks.rss import RssPoll

GOAL = 1.05  # "does not grow": the last epoch's peak within 5% of the second's
EPOCHS = 3
POLL = 0.02  # seconds
EPOCH_LINE = re.compile(r"epoch (\d+):")


def epoch_peaks(samples: list[tuple[float, int]], ends: list[float]) -> list[float]:
    """Peak MiB per epoch, then after the last: the largest sample after the previous epoch's end (the start, for
    epoch 1) up to its own end. samples: (time, KiB); ends: the time each epoch's line was printed."""
    peaks, bounds = [], [float("-inf"), *ends, float("inf")]
    for start, end in zip(bounds, bounds[1:]):
        inside = [kib for t, kib in samples if start < t <= end]
        peaks.append(rss_mib(max(inside)) if inside else float("nan"))
    return peaks


def train_once(cmd: list[str], log: Path) -> dict:
    """Run cmd (a `popnb train`), polling its RSS -> {"epoch_peaks_mib", "peak_mib", "seconds"}."""
    ends = []
    tick = time.perf_counter()
    with open(log, "a", encoding="utf-8") as err:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, text=True)
        rss = RssPoll(proc.pid, POLL).start()
        for line in proc.stdout:
            if EPOCH_LINE.match(line):
                ends.append(time.perf_counter())
        proc.wait()
    rss.stop()
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited with {proc.returncode}; see {log}")
    return {"epoch_peaks_mib": epoch_peaks(rss.samples, ends), "peak_mib": rss_mib(rss.hwm_kib),
            "seconds": time.perf_counter() - tick}


def imports_peak(log: Path) -> float:
    """Peak RSS MiB of a process that only imports what `popnb train` imports and builds the default model."""
    code = "from popnb.train.loop import train\nfrom popnb.models import build_model\nbuild_model(titles=['a'])"
    with open(log, "a", encoding="utf-8") as err:
        proc = subprocess.Popen([sys.executable, "-c", code], stdout=err, stderr=err)
        rss = RssPoll(proc.pid, POLL).start()
        proc.wait()
    return rss_mib(rss.stop().hwm_kib)


def run(opts: Options) -> Section:
    data, _ = demo_data(opts), use_cache(opts)  # the child inherits $POPNB_CACHE
    work, log = opts.work / "memory", opts.work / "logs" / "memory.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    steps = 2 if opts.quick else 4
    runs = []

    def one() -> float:
        out = work / "run"
        shutil.rmtree(out, ignore_errors=True)
        cmd = [sys.executable, "-m", "popnb", "train", str(data), "--out", str(out), "--epochs", str(EPOCHS),
               "--max-steps", str(steps), "--threads", str(opts.threads), "--seed", "0"]
        runs.append(train_once(cmd, log))
        peaks = runs[-1]["epoch_peaks_mib"]
        return peaks[EPOCHS - 1] / peaks[1]

    growth = repeat({"growth": one}, opts.reps, opts.warmup, "memory")["growth"]
    measured = runs[opts.warmup:]
    section = Section("memory", f"6. Memory: peak RSS of `popnb train` (default pair, {EPOCHS} epochs of {steps} "
                                f"steps, {threads_label(opts.threads)})")
    section.figures.append(Figure(f"peak RSS, epoch {EPOCHS} / epoch 2", growth, GOAL, higher=False))
    median = lambda key, i=None: summarise([r[key] if i is None else r[key][i] for r in measured]).median  # noqa: E731
    rows = [[f"epoch {e + 1}" + (" (with start-up)" if e == 0 else ""), f"{median('epoch_peaks_mib', e):,.0f}"]
            for e in range(EPOCHS)]
    rows += [["after the last epoch line (final files, exit)", f"{median('epoch_peaks_mib', EPOCHS):,.0f}"],
             ["whole run (VmHWM)", f"{median('peak_mib'):,.0f}"]]
    baseline = imports_peak(log)
    rows.append(["for scale: a process that only imports popnb.train and builds the model", f"{baseline:,.0f}"])
    section.notes.append(pipe_table(["interval", "peak RSS MiB (median over repetitions)"], rows))
    section.data = {"runs": measured, "epochs": EPOCHS, "max_steps": steps, "imports_peak_mib": baseline}
    return section
