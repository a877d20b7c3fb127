"""What the fusion-weight sweep (Table 1) and the backbone comparison (Table 2) share: a history's summary over
seeds, the paper's numbers in the same shape, the paper's table layout beside ours, the constant baseline, the
best epoch, and the best-valid figure.

A history has one row per (table row, seed, epoch, split) with RUN/history.csv's columns; `Rows` says which
columns name a table row (a weight pair, a backbone pair) and how a row is written.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

SPLITS = ("train", "valid")
SPEARMAN = "spearman_expected"  # the history's Spearman: expected class sum_k k*p_k against the true score


@dataclass(frozen=True)
class Rows:
    """What one row of a results table is: the history columns that name it, how it is written, the index name."""

    keys: tuple[str, ...]
    label: Callable[..., str]
    name: str

    def labels(self, frame: pd.DataFrame) -> list[str]:
        return [self.label(*key) for key in zip(*(frame[k] for k in self.keys))]


def summarise(history: pd.DataFrame, rows: Rows, metric: str = "ordinal_accuracy") -> pd.DataFrame:
    """Mean and std over seeds (sample std, ddof=1; NaN for one seed) of metric per table row, split and epoch.

    Columns: the row keys, split, epoch, mean, std, seeds; table rows in the order of history.
    """
    keys = list(rows.keys)
    order = {key: i for i, key in enumerate(dict.fromkeys(zip(*(history[k] for k in keys))))}
    grouped = history.groupby([*keys, "split", "epoch"], sort=False)[metric]
    out = grouped.agg(mean="mean", std="std", seeds="count").reset_index()
    out["order"] = [order[key] for key in zip(*(out[k] for k in keys))]
    out = out.sort_values(["order", "split", "epoch"], kind="stable").drop(columns="order")
    return out.reset_index(drop=True)


def paper_summary(paper: pd.DataFrame, rows: Rows) -> pd.DataFrame:
    """A table of the paper (the row keys, epoch, train_acc, valid_acc) in summarise()'s shape: mean = the
    reported value, std NaN, seeds 1."""
    paper = paper.rename(columns={"train_acc": "train", "valid_acc": "valid"})
    long = paper.melt([*rows.keys, "epoch"], list(SPLITS), var_name="split", value_name="acc")
    return summarise(long.assign(seed=0), rows, "acc")


def cell(mean: float, std: float, digits: int = 4) -> str:
    """'mean ± std'; just the mean when std is NaN, '' when the mean is (no value: e.g. a constant's Spearman)."""
    if np.isnan(mean):
        return ""
    return f"{mean:.{digits}f}" if np.isnan(std) else f"{mean:.{digits}f} ± {std:.{digits}f}"


def layout(summary: pd.DataFrame, rows: Rows, digits: int = 4) -> pd.DataFrame:
    """The paper's layout: one row per table row (its label), columns 'e1 train', 'e1 valid', ... per epoch;
    cells as `cell` writes them."""
    s = summary.assign(row=rows.labels(summary),
                       column=[f"e{e} {split}" for e, split in zip(summary["epoch"], summary["split"])],
                       cell=[cell(m, d, digits) for m, d in zip(summary["mean"], summary["std"])])
    columns = [f"e{e} {split}" for e in sorted(summary["epoch"].unique()) for split in SPLITS
               if f"e{e} {split}" in set(s["column"])]
    table = s.pivot(index="row", columns="column", values="cell")
    return table.reindex(index=list(dict.fromkeys(s["row"])), columns=columns).rename_axis(index=rows.name,
                                                                                          columns=None)


def beside(ours: pd.DataFrame, paper: pd.DataFrame) -> pd.DataFrame:
    """Two layout() tables merged: each of our columns followed by the paper's ('e1 train (paper)'); our rows
    first, then the paper's other rows; '' where one side has no value."""
    rows = list(dict.fromkeys([*ours.index, *paper.index]))
    columns = list(dict.fromkeys([*ours.columns, *paper.columns]))
    ours, paper = ours.reindex(index=rows, columns=columns), paper.reindex(index=rows, columns=columns)
    merged = {}
    for c in columns:
        merged[c], merged[f"{c} (paper)"] = ours[c], paper[c]
    return pd.DataFrame(merged, index=rows).fillna("").rename_axis(index=ours.index.name)


def baselines(history: pd.DataFrame, rows: Rows) -> pd.Series:
    """Per table row (indexed by its keys): the constant baseline on the valid split (the best constant
    prediction's ordinal accuracy), mean over seeds."""
    valid = history[history["split"] == "valid"]
    per_seed = valid.groupby([*rows.keys, "seed"], sort=False)["constant_baseline_accuracy"].first()
    return per_seed.groupby(level=list(rows.keys), sort=False).mean()


def best_epochs(summary: pd.DataFrame, rows: Rows) -> pd.DataFrame:
    """summarise()'s valid rows, one per table row: the epoch with the highest mean (the earliest on a tie)."""
    valid = summary[summary["split"] == "valid"]
    return valid.loc[valid.groupby(list(rows.keys), sort=False)["mean"].idxmax()]


def at_best_epochs(history: pd.DataFrame, rows: Rows, metric: str = "ordinal_accuracy"
                   ) -> pd.core.groupby.SeriesGroupBy:
    """Valid `metric` of each seed at its table row's best epoch (by ordinal accuracy), grouped by table row."""
    best = best_epochs(summarise(history, rows), rows)[[*rows.keys, "epoch"]]
    runs = history[history["split"] == "valid"].merge(best, on=[*rows.keys, "epoch"])
    return runs.groupby(list(rows.keys), sort=False)[metric]


def best_valid_figure(ticks: list[str], mean, std, seeds: list, paper, baseline, title: str,
                      xlabel: str = "") -> plt.Figure:
    """Bars: best valid ordinal accuracy per table row (mean over seeds at the best epoch) ± std, each seed as a
    dot; the paper's best as a red square where it reports one; the constant baseline (mean over rows) dotted."""
    x = np.arange(len(ticks))
    fig, ax = plt.subplots(figsize=(1.5 * len(ticks) + 2.5, 3.8))
    ax.bar(x, mean, yerr=np.nan_to_num(np.asarray(std, dtype=float)), capsize=4, color="C0", alpha=0.7,
           label="ours: best epoch, mean ± std over seeds")
    for i, values in enumerate(seeds):
        ax.plot(np.full(len(values), i), values, "o", color="k", ms=3, label="each seed" if i == 0 else None)
    ax.plot(x, paper, "s", color="C3", label="paper: best valid")
    level = float(np.mean(baseline))
    ax.axhline(level, color="k", ls=":", lw=1.2, label=f"constant baseline {level:.3f} (this data)")
    ax.set_xticks(x, ticks, fontsize=7)
    ax.set(ylim=(0.0, 1.0), xlabel=xlabel, ylabel="best valid ordinal accuracy")
    ax.grid(alpha=0.3, axis="y")
    ax.legend(fontsize=7, loc="upper right")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    return fig
