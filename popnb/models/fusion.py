"""Late fusion, as in the paper: w_v * vision_output + w_t * text_output -> FC -> 5 logits.

Both branches always run, also at weight 0: a single-modality run (1.0, 0) or (0, 1.0) multiplies the
other branch's output by 0, so its parameters get zero gradients (every parameter takes part, which DDP
and GPipe need) and the logits do not depend on it. Note that AdamW's weight decay still shrinks them.

Options beyond the paper:
- fusion="concat": [w_v * v, w_t * t] -> FC.
- fusion="gate": g = sigmoid(Linear([v, t])) per feature, fused = g * v + (1 - g) * t -> FC. The gate starts
  at the ratio w_v / (w_v + w_t) (zero weights, bias logit(ratio)) and is learned from there.
- metadata: video columns (popnb.models.metadata: standardised log1p values and missing flags, meta [B, M])
  -> a small MLP, added to the fused vector (appended for concat). Off by default (M = 0).
"""
from __future__ import annotations

import math

import torch
from torch import nn

from popnb.labels import N_CLASSES
from popnb.models.text import TextBranch
from popnb.models.vision import VisionBranch

FUSIONS = ("weighted", "concat", "gate")


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
    """vision output [B, D], text output [B, D] (, meta [B, metadata]) -> logits [B, n_classes].

    metadata: the width M of the metadata input (MetadataScaler.width); 0: no metadata branch."""

    def __init__(self, dim: int, weights=(0.75, 0.25), fusion: str = "weighted", n_classes: int = N_CLASSES,
                 metadata: int = 0, metadata_hidden: int = 32):
        super().__init__()
        self.weights, self.fusion = check_fusion(weights, fusion), fusion
        if fusion == "gate":
            w_v, w_t = self.weights
            self.gate = nn.Linear(2 * dim, dim)
            nn.init.zeros_(self.gate.weight)
            nn.init.constant_(self.gate.bias, math.log(w_v / w_t))  # sigmoid(bias) = w_v / (w_v + w_t)
        self.meta = (nn.Sequential(nn.Linear(metadata, metadata_hidden), nn.ReLU(),
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
                raise ValueError(f"this model has a metadata branch: pass meta [B, {self.meta[0].in_features}] "
                                 "(popnb.models.MetadataScaler.transform)")
            m = self.meta(meta)
            fused = torch.cat([fused, m], dim=1) if self.fusion == "concat" else fused + m
        return self.classifier(fused)


class LateFusion(nn.Module):
    """forward(images [B,3,H,W] float, ids [B,L] long, mask [B,L] long, meta [B,M] | None) -> logits [B, 5]."""

    def __init__(self, vision: VisionBranch, text: TextBranch, weights=(0.75, 0.25), fusion: str = "weighted",
                 hidden: int = 256, n_classes: int = N_CLASSES, metadata: int = 0):
        super().__init__()
        if vision.out_dim != hidden or text.out_dim != hidden:
            raise ValueError(f"branch outputs must be {hidden} wide: vision gives {vision.out_dim}, "
                             f"text gives {text.out_dim} (create them with out_dim={hidden})")
        self.vision, self.text = vision, text
        self.head = FusionHead(hidden, weights, fusion, n_classes, metadata)

    def forward(self, images: torch.Tensor, ids: torch.Tensor, mask: torch.Tensor,
                meta: torch.Tensor | None = None) -> torch.Tensor:
        return self.head(self.vision(images), self.text(ids, mask), meta)
