"""Metrics for 5 ordered popularity classes (popnb.labels.N_CLASSES), numpy and pandas only.

Labels are int arrays [N] in 0..4; probabilities are float arrays [N, 5] whose rows sum to 1.
The paper's metric is ordinal accuracy (exact class 1 point, a neighbouring class 0.5, else 0).
Real-valued predictions (a regression score, e.g. of log1p(views)) are float arrays [N], scored by
`spearman` and `mae` against the true score, and by the class metrics once both are binned.
Conventions for undefined cases: when either side is constant, quadratic weighted kappa and
`spearman_expected` are 0.0 (no agreement beyond chance; a training curve stays drawable), where
scikit-learn / scipy give NaN. `spearman` keeps NaN there: a constant predictor (the constant
baseline, or a model that collapsed to one value) has no ranking, and its table row says so.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from popnb.labels import N_CLASSES


def _labels(y, name: str) -> np.ndarray:
    """y as an int64 array [N] after checking it holds class labels 0..4."""
    a = np.asarray(y)
    if a.ndim != 1 or len(a) == 0:
        raise ValueError(f"{name} must be a non-empty 1-D array of class labels, got shape {a.shape}")
    if not (np.issubdtype(a.dtype, np.integer) or (np.issubdtype(a.dtype, np.floating) and np.all(a == np.round(a)))):
        raise ValueError(f"{name} must hold integer class labels, got dtype {a.dtype}")
    bad = (a < 0) | (a >= N_CLASSES)
    if bad.any():
        i = int(np.argmax(bad))
        raise ValueError(f"{name} must be in 0..{N_CLASSES - 1}; position {i} is {a[i]} ({int(bad.sum())} bad in all)")
    return a.astype(np.int64)


def _pair(y_true, y_pred) -> tuple[np.ndarray, np.ndarray]:
    t, p = _labels(y_true, "y_true"), _labels(y_pred, "y_pred")
    if t.shape != p.shape:
        raise ValueError(f"y_true and y_pred must have the same length, got {len(t)} and {len(p)}")
    return t, p


def _probs(y_prob) -> np.ndarray:
    """y_prob as float64 [N, 5] after checking each row is a probability distribution."""
    p = np.asarray(y_prob, dtype=np.float64)
    if p.ndim != 2 or p.shape[1] != N_CLASSES or len(p) == 0:
        raise ValueError(f"y_prob must have shape [N, {N_CLASSES}] with N > 0, got {p.shape}")
    if not np.all(np.isfinite(p)) or np.any(p < 0):
        raise ValueError("y_prob must be finite and >= 0 (pass softmax(logits), not logits)")
    sums = p.sum(axis=1)
    if np.any(np.abs(sums - 1) > 1e-3):
        i = int(np.argmax(np.abs(sums - 1)))
        raise ValueError(f"y_prob rows must sum to 1; row {i} sums to {sums[i]:.6g} (pass softmax(logits))")
    return p


def ordinal_accuracy(y_true, y_pred) -> float:
    """Mean of 1 (exact class), 0.5 (off by one), 0 (further)."""
    t, p = _pair(y_true, y_pred)
    gap = np.abs(t - p)
    return float(np.mean(np.where(gap == 0, 1.0, np.where(gap == 1, 0.5, 0.0))))


def exact_accuracy(y_true, y_pred) -> float:
    """Fraction of exactly right classes."""
    t, p = _pair(y_true, y_pred)
    return float(np.mean(t == p))


def confusion_matrix(y_true, y_pred) -> np.ndarray:
    """int64 [5, 5]: rows are true classes, columns predicted classes."""
    t, p = _pair(y_true, y_pred)
    return np.bincount(t * N_CLASSES + p, minlength=N_CLASSES**2).reshape(N_CLASSES, N_CLASSES)


def macro_f1(y_true, y_pred) -> float:
    """Unweighted mean F1 over the classes present in y_true or y_pred (scikit-learn's average="macro")."""
    cm = confusion_matrix(y_true, y_pred)
    tp = np.diag(cm)
    fp = cm.sum(axis=0) - tp
    fn = cm.sum(axis=1) - tp
    present = (cm.sum(axis=0) + cm.sum(axis=1)) > 0
    f1 = 2 * tp[present] / (2 * tp[present] + fp[present] + fn[present])  # = 2PR/(P+R), 0 when tp = 0
    return float(f1.mean())


def quadratic_weighted_kappa(y_true, y_pred) -> float:
    """Cohen's kappa with weights (i-j)^2/16 over the 5 classes: 1 perfect, 0 chance, < 0 worse than chance.

    When either side is constant, the observed table equals the chance table; kappa is then 0.0,
    and that includes the otherwise undefined 0/0 case of both sides the same single class.
    """
    cm = confusion_matrix(y_true, y_pred).astype(np.float64)
    true_counts, pred_counts = cm.sum(axis=1), cm.sum(axis=0)
    if (true_counts > 0).sum() == 1 or (pred_counts > 0).sum() == 1:
        return 0.0
    k = np.arange(N_CLASSES)
    w = (k[:, None] - k[None, :]) ** 2 / (N_CLASSES - 1) ** 2
    expected = np.outer(true_counts, pred_counts) / cm.sum()
    return float(1 - (w * cm).sum() / (w * expected).sum())


def _scores(y, name: str, n: int | None = None) -> np.ndarray:
    """y as float64 [N] after checking it is 1-D, non-empty, finite and (when n is given) of length n."""
    a = np.asarray(y, dtype=np.float64)
    if a.ndim != 1 or len(a) == 0 or (n is not None and len(a) != n):
        want = "a non-empty 1-D array" if n is None else f"1-D of length {n} (as y_true)"
        raise ValueError(f"{name} must be {want}, got shape {a.shape}")
    bad = ~np.isfinite(a)
    if bad.any():
        raise ValueError(f"{name} is NaN or inf at {int(bad.sum())} position(s), first at {int(np.argmax(bad))}")
    return a


def spearman(y_true, y_pred) -> float:
    """Spearman rank correlation of two real arrays [N] (ties get average ranks), in [-1, 1].

    NaN when either side is constant: the rank correlation is undefined (scipy's convention too).
    """
    t = _scores(y_true, "y_true")
    p = _scores(y_pred, "y_pred", len(t))
    r1 = pd.Series(t).rank(method="average").to_numpy()
    r2 = pd.Series(p).rank(method="average").to_numpy()
    r1, r2 = r1 - r1.mean(), r2 - r2.mean()
    denom = np.sqrt((r1 * r1).sum() * (r2 * r2).sum())
    return float("nan") if denom == 0 else float((r1 * r2).sum() / denom)


def mae(y_true, y_pred) -> float:
    """Mean absolute error of a real prediction [N], in the target's units (log1p(views): natural log)."""
    t = _scores(y_true, "y_true")
    return float(np.mean(np.abs(t - _scores(y_pred, "y_pred", len(t)))))


def spearman_expected(y_prob, score) -> float:
    """Spearman rank correlation between the expected class sum_k k*p_k [N] and the true score [N].

    Ties get average ranks. 0.0 when either side is constant (no ranking to compare).
    """
    p = _probs(y_prob)
    s = np.asarray(score, dtype=np.float64)
    if s.shape != (len(p),) or not np.all(np.isfinite(s)):
        raise ValueError(f"score must be {len(p)} finite numbers (one per row of y_prob), got shape {s.shape}")
    rho = spearman(s, p @ np.arange(N_CLASSES))
    return 0.0 if np.isnan(rho) else rho


def constant_baseline(y_true) -> tuple[int, float]:
    """(class, ordinal accuracy) of the best constant prediction.

    Predicting c for every row scores count[c] + 0.5*(count[c-1] + count[c+1]) over N, which need not
    peak at the majority class. Ties go to the lower class.
    """
    t = _labels(y_true, "y_true")
    counts = np.bincount(t, minlength=N_CLASSES).astype(np.float64)
    padded = np.concatenate([[0.0], counts, [0.0]])
    points = counts + 0.5 * (padded[:-2] + padded[2:])
    best = int(np.argmax(points))
    return best, float(points[best] / len(t))


def class_metrics(y_true, y_pred) -> dict:
    """Class metrics of labels [N] in 0..4, as plain Python numbers.

    Keys: n, ordinal_accuracy, exact_accuracy, macro_f1, quadratic_weighted_kappa,
    constant_baseline_class, constant_baseline_accuracy (the best constant for y_true itself).
    """
    t, p = _pair(y_true, y_pred)
    best, baseline = constant_baseline(t)
    return {
        "n": int(len(t)),
        "ordinal_accuracy": ordinal_accuracy(t, p),
        "exact_accuracy": exact_accuracy(t, p),
        "macro_f1": macro_f1(t, p),
        "quadratic_weighted_kappa": quadratic_weighted_kappa(t, p),
        "constant_baseline_class": best,
        "constant_baseline_accuracy": baseline,
    }


def all_metrics(y_true, y_prob, score=None) -> dict:
    """`class_metrics` of predictions argmax(y_prob), with spearman_expected (None without score) before
    the constant baseline's two keys."""
    p = _probs(y_prob)
    t = _labels(y_true, "y_true")
    if len(t) != len(p):
        raise ValueError(f"y_true and y_prob must have the same length, got {len(t)} and {len(p)}")
    metrics = class_metrics(t, p.argmax(axis=1))
    baseline = {key: metrics.pop(key) for key in ("constant_baseline_class", "constant_baseline_accuracy")}
    return {**metrics, "spearman_expected": None if score is None else spearman_expected(p, score), **baseline}


def score_metrics(y_true, y_pred, true_class=None, pred_class=None) -> dict:
    """n, spearman and mae of a real prediction [N] against the true score [N]; given the classes of both
    (labels [N] in 0..4, binned by the caller with the same thresholds), also every key of `class_metrics`."""
    metrics = {"n": len(_scores(y_true, "y_true")), "spearman": spearman(y_true, y_pred), "mae": mae(y_true, y_pred)}
    if true_class is not None or pred_class is not None:
        classes = class_metrics(true_class, pred_class)
        if classes["n"] != metrics["n"]:
            raise ValueError(f"{classes['n']} classes for {metrics['n']} scores: one class per row")
        metrics.update(classes)
    return metrics
