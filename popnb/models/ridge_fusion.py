"""Ridge late fusion over frozen features: one ridge regression per branch, the paper's weighted sum of their
predictions, and a Gaussian predictive distribution over the 5 ordered classes.

    score    = y_mean + sum_b w_b * (p_b - y_mean)        p_b: branch b's ridge prediction, y_mean: train mean
    P(c)     = Phi((e_c - score) / sigma) - Phi((e_{c-1} - score) / sigma)   e: 4 class edges, e_-1 = -inf, e_4 = inf
    decision = argmax_c P(c) + 0.5 * (P(c-1) + P(c+1))   (ordinal accuracy: 1 exact, 0.5 off by one)

Each branch: NaN features -> the train median, standardised with the train mean and std, then scikit-learn's
RidgeCV, whose efficient leave-one-out GCV picks alpha from the train rows alone. sigma: std of the train
residuals of the same fusion over 5-fold out-of-fold predictions (grouped when groups are given, e.g. uploaders),
each fold refitting the branch at its chosen alpha. Everything fitted is saved as .npz + .json (no pickle).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.special import ndtr
from sklearn.linear_model import RidgeCV
from sklearn.model_selection import GroupKFold, KFold

ALPHAS = tuple(float(a) for a in np.logspace(-1, 5, 25))  # ridge penalties RidgeCV chooses from
FOLDS = 5  # out-of-fold folds for sigma
ARRAYS = ("fill", "mean", "std", "coef")  # each branch's arrays in the .npz


@dataclass
class RidgeBranch:
    """One branch's ridge regression on D features: fill, mean, std, coef float64 [D]; intercept; alpha."""

    fill: np.ndarray
    mean: np.ndarray
    std: np.ndarray
    coef: np.ndarray
    intercept: float
    alpha: float

    @classmethod
    def fit(cls, x, y, alphas=ALPHAS) -> RidgeBranch:
        """Fit on features x [N, D] (NaN allowed: the column's median) and target y [N]; alpha by RidgeCV's GCV."""
        x = np.asarray(x, dtype=np.float64)
        fill = np.nanmedian(x, axis=0)
        if np.isnan(fill).any():
            raise ValueError(f"feature column {int(np.argmax(np.isnan(fill)))} is NaN in every train row")
        x = np.where(np.isnan(x), fill, x)
        mean, std = x.mean(axis=0), x.std(axis=0)
        std = np.where(std > 0, std, 1.0)  # a constant column standardises to 0
        ridge = RidgeCV(alphas=np.asarray(alphas, dtype=np.float64)).fit((x - mean) / std, y)
        return cls(fill, mean, std, ridge.coef_.astype(np.float64), float(ridge.intercept_), float(ridge.alpha_))

    def predict(self, x) -> np.ndarray:
        """Prediction [N] from features x [N, D], in the target's units."""
        x = np.asarray(x, dtype=np.float64)
        return (np.where(np.isnan(x), self.fill, x) - self.mean) / self.std @ self.coef + self.intercept


def class_probabilities(score, edges, sigma: float) -> np.ndarray:
    """P(class) [N, 5] under N(score, sigma^2) cut at the 4 edges; each row sums to 1 up to float64 rounding."""
    cuts = np.concatenate([[-np.inf], np.asarray(edges, dtype=np.float64), [np.inf]])
    cdf = ndtr((cuts[None, :] - np.asarray(score, dtype=np.float64)[:, None]) / sigma)  # [N, 6], 0 ... 1
    return np.diff(cdf, axis=1)


def ordinal_decision(probs) -> np.ndarray:
    """The class [N] maximising expected ordinal accuracy under probs [N, 5]: P(c) + 0.5 (P(c-1) + P(c+1))."""
    padded = np.pad(np.asarray(probs, dtype=np.float64), ((0, 0), (1, 1)))
    return (padded[:, 1:-1] + 0.5 * (padded[:, :-2] + padded[:, 2:])).argmax(axis=1)


def expected_class(probs) -> np.ndarray:
    """sum_k k * P(k) [N]."""
    probs = np.asarray(probs, dtype=np.float64)
    return probs @ np.arange(probs.shape[1])


class RidgeLateFusion:
    """weights: {branch: w}; a branch with w = 0 is neither fitted nor needed. Branch inputs: {branch: [N, D]}."""

    def __init__(self, weights: dict[str, float], alphas=ALPHAS, folds: int = FOLDS, seed: int = 0):
        self.weights = {name: float(w) for name, w in weights.items()}
        self.alphas, self.folds, self.seed = tuple(float(a) for a in alphas), folds, seed
        self.heads: dict[str, RidgeBranch] = {}
        self.y_mean, self.sigma, self.edges = float("nan"), float("nan"), ()

    @property
    def branches(self) -> list[str]:
        """The branches with a weight != 0, in the order of weights."""
        return [name for name, w in self.weights.items() if w != 0]

    def inputs(self, branches: dict) -> dict[str, np.ndarray]:
        """The features of each weighted branch; ValueError naming one that is absent."""
        missing = [name for name in self.branches if name not in branches]
        if missing:
            raise ValueError(f"no features for branch(es) {', '.join(missing)} (weights {self.weights})")
        return {name: branches[name] for name in self.branches}

    def fuse(self, predictions: dict[str, np.ndarray]) -> np.ndarray:
        """y_mean + sum_b w_b (p_b - y_mean) [N]."""
        return self.y_mean + sum(self.weights[b] * (p - self.y_mean) for b, p in predictions.items())

    def out_of_fold(self, branches: dict[str, np.ndarray], y: np.ndarray, groups) -> dict[str, np.ndarray]:
        """Each branch's out-of-fold predictions [N] at its chosen alpha, every branch over the same folds."""
        splitter = (KFold if groups is None else GroupKFold)(self.folds, shuffle=True, random_state=self.seed)
        oof = {name: np.empty(len(y)) for name in branches}
        for train, valid in splitter.split(y, y, groups):
            for name, x in branches.items():
                branch = RidgeBranch.fit(x[train], y[train], (self.heads[name].alpha,))
                oof[name][valid] = branch.predict(x[valid])
        return oof

    def fit(self, branches: dict, y, target_edges, groups=None) -> RidgeLateFusion:
        """Fit on train rows only: features {branch: [N, D]}, target y [N], the target's 4 class edges, and
        groups [N] (e.g. uploader ids) to keep each group in one out-of-fold fold."""
        branches = {name: np.asarray(x, dtype=np.float64) for name, x in self.inputs(branches).items()}
        y = np.asarray(y, dtype=np.float64)
        self.y_mean, self.edges = float(y.mean()), tuple(float(e) for e in target_edges)
        self.heads = {name: RidgeBranch.fit(x, y, self.alphas) for name, x in branches.items()}
        self.sigma = float(np.std(y - self.fuse(self.out_of_fold(branches, y, groups))))
        return self

    def score(self, branches: dict) -> np.ndarray:
        """The fused prediction of the target [N] (e.g. log1p(views))."""
        return self.fuse({name: self.heads[name].predict(x) for name, x in self.inputs(branches).items()})

    def distribution(self, score) -> np.ndarray:
        """Class probabilities [N, 5] of fused scores [N]."""
        return class_probabilities(score, self.edges, self.sigma)

    def probabilities(self, branches: dict) -> np.ndarray:
        """Class probabilities [N, 5]."""
        return self.distribution(self.score(branches))

    def predicted_class(self, branches: dict) -> np.ndarray:
        """The ordinal-accuracy decision [N] (ordinal_decision), int64 in 0..4."""
        return ordinal_decision(self.probabilities(branches))

    def save(self, path) -> Path:
        """Write path.npz (each branch's arrays) and path.json (the rest; floats round-trip exactly)."""
        path = Path(path).with_suffix(".npz")
        np.savez(path, **{f"{name}.{key}": getattr(h, key) for name, h in self.heads.items() for key in ARRAYS})
        doc = {"weights": self.weights, "alphas": list(self.alphas), "folds": self.folds, "seed": self.seed,
               "y_mean": self.y_mean, "sigma": self.sigma, "edges": list(self.edges),
               "heads": {name: {"alpha": h.alpha, "intercept": h.intercept} for name, h in self.heads.items()}}
        path.with_suffix(".json").write_text(json.dumps(doc, indent=2, allow_nan=False) + "\n", encoding="utf-8")
        return path

    @classmethod
    def load(cls, path) -> RidgeLateFusion:
        """Read what `save` wrote to path.npz and path.json."""
        path = Path(path).with_suffix(".npz")
        doc = json.loads(path.with_suffix(".json").read_text(encoding="utf-8"))
        model = cls(doc["weights"], doc["alphas"], doc["folds"], doc["seed"])
        model.y_mean, model.sigma, model.edges = doc["y_mean"], doc["sigma"], tuple(doc["edges"])
        with np.load(path, allow_pickle=False) as arrays:
            model.heads = {name: RidgeBranch(*(arrays[f"{name}.{key}"] for key in ARRAYS), **head)
                           for name, head in doc["heads"].items()}
        return model
