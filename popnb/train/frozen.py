"""Frozen backbones: each backbone's embeddings computed once and cached, then only the heads are trained.

The heads are LateFusion without its backbones: the vision branch's FC, the text branch's FC and the
fusion head (popnb.models.FusionHead), trained with AdamW on the cached embeddings, through the epoch of
popnb.train.loop (run_epoch: the same batches, steps and metrics as a full run). The embeddings are
what LateFusion feeds those FCs: the vision backbone's pooled features (`VisionBranch.backbone`) and the
text encoder's pooled output (`TextBranch.features`).

Cache: `<cache>/features/{vision|text}-<backbone>-<key>.npy`, float32 [N, D], the cache folder being
$POPNB_CACHE, else ~/.cache/popnb (the cover cache's). The key hashes the backbone name, its weights
("pretrained", a checkpoint file, or the seed of a random init) and the input: the cover files and the
image size (vision), or the token ids, masks and tokenizer (text).
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import re
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from popnb.data.torchdata import cache_dir, cached_covers, covers_key, epoch_batches, normalise, require_covers
from popnb.models import CharVocab, FusionHead, create_text, create_vision, needs_vocab
from popnb.train.distributed import DistContext
from popnb.train.loop import run_epoch

FEATURES_FORMAT = 1  # bump when the way embeddings are computed or stored changes


@dataclass
class Embeddings:
    """One backbone's embeddings of a data set: values float32 [N, D]; path: the cache file; hit: read from it."""

    values: np.ndarray
    path: Path
    hit: bool


def weights_tag(pretrained: bool, seed: int, checkpoint: str | Path | None = None) -> str:
    """Which weights a backbone has: 'checkpoint:<sha of its files' paths, sizes, mtimes>', 'pretrained',
    or 'seed<N>' (a random init by that seed)."""
    if checkpoint is not None:
        root = Path(checkpoint).resolve()
        files = sorted(p for p in root.rglob("*") if p.is_file()) if root.is_dir() else [root]
        doc = json.dumps([[str(p), p.stat().st_size, p.stat().st_mtime_ns] for p in files])
        return f"checkpoint:{hashlib.sha256(doc.encode()).hexdigest()[:16]}"
    return "pretrained" if pretrained else f"seed{seed}"


def feature_path(kind: str, backbone: str, key_doc: dict, cache: str | Path | None = None) -> Path:
    """`<cache>/features/<kind>-<backbone>-<sha of key_doc>.npy`."""
    doc = json.dumps({"format": FEATURES_FORMAT, "kind": kind, "backbone": backbone, **key_doc}, sort_keys=True)
    key = hashlib.sha256(doc.encode()).hexdigest()[:20]
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", Path(backbone).name or backbone)
    return (Path(cache) if cache is not None else cache_dir()) / "features" / f"{kind}-{safe}-{key}.npy"


def seeded(seed: int, make):
    """make() with torch's RNG seeded by seed, the caller's RNG state left as it was."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return make()


def embed(batches, forward, desc: str) -> np.ndarray:
    """forward(batch) -> [B, D] for each batch, under inference_mode with a bar -> float32 [N, D]."""
    out = []
    with torch.inference_mode():
        for batch in tqdm(batches, desc=desc, unit="batch"):
            out.append(forward(batch).float().cpu().numpy())
    return np.concatenate(out)


def save_npy(path: Path, values: np.ndarray) -> None:
    """Write to a temporary name and rename, so a killed run never leaves half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp.npy")
    np.save(tmp, values)
    os.replace(tmp, path)


def vision_embeddings(data, name: str, image_size: int, pretrained: bool = False, seed: int = 0,
                      checkpoint: str | Path | None = None, batch_size: int = 64,
                      cache: str | Path | None = None, device: str = "cpu") -> Embeddings:
    """The vision backbone's pooled features of every cover of `data` (a popnb.data.Dataset): [N, D].

    Covers come from the cover cache at image_size, normalised with the backbone's mean and std, as in training.
    """
    require_covers(data)
    paths = [data.cover_path(i) for i in range(len(data))]
    key = {"weights": weights_tag(pretrained, seed, checkpoint), "covers": covers_key(paths, image_size)}
    path = feature_path("vision", name, key, cache)
    if path.is_file():
        return Embeddings(np.load(path), path, True)
    branch = seeded(seed, lambda: create_vision(name, pretrained, image_size, checkpoint)).eval().to(device)
    covers = cached_covers(paths, image_size, cache)
    mean, std = branch.data_config["mean"], branch.data_config["std"]
    batches = epoch_batches(np.arange(len(paths)), batch_size, 0, None)
    forward = lambda idx: branch.backbone(normalise(torch.from_numpy(covers[idx]), mean, std).to(device))  # noqa: E731
    values = embed(batches, forward, f"{name} features")
    save_npy(path, values)
    return Embeddings(values, path, False)


def text_embeddings(data, name: str, titles: list[str], pretrained: bool = False, seed: int = 0,
                    checkpoint: str | Path | None = None, max_len: int = 64, batch_size: int = 64,
                    cache: str | Path | None = None, device: str = "cpu") -> Embeddings:
    """The text encoder's pooled output of every title of `data`: [N, D].

    titles: the training titles, from which charbert-*/gru/lstm build their character vocabulary (as build_model).
    """
    vocab = CharVocab.build(titles) if needs_vocab(name) else None
    branch = seeded(seed, lambda: create_text(name, pretrained, vocab, checkpoint))
    ids, mask = branch.tokenizer.encode(list(data.videos["title"]), max_len)
    tokens = hashlib.sha256(ids.numpy().tobytes() + mask.numpy().tobytes()).hexdigest()
    key = {"weights": weights_tag(pretrained, seed, checkpoint), "tokenizer": branch.tokenizer.fingerprint,
           "pooling": branch.pooling, "tokens": tokens, "shape": list(ids.shape)}
    path = feature_path("text", name, key, cache)
    if path.is_file():
        return Embeddings(np.load(path), path, True)
    branch = branch.eval().to(device)
    batches = epoch_batches(np.arange(len(ids)), batch_size, 0, None)
    forward = lambda idx: branch.features(ids[idx].to(device), mask[idx].to(device))  # noqa: E731
    values = embed(batches, forward, f"{name} features")
    save_npy(path, values)
    return Embeddings(values, path, False)


class FrozenHeads(nn.Module):
    """vision features [B, Dv], text features [B, Dt] -> logits [B, 5]: LateFusion's FCs and head, no backbones.

    Each embedding is standardised per dimension ((x - mean) / std, fixed buffers set by `standardise`) before its
    FC. That affine map is one the FC can absorb, so the heads compute the same functions as LateFusion's; it puts
    every dimension on one scale (a frozen random encoder's outputs can vary by 1e-3 between titles).
    """

    def __init__(self, vision_dim: int, text_dim: int, weights=(0.75, 0.25), fusion: str = "weighted",
                 hidden: int = 256):
        super().__init__()
        self.vision_fc = nn.Linear(vision_dim, hidden)
        self.text_fc = nn.Linear(text_dim, hidden)
        self.head = FusionHead(hidden, weights, fusion)
        for name, dim in (("vision", vision_dim), ("text", text_dim)):
            self.register_buffer(f"{name}_mean", torch.zeros(dim))
            self.register_buffer(f"{name}_std", torch.ones(dim))

    def standardise(self, v: torch.Tensor, t: torch.Tensor) -> FrozenHeads:
        """Set the per-dimension mean and std from these embeddings (the training rows); std 1 where constant."""
        for name, x in (("vision", v), ("text", t)):
            std = x.std(dim=0) if len(x) > 1 else torch.zeros(x.shape[1])
            getattr(self, f"{name}_mean").copy_(x.mean(dim=0))
            getattr(self, f"{name}_std").copy_(torch.where(std > 0, std, torch.ones_like(std)))
        return self

    def branch_outputs(self, v: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The vision and text outputs [B, hidden] (what LateFusion's branches give its head)."""
        return (self.vision_fc((v - self.vision_mean) / self.vision_std),
                self.text_fc((t - self.text_mean) / self.text_std))

    def forward(self, v: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return self.head(*self.branch_outputs(v, t))

    def logit_parts(self, v: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """fusion="weighted": the vision and text parts of the logits [B, 5] (logits = parts' sum + bias)."""
        if self.head.fusion != "weighted" or self.head.meta is not None:
            raise ValueError("logit parts are defined for fusion='weighted' without metadata")
        (w_v, w_t), weight = self.head.weights, self.head.classifier.weight
        vision_out, text_out = self.branch_outputs(v, t)
        return w_v * vision_out @ weight.T, w_t * text_out @ weight.T


def vision_share(heads: FrozenHeads, v: torch.Tensor, t: torch.Tensor) -> float:
    """Share of the logits' variance over videos that the vision part drives: var(vision) / (var(vision) + var(text)).

    The fusion weight is what the paper sets; this is the weight the trained heads end up giving the covers.
    """
    with torch.inference_mode():
        parts = heads.logit_parts(v, t)
    var_v, var_t = (float(p.var(dim=0).sum()) if len(p) > 1 else 0.0 for p in parts)
    return var_v / (var_v + var_t) if var_v + var_t > 0 else float("nan")


@contextmanager
def one_thread():
    """torch on one CPU thread: the heads' tiny matrices run many times faster than with several contending threads."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@dataclass
class Embedded:
    """Embeddings of a data set as a batch source of popnb.train.loop: source[idx] -> (vision [B, Dv],
    text [B, Dt], labels [B]); labels long [N], scores float64 [N]."""

    vision: torch.Tensor
    text: torch.Tensor
    labels: torch.Tensor
    scores: np.ndarray

    def __getitem__(self, idx) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return self.vision[idx], self.text[idx], self.labels[idx]


def train_heads(vision: np.ndarray, text: np.ndarray, labels, scores, train_idx, valid_idx, weights=(0.75, 0.25),
                fusion: str = "weighted", hidden: int = 256, epochs: int = 5, lr: float = 1e-3,
                weight_decay: float = 0.01, batch_size: int = 16, seed: int = 0, max_steps: int | None = None,
                show: bool = True) -> tuple[FrozenHeads, list[dict]]:
    """AdamW + cross-entropy on the heads only -> (heads, history rows as in RUN/history.csv).

    vision [N, Dv], text [N, Dt]: embeddings of all rows; labels int [N], scores float [N]; train_idx, valid_idx:
    row positions. Batches as in popnb.train (epoch_batches by seed and epoch), each epoch popnb.train.loop's
    run_epoch (train metrics from the training pass, valid metrics from one pass over the valid rows after it).
    Valid rows also hold vision_share (fusion="weighted"). Runs on one CPU thread.
    """
    source = Embedded(torch.as_tensor(vision, dtype=torch.float32), torch.as_tensor(text, dtype=torch.float32),
                      torch.as_tensor(np.asarray(labels), dtype=torch.long), np.asarray(scores, dtype=np.float64))
    v, t, valid_idx = source.vision, source.text, np.asarray(valid_idx)
    heads = seeded(seed, lambda: FrozenHeads(v.shape[1], t.shape[1], weights, fusion, hidden))
    heads.standardise(v[train_idx], t[train_idx])
    optimizer = torch.optim.AdamW(heads.parameters(), lr=lr, weight_decay=weight_decay)
    history = []
    with one_thread():
        for epoch in tqdm(range(epochs), desc=f"heads {tuple(weights)}", unit="epoch", disable=not show, leave=False):
            batches = epoch_batches(train_idx, batch_size, seed, epoch)[:max_steps]
            train_row, valid_row = run_epoch(heads, optimizer, source, batches, [valid_idx], torch.device("cpu"),
                                             epoch, epochs, DistContext(), show=False)
            share = vision_share(heads, v[valid_idx], t[valid_idx]) if heads.head.fusion == "weighted" else math.nan
            history += [train_row, {**valid_row, "vision_share": share}]
    return heads, history
