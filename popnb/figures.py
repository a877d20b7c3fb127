"""Figures of a model and of its predictions: the architecture (paper Figure 1), confusion matrix, per-class recall.

The architecture figure is drawn from the model object itself (branch names, layer counts, widths,
parameter counts, fusion weights), so it always shows the model that was trained, not a picture of the
paper's. Prediction figures take y_true / y_pred int arrays [N] in 0..4.
"""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.patches import FancyBboxPatch
from torch import nn

from popnb.labels import CLASSES, N_CLASSES
from popnb.metrics import confusion_matrix
from popnb.models.summary import model_summary, n_params


def _millions(n: int) -> str:
    return f"{n / 1e6:.2f}M params" if n >= 1e5 else f"{n:,} params"


# ---- Figure 1: the architecture ----

def _box(ax, x: float, y: float, text: str, color: str, width: float = 0.17, height: float = 0.2) -> None:
    ax.add_patch(FancyBboxPatch((x - width / 2, y - height / 2), width, height, boxstyle="round,pad=0.01",
                                facecolor=color, edgecolor="0.3"))
    ax.text(x, y, text, ha="center", va="center", fontsize=8, wrap=True)


def _arrow(ax, start: tuple[float, float], end: tuple[float, float], label: str = "") -> None:
    ax.annotate("", xy=end, xytext=start, arrowprops=dict(arrowstyle="->", color="0.3"))
    if label:
        ax.text((start[0] + end[0]) / 2, (start[1] + end[1]) / 2 + 0.03, label, ha="center", fontsize=8, color="C3")


def architecture_figure(model: nn.Module, title: str | None = None) -> plt.Figure:
    """Paper Figure 1 drawn from a LateFusion: cover -> vision backbone -> FC, title -> text backbone -> FC,
    weighted sum (or concat / gate) -> FC -> 5 class logits. Every number in it is read from the model."""
    s = model_summary(model)
    v, t, f = s["vision"], s["text"], s["fusion"]
    w_v, w_t = f["weights"]
    fig, ax = plt.subplots(figsize=(12, 4.2))
    ax.set(xlim=(0, 1), ylim=(0, 1))
    ax.axis("off")
    for y, branch, color, w in ((0.75, v, "#cfe2f3", w_v), (0.25, t, "#d9ead3", w_t)):
        _box(ax, 0.09, y, branch["input"], "0.93", width=0.15)
        backbone = f"{branch['name']}\n{branch['layers']}\nwidth {branch['width']}\n{_millions(branch['params'])}"
        _box(ax, 0.32, y, backbone, color, width=0.24, height=0.3)
        _box(ax, 0.56, y, f"FC {branch['fc'][0]} -> {branch['fc'][1]}", color, width=0.13)
        _arrow(ax, (0.165, y), (0.20, y))
        _arrow(ax, (0.44, y), (0.495, y))
        _arrow(ax, (0.625, y), (0.71, 0.5 + (y - 0.5) * 0.25), f"x {w:g}" if f["kind"] != "gate" else "gate")
    fusion_text = {"weighted": f"{w_v:g}*v + {w_t:g}*t", "concat": f"[{w_v:g}*v, {w_t:g}*t]",
                   "gate": "g*v + (1-g)*t"}[f["kind"]]
    if f["metadata"]:
        fusion_text += "\n+ metadata MLP"
    _box(ax, 0.76, 0.5, f"{f['kind']} fusion\n{fusion_text}", "#fff2cc", width=0.11, height=0.22)
    _box(ax, 0.93, 0.5, f"FC {f['fused']} -> {f['n_classes']}\n{f['n_classes']} popularity\nclasses", "#f4cccc",
         width=0.12, height=0.22)
    _arrow(ax, (0.815, 0.5), (0.87, 0.5))
    total = n_params(model)
    ax.set_title(title or f"Late fusion: {v['name']} + {t['name']} ({_millions(total)} in all)", fontsize=10)
    fig.tight_layout()
    return fig


# ---- predictions ----

def normalised_confusion(y_true, y_pred) -> pd.DataFrame:
    """[5, 5] shares: row = true class, column = predicted class, each row sums to 1 (NaN for an absent class)."""
    counts = confusion_matrix(y_true, y_pred).astype(np.float64)
    rows = counts.sum(axis=1, keepdims=True)
    shares = np.divide(counts, rows, out=np.full_like(counts, np.nan), where=rows > 0)
    return pd.DataFrame(shares, index=CLASSES.rename("true class"), columns=CLASSES.rename("predicted class"))


def confusion_figure(y_true, y_pred, label: str = "") -> plt.Figure:
    """Heatmap of the confusion matrix normalised by true class, each cell with its share and count."""
    shares = normalised_confusion(y_true, y_pred)
    counts = confusion_matrix(y_true, y_pred)
    fig, ax = plt.subplots(figsize=(5, 4.3))
    image = ax.imshow(shares.to_numpy(), vmin=0, vmax=1, cmap="Blues")
    for i in range(N_CLASSES):
        for j in range(N_CLASSES):
            share = shares.iat[i, j]
            text = "-" if np.isnan(share) else f"{share:.2f}\n({counts[i, j]})"
            ax.text(j, i, text, ha="center", va="center", fontsize=7,
                    color="white" if share > 0.6 else "black")
    ax.set(xticks=range(N_CLASSES), yticks=range(N_CLASSES), xlabel="predicted class", ylabel="true class")
    fig.colorbar(image, ax=ax, label="share of the true class")
    ax.set_title("Confusion matrix (row-normalised)" + (f"\n{label}" if label else ""), fontsize=9)
    fig.tight_layout()
    return fig


def per_class_recall(y_true, y_pred) -> pd.DataFrame:
    """Per class: true and predicted counts, recall (exact) and recall within one class (NaN where absent)."""
    counts = confusion_matrix(y_true, y_pred)
    n_true = counts.sum(axis=1)
    near = np.array([counts[k, max(k - 1, 0): k + 2].sum() for k in range(N_CLASSES)])
    with np.errstate(invalid="ignore", divide="ignore"):
        recall = np.where(n_true > 0, np.diag(counts) / n_true, np.nan)
        within_one = np.where(n_true > 0, near / n_true, np.nan)
    return pd.DataFrame({"n_true": n_true, "n_pred": counts.sum(axis=0), "recall": recall,
                         "recall_within_one": within_one}, index=CLASSES)


def recall_figure(recall: pd.DataFrame, label: str = "") -> plt.Figure:
    """Bars of per-class recall (exact and within one class) from `per_class_recall`."""
    fig, ax = plt.subplots(figsize=(6, 3.5))
    x = np.arange(len(recall))
    ax.bar(x - 0.2, recall["recall"], width=0.4, label="exact")
    ax.bar(x + 0.2, recall["recall_within_one"], width=0.4, label="within one class")
    ax.set(xticks=x, xticklabels=[f"{k}\n(n={n})" for k, n in zip(recall.index, recall["n_true"])],
           ylim=(0, 1.05), xlabel="true class", ylabel="recall")
    ax.legend(fontsize=8)
    ax.set_title("Per-class recall" + (f"\n{label}" if label else ""), fontsize=9)
    fig.tight_layout()
    return fig
