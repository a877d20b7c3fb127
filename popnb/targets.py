"""What a model predicts: a real score per video and its 5 classes, fitted on the train split only.

Kinds:
- "log_views": log1p(views); classes are 5 equal-count bins of it (the "log_views" label scheme).
- "beyond_followers": log1p(views) - (intercept + slope * log1p(followers)), the line fitted by least
  squares on the train split: how much more a video is watched than its uploader's audience predicts
  (SMP Challenge style); classes are 5 equal-count bins of the train residuals.
- "paper", "quantile": the paper's weighted count score and its classes (a `LabelScheme` of that kind).

A score of a held-out set uses the train split's line and class edges, so a prediction of the score
is binned by `Target.bin` into the same classes the truth is (`Target.labels`).
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from popnb.labels import PAPER_WEIGHTS, LabelScheme, bin_labels, quantile_edges

KINDS = ("log_views", "beyond_followers", "paper", "quantile")


def _log1p_column(df: pd.DataFrame, column: str, kind: str) -> np.ndarray:
    """log1p of a count column as float64 [N]; ValueError naming the column when absent, all NA or partly NA."""
    if column not in df.columns or df[column].isna().all():
        state = "absent" if column not in df.columns else "all NA"
        raise ValueError(f"target {kind!r} needs column {column!r}, which is {state} in this data")
    na = df[column].isna().to_numpy()
    if na.any():
        rows = ", ".join(str(r) for r in df.index[na][:5])
        raise ValueError(f"target {kind!r}: column {column!r} is NA in {int(na.sum())} row(s) (index {rows}"
                         f"{', ...' if na.sum() > 5 else ''}); drop them first, e.g. df.dropna(subset=[{column!r}])")
    values = df[column].to_numpy(dtype=np.float64)
    if (values < 0).any():
        raise ValueError(f"target {kind!r}: column {column!r} is negative in {int((values < 0).sum())} row(s)")
    return np.log1p(values)


@dataclass
class Target:
    """A fitted target. thresholds: the 4 class edges on the score. line: {"intercept", "slope"} of
    log1p(views) on log1p(followers) (beyond_followers only). scheme: the label scheme (paper/quantile only)."""

    kind: str
    thresholds: tuple[float, ...]
    line: dict[str, float] = field(default_factory=dict)
    scheme: LabelScheme | None = None
    n_fit: int = 0

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"target kind must be one of {KINDS}, got {self.kind!r}")
        self.thresholds = tuple(float(t) for t in self.thresholds)

    @classmethod
    def fit(cls, df_train: pd.DataFrame, kind: str = "log_views", weights: dict[str, float] = PAPER_WEIGHTS) -> Target:
        """Fit on the train split. weights: the paper score's (paper/quantile only)."""
        if kind in ("paper", "quantile"):
            scheme = LabelScheme.fit(df_train, kind, weights)
            return cls(kind, scheme.thresholds, scheme=scheme, n_fit=len(df_train))
        if kind not in KINDS:
            raise ValueError(f"target kind must be one of {KINDS}, got {kind!r}")
        line = {}
        if kind == "beyond_followers":
            x = _log1p_column(df_train, "followers", kind)
            if np.ptp(x) == 0:
                raise ValueError("target 'beyond_followers': followers is the same for every train row; no line to fit")
            slope, intercept = np.polyfit(x, _log1p_column(df_train, "views", kind), 1)
            line = {"intercept": float(intercept), "slope": float(slope)}
        target = cls(kind, (0.0,) * 4, line, n_fit=len(df_train))
        target.thresholds = quantile_edges(target.score(df_train))
        return target

    def score(self, df: pd.DataFrame) -> np.ndarray:
        """The real-valued target of each row of df, float64 [len(df)] (log1p units for the views kinds)."""
        if self.scheme is not None:
            return self.scheme.score(df).to_numpy()
        y = _log1p_column(df, "views", self.kind)
        if self.kind == "beyond_followers":
            y = y - (self.line["intercept"] + self.line["slope"] * _log1p_column(df, "followers", self.kind))
        return y

    def bin(self, score) -> np.ndarray:
        """Class 0..4 of each score [N] (a true or a predicted one) by the train split's edges, int64 [N]."""
        return bin_labels(score, self.thresholds)

    def labels(self, df: pd.DataFrame) -> np.ndarray:
        """The true class 0..4 of each row of df, int64 [len(df)]."""
        return self.bin(self.score(df))

    def describe(self) -> str:
        """One line: the kind, the fitted line or scheme, the class edges and the number of train rows."""
        if self.scheme is not None:
            return f"target {self.scheme.describe()}"
        line = (f"log1p(views) - ({self.line['intercept']:.6g} + {self.line['slope']:.6g} * log1p(followers))"
                if self.line else "log1p(views)")
        edges = " / ".join(f"{t:.6g}" for t in self.thresholds)
        return f"target {self.kind}: {line}; 5 equal-count classes at {edges}; fitted on {self.n_fit} rows"

    def save(self, path) -> Path:
        """Write the target as JSON to path; floats round-trip exactly."""
        path = Path(path)
        path.write_text(json.dumps(asdict(self), indent=2, allow_nan=False) + "\n", encoding="utf-8")
        return path

    @classmethod
    def load(cls, path) -> Target:
        """Read a target written by `save`."""
        try:
            doc = json.loads(Path(path).read_text(encoding="utf-8"))
            scheme = doc.pop("scheme")
            return cls(**doc, scheme=None if scheme is None else LabelScheme(**scheme))
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as e:
            raise ValueError(f"{path}: not a valid target ({type(e).__name__}: {e})") from e
