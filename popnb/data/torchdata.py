"""The torch side of a dataset folder: covers decoded once into a cached array, titles tokenised once.

Covers are read through `open_cover`, resized (squashed, as the paper does) to image_size x image_size
and stored as uint8 [N, 3, S, S] in `<cache>/covers-<key>.npy`, memory-mapped on later reads, so no
epoch after the first (and no later run on the same data and size) decodes a JPEG. The key hashes the
cover files (path, size, mtime) and the image size. The cache folder is $POPNB_CACHE, else ~/.cache/popnb.
Normalisation ((x/255 - mean) / std with the backbone's mean and std) happens per batch.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from tqdm.auto import tqdm

from popnb.data import open_cover

CACHE_FORMAT = 1  # bump when the way covers are resized or stored changes
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def cache_dir() -> Path:
    """$POPNB_CACHE, else ~/.cache/popnb."""
    return Path(os.environ.get("POPNB_CACHE") or Path.home() / ".cache" / "popnb")


def cover_array(path, image_size: int) -> np.ndarray:
    """One cover file -> uint8 [3, S, S] (RGB, squashed to S x S). CoverError when it cannot be read."""
    image = open_cover(path, max_side=2 * image_size)
    image = image.resize((image_size, image_size), Image.Resampling.BICUBIC)
    return np.ascontiguousarray(np.asarray(image, dtype=np.uint8).transpose(2, 0, 1))


def covers_key(paths: list[Path | None], image_size: int) -> str:
    """Hash of (every cover's resolved path, byte size, mtime; the image size; the cache format)."""
    entries = []
    for path in paths:
        if path is None:
            entries.append(None)
        else:
            st = Path(path).stat()
            entries.append([str(Path(path).resolve()), st.st_size, st.st_mtime_ns])
    doc = json.dumps({"format": CACHE_FORMAT, "size": image_size, "covers": entries})
    return hashlib.sha256(doc.encode()).hexdigest()[:20]


def cached_covers(paths: list[Path | None], image_size: int, cache: str | Path | None = None) -> np.ndarray:
    """uint8 [N, 3, S, S] (memory-mapped, read-only) of the covers at `paths`; None -> an all-zero image.

    Decodes every cover once into `<cache>/covers-<key>.npy` (written to a temporary name and renamed,
    so a killed run never leaves half a cache); later calls with the same files and size only map it.
    """
    folder = Path(cache) if cache is not None else cache_dir()
    target = folder / f"covers-{covers_key(paths, image_size)}.npy"
    if not target.is_file():
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / f".{target.stem}.{os.getpid()}.tmp.npy"
        out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=(len(paths), 3, image_size, image_size))
        for i, path in enumerate(tqdm(paths, desc=f"covers -> {image_size}px cache", unit="img")):
            out[i] = 0 if path is None else cover_array(path, image_size)
        out.flush()
        del out
        os.replace(tmp, target)
    return np.load(target, mmap_mode="r")


def normalise(images: torch.Tensor, mean=IMAGENET_MEAN, std=IMAGENET_STD) -> torch.Tensor:
    """uint8 [B, 3, S, S] -> float32 [B, 3, S, S], (x/255 - mean) / std per channel."""
    mean = torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1)
    std = torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1)
    return (images.float() / 255 - mean) / std


class VideoTensors(torch.utils.data.Dataset):
    """A dataset folder as tensors: covers (cached uint8) or none, token ids and masks, metadata or none, labels,
    scores. A batch source of popnb.train: the model's inputs first, the labels last.

    `covers=None` means text only: every image is all zeros (after normalisation), as when the vision
    weight is 0 on a stats-only data set. Index with an int or a 1-D array of row positions:
    `ds[idx] -> (images float [B,3,S,S], ids long [B,L], mask long [B,L], labels long [B])`, with the
    metadata features float [B,M] before the labels when `meta` is given (popnb.models.MetadataScaler).
    """

    def __init__(self, covers: np.ndarray | None, ids: torch.Tensor, mask: torch.Tensor, labels, scores,
                 image_size: int, mean=IMAGENET_MEAN, std=IMAGENET_STD, meta: torch.Tensor | None = None):
        n = len(ids)
        if covers is not None and len(covers) != n:
            raise ValueError(f"{len(covers)} covers for {n} titles")
        if meta is not None and len(meta) != n:
            raise ValueError(f"metadata of {len(meta)} videos for {n} titles")
        self.covers, self.ids, self.mask, self.meta = covers, ids.long(), mask.long(), meta
        self.labels = torch.as_tensor(np.asarray(labels), dtype=torch.long)
        self.scores = np.asarray(scores, dtype=np.float64)
        self.image_size, self.mean, self.std = image_size, tuple(mean), tuple(std)

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, index):
        single = np.ndim(index) == 0
        idx = np.atleast_1d(np.asarray(index, dtype=np.int64))
        if self.covers is None:
            images = torch.zeros(len(idx), 3, self.image_size, self.image_size)
        else:
            images = normalise(torch.from_numpy(np.ascontiguousarray(self.covers[idx])), self.mean, self.std)
        t = torch.from_numpy(idx)
        meta = () if self.meta is None else (self.meta[t],)
        batch = (images, self.ids[t], self.mask[t], *meta, self.labels[t])
        return tuple(x[0] for x in batch) if single else batch


def require_covers(data) -> None:
    """ValueError unless every video of `data` (a popnb.data.Dataset) has a cover."""
    if not data.has_covers:
        missing = int((data.videos["cover"] == "").sum())
        raise ValueError(f"{data.root}: {missing} of {len(data)} videos have no cover (stats-only data), but a "
                         "vision weight > 0 needs covers: use text only (--fusion-weights 0,1) or data with covers")


def build_tensors(data, tokenizer, labels, scores, image_size: int, max_len: int, with_covers: bool,
                  mean=IMAGENET_MEAN, std=IMAGENET_STD, cache: str | Path | None = None,
                  meta: torch.Tensor | None = None) -> VideoTensors:
    """VideoTensors for a loaded `popnb.data.Dataset`: titles tokenised once, covers from the cache.

    labels int [N], scores float [N]: from the run's LabelScheme. with_covers=False: text only, no image read.
    meta: the metadata features float [N, M] of the run's MetadataScaler, or None.
    """
    if with_covers:
        require_covers(data)
    covers = cached_covers([data.cover_path(i) for i in range(len(data))], image_size, cache) if with_covers else None
    ids, mask = tokenizer.encode(list(data.videos["title"]), max_len)
    return VideoTensors(covers, torch.as_tensor(ids), torch.as_tensor(mask), labels, scores, image_size, mean, std,
                        meta)


def epoch_batches(positions, batch_size: int, seed: int, epoch: int | None) -> list[np.ndarray]:
    """positions cut into batches of batch_size (the last may be short), shuffled by (seed, epoch).

    The order is a pure function of (seed, epoch), so a resumed run sees the batches an uninterrupted
    one would. epoch=None keeps the given order (evaluation).
    """
    positions = np.asarray(positions)
    if epoch is not None:
        positions = positions[np.random.default_rng([seed, epoch]).permutation(len(positions))]
    return [positions[i : i + batch_size] for i in range(0, len(positions), batch_size)]


def stratified_split(labels, valid_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train, valid) row positions, sorted: round(valid_fraction * n_c) of each class c to valid, drawn by seed.

    The paper's train:valid = 10:1 is valid_fraction = 1/11.
    """
    labels = np.asarray(labels)
    if not 0 < valid_fraction < 1:
        raise ValueError(f"valid fraction must be in (0, 1), got {valid_fraction}")
    rng = np.random.default_rng(seed)
    valid = []
    for c in np.unique(labels):
        rows = rng.permutation(np.flatnonzero(labels == c))
        valid.append(rows[: int(round(valid_fraction * len(rows)))])
    valid = np.sort(np.concatenate(valid))
    train = np.setdiff1d(np.arange(len(labels)), valid)
    if len(train) == 0 or len(valid) == 0:
        raise ValueError(f"{len(labels)} videos are too few to split into train and valid ({valid_fraction:.3g} to valid)")
    return train, valid
