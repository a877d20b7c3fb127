"""Label binning (notebook 02): the paper's score and classes, quantile bins, baselines, sensitivity.

Every function returns a DataFrame or a matplotlib Figure. The point the notebook makes plainly:
the paper's thresholds are fixed numbers on a score normalised by one data set's (max - min), so
the class counts depend on that data set (even on its single biggest video) and on the weights.
"""
from __future__ import annotations

import math

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from popnb.labels import CLASSES, N_CLASSES, PAPER_THRESHOLDS, PAPER_WEIGHTS, LabelScheme, bin_labels, popularity_score
from popnb.metrics import constant_baseline


def prepare(df: pd.DataFrame, weights: dict[str, float] = PAPER_WEIGHTS
            ) -> tuple[pd.DataFrame, dict[str, float], list[str]]:
    """The rows and weights a score can use: a weighted column absent or all NA gets weight 0, then rows
    with NA in a still-weighted column are dropped. Returns (rows, weights, notes saying what changed)."""
    weights, notes = dict(weights), []
    for col, w in weights.items():
        if w != 0 and (col not in df or df[col].isna().all()):
            weights[col] = 0.0
            notes.append(f"{col} is missing in this data: its weight {w:g} is set to 0")
    used = [c for c, w in weights.items() if w != 0]
    if not used:
        raise ValueError(f"no weighted count column is present in this data (weights {weights})")
    known = df[used].notna().all(axis=1)
    if not known.all():
        notes.append(f"{int((~known).sum())} row(s) with an unknown {'/'.join(used)} count are left out")
    return df[known], weights, notes


def fit_schemes(rows: pd.DataFrame, weights: dict[str, float] = PAPER_WEIGHTS) -> dict[str, LabelScheme]:
    """The paper's fixed-threshold scheme and equal-count quantile bins on the same score, fitted on rows."""
    return {kind: LabelScheme.fit(rows, kind=kind, weights=weights) for kind in ("paper", "quantile")}


def _range(lo: float, hi: float) -> str:
    """'< hi', '[lo, hi)' or '>= lo' for a class's score range."""
    if not math.isfinite(lo):
        return f"< {hi:.4g}"
    return f">= {lo:.4g}" if not math.isfinite(hi) else f"[{lo:.4g}, {hi:.4g})"


def class_table(rows: pd.DataFrame, schemes: dict[str, LabelScheme]) -> pd.DataFrame:
    """Per class 0..4 and scheme: the score range, the number of rows and their share."""
    table = pd.DataFrame(index=CLASSES)
    for name, scheme in schemes.items():
        counts = np.bincount(scheme.labels(rows), minlength=N_CLASSES)
        table[f"{name} range"] = [_range(lo, hi) for lo, hi in scheme.class_ranges()]
        table[f"{name} n"] = counts
        table[f"{name} share"] = counts / counts.sum()
    return table


def class_histogram(table: pd.DataFrame, label: str) -> plt.Figure:
    """Side-by-side bars of rows per class for each scheme in a `class_table`."""
    names = [c[: -len(" n")] for c in table.columns if c.endswith(" n")]
    fig, ax = plt.subplots(figsize=(7, 3.8))
    width = 0.8 / len(names)
    for j, name in enumerate(names):
        x = np.arange(N_CLASSES) + (j - (len(names) - 1) / 2) * width
        bars = ax.bar(x, table[f"{name} n"], width, label=f"{name} bins")
        ax.bar_label(bars, fmt="%d", fontsize=7)
    scored = int(table[f"{names[0]} n"].sum())
    ax.set(xticks=range(N_CLASSES), xlabel="class", ylabel="videos",
           title=f"Videos per class ({scored:,} scored) - {label}")
    ax.legend()
    fig.tight_layout()
    return fig


def baseline_table(rows: pd.DataFrame, schemes: dict[str, LabelScheme]) -> pd.DataFrame:
    """Per scheme: the majority class and its share, and the best constant prediction with its
    ordinal accuracy: the number every model must beat."""
    out = {}
    for name, scheme in schemes.items():
        y = scheme.labels(rows)
        counts = np.bincount(y, minlength=N_CLASSES)
        cls, acc = constant_baseline(y)
        out[name] = {"majority class": int(counts.argmax()), "majority share": counts.max() / len(y),
                     "constant class": cls, "constant ordinal accuracy": acc}
    return pd.DataFrame.from_dict(out, orient="index").rename_axis("scheme")


def score_figure(rows: pd.DataFrame, schemes: dict[str, LabelScheme], label: str) -> plt.Figure:
    """Share of videos scoring below x (the empirical CDF, symlog x axis) with each scheme's class edges:
    the jump of the curve between two edges is that class's share."""
    score = np.sort(next(iter(schemes.values())).score(rows).to_numpy())
    fig, ax = plt.subplots(figsize=(8, 3.8))
    ax.plot(score, np.arange(1, len(score) + 1) / len(score), color="k", lw=1.2, drawstyle="steps-post")
    ax.set_xscale("symlog", linthresh=1e-4)
    for (name, scheme), color in zip(schemes.items(), ("C3", "C0", "C2")):
        for k, t in enumerate(scheme.thresholds):
            ax.axvline(t, color=color, ls="-" if name == "paper" else "--", lw=1,
                       label=f"{name} edges" if k == 0 else None)
    ax.set(xlabel="popularity score (symlog)", ylabel="share of videos with a lower score", ylim=(0, 1.02),
           title=f"Score and class edges - {label}")
    ax.legend(loc="lower right")
    fig.tight_layout()
    return fig


def threshold_views(scheme: LabelScheme) -> pd.DataFrame:
    """What each fixed threshold means in views, the other counts held at their mean:
    views = mean + t * (max - min) / w_views. It moves with this data set's max views."""
    if scheme.weights.get("views", 0) == 0:
        raise ValueError("threshold_views needs a scheme with a non-zero views weight")
    s, w = scheme.stats["views"], scheme.weights["views"]
    views = [s["mean"] + t * (s["max"] - s["min"]) / w for t in scheme.thresholds]
    return pd.DataFrame({"threshold": scheme.thresholds, "views": views,
                         "share of max views": np.array(views) / s["max"]},
                        index=pd.Index([f"class {k}/{k + 1}" for k in range(N_CLASSES - 1)], name="edge"))


def drop_top_effect(rows: pd.DataFrame, weights: dict[str, float] = PAPER_WEIGHTS, drops: tuple[int, ...] = (1, 10),
                    thresholds=PAPER_THRESHOLDS) -> pd.DataFrame:
    """Rows per paper class when the score is refitted after removing the k most-viewed videos,
    for k in (0, *drops): the fixed thresholds follow the data set's max, so a few videos move many."""
    order = rows["views"].astype("float64").sort_values(ascending=False).index
    table = pd.DataFrame(index=CLASSES)
    for k in (0, *drops):
        kept = rows.drop(index=order[:k])
        labels = bin_labels(popularity_score(kept, weights), thresholds)
        table["all rows" if k == 0 else f"without top {k}"] = np.bincount(labels, minlength=N_CLASSES)
    return table


def moved_weights(weights: dict[str, float], col: str, value: float) -> dict[str, float]:
    """weights with `col` set to `value` and the other non-zero weights rescaled so the total stays the same."""
    total, others = sum(weights.values()), sum(w for c, w in weights.items() if c != col)
    scale = (total - value) / others if others > 0 else 0.0
    return {c: value if c == col else w * scale for c, w in weights.items()}


def weight_sensitivity(rows: pd.DataFrame, weights: dict[str, float] = PAPER_WEIGHTS,
                       grid: tuple[float, ...] = (0.0, 0.05, 0.1, 0.25, 0.5, 0.75, 1.0),
                       thresholds=PAPER_THRESHOLDS) -> pd.DataFrame:
    """Rows per paper class as one weight moves over `grid` (the others rescaled, see `moved_weights`).

    Only columns present in rows are moved (a missing column keeps weight 0). Index (column, weight);
    columns: class 0..4 counts. A point where every weight is 0 is skipped.
    """
    present = [c for c in weights if c in rows and rows[c].notna().all()]
    base = {c: w for c, w in weights.items() if c in present}
    records = {}
    for col in present:
        for value in grid:
            w = moved_weights(base, col, value)
            if not any(w.values()):
                continue
            labels = bin_labels(popularity_score(rows, w), thresholds)
            records[(col, value)] = np.bincount(labels, minlength=N_CLASSES)
    table = pd.DataFrame.from_dict(records, orient="index", columns=[f"class {k}" for k in range(N_CLASSES)])
    table.index = pd.MultiIndex.from_tuples(table.index, names=["column", "weight"])
    return table


def sensitivity_figure(table: pd.DataFrame, weights: dict[str, float], label: str) -> plt.Figure:
    """Per moved column, the share of each class against its weight (stacked); the paper's weight dashed."""
    cols = list(dict.fromkeys(table.index.get_level_values("column")))
    fig, axes = plt.subplots(1, len(cols), figsize=(3.2 * len(cols), 3.4), sharey=True, squeeze=False)
    for ax, col in zip(axes[0], cols):
        part = table.loc[col]
        shares = part.div(part.sum(axis=1), axis=0)
        ax.stackplot(shares.index, shares.T.to_numpy(), labels=shares.columns)
        ax.axvline(weights.get(col, 0.0), color="k", ls="--", lw=1)
        ax.set(xlabel=f"weight of {col}", ylim=(0, 1))
    axes[0, 0].set_ylabel("share of videos")
    handles, names = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, names, fontsize=8, loc="center left", bbox_to_anchor=(1.0, 0.5))
    fig.suptitle(f"Paper classes as one weight moves (others rescaled) - {label}")
    fig.tight_layout()
    return fig
