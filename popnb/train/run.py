"""A trained run folder in use: load it, evaluate it on any data set, predict one video.

Everything comes from the folder (DESIGN.md): config.json (how to rebuild the model), label_scheme.json
(how any data set is labelled for this run), vocab.json or tokenizer/ (titles -> ids), text_model/ (the
architecture of a text model read from a folder or the hub), checkpoint.pt (weights). A moved run still loads.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from popnb.data import load_dataset
from popnb.data.torchdata import build_tensors, cover_array, epoch_batches, normalise
from popnb.labels import LabelScheme
from popnb.metrics import all_metrics
from popnb.models import build_model, load_tokenizer
from popnb.train.checkpoint import load_checkpoint
from popnb.train.loop import CHECKPOINT, CONFIG, SCHEME, infer


@dataclass
class Run:
    """A loaded run: its folder, config.json as a dict, label scheme, tokenizer and model (CPU, eval mode)."""

    folder: Path
    config: dict
    scheme: LabelScheme
    tokenizer: object
    model: torch.nn.Module

    @property
    def params(self) -> dict:
        return self.config["params"]

    @property
    def uses_covers(self) -> bool:
        return float(self.params["fusion_weights"][0]) > 0


def load_run(folder) -> Run:
    """Rebuild the model of a run folder and load its last checkpoint (no weights are downloaded)."""
    folder = Path(folder)
    for name in (CONFIG, SCHEME, CHECKPOINT):
        if not (folder / name).is_file():
            raise FileNotFoundError(f"{folder}: no {name}: not a trained popnb run folder (make one with popnb train)")
    config = json.loads((folder / CONFIG).read_text(encoding="utf-8"))
    p = config["params"]
    tokenizer = load_tokenizer(folder)
    text_config = text_model_folder(folder, config)
    model, _ = build_model(p["vision"], p["text"], tuple(p["fusion_weights"]), p["fusion"], p["image_size"],
                           pretrained=False, vocab=tokenizer, text_config=text_config,
                           text_checkpoint=None if text_config else p["text_checkpoint"])
    model.load_state_dict(load_checkpoint(folder / CHECKPOINT)["model"])
    return Run(folder, config, LabelScheme.load(folder / SCHEME), tokenizer, model.eval())


def text_model_folder(folder: Path, config: dict) -> Path | None:
    """RUN/text_model/ where the run saved its text model's config; None when popnb's code alone rebuilds it
    (and for runs written before text_model/ existed, which rebuild from their original source)."""
    record = config.get("text_model")
    if record is None:
        return None
    path = folder / record["folder"]
    if not (path / "config.json").is_file():
        raise FileNotFoundError(f"{folder}: no {record['folder']}/config.json: the run folder is incomplete "
                                f"(its text model came from {record['source']})")
    return path


def image_stats(run: Run) -> tuple[tuple, tuple]:
    """The per-channel (mean, std) the run normalised its covers with (fitted on its training covers)."""
    image = run.config["image"]
    return tuple(image["mean"]), tuple(image["std"])


def evaluate(run_dir, data_dir, batch_size: int = 64) -> dict:
    """Metrics of a trained run on any dataset folder, labelled with the run's own fitted label scheme.

    Returns popnb.metrics.all_metrics (constant baseline included), the mean cross-entropy, the class
    counts under the run's scheme, and what was evaluated.
    """
    run = load_run(run_dir)
    data = load_dataset(data_dir)
    labels, scores = run.scheme.labels(data.videos), run.scheme.score(data.videos).to_numpy()
    mean, std = image_stats(run)
    tensors = build_tensors(data, run.tokenizer, labels, scores, run.params["image_size"], run.params["max_len"],
                            run.uses_covers, mean, std)
    positions, probs, loss_sum = infer(run.model, tensors, epoch_batches(np.arange(len(data)), batch_size, 0, None),
                                       torch.device("cpu"))
    return {"run": str(run.folder), "data": str(Path(data_dir)), "label_scheme": run.scheme.describe(),
            "loss": loss_sum / len(positions), **all_metrics(labels[positions], probs, scores[positions]),
            "class_counts": np.bincount(labels, minlength=5).tolist()}


def model_inputs(run: Run, title: str, cover=None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(images float [1,3,S,S], ids long [1,L], mask long [1,L]) of one video, preprocessed as in training.

    cover: a path (read through open_cover) or None (an all-zero image; an error when the run uses covers).
    """
    if not isinstance(title, str) or not title.strip():
        raise ValueError("the title is empty: give the video's title")
    size = run.params["image_size"]
    if cover is not None:
        images = normalise(torch.from_numpy(cover_array(cover, size))[None], *image_stats(run))
    elif run.uses_covers:
        raise ValueError(f"{run.folder} was trained with covers (vision weight {run.params['fusion_weights'][0]}): "
                         "give its cover image")
    else:
        images = torch.zeros(1, 3, size, size)
    ids, mask = run.tokenizer.encode([title], run.params["max_len"])
    return images, ids, mask


def prediction(run: Run, probs: np.ndarray) -> dict:
    """predict()'s fields from class probabilities [5]: predicted class (argmax), expected class
    (sum_k k * p_k), and each class's score range under the run's label scheme ([low, high), None = open end)."""
    ranges = [[None if math.isinf(x) else x for x in r] for r in run.scheme.class_ranges()]
    return {"probabilities": [float(p) for p in probs], "predicted_class": int(probs.argmax()),
            "expected_class": float(probs @ np.arange(len(probs))), "class_score_ranges": ranges,
            "label_scheme": run.scheme.describe()}


def predict(run_dir, title: str, cover=None) -> dict:
    """Class probabilities of one video (title, and cover path when the run uses covers): prediction()'s fields
    plus the run, title and cover."""
    run = load_run(run_dir)
    images, ids, mask = model_inputs(run, title, cover)
    with torch.inference_mode():
        probs = torch.softmax(run.model(images, ids, mask).float(), dim=1)[0].numpy()
    return {"run": str(run.folder), "title": title, "cover": None if cover is None else str(cover),
            **prediction(run, probs)}
