"""Baselines a reviewer asks for, scored through the same protocol as any model (splits, targets, metrics).

Each is a scikit-learn estimator: fit(train_df, y) with y the target's score [N] (e.g. log1p(views)),
predict(df) -> float64 [N] on the same scale. Registry `BASELINES`, by name:
- "constant": the train median (no ranking: its Spearman is NaN, undefined);
- "followers": ridge on log1p(followers) (missing followers -> the train median);
- "title_tfidf": ridge on TF-IDF of the title's character 1-3-grams;
- "lightgbm": LightGBM over any numeric feature columns + followers (the SMP Challenge winners' tool).

Classes: a prediction is binned with the train split's class edges on the same target (`Target.bin`)
and compared with the true classes (`Target.labels`): ordinal accuracy without a classifier.
"""
from __future__ import annotations

from collections.abc import Sequence
from functools import partial

import numpy as np
import pandas as pd
from lightgbm import LGBMRegressor
from sklearn.compose import ColumnTransformer
from sklearn.dummy import DummyRegressor
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import Ridge
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer

from popnb.metrics import score_metrics
from popnb.splits import cross_validate, summarize
from popnb.targets import Target


def _numeric(df: pd.DataFrame, columns: Sequence[str], log_followers: bool = False) -> pd.DataFrame:
    """df[columns] as float64 (NA -> NaN), followers as log1p when asked; ValueError naming a missing column."""
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise ValueError(f"baseline needs column(s) {', '.join(map(repr, missing))}, absent from this data")
    x = df[list(columns)].astype("float64")
    if log_followers and "followers" in x:
        x["followers"] = np.log1p(x["followers"])
    return x


def constant() -> DummyRegressor:
    """The train median for every row (it minimises the train MAE)."""
    return DummyRegressor(strategy="median")


def followers(alpha: float = 1.0):
    """Ridge on log1p(followers): as a rank, the followers themselves (when the slope is > 0)."""
    pick = FunctionTransformer(partial(_numeric, columns=["followers"], log_followers=True))
    return make_pipeline(pick, SimpleImputer(strategy="median"), Ridge(alpha=alpha))


def title_tfidf(alpha: float = 1.0, ngram_range: tuple[int, int] = (1, 3), min_df: int = 2):
    """Ridge on the L2-normalised, sublinear TF-IDF of the title's character n-grams (seen in >= min_df titles)."""
    tfidf = TfidfVectorizer(analyzer="char", ngram_range=ngram_range, min_df=min_df, sublinear_tf=True)
    return make_pipeline(ColumnTransformer([("title", tfidf, "title")]), Ridge(alpha=alpha))


def lightgbm(columns: Sequence[str] = (), seed: int = 0, **params):
    """LightGBM regression over the numeric columns + followers (NaN allowed: trees route it);
    params override small-data defaults (300 trees of 15 leaves, learning rate 0.03, 20 rows a leaf; one
    thread: the same result on every run, fair on shared cores)."""
    defaults = {"n_estimators": 300, "learning_rate": 0.03, "num_leaves": 15, "min_child_samples": 20,
                "subsample": 0.8, "subsample_freq": 1, "colsample_bytree": 0.8, "n_jobs": 1, "verbose": -1}
    pick = FunctionTransformer(partial(_numeric, columns=[*columns, "followers"]))
    return make_pipeline(pick, LGBMRegressor(random_state=seed, **{**defaults, **params}))


BASELINES = {"constant": constant, "followers": followers, "title_tfidf": title_tfidf, "lightgbm": lightgbm}


def make_baseline(name: str, **params):
    """A fresh, unfitted baseline by name, with params for its factory."""
    if name not in BASELINES:
        raise ValueError(f"unknown baseline {name!r}; known: {', '.join(BASELINES)}")
    return BASELINES[name](**params)


def fit_evaluate(train: pd.DataFrame, valid: pd.DataFrame, name: str, target: str = "log_views", **params) -> dict:
    """Fit the target and the baseline on train, score valid: `popnb.metrics.score_metrics` (Spearman and
    MAE on the target's score, class metrics with both sides binned by the train split's edges)."""
    fitted = Target.fit(train, target)
    model = make_baseline(name, **params).fit(train, fitted.score(train))
    pred = np.asarray(model.predict(valid), dtype=np.float64)
    return score_metrics(fitted.score(valid), pred, fitted.labels(valid), fitted.bin(pred))


def with_features(df: pd.DataFrame, features: pd.DataFrame) -> pd.DataFrame:
    """df with the feature table's columns joined by video_id (features indexed by video_id, once each);
    every row of df must have a feature row and no column may clash."""
    if not features.index.is_unique:
        raise ValueError(f"feature table has video_id {features.index[features.index.duplicated()][0]!r} twice")
    clash = [c for c in features.columns if c in df.columns]
    if clash:
        raise ValueError(f"feature column(s) {', '.join(map(repr, clash))} already in the data; rename them")
    joined = df.join(features, on="video_id")
    absent = ~df["video_id"].isin(features.index)
    if absent.any():
        raise ValueError(f"{int(absent.sum())} video(s) have no feature row, first {df['video_id'][absent].iloc[0]!r}")
    return joined


def evaluate_baselines(df: pd.DataFrame, features: pd.DataFrame | None = None, split: str = "uploader", k: int = 5,
                       repeats: int = 3, seed: int = 0, target: str = "log_views", names=None) -> pd.DataFrame:
    """One row per baseline over the same cross-validation folds (`popnb.splits.cv_folds`), mean and std over folds.

    features: a table indexed by video_id (numeric columns) for "lightgbm" (by default run only when given).
    names: baselines to run (default all that apply). target: a `popnb.targets` kind. Columns: baseline, spearman, spearman_std, mae, mae_std,
    ordinal_accuracy, ordinal_accuracy_std, constant_ordinal_accuracy (the best constant class on each valid
    fold, chosen with its own labels), n_folds.
    """
    data = df if features is None else with_features(df, features)
    columns = [] if features is None else list(features.columns)
    names = names or [n for n in BASELINES if n != "lightgbm" or features is not None]
    rows = []
    for name in names:
        params = {"columns": columns, "seed": seed} if name == "lightgbm" else {}
        per_fold = cross_validate(data, partial(fit_evaluate, name=name, target=target, **params), split, k, repeats,
                                  seed)
        summary = summarize(per_fold)
        rows.append(score_row(name, summary))
    return pd.DataFrame(rows)


def score_row(name: str, summary: dict) -> dict:
    """evaluate_baselines' row of one model from popnb.splits.summarize's dict of its folds."""
    return {"baseline": name, **{key: summary[key] for key in (
        "spearman", "spearman_std", "mae", "mae_std", "ordinal_accuracy", "ordinal_accuracy_std")},
        "constant_ordinal_accuracy": summary["constant_baseline_accuracy"], "n_folds": summary["n_folds"]}
