"""What every run folder shares, end to end or pretrained recipe: its file names, the checks before a run
starts in it, the data it reads (--limit), and metrics.json / history.csv (the final and the best epoch)."""
from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pandas as pd

from popnb.data import load_dataset
from popnb.train.config import TrainConfig, default_params, run_params

CONFIG, SCHEME, CHECKPOINT, HISTORY, METRICS = (
    "config.json", "label_scheme.json", "checkpoint.pt", "history.csv", "metrics.json")


def check_run_dir(run: Path, cfg: TrainConfig, resume: bool) -> None:
    """A new run needs an absent or empty folder; --resume needs a run folder started with the same parameters."""
    if run.exists() and not run.is_dir():
        raise ValueError(f"--out {run} is a file, not a run folder")
    if not (run.is_dir() and any(run.iterdir())):
        return
    if not resume:
        raise ValueError(f"{run} exists and is not empty: pass --resume to continue the run in it, "
                         "or choose a new --out")
    if not (run / CONFIG).is_file():
        raise ValueError(f"{run} holds no {CONFIG}: it is not a popnb run folder and cannot be resumed")
    defaults = default_params()  # a parameter a run's config.json lacks held its default
    saved = defaults | json.loads((run / CONFIG).read_text(encoding="utf-8"))["params"]
    new = defaults | run_params(cfg)
    differ = [f"{k}={saved.get(k)!r} (now {v!r})" for k, v in new.items() if k != "out" and saved.get(k) != v]
    if differ:
        raise ValueError(f"{run} was started with other parameters: {', '.join(differ)}; "
                         "resume with the same arguments, or choose a new --out")


def load_limited(data_dir, limit: int | None = None):
    """The dataset folder (popnb.data.Dataset), cut to its first `limit` videos (None: all), as --limit does."""
    data = load_dataset(data_dir)
    if limit is not None:
        data = replace(data, videos=data.videos.iloc[:limit].reset_index(drop=True))
    return data


def summarise(history: list[dict], scheme, n_train: int, n_valid: int) -> dict:
    """metrics.json (scheme: a LabelScheme or popnb.targets.Target, by its describe()): the final epoch and the best epoch (highest valid ordinal accuracy, earliest on ties)."""
    rows = {(r["epoch"], r["split"]): {k: v for k, v in r.items() if k not in ("epoch", "split", "steps", "seconds")}
            for r in history}
    epochs = sorted({r["epoch"] for r in history})
    best = max(epochs, key=lambda e: (rows[(e, "valid")]["ordinal_accuracy"], -e))

    def pick(e: int) -> dict:
        return {"epoch": e, "train": rows[(e, "train")], "valid": rows[(e, "valid")]}

    return {"final": pick(epochs[-1]), "best": pick(best), "label_scheme": scheme.describe(),
            "n_train": n_train, "n_valid": n_valid}


def write_progress(run: Path, history: list[dict], summary: dict) -> None:
    pd.DataFrame(history).to_csv(run / HISTORY, index=False)
    (run / METRICS).write_text(json.dumps(summary, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
