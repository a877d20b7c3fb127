"""Input pipeline: images/s the data path delivers over images/s the default training step consumes.

Delivered (each at the default 112 px, per repetition):
- cache miss: JPEG decode + resize (popnb.data.torchdata.cover_array, what the cover cache is built with), in this
  process, and through a torch DataLoader with 2 worker processes;
- cache hit: VideoTensors[batch] from the memory-mapped cover cache (uint8 -> normalised float), what every
  training step reads.
popnb has no augmentation (covers are only squashed to S x S), so there is no augmented path to time.
Consumed: batch size / seconds of one training step of the demo pair, timed in the same repetition.
"""
from __future__ import annotations

import numpy as np
import torch

from benchmarks.common import (
    Figure, Options, Section, demo_data, ratios, repeat, seconds, summarise, threads_label, torch_threads, use_cache,
)
from benchmarks.render import pipe_table
from benchmarks.workload import DEMO, build, stepper
from popnb.data import load_dataset
from popnb.data.torchdata import VideoTensors, cached_covers, cover_array

GOAL = 5.0
WORKERS = 2


class Covers(torch.utils.data.Dataset):
    """Cover files -> uint8 [3, S, S] tensors, decoded on every access (the cache-miss path)."""

    def __init__(self, paths, image_size: int):
        self.paths, self.image_size = list(paths), image_size

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> torch.Tensor:
        return torch.from_numpy(cover_array(self.paths[i], self.image_size))


def decode_rate(paths, image_size: int):
    """-> a function returning images/s of decoding every path in this process."""
    return lambda: len(paths) / seconds(lambda: [cover_array(p, image_size) for p in paths])


def loader_rate(paths, image_size: int, batch_size: int):
    """-> a function returning images/s of one pass of a DataLoader with WORKERS processes (kept alive between
    passes, so worker start-up is not timed after the warm-up repetition)."""
    loader = torch.utils.data.DataLoader(Covers(paths, image_size), batch_size=batch_size, num_workers=WORKERS,
                                         persistent_workers=True)
    return lambda: len(paths) / seconds(lambda: [b for b in loader])


def cache_rate(tensors: VideoTensors, batch_size: int, batches: int):
    """-> a function returning images/s of reading `batches` random batches from the cover cache."""
    rng = np.random.default_rng(0)

    def read():
        for _ in range(batches):
            tensors[rng.choice(len(tensors), batch_size, replace=False)]
    return lambda: batches * batch_size / seconds(read)


def cached_tensors(data, image_size: int, cache) -> VideoTensors:
    """VideoTensors over the cover cache (built here when absent); titles are not read, so ids are zeros."""
    paths = [data.cover_path(i) for i in range(len(data))]
    covers = cached_covers(paths, image_size, cache)
    zeros = torch.zeros(len(paths), 8, dtype=torch.long)
    return VideoTensors(covers, zeros, zeros, np.zeros(len(paths)), np.zeros(len(paths)), image_size)


def run(opts: Options) -> Section:
    path, cache = demo_data(opts), use_cache(opts)
    data = load_dataset(path)
    paths = [data.cover_path(i) for i in range(min(len(data), 64 if opts.quick else 128))]
    size, batch_size = DEMO.image_size, DEMO.batch_size
    model, batch = build(DEMO, data.videos["title"].tolist())
    with torch_threads(opts.threads):
        step = stepper(model, batch)
        fns = {"cache miss, 1 process": decode_rate(paths, size),
               f"cache miss, DataLoader {WORKERS} workers": loader_rate(paths, size, batch_size),
               "cache hit (cover cache)": cache_rate(cached_tensors(data, size, cache), batch_size, 16),
               "training step consumes": lambda: batch_size / seconds(step)}
        rates = repeat(fns, opts.reps, opts.warmup, "input pipeline")
    consumed = rates.pop("training step consumes")
    section = Section("input_pipeline", f"4. Input pipeline vs training step ({size} px, batch {batch_size}, "
                                        f"{threads_label(opts.threads)} for the step)")
    section.figures = [Figure(f"loader / training images/s, {name}", ratios(r, consumed), GOAL)
                       for name, r in rates.items()]
    median = {name: summarise(r).median for name, r in rates.items()}
    rows = [[name, f"{m:,.0f}"] for name, m in median.items()]
    rows.append(["training step (demo pair) consumes", f"{summarise(consumed).median:,.1f}"])
    one, pool = median["cache miss, 1 process"], median[f"cache miss, DataLoader {WORKERS} workers"]
    section.notes += [pipe_table(["path", "images/s (median)"], rows),
                      f"{WORKERS} worker processes decode {pool / one:.2f}x as many covers per second as this process "
                      "alone (the loader measured on its own; while training, workers compete with the step for the "
                      "same cores).",
                      "No augmentation exists in popnb (covers are only squashed to S x S), so none is timed. "
                      "The training loop reads every batch from the cover cache (a miss happens once per data set "
                      "and image size, when the cache is built in one process)."]
    section.data = {"images_per_s": rates, "training_images_per_s": consumed, "covers_decoded": len(paths)}
    return section
