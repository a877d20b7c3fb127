"""Cover text by OCR: rapidocr's PP-OCRv6 text detector and recogniser (ONNX models inside the pip package,
run by onnxruntime), which reads Chinese and Latin captions."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from popnb.data import open_cover
from popnb.encoders.boxes import normalised_boxes, to_json, union_area
from popnb.encoders.packages import require

OCR_COLUMNS = ("text", "n_text_boxes", "text_area", "text_boxes", "text_scores")
OCR_SIDE = 960  # the longest side a cover is read at; never enlarged (a 480 px cover stays 480 px)
OCR_INSTALL = "pip install rapidocr==3.10.0 onnxruntime==1.32.0"


class CoverOCR:
    """cover paths -> one row each: text (the lines, top to bottom, joined by newlines), n_text_boxes, text_area
    (fraction of the cover inside a line's box), text_boxes (JSON [[x0, y0, x1, y1], ...] in 0..1), text_scores
    (JSON, the recogniser's confidence per line).

    The detector sees the cover at its own resolution, up to `size` px on the longest side (rapidocr's default
    enlarges the shorter side to 736 px: on 480x270 covers that read the same lines, bar one character,
    at 3x the time). Lines scoring below rapidocr's text_score 0.5 are dropped.
    """

    batch_size = 4

    def __init__(self, name: str, size: int = OCR_SIDE, device: str = "cpu"):
        require("onnxruntime", name, OCR_INSTALL)
        rapidocr = require("rapidocr", name, OCR_INSTALL)
        self.name, self.size = name, size
        self.engine = rapidocr.RapidOCR(params={"Global.log_level": "error", "Det.limit_type": "max",
                                                "Det.limit_side_len": size})

    def read(self, path: Path) -> dict:
        """One cover -> its row (see the class)."""
        image = open_cover(path, max_side=self.size)
        result = self.engine(image)
        if result.boxes is None or len(result.boxes) == 0:
            return {"text": "", "n_text_boxes": 0, "text_area": 0.0, "text_boxes": "[]", "text_scores": "[]"}
        boxes = normalised_boxes(result.boxes, image.width, image.height)
        return {"text": "\n".join(result.txts), "n_text_boxes": len(boxes), "text_area": union_area(boxes),
                "text_boxes": to_json(boxes), "text_scores": to_json(result.scores)}

    def __call__(self, paths: list[Path]) -> pd.DataFrame:
        return pd.DataFrame([self.read(p) for p in paths], columns=list(OCR_COLUMNS))
