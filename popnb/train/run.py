"""A trained run folder in use: load it, predict on any data set (run_predictions, evaluate), predict one video.

Everything comes from the folder (DESIGN.md): config.json (how to rebuild the model), label_scheme.json
(how any data set is labelled for this run), vocab.json or tokenizer/ (titles -> ids), text_model/ (the
architecture of a text model read from a folder or the hub), metadata.json (the metadata columns' fitted
statistics, with --metadata), checkpoint.pt (weights). A moved run still loads.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from popnb.data import load_dataset
from popnb.data.torchdata import build_tensors, cover_array, epoch_batches, normalise
from popnb.labels import N_CLASSES, LabelScheme
from popnb.metrics import all_metrics
from popnb.models import MetadataScaler, build_model, load_tokenizer
from popnb.train.checkpoint import load_checkpoint
from popnb.train.loop import CHECKPOINT, CONFIG, SCHEME, fit_labels, infer, load_limited
from popnb.train.pretrained import RECIPE, evaluate_pretrained, predict_pretrained

SPLITS = ("all", "train", "valid")


@dataclass
class Run:
    """A loaded run: its folder, config.json as a dict, label scheme, tokenizer, model (CPU, eval mode) and the
    metadata columns' statistics (None without --metadata)."""

    folder: Path
    config: dict
    scheme: LabelScheme
    tokenizer: object
    model: torch.nn.Module
    metadata: MetadataScaler | None = None

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
    metadata = MetadataScaler.load(folder) if p.get("metadata") else None
    tokenizer = load_tokenizer(folder)
    text_config = text_model_folder(folder, config)
    model, _ = build_model(p["vision"], p["text"], tuple(p["fusion_weights"]), p["fusion"], p["image_size"],
                           pretrained=False, vocab=tokenizer, text_config=text_config,
                           text_checkpoint=None if text_config else p["text_checkpoint"],
                           metadata=metadata.width if metadata else 0)
    model.load_state_dict(load_checkpoint(folder / CHECKPOINT)["model"])
    return Run(folder, config, LabelScheme.load(folder / SCHEME), tokenizer, model.eval(), metadata)


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
    """The per-channel (mean, std) the run normalised its covers with: its vision backbone's (timm data config)."""
    image = run.config["image"]
    return tuple(image["mean"]), tuple(image["std"])


@dataclass
class Predictions:
    """A run's predictions on videos of a data set, in row order; labels and scores under the run's label scheme."""

    video_ids: np.ndarray  # [N]
    labels: np.ndarray  # int [N] in 0..4
    scores: np.ndarray  # float [N]
    probs: np.ndarray  # float [N, 5]
    loss: float  # mean cross-entropy

    def metrics(self) -> dict:
        """The mean cross-entropy and popnb.metrics.all_metrics (constant baseline included)."""
        return {"loss": self.loss, **all_metrics(self.labels, self.probs, self.scores)}


def run_predictions(run, data_dir=None, split: str = "all", batch_size: int = 64, show: bool = True) -> Predictions:
    """Class probabilities of a run (a Run or its folder; its last checkpoint) on the videos of a data set.

    data_dir: a dataset folder, None for the one the run was trained on (its --limit applied). split: "all" rows,
    or the run's "train" / "valid" split, rebuilt from config.json (as popnb.train made it on its own data)."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
    run = run if isinstance(run, Run) else load_run(run)
    p = run.params
    data = load_limited(p["data_dir"], p.get("limit")) if data_dir is None else load_dataset(data_dir)
    labels, scores = run.scheme.labels(data.videos), run.scheme.score(data.videos).to_numpy()
    rows = np.arange(len(data))
    if split != "all":
        _, train_idx, valid_idx = fit_labels(data.videos, p["labels"], p["valid_fraction"], p["seed"],
                                             p.get("split", "random"))
        rows = train_idx if split == "train" else valid_idx
    meta = run.metadata.transform(data.videos) if run.metadata else None
    tensors = build_tensors(data, run.tokenizer, labels, scores, p["image_size"], p["max_len"], run.uses_covers,
                            *image_stats(run), meta=meta)
    positions, probs, loss_sum = infer(run.model, tensors, epoch_batches(rows, batch_size, 0, None),
                                       torch.device("cpu"), show=show)
    return Predictions(data.videos["video_id"].to_numpy()[positions], labels[positions], scores[positions], probs,
                       loss_sum / len(positions))


def is_pretrained_run(folder) -> bool:
    """Whether a run folder holds the pretrained recipe (popnb.train.pretrained), by its config.json."""
    config = Path(folder) / CONFIG
    return config.is_file() and json.loads(config.read_text(encoding="utf-8")).get("recipe") == RECIPE


def evaluate(run_dir, data_dir, batch_size: int = 64) -> dict:
    """Metrics of a trained run on any dataset folder, labelled with the run's own fitted label scheme
    (a pretrained-recipe run: popnb.train.pretrained.evaluate_pretrained).

    Returns popnb.metrics.all_metrics (constant baseline included), the mean cross-entropy, the class
    counts under the run's scheme, and what was evaluated.
    """
    if is_pretrained_run(run_dir):
        return evaluate_pretrained(run_dir, data_dir)
    run = load_run(run_dir)
    predictions = run_predictions(run, data_dir, batch_size=batch_size)
    return {"run": str(run.folder), "data": str(Path(data_dir)), "label_scheme": run.scheme.describe(),
            **predictions.metrics(), "class_counts": np.bincount(predictions.labels, minlength=N_CLASSES).tolist()}


def metadata_features(run: Run, meta: dict | None) -> tuple[torch.Tensor, ...]:
    """The metadata input [1, M] of one video from {column: value} (NaN: unknown), or () for a run without
    metadata; ValueError naming a column the run needs and meta lacks."""
    if run.metadata is None:
        if meta:
            raise ValueError(f"{run.folder} was trained without metadata: drop {', '.join(meta)}")
        return ()
    missing = [c for c in run.metadata.columns if c not in (meta or {})]
    if missing:
        raise ValueError(f"{run.folder} was trained with metadata {', '.join(run.metadata.columns)}: give "
                         f"{', '.join(missing)} (popnb predict --meta {missing[0]}=VALUE; nan when unknown)")
    return (run.metadata.transform(pd.DataFrame([meta])),)


def model_inputs(run: Run, title: str, cover=None, meta: dict | None = None) -> tuple[torch.Tensor, ...]:
    """(images float [1,3,S,S], ids long [1,L], mask long [1,L][, meta float [1,M]]) of one video, preprocessed
    as in training.

    cover: a path (read through open_cover) or None (an all-zero image; an error when the run uses covers).
    meta: {column: value} of the run's metadata columns (metadata_features).
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
    return images, ids, mask, *metadata_features(run, meta)


def prediction(run: Run, probs: np.ndarray) -> dict:
    """predict()'s fields from class probabilities [5]: predicted class (argmax), expected class
    (sum_k k * p_k), and each class's score range under the run's label scheme ([low, high), None = open end)."""
    ranges = [[None if math.isinf(x) else x for x in r] for r in run.scheme.class_ranges()]
    return {"probabilities": [float(p) for p in probs], "predicted_class": int(probs.argmax()),
            "expected_class": float(probs @ np.arange(len(probs))), "class_score_ranges": ranges,
            "label_scheme": run.scheme.describe()}


def predict(run_dir, title: str, cover=None, meta: dict | None = None) -> dict:
    """Class probabilities of one video (title; cover path when the run uses covers; meta {column: value} when it
    uses metadata): prediction()'s fields plus the run, title, cover and meta (a pretrained-recipe run:
    popnb.train.pretrained.predict_pretrained, which adds the predicted target value as "score")."""
    if is_pretrained_run(run_dir):
        return predict_pretrained(run_dir, title, cover, meta)
    run = load_run(run_dir)
    inputs = model_inputs(run, title, cover, meta)
    with torch.inference_mode():
        probs = torch.softmax(run.model(*inputs).float(), dim=1)[0].numpy()
    return {"run": str(run.folder), "title": title, "cover": None if cover is None else str(cover),
            **({"meta": meta} if run.metadata else {}), **prediction(run, probs)}
