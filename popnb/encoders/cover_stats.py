"""Interpretable pixel statistics of a cover (numpy, no model): brightness, saturation, colourfulness,
contrast, sharpness."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image, ImageOps

from popnb.data import open_cover

STATS_COLUMNS = ("brightness", "saturation", "colourfulness", "contrast", "sharpness")
STATS_SIDE = 480  # every cover is scaled (up or down) to this longest side first: sharpness depends on scale
LUMA = np.array([0.299, 0.587, 0.114])  # ITU-R BT.601


def pixel_stats(rgb: np.ndarray) -> dict:
    """uint8 [H, W, 3] -> brightness (mean luma, 0..1), saturation (mean HSV saturation, 0..1), colourfulness
    (Hasler & Suesstrunk 2003 on 0..255 values: ~0 grey, ~33 moderately, >100 extremely colourful),
    contrast (std of luma, 0..0.5), sharpness (variance of the 4-neighbour Laplacian of luma on 0..255)."""
    x = rgb.astype(np.float64)
    luma = x @ LUMA
    top, bottom = x.max(axis=2), x.min(axis=2)
    rg, yb = x[..., 0] - x[..., 1], (x[..., 0] + x[..., 1]) / 2 - x[..., 2]
    laplacian = luma[:-2, 1:-1] + luma[2:, 1:-1] + luma[1:-1, :-2] + luma[1:-1, 2:] - 4 * luma[1:-1, 1:-1]
    return {"brightness": luma.mean() / 255,
            "saturation": np.divide(top - bottom, top, out=np.zeros_like(top), where=top > 0).mean(),
            "colourfulness": np.hypot(rg.std(), yb.std()) + 0.3 * np.hypot(rg.mean(), yb.mean()),
            "contrast": luma.std() / 255,
            "sharpness": laplacian.var()}


class CoverStats:
    """cover paths -> one row each of STATS_COLUMNS (see pixel_stats), on the cover scaled to `size` px
    (longest side, bicubic, aspect kept)."""

    batch_size = 32

    def __init__(self, name: str, size: int = STATS_SIDE, device: str = "cpu"):
        self.name, self.size = name, size

    def __call__(self, paths: list[Path]) -> pd.DataFrame:
        rows = []
        for path in paths:
            image = ImageOps.contain(open_cover(path, max_side=2 * self.size), (self.size, self.size),
                                     Image.Resampling.BICUBIC)
            rows.append(pixel_stats(np.asarray(image)))
        return pd.DataFrame(rows, columns=list(STATS_COLUMNS))
