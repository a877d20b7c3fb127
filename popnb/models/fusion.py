"""Late fusion, as in the paper: w_v * vision_output + w_t * text_output -> FC -> 5 logits.

Both branches always run, also at weight 0: a single-modality run (1.0, 0) or (0, 1.0) multiplies the
other branch's output by 0, so its parameters get zero gradients (every parameter takes part, which DDP
and GPipe need) and the logits do not depend on it. Note that AdamW's weight decay still shrinks them.

Options beyond the paper:
- fusion="concat": [w_v * v, w_t * t] -> FC.
- fusion="gate": g = sigmoid(Linear([v, t])) per feature, fused = g * v + (1 - g) * t -> FC. The gate starts
  at the ratio w_v / (w_v + w_t) (zero weights, bias logit(ratio)) and is learned from there.
- metadata: log1p(followers) and log1p(duration) with is-known flags -> a small MLP, added to the fused vector
  (appended for concat). Off by default; forward then takes meta [B, 4].
"""
from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from popnb.models.text import TextBranch
from popnb.models.vision import VisionBranch

FUSIONS = ("weighted", "concat", "gate")
METADATA_COLUMNS = ("followers", "duration")
METADATA_FEATURES = 2 * len(METADATA_COLUMNS)  # log1p(value) and is-known, per column


def metadata_features(videos) -> torch.Tensor:
    """videos DataFrame -> FloatTensor[N, 4]: per column in METADATA_COLUMNS, log1p(value) (0 when NA) and is-known.

    A missing column counts as all NA; negative values are errors (counts and seconds are >= 0).
    """
    columns = []
    for name in METADATA_COLUMNS:
        if name in videos.columns:
            values = videos[name].astype("Float64").to_numpy(dtype=np.float64, na_value=np.nan)
        else:
            values = np.full(len(videos), np.nan)
        bad = np.flatnonzero(values < 0)
        if len(bad):
            raise ValueError(f"metadata column {name!r}: negative value {values[bad[0]]} "
                             f"in the row with index {videos.index[bad[0]]!r}")
        columns += [np.log1p(np.nan_to_num(values, nan=0.0)), (~np.isnan(values)).astype(np.float64)]
    return torch.tensor(np.stack(columns, axis=1), dtype=torch.float32)


def check_fusion(weights, fusion: str) -> tuple[float, float]:
    """(w_v, w_t) after checking: two finite numbers >= 0, not both 0; a known fusion; gate needs both > 0."""
    w = tuple(float(x) for x in weights)
    if len(w) != 2 or not all(math.isfinite(x) and x >= 0 for x in w) or w == (0.0, 0.0):
        raise ValueError(f"fusion weights must be two numbers >= 0, not both 0 (w_vision, w_text), got {weights}")
    if fusion not in FUSIONS:
        raise ValueError(f"fusion must be one of {', '.join(FUSIONS)}, got {fusion!r}")
    if fusion == "gate" and 0.0 in w:
        raise ValueError(f"fusion='gate' learns how to mix both branches; weights {weights} switch one off "
                         f"(use fusion='weighted' for a single-modality run)")
    return w


class FusionHead(nn.Module):
    """vision output [B, D], text output [B, D] (, meta [B, 4]) -> logits [B, n_classes]."""

    def __init__(self, dim: int, weights=(0.75, 0.25), fusion: str = "weighted", n_classes: int = 5,
                 metadata: bool = False, metadata_hidden: int = 32):
        super().__init__()
        self.weights, self.fusion = check_fusion(weights, fusion), fusion
        if fusion == "gate":
            w_v, w_t = self.weights
            self.gate = nn.Linear(2 * dim, dim)
            nn.init.zeros_(self.gate.weight)
            nn.init.constant_(self.gate.bias, math.log(w_v / w_t))  # sigmoid(bias) = w_v / (w_v + w_t)
        self.meta = (nn.Sequential(nn.Linear(METADATA_FEATURES, metadata_hidden), nn.ReLU(),
                                   nn.Linear(metadata_hidden, dim)) if metadata else None)
        fused_dim = dim * ((2 + bool(metadata)) if fusion == "concat" else 1)
        self.classifier = nn.Linear(fused_dim, n_classes)

    def forward(self, v: torch.Tensor, t: torch.Tensor, meta: torch.Tensor | None = None) -> torch.Tensor:
        w_v, w_t = self.weights
        if self.fusion == "weighted":
            fused = w_v * v + w_t * t
        elif self.fusion == "concat":
            fused = torch.cat([w_v * v, w_t * t], dim=1)
        else:
            g = torch.sigmoid(self.gate(torch.cat([v, t], dim=1)))
            fused = g * v + (1 - g) * t
        if self.meta is not None:
            if meta is None:
                raise ValueError("this model has a metadata branch: pass meta [B, 4] (popnb.models.metadata_features)")
            m = self.meta(meta)
            fused = torch.cat([fused, m], dim=1) if self.fusion == "concat" else fused + m
        return self.classifier(fused)


class LateFusion(nn.Module):
    """forward(images [B,3,H,W] float, ids [B,L] long, mask [B,L] long, meta [B,4] | None) -> logits [B, 5]."""

    def __init__(self, vision: VisionBranch, text: TextBranch, weights=(0.75, 0.25), fusion: str = "weighted",
                 hidden: int = 256, n_classes: int = 5, metadata: bool = False):
        super().__init__()
        if vision.out_dim != hidden or text.out_dim != hidden:
            raise ValueError(f"branch outputs must be {hidden} wide: vision gives {vision.out_dim}, "
                             f"text gives {text.out_dim} (create them with out_dim={hidden})")
        self.vision, self.text = vision, text
        self.head = FusionHead(hidden, weights, fusion, n_classes, metadata)

    def forward(self, images: torch.Tensor, ids: torch.Tensor, mask: torch.Tensor,
                meta: torch.Tensor | None = None) -> torch.Tensor:
        return self.head(self.vision(images), self.text(ids, mask), meta)
