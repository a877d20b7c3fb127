"""Interpretable cover features in one table: pixel statistics, how much of the cover is text, and faces."""
from __future__ import annotations

import pandas as pd

from popnb.encoders.store import encode


def cover_features(data, cache=None, progress: bool = True) -> pd.DataFrame:
    """One row per video of `data`: cover-stats' columns, n_text_boxes and text_area (cover-ocr), n_faces,
    face_area and largest_face_area (cover-faces; NaN without a face). Each from the feature store."""
    stats = encode("cover-stats", data, cache=cache, progress=progress).values
    text = encode("cover-ocr", data, cache=cache, progress=progress).values[["n_text_boxes", "text_area"]]
    faces = encode("cover-faces", data, cache=cache, progress=progress).values
    return pd.concat([stats, text, faces[["n_faces", "face_area", "largest_face_area"]]], axis=1)
