"""Training a run: AdamW + cross-entropy on the late-fusion model, metrics and a checkpoint after every epoch.

`train(TrainConfig(...))` is the whole run, from a dataset folder to a run folder (DESIGN.md):
1. checks that fail fast (parameters, the run folder, covers present when the vision weight is > 0);
2. labels: a LabelScheme fitted on the TRAIN split (the split is stratified by the classes of the same
   kind of scheme fitted on all rows, then the scheme is refitted on train rows only); the metadata
   columns' statistics (--metadata) are fitted on the train rows too;
3. the model (popnb.models.build_model; its character vocabulary from the train titles), wrapped in
   GPipe (--pipeline gpipe) or DDP (under torchrun), both before any data is cached or step taken;
4. epochs: batches are a function of (seed, epoch) (epoch_batches; shard_batches under torchrun), so a resumed run sees exactly
   the batches the uninterrupted one would; train metrics come from the training pass itself (dropout on,
   weights moving, as papers report them), valid metrics from a pass in eval mode.

The epoch (run_epoch: train_epoch, then infer) takes any model called as model(*inputs) and any batch source
(source[idx] -> (*inputs, labels), with .labels and .scores): the full model on VideoTensors here, the heads
on cached embeddings in popnb.train.frozen.
"""
from __future__ import annotations

import json
import os
import random
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from popnb.data.torchdata import build_tensors, epoch_batches, require_covers, stratified_split
from popnb.labels import KINDS, LabelScheme
from popnb.metrics import all_metrics
from popnb.models import MetadataScaler, TextBranch, build_model, image_transform_config, save_text_model
from popnb.splits import split as split_rows
from popnb.train.checkpoint import load_checkpoint, save_checkpoint, set_rng_states
from popnb.train.config import TrainConfig, check_config, resolved, run_params
from popnb.train.distributed import (
    all_reduce_sums, distributed, gather_rows, per_rank_batch_size, shard_batches, unwrap, wrap_ddp,
)
from popnb.train.pipeline import PipelinedModel, make_gpipe, parse_balance
from popnb.train.runfolder import (  # noqa: F401 -- the run folder's names, re-exported for importers
    CHECKPOINT, CONFIG, HISTORY, METRICS, SCHEME, check_run_dir, load_limited, summarise, write_progress,
)
from popnb.versions import versions

LABEL_KINDS = ("auto", *KINDS)  # end-to-end runs: popnb.labels' schemes


@contextmanager
def deterministic(seed: int, threads: int | None = None):
    """Seed torch, numpy and python, set `threads` CPU threads, and, where CUDA is present, use deterministic
    algorithms (CPU kernels already are; the switch costs seconds of imports). Settings are restored after."""
    cuda = torch.cuda.is_available()
    before = torch.get_num_threads()
    if cuda:
        was = (torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled())
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # cuBLAS needs it to be deterministic
        torch.use_deterministic_algorithms(True, warn_only=True)
    if threads is not None:
        torch.set_num_threads(threads)
    torch.manual_seed(seed)
    np.random.seed(seed)
    random.seed(seed)
    try:
        yield
    finally:
        torch.set_num_threads(before)
        if cuda:
            torch.use_deterministic_algorithms(was[0], warn_only=was[1])


def uses_frozen_encoders(cfg: TrainConfig) -> bool:
    """Whether cfg's title encoder is a frozen one of popnb.encoders (e5-small): the pretrained recipe's run."""
    from popnb.encoders.registry import ENCODERS

    spec = ENCODERS.get(cfg.text)
    return spec is not None and spec.kind == "title"


def fit_labels(videos: pd.DataFrame, kind: str, valid_fraction: float, seed: int, split: str = "random"):
    """-> (scheme fitted on the train rows, train positions, valid positions). split: random (stratified by class,
    the paper's), uploader or time (popnb.splits)."""
    if kind not in LABEL_KINDS:
        raise ValueError(f"--labels {kind} is a target of the pretrained recipe only; end-to-end runs take "
                         f"{', '.join(LABEL_KINDS)}")
    if split == "random":
        strata = LabelScheme.fit(videos, kind).labels(videos)
        train_idx, valid_idx = stratified_split(strata, valid_fraction, seed)
    else:
        train_idx, valid_idx = split_rows(videos, split, valid_fraction, seed)
    return LabelScheme.fit(videos.iloc[train_idx], kind), train_idx, valid_idx


def gpipe_devices(cfg: TrainConfig) -> str:
    """--devices for gpipe; "auto": one CUDA device per stage when there are enough, else that many CPU stages."""
    if cfg.devices != "auto":
        return cfg.devices
    balance = parse_balance(cfg.balance)
    stages = 2 if balance == "auto" else len(balance)
    if torch.cuda.device_count() >= stages:
        return ",".join(f"cuda:{i}" for i in range(stages))
    return ",".join(["cpu"] * stages)


def place_model(model, cfg: TrainConfig, ctx, sample):
    """GPipe (--pipeline gpipe) or DDP (torchrun) or just the device; sample: one batch (images, ids, mask[, meta])."""
    if cfg.pipeline == "gpipe":
        model = make_gpipe(model, sample, cfg.balance, cfg.chunks, gpipe_devices(cfg), cfg.gpipe_checkpoint)
    return wrap_ddp(model, ctx)


def input_device(model, ctx) -> torch.device:
    """Where a batch goes in: the first stage of a pipeline, else the process's device."""
    return model.input_device if isinstance(model, PipelinedModel) else ctx.device


def input_dtype(model) -> torch.dtype:
    """The dtype covers go in at: the model's parameters' (float32; float64 for a model built under
    torch.set_default_dtype(torch.float64), as the parity check in tests/test_distributed.py builds it)."""
    return next(unwrap(model).parameters()).dtype


def to_model(inputs, model, device) -> list[torch.Tensor]:
    """A batch's inputs on `device`; the floating ones (covers, metadata, embeddings) at the model's dtype."""
    dtype = input_dtype(model)
    return [x.to(device, dtype) if x.is_floating_point() else x.to(device) for x in inputs]


def make_optimizer(model, cfg: TrainConfig) -> torch.optim.AdamW:
    """AdamW (cfg's lr and weight decay) over the plain model's parameters, fused: one kernel updates them all,
    where the default on CPU loops over the parameters (4x slower; about 3% of the demo pair's step)."""
    return torch.optim.AdamW(unwrap(model).parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay, fused=True)


def infer(model, source, batches, device, desc: str = "eval", show: bool = True):
    """Eval-mode pass over batches (arrays of row positions) of a batch source (source[idx] -> (*inputs, labels))
    -> (positions [N], probabilities [N, 5], loss sum)."""
    model.eval()
    probs, loss_sum = [], 0.0
    with torch.no_grad():
        for idx in tqdm(batches, desc=desc, unit="batch", leave=False, disable=not show):
            *inputs, y = source[idx]
            logits = model(*to_model(inputs, model, device))
            logits = logits.to(torch.promote_types(logits.dtype, torch.float32))  # at least float32; float64 kept
            loss_sum += F.cross_entropy(logits, y.to(logits.device), reduction="sum").item()
            probs.append(torch.softmax(logits, dim=1).cpu().numpy())
    positions = np.concatenate(batches) if batches else np.zeros(0, dtype=np.int64)
    return positions, np.concatenate(probs) if probs else np.zeros((0, 5)), loss_sum


def train_epoch(model, optimizer, source, batches, device, epoch: int, epochs: int, show: bool, on_step=None):
    """One pass of optimizer steps over batches of a batch source -> (positions [N], probabilities [N, 5] from the
    training forward, loss sum).

    epoch counts from 0; on_step(epoch, step) is called after each step."""
    model.train()
    probs, loss_sum = [], 0.0
    bar = tqdm(batches, desc=f"epoch {epoch + 1}/{epochs}", unit="step", disable=not show)
    for step, idx in enumerate(bar):
        *inputs, y = source[idx]
        logits = model(*to_model(inputs, model, device))
        loss = F.cross_entropy(logits, y.to(logits.device))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        loss_sum += loss.item() * len(idx)
        probs.append(torch.softmax(logits.detach().float(), dim=1).cpu().numpy())
        bar.set_postfix(loss=f"{loss.item():.4f}")
        if on_step is not None:
            on_step(epoch, step)
    return np.concatenate(batches), np.concatenate(probs), loss_sum


def split_row(positions, probs, loss_sum, source, ctx) -> dict:
    """Metrics of one split over all processes: loss (mean cross-entropy) and popnb.metrics.all_metrics."""
    positions, probs = gather_rows(positions, probs, ctx)
    loss_sum = all_reduce_sums({"loss": loss_sum}, ctx)["loss"]
    labels = source.labels[torch.from_numpy(positions)].numpy()
    return {"loss": loss_sum / len(positions), **all_metrics(labels, probs, source.scores[positions])}


def run_epoch(model, optimizer, source, batches, valid_batches, device, epoch: int, epochs: int, ctx,
              show: bool = True, on_step=None) -> list[dict]:
    """Train on batches, then evaluate on valid_batches -> the epoch's two history rows (RUN/history.csv):
    epoch (from 1), split, steps, seconds, loss and popnb.metrics.all_metrics, train then valid."""
    tick = time.perf_counter()
    train_row = split_row(*train_epoch(model, optimizer, source, batches, device, epoch, epochs, show, on_step),
                          source, ctx)
    train_seconds = time.perf_counter() - tick
    valid_row = split_row(*infer(model, source, valid_batches, device, "valid", show), source, ctx)
    valid_seconds = time.perf_counter() - tick - train_seconds
    return [{"epoch": epoch + 1, "split": "train", "steps": len(batches), "seconds": train_seconds, **train_row},
            {"epoch": epoch + 1, "split": "valid", "steps": len(valid_batches), "seconds": valid_seconds, **valid_row}]


def write_run_files(run: Path, cfg: TrainConfig, scheme: LabelScheme, text: TextBranch, extra: dict,
                    metadata: MetadataScaler | None = None) -> None:
    """label_scheme.json, the tokenizer (vocab.json or tokenizer/), text_model/ (save_text_model), metadata.json
    (with --metadata), then config.json (last: it marks a run folder)."""
    run.mkdir(parents=True, exist_ok=True)
    scheme.save(run / SCHEME)
    text.tokenizer.save(run)
    text_model = save_text_model(text, run)
    if metadata is not None:
        metadata.save(run)
    config = {"params": run_params(cfg), "seed": cfg.seed, "data_dir": run_params(cfg)["data_dir"],
              "label_kind": scheme.kind, "label_scheme": scheme.describe(), **extra, "text_model": text_model,
              "versions": versions(),
              "created": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    (run / CONFIG).write_text(json.dumps(config, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def epoch_line(epoch: int, train_row: dict, valid_row: dict, seconds: float) -> str:
    return (f"epoch {epoch}: train loss {train_row['loss']:.4f} ord.acc {train_row['ordinal_accuracy']:.4f} | "
            f"valid loss {valid_row['loss']:.4f} ord.acc {valid_row['ordinal_accuracy']:.4f} "
            f"(constant baseline {valid_row['constant_baseline_accuracy']:.4f}) | {seconds:.1f} s")


def train(cfg: TrainConfig, resume: bool = False, on_step=None) -> dict:
    """Train (or, with resume, continue) the run in cfg.out; returns what metrics.json holds.

    on_step(epoch, step) is called after every optimizer step (epoch and step from 0). With a frozen title encoder
    (the pretrained recipe: e5-small) the run is popnb.train.pretrained's ridge late fusion instead.
    """
    check_config(cfg)
    cfg = resolved(cfg)
    if uses_frozen_encoders(cfg):
        from popnb.train.pretrained import train_pretrained

        return train_pretrained(cfg, resume)
    run = Path(cfg.out)
    check_run_dir(run, cfg, resume)
    process_device = cfg.devices if cfg.pipeline == "none" else "cpu"
    with distributed(process_device) as ctx, deterministic(cfg.seed, cfg.threads):
        data = load_limited(cfg.data_dir, cfg.limit)
        with_covers = float(cfg.fusion_weights[0]) > 0
        if with_covers:
            require_covers(data)
        scheme, train_idx, valid_idx = fit_labels(data.videos, cfg.labels, cfg.valid_fraction, cfg.seed, cfg.split)
        metadata = MetadataScaler.fit(data.videos.iloc[train_idx], cfg.metadata) if cfg.metadata else None
        meta_width = metadata.width if metadata else 0
        titles = data.videos["title"].iloc[train_idx].tolist()
        model, tokenizer = build_model(cfg.vision, cfg.text, tuple(cfg.fusion_weights), cfg.fusion, cfg.image_size,
                                       cfg.pretrained, titles=titles, vision_checkpoint=cfg.vision_checkpoint,
                                       text_checkpoint=cfg.text_checkpoint, metadata=meta_width)
        image_cfg = image_transform_config(model)
        per_rank_batch_size(cfg.batch_size, ctx.world_size)
        sample_ids, sample_mask = tokenizer.encode(titles[: cfg.batch_size], cfg.max_len)
        sample = (torch.zeros(len(sample_ids), 3, cfg.image_size, cfg.image_size), sample_ids, sample_mask,
                  *([torch.zeros(len(sample_ids), meta_width)] if metadata else []))
        model = place_model(model, cfg, ctx, sample)
        device = input_device(model, ctx)
        optimizer = make_optimizer(model, cfg)

        tensors = build_tensors(data, tokenizer, scheme.labels(data.videos), scheme.score(data.videos), cfg.image_size,
                                cfg.max_len, with_covers, image_cfg["mean"], image_cfg["std"],
                                meta=metadata.transform(data.videos) if metadata else None)
        if ctx.is_main:
            tqdm.write(f"{run}: {len(train_idx)} train / {len(valid_idx)} valid videos from {cfg.data_dir}; "
                       f"labels {scheme.describe()}")
        start, history = 0, []
        if resume and (run / CHECKPOINT).is_file():
            state = load_checkpoint(run / CHECKPOINT)
            unwrap(model).load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            start, history = state["epoch"], state["history"]
            set_rng_states(state["rng"])
        elif ctx.is_main and not (run / CONFIG).is_file():
            extra = {"n_videos": len(data), "n_train": len(train_idx), "n_valid": len(valid_idx),
                     "image": {"mean": list(image_cfg["mean"]), "std": list(image_cfg["std"])},
                     "world_size": ctx.world_size,
                     "balance": model.balance if isinstance(model, PipelinedModel) else None}
            write_run_files(run, cfg, scheme, unwrap(model).text, extra, metadata)

        valid_batches = shard_batches(epoch_batches(valid_idx, cfg.batch_size, cfg.seed, None), ctx, even=False)
        for epoch in range(start, cfg.epochs):
            batches = shard_batches(epoch_batches(train_idx, cfg.batch_size, cfg.seed, epoch)[: cfg.max_steps], ctx)
            rows = run_epoch(model, optimizer, tensors, batches, valid_batches, device, epoch, cfg.epochs, ctx,
                             ctx.is_main, on_step)
            history += rows
            if ctx.is_main:
                save_checkpoint(run / CHECKPOINT, unwrap(model), optimizer, epoch + 1, cfg.seed, history)
                write_progress(run, history, summarise(history, scheme, len(train_idx), len(valid_idx)))
                tqdm.write(epoch_line(epoch + 1, *rows, sum(r["seconds"] for r in rows)))
        summary = summarise(history, scheme, len(train_idx), len(valid_idx))
        if ctx.is_main:  # again: a run killed between its last checkpoint and these files gets them on --resume
            write_progress(run, history, summary)
        return summary
