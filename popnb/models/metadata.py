"""The metadata branch's input: video columns (followers, duration) as standardised log values.

Counts and seconds have long right tails, so each column x becomes log1p(x), standardised with the mean and std
of log1p(x) over the train split's known values. Per column two features: the standardised value, 0 where x is
unknown (NA: the train mean), and a missing flag (1 where x is unknown), so the head can tell "unknown" from
"average". A run saves the statistics to RUN/metadata.json; evaluate and predict apply them.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

METADATA_COLUMNS = ("followers", "duration")  # uploader's followers (count), video length (seconds)
METADATA_FILE = "metadata.json"


def log_values(videos, column: str) -> np.ndarray:
    """log1p of a column of the videos DataFrame, float64 [N], NaN where unknown; ValueError naming a missing column
    or a negative value (counts and seconds are >= 0)."""
    if column not in videos.columns:
        raise ValueError(f"metadata column {column!r} is not in the data set (its columns: "
                         f"{', '.join(map(str, videos.columns))})")
    values = videos[column].astype("Float64").to_numpy(dtype=np.float64, na_value=np.nan)
    bad = np.flatnonzero(values < 0)
    if len(bad):
        raise ValueError(f"metadata column {column!r}: negative value {values[bad[0]]} "
                         f"in the row with index {videos.index[bad[0]]!r}")
    return np.log1p(values)


@dataclass(frozen=True)
class MetadataScaler:
    """Fitted statistics of the metadata columns: per column the mean and std of log1p(x) (std 1 where constant)."""

    columns: tuple[str, ...]
    mean: tuple[float, ...]
    std: tuple[float, ...]

    @property
    def width(self) -> int:
        """Features per video: a value and a missing flag per column."""
        return 2 * len(self.columns)

    @classmethod
    def fit(cls, videos, columns) -> MetadataScaler:
        """Fit on videos (the train rows)."""
        logs = {c: log_values(videos, c) for c in columns}
        for c, x in logs.items():
            if np.isnan(x).all():
                raise ValueError(f"metadata column {c!r} is unknown (NA) for every training video: nothing to fit")
        std = [float(np.nanstd(x)) for x in logs.values()]
        return cls(tuple(columns), tuple(float(np.nanmean(x)) for x in logs.values()),
                   tuple(s if s > 0 else 1.0 for s in std))

    def transform(self, videos) -> torch.Tensor:
        """videos DataFrame -> float32 [N, width]: per column (log1p(x) - mean) / std (0 where unknown), missing flag."""
        features = []
        for column, mean, std in zip(self.columns, self.mean, self.std):
            x = log_values(videos, column)
            known = ~np.isnan(x)
            features += [np.where(known, (x - mean) / std, 0.0), (~known).astype(np.float64)]
        return torch.tensor(np.stack(features, axis=1), dtype=torch.float32)

    def save(self, folder) -> Path:
        """Write folder/metadata.json; floats round-trip exactly."""
        path = Path(folder) / METADATA_FILE
        doc = {"columns": list(self.columns), "mean": list(self.mean), "std": list(self.std)}
        path.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
        return path

    @classmethod
    def load(cls, folder) -> MetadataScaler:
        """Read folder/metadata.json (written by save)."""
        doc = json.loads((Path(folder) / METADATA_FILE).read_text(encoding="utf-8"))
        return cls(tuple(doc["columns"]), tuple(doc["mean"]), tuple(doc["std"]))
