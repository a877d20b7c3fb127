"""popnb.train: a run's parameters, the training loop, checkpoints, GPipe and DDP, frozen-backbone heads, and using
a trained run folder.

Names load lazily (PEP 562), so `popnb --help` does not import torch.
"""
from __future__ import annotations

import importlib

_EXPORTS = {
    "TrainConfig": "config", "train": "loop",
    "Run": "run", "load_run": "run", "evaluate": "run", "predict": "run", "run_predictions": "run",
    "save_checkpoint": "checkpoint", "load_checkpoint": "checkpoint",
}
__all__ = list(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
