"""Popularity score and the five popularity classes (Qin, Wang & Zhu 2024, and two alternatives).

The paper's score: each count column is mean-normalised, (x - mean) / (max - min), and the columns
are summed with weights 0.75 views + 0.10 likes + 0.10 coins + 0.05 favorites (+ 0 shares); fixed
thresholds cut the score into classes 0..4. The normalisation statistics and the bin edges belong to
the data set they were fitted on: a `LabelScheme` keeps them, so a held-out set is labelled exactly
the way its training set was.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

PAPER_WEIGHTS = {"views": 0.75, "likes": 0.10, "coins": 0.10, "favorites": 0.05, "shares": 0.0}
PAPER_THRESHOLDS = (0.00025, 0.0015, 0.005, 0.02)
N_CLASSES = 5
CLASSES = pd.RangeIndex(N_CLASSES, name="class")  # the class axis of tables
KINDS = ("paper", "quantile", "log_views")


def _weighted_columns(weights: dict[str, float]) -> list[str]:
    """The columns a score needs: those with a non-zero weight, in the order given."""
    for col, w in weights.items():
        if not math.isfinite(float(w)):
            raise ValueError(f"weight of {col!r} is {w!r}; weights must be finite numbers")
    cols = [col for col, w in weights.items() if float(w) != 0.0]
    if not cols:
        raise ValueError(f"every weight is 0 in {weights!r}; at least one column must count")
    return cols


def _missing_columns(df: pd.DataFrame, cols: list[str]) -> list[str]:
    """Columns that are absent from df or hold nothing but NA."""
    return [c for c in cols if c not in df.columns or df[c].isna().all()]


def auto_kind(df: pd.DataFrame, weights: dict[str, float] = PAPER_WEIGHTS) -> tuple[str, list[str]]:
    """The "auto" rule: ("paper", []) when every weighted column of df is present (not all NA), else
    ("log_views", the missing ones)."""
    missing = _missing_columns(df, _weighted_columns(weights))
    return ("log_views" if missing else "paper"), missing


def _count_values(df: pd.DataFrame, col: str, weights: dict[str, float]) -> np.ndarray:
    """One weighted count column as float64, after checking it is there, numeric and complete."""
    if col not in df.columns or df[col].isna().all():
        zero = ", ".join(f"{c}=0" for c in _missing_columns(df, _weighted_columns(weights)))
        state = "absent" if col not in df.columns else "all NA"
        raise ValueError(
            f"column {col!r} has weight {weights[col]} but is {state} in this data; "
            f"set its weight to 0 (weights {zero}), or use LabelScheme.fit(df, kind='log_views') for views-only data"
        )
    values = df[col]
    if not (pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values)):
        raise ValueError(f"column {col!r} must hold numeric counts, got dtype {values.dtype}")
    na = values.isna().to_numpy()
    if na.any():
        rows = ", ".join(str(r) for r in df.index[na][:5])
        raise ValueError(
            f"column {col!r} is NA in {int(na.sum())} row(s) (index {rows}{', ...' if na.sum() > 5 else ''}); "
            f"the data layer quarantines such rows: drop them before scoring, or set the weight of {col!r} to 0"
        )
    return values.to_numpy(dtype=np.float64)


def fit_stats(df: pd.DataFrame, weights: dict[str, float] = PAPER_WEIGHTS) -> dict[str, dict[str, float]]:
    """Per weighted column {"mean", "max", "min"} of df (floats), the statistics the score normalises with."""
    stats = {}
    for col in _weighted_columns(weights):
        x = _count_values(df, col, weights)
        if x.max() == x.min():
            raise ValueError(f"column {col!r} is constant ({x.max():g}) so (x - mean)/(max - min) is undefined; set its weight to 0")
        stats[col] = {"mean": float(x.mean()), "max": float(x.max()), "min": float(x.min())}
    return stats


def popularity_score(
    df: pd.DataFrame,
    weights: dict[str, float] = PAPER_WEIGHTS,
    stats: dict[str, dict[str, float]] | None = None,
) -> pd.Series:
    """Weighted sum of mean-normalised counts, one float per row of df (same index).

    stats: per column mean/max/min to normalise with (from `fit_stats` on a fitting set);
    None fits them on df itself, as the paper does.
    """
    cols = _weighted_columns(weights)
    stats = fit_stats(df, weights) if stats is None else stats
    score = np.zeros(len(df))
    for col in cols:
        if col not in stats:
            raise ValueError(f"no normalisation stats for weighted column {col!r} (stats have {sorted(stats)})")
        s = stats[col]
        score += float(weights[col]) * (_count_values(df, col, weights) - s["mean"]) / (s["max"] - s["min"])
    return pd.Series(score, index=df.index, name="score")


def _check_thresholds(thresholds) -> np.ndarray:
    edges = np.asarray(thresholds, dtype=np.float64)
    if edges.shape != (N_CLASSES - 1,) or np.any(np.diff(edges) < 0) or not np.all(np.isfinite(edges)):
        raise ValueError(f"thresholds must be {N_CLASSES - 1} finite non-decreasing numbers, got {thresholds!r}")
    return edges


def bin_labels(score, thresholds=PAPER_THRESHOLDS) -> np.ndarray:
    """Class of each score in 0..4: class k holds thresholds[k-1] <= score < thresholds[k].

    A score equal to a threshold goes to the upper class (0.00025 is class 1 under the paper's thresholds).
    """
    edges = _check_thresholds(thresholds)
    s = np.asarray(score, dtype=np.float64)
    if np.isnan(s).any():
        raise ValueError(f"score is NaN at {int(np.isnan(s).sum())} position(s), first at {int(np.argmax(np.isnan(s)))}")
    return np.searchsorted(edges, s, side="right").astype(np.int64)


def quantile_edges(score, n_classes: int = N_CLASSES) -> tuple[float, ...]:
    """n_classes - 1 edges cutting score into bins of counts as equal as ties allow.

    Bins are filled from the bottom: each takes the run of distinct values whose count comes nearest
    to an equal share of the rows still left, never splits a tie, and is never empty. An edge sits
    halfway between the last value below it and the first above, so a new score in the gap falls
    to the nearer side.
    """
    s = np.asarray(score, dtype=np.float64)
    if s.ndim != 1 or np.isnan(s).any():
        raise ValueError("quantile edges need a 1-D score without NaN")
    values, counts = np.unique(s, return_counts=True)
    if len(values) < n_classes:
        raise ValueError(f"quantile bins need at least {n_classes} distinct scores, got {len(values)} in {len(s)} rows")
    below = np.concatenate([[0], np.cumsum(counts)])  # below[b]: rows with a value before values[b]
    edges, prev = [], 0
    for k in range(n_classes - 1):
        target = below[prev] + (len(s) - below[prev]) / (n_classes - k)
        lo, hi = prev + 1, len(values) - (n_classes - 1 - k)  # leave one distinct value for each bin after
        b = lo + int(np.argmin(np.abs(below[lo : hi + 1] - target)))
        mid = values[b - 1] + (values[b] - values[b - 1]) / 2
        edges.append(float(mid if mid > values[b - 1] else values[b]))  # adjacent floats: no room between
        prev = b
    return tuple(edges)


def log_views_score(df: pd.DataFrame) -> pd.Series:
    """log1p(views) per row: a score for data that only knows views."""
    views = _count_values(df, "views", {"views": 1.0})
    if (views < 0).any():
        raise ValueError(f"views is negative in {int((views < 0).sum())} row(s); counts must be >= 0")
    return pd.Series(np.log1p(views), index=df.index, name="score")


@dataclass
class LabelScheme:
    """How scores and classes are made, fitted on one data set and reusable on another.

    kind: "paper" (fixed thresholds), "quantile" (5 equal-count bins on the paper score), or
    "log_views" (5 equal-count bins on log1p(views)). weights: column -> weight of the paper score
    (unused by log_views). stats: column -> {"mean", "max", "min"} fitted on the fitting set.
    thresholds: the 4 class edges on the score. note: why this kind (set when fit picked it).
    """

    kind: str
    weights: dict[str, float]
    stats: dict[str, dict[str, float]]
    thresholds: tuple[float, ...]
    note: str = ""
    n_fit: int = 0

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"label scheme kind must be one of {KINDS}, got {self.kind!r}")
        self.thresholds = tuple(float(t) for t in _check_thresholds(self.thresholds))

    @classmethod
    def fit(cls, df: pd.DataFrame, kind: str = "paper", weights: dict[str, float] = PAPER_WEIGHTS) -> LabelScheme:
        """Fit on df. kind="auto": "paper" when every weighted column is present (not all NA), else "log_views"."""
        weights = {c: float(w) for c, w in weights.items()}
        note = ""
        if kind == "auto":
            kind, missing = auto_kind(df, weights)
            note = f"auto: {', '.join(missing)} missing" if missing else "auto: all weighted columns present"
        if kind == "log_views":
            score = log_views_score(df)
            return cls(kind, {"views": 1.0}, {}, quantile_edges(score), note, len(df))
        if kind not in KINDS:
            raise ValueError(f"label scheme kind must be one of {KINDS + ('auto',)}, got {kind!r}")
        stats = fit_stats(df, weights)
        if kind == "paper":
            return cls(kind, weights, stats, PAPER_THRESHOLDS, note, len(df))
        return cls(kind, weights, stats, quantile_edges(popularity_score(df, weights, stats)), note, len(df))

    def score(self, df: pd.DataFrame) -> pd.Series:
        """The score of each row of df with this scheme's fitted statistics (index kept)."""
        if self.kind == "log_views":
            return log_views_score(df)
        return popularity_score(df, self.weights, self.stats)

    def labels(self, df: pd.DataFrame) -> np.ndarray:
        """Class 0..4 of each row of df, int64 [len(df)]."""
        return bin_labels(self.score(df), self.thresholds)

    def class_ranges(self) -> list[tuple[float, float]]:
        """Score range [lo, hi) of each class, lo of class 0 = -inf and hi of class 4 = inf."""
        edges = [-math.inf, *self.thresholds, math.inf]
        return [(edges[k], edges[k + 1]) for k in range(N_CLASSES)]

    def describe(self) -> str:
        """One line saying what the score is, how it is binned, and on how many rows it was fitted."""
        if self.kind == "log_views":
            score = "log1p(views)"
        else:
            terms = " + ".join(f"{w:g}*{c}" for c, w in self.weights.items() if w != 0)
            score = f"mean-normalised {terms}"
        bins = {"paper": "paper's fixed thresholds", "quantile": "5 equal-count bins", "log_views": "5 equal-count bins"}
        edges = " / ".join(f"{t:.6g}" for t in self.thresholds)
        note = f" ({self.note})" if self.note else ""
        return f"{self.kind}{note}: {score}; {bins[self.kind]} at {edges}; fitted on {self.n_fit} rows"

    def save(self, path) -> Path:
        """Write the scheme as JSON to path; floats round-trip exactly."""
        path = Path(path)
        doc = {"kind": self.kind, "weights": self.weights, "stats": self.stats,
               "thresholds": list(self.thresholds), "note": self.note, "n_fit": self.n_fit}
        path.write_text(json.dumps(doc, indent=2, allow_nan=False) + "\n", encoding="utf-8")
        return path

    @classmethod
    def load(cls, path) -> LabelScheme:
        """Read a scheme written by `save`."""
        path = Path(path)
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
            return cls(doc["kind"], doc["weights"], doc["stats"], tuple(doc["thresholds"]),
                       doc.get("note", ""), doc.get("n_fit", 0))
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as e:
            raise ValueError(f"{path}: not a valid label scheme ({type(e).__name__}: {e})") from e
