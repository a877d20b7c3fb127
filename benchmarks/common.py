"""What every benchmark shares: options, repeated timing, summaries, figures and sections, scratch data.

A figure is a ratio measured in one run on one machine: each repetition yields one value (for a ratio of two
timings, both are taken in the same repetition, one right after the other, so load that comes and goes hits
both), warm-up repetitions are dropped, and the figure is the median of the rest with its min and max.
"""
from __future__ import annotations

import os
import statistics
import sys
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

from tqdm.auto import tqdm

PACKAGE = Path(__file__).resolve().parent
WORK = PACKAGE / "_work"  # scratch: demo data, caches, runs, logs (git-ignored)
ROOT = PACKAGE.parent  # the project checkout


@dataclass
class Options:
    """Command-line options: repetitions after warm-up, smaller workloads (quick), torch CPU threads."""

    reps: int = 5
    warmup: int = 1
    quick: bool = False
    threads: int = 1
    default_threads: int = 1  # torch's own default on this machine (before --threads was applied)
    work: Path = WORK
    compile: bool = True  # also time torch.compile in tries (over a minute of compiling on CPU)
    reports: bool = False  # run `popnb reports` instead of reading reports/runs.json


@dataclass
class Stat:
    """Median, min and max of n values."""

    median: float
    min: float
    max: float
    n: int


def summarise(values: list[float]) -> Stat:
    """values (at least one) -> Stat."""
    if not values:
        raise ValueError("no values to summarise")
    return Stat(statistics.median(values), min(values), max(values), len(values))


@dataclass
class Figure:
    """One measured ratio beside its goal. samples: one value per repetition; goal None: reported, no goal.

    higher=True: met when the median >= goal, else when the median <= goal."""

    name: str
    samples: list[float]
    goal: float | None = None
    higher: bool = True
    unit: str = "x"
    note: str = ""

    @property
    def stat(self) -> Stat:
        return summarise(self.samples)

    @property
    def met(self) -> bool | None:
        if self.goal is None:
            return None
        median = self.stat.median
        return median >= self.goal if self.higher else median <= self.goal

    def to_dict(self) -> dict:
        return {"name": self.name, **asdict(self.stat), "samples": self.samples, "goal": self.goal,
                "goal_is": ">=" if self.higher else "<=", "met": self.met, "unit": self.unit, "note": self.note}


@dataclass
class Section:
    """One benchmark's outcome: its figures, markdown notes (paragraphs, tables) and raw numbers for JSON."""

    key: str
    title: str
    figures: list[Figure] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    data: dict = field(default_factory=dict)
    seconds: float = 0.0
    error: str | None = None

    def to_dict(self) -> dict:
        return {"key": self.key, "title": self.title, "figures": [f.to_dict() for f in self.figures],
                "notes": self.notes, "data": self.data, "seconds": round(self.seconds, 1), "error": self.error}


def seconds(fn: Callable[[], object]) -> float:
    """Wall seconds of one call of fn."""
    tick = time.perf_counter()
    fn()
    return time.perf_counter() - tick


def repeat(fns: dict[str, Callable[[], float]], reps: int, warmup: int = 1, desc: str = "") -> dict[str, list[float]]:
    """Call every fn once per repetition, interleaved (a, b, a, b, ...); each returns a measurement (e.g. seconds).

    The first `warmup` repetitions are dropped. Returns {name: [reps values]}."""
    out = {name: [] for name in fns}
    for rep in tqdm(range(warmup + reps), desc=desc or "reps", unit="rep", leave=False):
        for name, fn in fns.items():
            value = fn()
            if rep >= warmup:
                out[name].append(value)
    return out


def ratios(numerators: list[float], denominators: list[float]) -> list[float]:
    """Element-wise numerator / denominator of two equally long lists (one pair per repetition)."""
    if len(numerators) != len(denominators):
        raise ValueError(f"{len(numerators)} numerators for {len(denominators)} denominators")
    return [a / b for a, b in zip(numerators, denominators)]


@contextmanager
def torch_threads(n: int):
    """torch on n CPU threads inside the block; the previous count restored after."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@contextmanager
def quiet(log: Path):
    """stdout and stderr (progress bars, run logs of the code measured) appended to `log` inside the block."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "a", encoding="utf-8") as sink:
        out, err = sys.stdout, sys.stderr
        sys.stdout = sys.stderr = sink
        try:
            yield
        finally:
            sys.stdout, sys.stderr = out, err


def demo_size(opts: Options) -> int:
    """Videos in the benchmarks' demo set: 200, 100 when quick."""
    return 100 if opts.quick else 200


def demo_data(opts: Options) -> Path:
    """The synthetic demo set of demo_size(opts) videos (seed 0, 224 x 126 covers) under the scratch folder,
    made on first use."""
    from popnb.data.demo import make_demo_dataset

    n = demo_size(opts)
    path = opts.work / "data" / f"demo-n{n}-seed0"
    if not (path / "videos.csv").is_file():
        make_demo_dataset(path, n=n, seed=0)
    return path


def use_cache(opts: Options) -> Path:
    """Point popnb's cover and feature cache ($POPNB_CACHE) at the scratch folder; returns it."""
    path = opts.work / "cache"
    os.environ["POPNB_CACHE"] = str(path)
    return path


def threads_label(n: int) -> str:
    """'1 thread', '2 threads'."""
    return f"{n} thread" + ("s" if n != 1 else "")


def rss_mib(kib: float) -> float:
    """KiB (getrusage's ru_maxrss and /proc's VmRSS on Linux) -> MiB."""
    return kib / 1024
