"""The feature store: each frozen encoder's output for a data set, computed once and kept on disk; resumable,
and shared out over torchrun's ranks.

Files under <cache>/features/ (the cache folder: $POPNB_CACHE, else ~/.cache/popnb, as popnb.train.frozen):
  <encoder>-<key>.npy       float32 [N, dim]: an embedding, row i = video i of the data set
  <encoder>-<key>.parquet   N rows, the encoder's columns (boxes and scores as JSON strings)
  <encoder>-<key>.parts/    while computing: part-<start>-<stop>.npy|.parquet, rows [start, stop)
The key hashes the encoder's name and revision, the installed versions of its packages (the weights' and
code's identity), its input size, and its inputs: the cover files (resolved path, byte size, mtime, as
popnb.data.torchdata.covers_key) or the texts themselves.

Each part is written whole (temporary name, then rename), so a killed run keeps its finished parts and the
next call computes only the others. Under torchrun, rank r computes the parts p with p % world_size == r and
rank 0 joins them in row order: the file is byte for byte the one a single process writes (the cache folder
must be one folder that every rank sees: one machine, or a shared filesystem).
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch.distributed as dist
from tqdm.auto import tqdm

from popnb.data.torchdata import cache_dir, covers_key, require_covers
from popnb.encoders.packages import versions
from popnb.encoders.registry import EncoderSpec, get_encoder, get_spec

STORE_FORMAT = 1  # bump when the way features are keyed or stored changes
# Rows per part: what a killed run can lose, and the unit torchrun's ranks share (whole parts: the ranks' rows
# differ by one part at most); a multiple of every encoder's batch size up to 64, so batches stay the same.
PART_ROWS = 64


@dataclass
class Features:
    """One encoder's output for a data set: values float32 [N, dim] (memory-mapped) or a DataFrame of N rows;
    path: its file; hit: read from the store, nothing computed."""

    values: np.ndarray | pd.DataFrame
    path: Path
    hit: bool


def text_key(texts: list[str]) -> str:
    """Hash of the texts themselves."""
    return hashlib.sha256(json.dumps(texts, ensure_ascii=False).encode()).hexdigest()[:20]


def encoder_inputs(spec: EncoderSpec, data, size, cache, progress: bool) -> tuple[list, str]:
    """What the encoder reads for each video of `data` (cover paths, titles, or cover-ocr's text) and its hash."""
    if spec.kind == "cover":
        require_covers(data)
        paths = [data.cover_path(i) for i in range(len(data))]
        return paths, covers_key(paths, size)
    if spec.kind == "title":
        texts = list(data.videos["title"])
    else:
        texts = list(encode("cover-ocr", data, cache=cache, progress=progress).values["text"])
    return texts, text_key(texts)


def store_path(spec: EncoderSpec, size, inputs_key: str, cache=None) -> Path:
    """`<cache>/features/<encoder>-<key>.npy|.parquet`."""
    doc = json.dumps({"format": STORE_FORMAT, "encoder": spec.name, "revision": spec.revision,
                      "packages": versions(spec.packages), "size": size, "inputs": inputs_key}, sort_keys=True)
    key = hashlib.sha256(doc.encode()).hexdigest()[:20]
    suffix = ".npy" if spec.output == "embedding" else ".parquet"
    return (Path(cache) if cache is not None else cache_dir()) / "features" / f"{spec.name}-{key}{suffix}"


def temporary(path: Path) -> Path:
    """A temporary name beside path, to write to and then rename: a killed run never leaves half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    return path.with_name(f".{path.stem}.{os.getpid()}.tmp{path.suffix}")


def save(path: Path, values: np.ndarray | pd.DataFrame) -> None:
    tmp = temporary(path)
    if isinstance(values, np.ndarray):
        np.save(tmp, values)
    else:
        values.to_parquet(tmp, index=False)
    os.replace(tmp, path)


def stack_npy(paths: list[Path], out_path: Path) -> None:
    """The rows of the .npy files at paths, in order, into one .npy; one part in memory at a time."""
    parts = [np.load(p, mmap_mode="r") for p in paths]
    out = np.lib.format.open_memmap(out_path, mode="w+", dtype=np.float32,
                                    shape=(sum(len(p) for p in parts), parts[0].shape[1]))
    start = 0
    for part in parts:
        out[start : start + len(part)] = part
        start += len(part)
    out.flush()


def load(path: Path) -> np.ndarray | pd.DataFrame:
    return np.load(path, mmap_mode="r") if path.suffix == ".npy" else pd.read_parquet(path)


def checked(spec: EncoderSpec, out, n: int) -> np.ndarray | pd.DataFrame:
    """An encoder's output for n inputs, as the spec says it is (float32 [n, dim], or n rows of its columns)."""
    if spec.output == "embedding":
        out = np.asarray(out, dtype=np.float32)
        ok = out.shape == (n, spec.dim)
    else:
        ok = isinstance(out, pd.DataFrame) and len(out) == n and tuple(out.columns) == spec.columns
    if not ok:
        raise ValueError(f"encoder {spec.name!r} gave {type(out).__name__} {getattr(out, 'shape', '')} for {n} "
                         f"inputs, expected {spec.output} of {spec.dim or spec.columns}")
    return out


def part_path(parts: Path, start: int, stop: int, suffix: str) -> Path:
    return parts / f"part-{start:09d}-{stop:09d}{suffix}"


def rank_and_world() -> tuple[int, int]:
    """(rank, world size) of torchrun's process group; (0, 1) outside torchrun."""
    if int(os.environ.get("WORLD_SIZE", "1")) == 1:
        return 0, 1
    if not dist.is_initialized():
        raise RuntimeError("under torchrun the feature store shares the work through the process group: initialise "
                           "it first (popnb.train.distributed.distributed() or torch.distributed.init_process_group)")
    return dist.get_rank(), dist.get_world_size()


def compute(make, spec: EncoderSpec, items: list, spans: list[tuple[int, int]], parts: Path, suffix: str,
            show: bool) -> None:
    """Encode items[start:stop] for each span, batch by batch, each span saved as one part."""
    encoder = None  # made only when there is something to compute
    bar = tqdm(total=sum(stop - start for start, stop in spans), desc=f"{spec.name} features",
               unit="cover" if spec.kind == "cover" else "text", disable=not show)
    for start, stop in spans:
        encoder = encoder or make()
        out = []
        for i in range(start, stop, encoder.batch_size):
            batch = items[i : min(i + encoder.batch_size, stop)]
            out.append(checked(spec, encoder(batch), len(batch)))
            bar.update(len(batch))
        values = np.concatenate(out) if spec.output == "embedding" else pd.concat(out, ignore_index=True)
        save(part_path(parts, start, stop, suffix), values)
    bar.close()


def merge(spans: list[tuple[int, int]], parts: Path, target: Path) -> None:
    """Join every part in row order into target, then remove the parts."""
    paths = [part_path(parts, start, stop, target.suffix) for start, stop in spans]
    missing = [p.name for p in paths if not p.is_file()]
    if missing:
        raise RuntimeError(f"{len(missing)} of {len(paths)} parts missing in {parts} ({missing[0]}, ...): under "
                           f"torchrun every rank must write to the same cache folder (one machine or a shared "
                           f"filesystem; set POPNB_CACHE)")
    if target.suffix == ".parquet":
        save(target, pd.concat([load(p) for p in paths], ignore_index=True))
    else:  # a large crawl's embeddings: written part by part, never whole in memory
        tmp = temporary(target)
        stack_npy(paths, tmp)
        os.replace(tmp, target)
    shutil.rmtree(parts)


def encode(encoder, data, size=None, cache=None, part_rows: int = PART_ROWS, progress: bool = True,
           device: str = "cpu") -> Features:
    """One frozen encoder's output for every video of `data` (a popnb.data.Dataset), from the store or computed.

    encoder: a name in ENCODERS, or a ready get_encoder(...) to reuse (its size is used). size: the input size
    (default the spec's). Under torchrun (process group initialised) every rank calls this; the work is shared.
    """
    name = encoder if isinstance(encoder, str) else encoder.name
    spec = get_spec(name)
    if not isinstance(encoder, str):
        size = encoder.size
    elif size is None:
        size = spec.size
    items, inputs_key = encoder_inputs(spec, data, size, cache, progress)
    target = store_path(spec, size, inputs_key, cache)
    if target.is_file():
        return Features(load(target), target, True)
    rank, world = rank_and_world()
    parts = target.with_suffix(".parts")
    spans = [(start, min(start + part_rows, len(items))) for start in range(0, len(items), part_rows)]
    todo = [s for p, s in enumerate(spans) if p % world == rank and not part_path(parts, *s, target.suffix).is_file()]
    make = (lambda: get_encoder(name, size, device)) if isinstance(encoder, str) else (lambda: encoder)
    compute(make, spec, items, todo, parts, target.suffix, progress and rank == 0)
    if world > 1:
        dist.barrier()
    if rank == 0:
        merge(spans, parts, target)
    if world > 1:
        dist.barrier()
    return Features(load(target), target, False)
