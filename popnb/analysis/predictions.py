"""Valid-split predictions of one run after its last epoch, for a confusion matrix: columns video_id, y_true,
y_pred, p0..p4.

A frozen-mode run retrains its heads from the cached embeddings (deterministic: the same heads); a trained run
folder is read back with its split rebuilt from config.json as popnb.train made it.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch

from popnb.analysis.sweep import frozen_inputs, train_frozen
from popnb.train.loop import load_limited
from popnb.train.loop import TrainConfig
from popnb.train.run import run_predictions as trained_predictions


def predictions_frame(video_ids, y_true, probs: np.ndarray) -> pd.DataFrame:
    """video_id, y_true, y_pred (the most probable class), p0..p4 of videos [N] with probabilities [N, 5]."""
    out = pd.DataFrame({"video_id": np.asarray(video_ids), "y_true": y_true, "y_pred": probs.argmax(axis=1)})
    return out.join(pd.DataFrame(probs, columns=[f"p{k}" for k in range(probs.shape[1])]))


def frozen_predictions(cfg: TrainConfig, cache: str | Path | None = None) -> pd.DataFrame:
    """Predictions of the frozen-mode run of cfg (popnb.analysis.sweep's heads at cfg's weights and seed)."""
    data = load_limited(cfg.data_dir, cfg.limit)
    inputs = frozen_inputs(data, cfg, cache)
    heads, _ = train_frozen(inputs, cfg)
    v, t, y, _, _, valid_idx = inputs
    with torch.inference_mode():
        probs = torch.softmax(heads(torch.as_tensor(v[valid_idx]), torch.as_tensor(t[valid_idx])), dim=1).numpy()
    return predictions_frame(data.videos["video_id"].iloc[valid_idx], y[valid_idx], probs)


def run_predictions(run_dir, batch_size: int = 64) -> pd.DataFrame:
    """Predictions of a trained run folder (its last checkpoint) on the valid split it was trained with."""
    valid = trained_predictions(run_dir, split="valid", batch_size=batch_size, show=False)
    return predictions_frame(valid.video_ids, valid.labels, valid.probs)
