"""Boxes found on a cover (text lines, faces): normalised to 0..1, their union's area, JSON for the store."""
from __future__ import annotations

import json

import numpy as np


def normalised_boxes(corners: np.ndarray, width: int, height: int) -> np.ndarray:
    """Pixel corner points [n, k, 2] (x, y) -> axis-aligned boxes [n, 4] (x0, y0, x1, y1), as fractions of
    the image's width and height, clipped to 0..1."""
    points = np.asarray(corners, dtype=np.float64).reshape(len(corners), -1, 2) / (width, height)
    return np.concatenate([points.min(axis=1), points.max(axis=1)], axis=1).clip(0.0, 1.0)


def union_area(boxes: np.ndarray) -> float:
    """Fraction of the image covered by boxes [n, 4] (x0, y0, x1, y1 in 0..1), overlaps counted once.

    Exact: the box edges cut the image into cells; a cell is covered when its centre is inside some box.
    """
    if len(boxes) == 0:
        return 0.0
    xs, ys = np.unique(boxes[:, [0, 2]]), np.unique(boxes[:, [1, 3]])
    cx, cy = (xs[:-1] + xs[1:]) / 2, (ys[:-1] + ys[1:]) / 2
    x0, y0, x1, y1 = (boxes[:, i, None, None] for i in range(4))
    covered = ((x0 < cx[:, None]) & (cx[:, None] < x1) & (y0 < cy[None, :]) & (cy[None, :] < y1)).any(axis=0)
    return float((np.diff(xs)[:, None] * np.diff(ys)[None, :])[covered].sum())


def to_json(values, decimals: int = 4) -> str:
    """Boxes [n, 4] or scores [n] as a compact JSON list, rounded (4 decimals: 1/10,000 of the image side)."""
    return json.dumps(np.round(np.asarray(values, dtype=np.float64), decimals).tolist(), separators=(",", ":"))
