"""Faces on covers: MediaPipe's BlazeFace full-range detector (the .tflite inside mediapipe 0.10.21)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from popnb.data import open_cover
from popnb.encoders.boxes import to_json, union_area
from popnb.encoders.packages import require

FACE_COLUMNS = ("n_faces", "face_area", "largest_face_x", "largest_face_y", "largest_face_area", "face_boxes",
                "face_scores")
FACE_SIDE = 960  # the longest side a cover is read at (the detector itself works at 192x192)
MIN_FACE_SCORE = 0.5
FACE_INSTALL = ("pip install --no-deps mediapipe==0.10.21 (later versions ship no face detection model; it "
                "declares numpy<2 and GUI OpenCV, but runs on popnb's numpy 2 with opencv-python-headless, "
                "protobuf 4.25 and attrs, which popnb pins)")


class CoverFaces:
    """cover paths -> one row each: n_faces, face_area (fraction of the cover inside a face box), the largest
    face's centre (largest_face_x, _y in 0..1) and area (NaN without a face), face_boxes (JSON
    [[x0, y0, x1, y1], ...] in 0..1), face_scores (JSON). Faces scoring below MIN_FACE_SCORE are dropped.

    The full-range model (model_selection=1) finds faces at any scale, down to ~5% of the cover's width;
    the short-range one is made for faces filling a selfie, and on 20 real covers it missed the small ones
    and took a pair of hands for a face.
    """

    batch_size = 16

    def __init__(self, name: str, size: int = FACE_SIDE, device: str = "cpu"):
        mediapipe = require("mediapipe", name, FACE_INSTALL)
        self.name, self.size = name, size
        self.detector = mediapipe.solutions.face_detection.FaceDetection(
            model_selection=1, min_detection_confidence=MIN_FACE_SCORE)

    def detect(self, path: Path) -> dict:
        """One cover -> its row (see the class)."""
        image = np.asarray(open_cover(path, max_side=self.size))
        found = self.detector.process(image).detections or []
        boxes = np.array([[b.xmin, b.ymin, b.xmin + b.width, b.ymin + b.height]
                          for b in (d.location_data.relative_bounding_box for d in found)]).reshape(-1, 4)
        boxes = boxes.clip(0.0, 1.0)
        areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
        largest = boxes[np.argmax(areas)] if len(boxes) else np.full(4, np.nan)
        return {"n_faces": len(boxes), "face_area": union_area(boxes),
                "largest_face_x": (largest[0] + largest[2]) / 2, "largest_face_y": (largest[1] + largest[3]) / 2,
                "largest_face_area": areas.max() if len(boxes) else np.nan,
                "face_boxes": to_json(boxes), "face_scores": to_json([d.score[0] for d in found])}

    def __call__(self, paths: list[Path]) -> pd.DataFrame:
        return pd.DataFrame([self.detect(p) for p in paths], columns=list(FACE_COLUMNS))
