"""One file to continue a run from: model, optimizer, every RNG state, the data order and the history.

Written at the end of each epoch, atomically (a temporary file renamed over the old one), so a run
killed at any moment leaves either the previous epoch's checkpoint or the new one, never half of one.
The data order needs no state of its own: it is a function of (seed, epoch) (popnb.data.torchdata.epoch_batches),
so the checkpoint records the seed and the next epoch. Everything is stored as tensors and plain Python
values, so `torch.load(weights_only=True)` reads it without unpickling code.
"""
from __future__ import annotations

import os
import random
from pathlib import Path

import numpy as np
import torch
from torch import nn

from popnb.models.vision import safe_torch_load


def rng_states() -> dict:
    """The torch (CPU and every CUDA device), numpy and python global RNG states as storable values."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, cached],
        "python": _to_lists(random.getstate()),
    }


def set_rng_states(states: dict) -> None:
    """Restore what `rng_states` returned."""
    torch.set_rng_state(states["torch"])
    if states["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])
    kind, keys, pos, has_gauss, cached = states["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    random.setstate(_to_tuples(states["python"]))


def _to_lists(x):
    return [_to_lists(v) for v in x] if isinstance(x, tuple) else x


def _to_tuples(x):
    return tuple(_to_tuples(v) for v in x) if isinstance(x, list) else x


def save_checkpoint(path, model: nn.Module, optimizer: torch.optim.Optimizer, epoch: int, seed: int,
                    history: list[dict]) -> Path:
    """Write the state after `epoch` completed epochs to path (atomically). history: one dict per epoch and split."""
    path = Path(path)
    state = {
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "epoch": epoch,
        "data_order": {"seed": seed, "next_epoch": epoch},
        "rng": rng_states(),
        "history": history,
    }
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)
    return path


def load_checkpoint(path) -> dict:
    """Read a checkpoint written by `save_checkpoint` (tensors on the CPU); never runs code (UnsafePickleError)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no checkpoint here")
    return safe_torch_load(path, "popnb writes its checkpoints as tensors and plain values only: this file was not "
                                 "written by popnb train; train the run again, or restore the run's own checkpoint.pt.")
