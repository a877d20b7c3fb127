"""Train/valid splits and cross-validation folds, and a runner that scores any model over the folds.

Kinds (the SMP Challenge and Bilibili studies split by uploader or by time; the paper at random):
- "random": stratified by class (the paper's train:valid = 10:1 is valid_fraction = 1/11);
- "uploader": no uploader on both sides (the `uploader` column; a row without one is its own group);
- "time": train on the earlier videos, validate on the later (rows with no known publish time are left out).

Every split is row positions into df (0..len(df)-1), sorted. Default class labels for "random" are 5
equal-count bins of log1p(views) over all of df: they only balance the folds, no statistic reaches a model.
"""
from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator

import numpy as np
import pandas as pd
from sklearn.model_selection import GroupKFold, RepeatedStratifiedKFold, TimeSeriesSplit

from popnb.targets import Target

SPLITS = ("random", "uploader", "time")
TIME_COLUMNS = ("upload_time", "pub_seconds_ago")  # bilibili-stats (上传时间) and bilibili-covers presets


def uploader_groups(df: pd.DataFrame) -> np.ndarray:
    """Group id per row, int64 [N]: one per uploader name (stripped); a row with no uploader gets its own."""
    if "uploader" not in df.columns:
        raise ValueError("split 'uploader' needs an 'uploader' column (the bilibili presets import it from "
                         "uploader_name / 作者; name another with --map uploader=COLUMN)")
    names = df["uploader"].astype("string").str.strip().replace("", pd.NA)
    if names.isna().all():
        raise ValueError("split 'uploader': the 'uploader' column is empty in every row")
    codes, uniques = pd.factorize(names)  # NA -> -1
    unknown = codes < 0
    codes[unknown] = len(uniques) + np.arange(int(unknown.sum()))
    return codes.astype(np.int64)


def publish_time(df: pd.DataFrame) -> np.ndarray:
    """Publish time per row, float64 [N] in seconds, larger = later, NaN where unknown.

    `upload_time` (date-time text) as POSIX seconds, else -`pub_seconds_ago` (seconds before the crawl:
    one crawl, one clock).
    """
    if "upload_time" in df.columns:
        when = pd.to_datetime(df["upload_time"], errors="coerce")
        seconds = (when - pd.Timestamp(0)).dt.total_seconds().to_numpy(dtype=np.float64)
    elif "pub_seconds_ago" in df.columns:
        seconds = -pd.to_numeric(df["pub_seconds_ago"], errors="coerce").to_numpy(dtype=np.float64)
    else:
        raise ValueError(f"split 'time' needs a publish time column, one of {TIME_COLUMNS}; this data has "
                         f"{', '.join(map(str, df.columns))}")
    if np.isnan(seconds).all():
        raise ValueError("split 'time': no row has a known publish time")
    return seconds


def _by_time(df: pd.DataFrame) -> np.ndarray:
    """Positions of the rows with a known publish time, earliest first (ties keep row order)."""
    seconds = publish_time(df)
    known = np.flatnonzero(~np.isnan(seconds))
    return known[np.argsort(seconds[known], kind="stable")]


def _labels(df: pd.DataFrame, labels) -> np.ndarray:
    return Target.fit(df, "log_views").labels(df) if labels is None else np.asarray(labels)


def _check_kind(kind: str) -> None:
    if kind not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {kind!r}")


def split(df: pd.DataFrame, kind: str = "random", valid_fraction: float = 1 / 11, seed: int = 0,
          labels=None) -> tuple[np.ndarray, np.ndarray]:
    """(train, valid) positions. random: round(valid_fraction * n_c) of each class c (labels [N], see module);
    uploader: fold seed % k of an uploader-grouped k-fold, k = round(1 / valid_fraction), shuffled by seed // k, so
    seeds 0..k-1 are one cross-validation (every row valid once); time: the latest valid_fraction of the rows with
    a known time (the same for every seed)."""
    _check_kind(kind)
    if kind == "random":
        from popnb.data.torchdata import stratified_split  # imports torch: only for this kind

        return stratified_split(_labels(df, labels), valid_fraction, seed)
    if kind == "uploader":
        k = max(2, round(1 / valid_fraction))
        folds = GroupKFold(n_splits=k, shuffle=True, random_state=seed // k).split(df, groups=uploader_groups(df))
        train, valid = next(itertools.islice(folds, seed % k, None))
        return np.sort(train), np.sort(valid)
    order = _by_time(df)
    n_valid = int(round(valid_fraction * len(order)))
    if not 0 < n_valid < len(order):
        raise ValueError(f"{len(order)} videos with a publish time are too few to split "
                         f"({valid_fraction:.3g} to valid)")
    return np.sort(order[:-n_valid]), np.sort(order[-n_valid:])


def cv_folds(df: pd.DataFrame, kind: str = "random", k: int = 5, repeats: int = 1, seed: int = 0,
             labels=None) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """k folds per repeat (repeat r shuffled by seed + r), each (train, valid) positions.

    random: stratified by labels; uploader: grouped by uploader; in both every row is valid once per repeat.
    time: the rows with a known time cut into k + 1 blocks, earliest first; fold i trains on blocks 0..i and
    validates on block i + 1 (scikit-learn's TimeSeriesSplit); repeats must be 1.
    """
    _check_kind(kind)
    if kind == "random":
        stratified = RepeatedStratifiedKFold(n_splits=k, n_repeats=repeats, random_state=seed)
        folds = stratified.split(df, _labels(df, labels))
    elif kind == "uploader":
        groups = uploader_groups(df)
        folds = (fold for r in range(repeats)
                 for fold in GroupKFold(n_splits=k, shuffle=True, random_state=seed + r).split(df, groups=groups))
    else:
        if repeats != 1:
            raise ValueError(f"time folds are fixed by the publish times; repeats must be 1, got {repeats}")
        order = _by_time(df)
        folds = ((order[train], order[valid]) for train, valid in TimeSeriesSplit(n_splits=k).split(order))
    for train, valid in folds:
        yield np.sort(train), np.sort(valid)


def cross_validate(df: pd.DataFrame, fit_evaluate: Callable[[pd.DataFrame, pd.DataFrame], dict], kind: str = "uploader",
                   k: int = 5, repeats: int = 1, seed: int = 0, labels=None) -> pd.DataFrame:
    """One row per fold: repeat, fold, n_train, n_valid and the metrics dict fit_evaluate(train_df, valid_df)
    returns (fit on train_df only, score on valid_df)."""
    rows = []
    for i, (train, valid) in enumerate(cv_folds(df, kind, k, repeats, seed, labels)):
        metrics = fit_evaluate(df.iloc[train], df.iloc[valid])
        rows.append({"repeat": i // k, "fold": i % k, "n_train": len(train), "n_valid": len(valid), **metrics})
    return pd.DataFrame(rows)


def summarize(per_fold: pd.DataFrame) -> dict[str, float]:
    """{metric: mean, metric_std: std} over folds of each numeric metric column of `cross_validate`'s table, and
    n_folds. A NaN fold makes the mean NaN (never skipped). std has ddof=1: the spread over folds, which share
    rows, so not a standard error."""
    metrics = per_fold.drop(columns=["repeat", "fold", "n_train", "n_valid"]).select_dtypes("number")
    out = {"n_folds": len(per_fold)}
    for column in metrics.columns:
        out[column] = float(metrics[column].mean(skipna=False))
        out[f"{column}_std"] = float(metrics[column].std(ddof=1, skipna=False))
    return out
