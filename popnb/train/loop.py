"""Training a run: AdamW + cross-entropy on the late-fusion model, metrics and a checkpoint after every epoch.

`train(TrainConfig(...))` is the whole run, from a dataset folder to a run folder (DESIGN.md):
1. checks that fail fast (parameters, the run folder, covers present when the vision weight is > 0);
2. labels: a LabelScheme fitted on the TRAIN split (the split is stratified by the classes of the same
   kind of scheme fitted on all rows, then the scheme is refitted on train rows only);
3. the model (popnb.models.build_model; its character vocabulary from the train titles), wrapped in
   GPipe (--pipeline gpipe) or DDP (under torchrun), both before any data is cached or step taken;
4. epochs: batches are a function of (seed, epoch) (epoch_batches; shard_batches under torchrun), so a resumed run sees exactly
   the batches the uninterrupted one would; train metrics come from the training pass itself (dropout on,
   weights moving, as papers report them), valid metrics from a pass in eval mode.
"""
from __future__ import annotations

import json
import math
import os
import platform
import random
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from importlib import metadata
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from popnb.data import load_dataset
from popnb.data.torchdata import build_tensors, epoch_batches, require_covers, stratified_split
from popnb.labels import KINDS, LabelScheme
from popnb.metrics import all_metrics
from popnb.models import TextBranch, build_model, image_transform_config, save_text_model
from popnb.train.checkpoint import load_checkpoint, save_checkpoint, set_rng_states
from popnb.train.distributed import (
    all_reduce_sums, distributed, gather_rows, per_rank_batch_size, shard_batches, unwrap, wrap_ddp,
)
from popnb.train.pipeline import CHECKPOINT_MODES, PipelinedModel, make_gpipe, parse_balance

CONFIG, SCHEME, CHECKPOINT, HISTORY, METRICS = (
    "config.json", "label_scheme.json", "checkpoint.pt", "history.csv", "metrics.json")
LABEL_KINDS = ("auto", *KINDS)
PIPELINES = ("none", "gpipe")
PACKAGES = ("popnb", "torch", "torchvision", "timm", "transformers", "torchgpipe", "numpy", "pandas", "pillow")


@dataclass
class TrainConfig:
    """Every parameter of a run (saved to RUN/config.json). Defaults: the paper's optimiser and schedule
    (AdamW, lr 5e-5, 5 epochs, train:valid 10:1) on the CPU-scale backbones (popnb.models.BACKBONES)."""

    data_dir: str
    out: str
    vision: str = "vit_tiny_patch16_224"
    text: str = "charbert-tiny"
    fusion_weights: tuple[float, float] = (0.75, 0.25)
    fusion: str = "weighted"
    epochs: int = 5
    image_size: int = 112
    batch_size: int = 16  # the global batch (split over processes under torchrun)
    lr: float = 5e-5
    weight_decay: float = 0.01  # AdamW's default
    pipeline: str = "none"
    chunks: int = 4  # GPipe micro-batches per batch
    gpipe_checkpoint: str = "except_last"  # GPipe recomputes activations: always | except_last | never
    balance: str = "auto"  # GPipe layers per stage, "auto" or "2,3"
    devices: str = "auto"  # "auto" | "cpu" | "cuda"; for gpipe one per stage, e.g. "cpu,cpu" or "cuda:0,cuda:1"
    seed: int = 0
    labels: str = "auto"
    valid_fraction: float = 1 / 11
    max_len: int = 64  # title tokens, [CLS] and [SEP] included
    max_steps: int | None = None  # at most this many training steps per epoch (quick runs)
    limit: int | None = None  # use only the first N videos
    threads: int | None = None  # torch CPU threads (None: torch's default); 1 is fastest on a busy shared CPU
    pretrained: bool = False
    vision_checkpoint: str | None = None
    text_checkpoint: str | None = None


def check_config(cfg: TrainConfig) -> None:
    """ValueError naming the parameter when a value cannot work (the models module checks names and sizes)."""
    positive = {"epochs": cfg.epochs, "batch_size": cfg.batch_size, "chunks": cfg.chunks, "image_size": cfg.image_size}
    for name, value in positive.items():
        if int(value) != value or value < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be a positive integer, got {value}")
    for name, value, least in (("max_steps", cfg.max_steps, 1), ("limit", cfg.limit, 2), ("threads", cfg.threads, 1)):
        if value is not None and value < least:
            raise ValueError(f"--{name.replace('_', '-')} must be at least {least}, got {value}")
    if not (math.isfinite(cfg.lr) and cfg.lr > 0):
        raise ValueError(f"--lr must be a positive number, got {cfg.lr}")
    if cfg.labels not in LABEL_KINDS:
        raise ValueError(f"--labels must be one of {', '.join(LABEL_KINDS)}, got {cfg.labels!r}")
    if cfg.pipeline not in PIPELINES:
        raise ValueError(f"--pipeline must be one of {', '.join(PIPELINES)}, got {cfg.pipeline!r}")
    if cfg.pipeline == "none" and "," in cfg.devices:
        raise ValueError(f"--devices {cfg.devices} lists several devices: only --pipeline gpipe uses more than one")
    if cfg.pipeline == "gpipe" and cfg.chunks > cfg.batch_size:
        raise ValueError(f"--chunks {cfg.chunks} is larger than the batch (--batch-size {cfg.batch_size}): "
                         "every micro-batch needs at least one video")
    if cfg.gpipe_checkpoint not in CHECKPOINT_MODES:
        raise ValueError(f"--gpipe-checkpoint must be one of {', '.join(CHECKPOINT_MODES)}, "
                         f"got {cfg.gpipe_checkpoint!r}")


def run_params(cfg: TrainConfig) -> dict:
    """The parameters as saved in config.json (JSON types, data_dir absolute)."""
    params = asdict(cfg)
    params["data_dir"] = str(Path(cfg.data_dir).resolve())
    params["out"] = str(Path(cfg.out).resolve())
    return json.loads(json.dumps(params))


def check_run_dir(run: Path, cfg: TrainConfig, resume: bool) -> None:
    """A new run needs an absent or empty folder; --resume needs a run folder started with the same parameters."""
    if run.exists() and not run.is_dir():
        raise ValueError(f"--out {run} is a file, not a run folder")
    if not (run.is_dir() and any(run.iterdir())):
        return
    if not resume:
        raise ValueError(f"{run} exists and is not empty: pass --resume to continue the run in it, "
                         "or choose a new --out")
    if not (run / CONFIG).is_file():
        raise ValueError(f"{run} holds no {CONFIG}: it is not a popnb run folder and cannot be resumed")
    saved = json.loads((run / CONFIG).read_text(encoding="utf-8"))["params"]
    new = run_params(cfg)
    differ = [f"{k}={saved.get(k)!r} (now {v!r})" for k, v in new.items() if k != "out" and saved.get(k) != v]
    if differ:
        raise ValueError(f"{run} was started with other parameters: {', '.join(differ)}; "
                         "resume with the same arguments, or choose a new --out")


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


def fit_labels(videos: pd.DataFrame, kind: str, valid_fraction: float, seed: int):
    """-> (scheme fitted on the train rows, train positions, valid positions); stratified by class."""
    strata = LabelScheme.fit(videos, kind).labels(videos)
    train_idx, valid_idx = stratified_split(strata, valid_fraction, seed)
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
    """GPipe (--pipeline gpipe) or DDP (torchrun) or just the device; sample: one batch (images, ids, mask)."""
    if cfg.pipeline == "gpipe":
        model = make_gpipe(model, sample, cfg.balance, cfg.chunks, gpipe_devices(cfg), cfg.gpipe_checkpoint)
    return wrap_ddp(model, ctx)


def input_device(model, ctx) -> torch.device:
    """Where a batch goes in: the first stage of a pipeline, else the process's device."""
    return model.input_device if isinstance(model, PipelinedModel) else ctx.device


def make_optimizer(model, cfg: TrainConfig) -> torch.optim.AdamW:
    """AdamW (cfg's lr and weight decay) over the plain model's parameters, fused: one kernel updates them all,
    where the default on CPU loops over the parameters (4x slower; about 3% of the demo pair's step)."""
    return torch.optim.AdamW(unwrap(model).parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay, fused=True)


def infer(model, tensors, batches, device, desc: str = "eval", show: bool = True):
    """Eval-mode pass over batches (arrays of row positions) -> (positions [N], probabilities [N, 5], loss sum)."""
    model.eval()
    probs, loss_sum = [], 0.0
    with torch.no_grad():
        for idx in tqdm(batches, desc=desc, unit="batch", leave=False, disable=not show):
            images, ids, mask, y = tensors[idx]
            logits = model(images.to(device), ids.to(device), mask.to(device)).float()
            loss_sum += F.cross_entropy(logits, y.to(logits.device), reduction="sum").item()
            probs.append(torch.softmax(logits, dim=1).cpu().numpy())
    positions = np.concatenate(batches) if batches else np.zeros(0, dtype=np.int64)
    return positions, np.concatenate(probs) if probs else np.zeros((0, 5)), loss_sum


def train_epoch(model, optimizer, tensors, batches, device, epoch: int, epochs: int, show: bool, on_step=None):
    """One pass of AdamW steps -> (positions [N], probabilities [N, 5] from the training forward, loss sum).

    epoch counts from 0; on_step(epoch, step) is called after each step."""
    model.train()
    probs, loss_sum = [], 0.0
    bar = tqdm(batches, desc=f"epoch {epoch + 1}/{epochs}", unit="step", disable=not show)
    for step, idx in enumerate(bar):
        images, ids, mask, y = tensors[idx]
        logits = model(images.to(device), ids.to(device), mask.to(device))
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


def split_row(positions, probs, loss_sum, tensors, ctx) -> dict:
    """Metrics of one split over all processes: loss (mean cross-entropy) and popnb.metrics.all_metrics."""
    positions, probs = gather_rows(positions, probs, ctx)
    loss_sum = all_reduce_sums({"loss": loss_sum}, ctx)["loss"]
    labels = tensors.labels[torch.from_numpy(positions)].numpy()
    return {"loss": loss_sum / len(positions), **all_metrics(labels, probs, tensors.scores[positions])}


def summarise(history: list[dict], scheme: LabelScheme, n_train: int, n_valid: int) -> dict:
    """metrics.json: the final epoch and the best epoch (highest valid ordinal accuracy, earliest on ties)."""
    rows = {(r["epoch"], r["split"]): {k: v for k, v in r.items() if k not in ("epoch", "split", "steps", "seconds")}
            for r in history}
    epochs = sorted({r["epoch"] for r in history})
    best = max(epochs, key=lambda e: (rows[(e, "valid")]["ordinal_accuracy"], -e))

    def pick(e: int) -> dict:
        return {"epoch": e, "train": rows[(e, "train")], "valid": rows[(e, "valid")]}

    return {"final": pick(epochs[-1]), "best": pick(best), "label_scheme": scheme.describe(),
            "n_train": n_train, "n_valid": n_valid}


def versions(packages=PACKAGES) -> dict[str, str | None]:
    """python and each installed package -> its version (None when not installed)."""
    out = {"python": platform.python_version()}
    for name in packages:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def write_run_files(run: Path, cfg: TrainConfig, scheme: LabelScheme, text: TextBranch, extra: dict) -> None:
    """label_scheme.json, the tokenizer (vocab.json or tokenizer/), text_model/ (save_text_model), then config.json
    (last: it marks a run folder)."""
    run.mkdir(parents=True, exist_ok=True)
    scheme.save(run / SCHEME)
    text.tokenizer.save(run)
    text_model = save_text_model(text, run)
    config = {"params": run_params(cfg), "seed": cfg.seed, "data_dir": run_params(cfg)["data_dir"],
              "label_kind": scheme.kind, "label_scheme": scheme.describe(), **extra, "text_model": text_model,
              "versions": versions(),
              "created": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    (run / CONFIG).write_text(json.dumps(config, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def write_progress(run: Path, history: list[dict], summary: dict) -> None:
    pd.DataFrame(history).to_csv(run / HISTORY, index=False)
    (run / METRICS).write_text(json.dumps(summary, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def epoch_line(epoch: int, train_row: dict, valid_row: dict, seconds: float) -> str:
    return (f"epoch {epoch}: train loss {train_row['loss']:.4f} ord.acc {train_row['ordinal_accuracy']:.4f} | "
            f"valid loss {valid_row['loss']:.4f} ord.acc {valid_row['ordinal_accuracy']:.4f} "
            f"(constant baseline {valid_row['constant_baseline_accuracy']:.4f}) | {seconds:.1f} s")


def train(cfg: TrainConfig, resume: bool = False, on_step=None) -> dict:
    """Train (or, with resume, continue) the run in cfg.out; returns what metrics.json holds.

    on_step(epoch, step) is called after every optimizer step (epoch and step from 0).
    """
    check_config(cfg)
    run = Path(cfg.out)
    check_run_dir(run, cfg, resume)
    process_device = cfg.devices if cfg.pipeline == "none" else "cpu"
    with distributed(process_device) as ctx, deterministic(cfg.seed, cfg.threads):
        data = load_dataset(cfg.data_dir)
        if cfg.limit is not None:
            data = replace(data, videos=data.videos.iloc[: cfg.limit].reset_index(drop=True))
        with_covers = float(cfg.fusion_weights[0]) > 0
        if with_covers:
            require_covers(data)
        scheme, train_idx, valid_idx = fit_labels(data.videos, cfg.labels, cfg.valid_fraction, cfg.seed)
        titles = data.videos["title"].iloc[train_idx].tolist()
        model, tokenizer = build_model(cfg.vision, cfg.text, tuple(cfg.fusion_weights), cfg.fusion, cfg.image_size,
                                       cfg.pretrained, titles=titles, vision_checkpoint=cfg.vision_checkpoint,
                                       text_checkpoint=cfg.text_checkpoint)
        image_cfg = image_transform_config(model)
        per_rank_batch_size(cfg.batch_size, ctx.world_size)
        sample_ids, sample_mask = tokenizer.encode(titles[: cfg.batch_size], cfg.max_len)
        sample = (torch.zeros(len(sample_ids), 3, cfg.image_size, cfg.image_size), sample_ids, sample_mask)
        model = place_model(model, cfg, ctx, sample)
        device = input_device(model, ctx)
        optimizer = make_optimizer(model, cfg)

        tensors = build_tensors(data, tokenizer, scheme.labels(data.videos), scheme.score(data.videos), cfg.image_size,
                                cfg.max_len, with_covers, image_cfg["mean"], image_cfg["std"])
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
            write_run_files(run, cfg, scheme, unwrap(model).text, extra)

        valid_batches = shard_batches(epoch_batches(valid_idx, cfg.batch_size, cfg.seed, None), ctx, even=False)
        for epoch in range(start, cfg.epochs):
            tick = time.perf_counter()
            batches = shard_batches(epoch_batches(train_idx, cfg.batch_size, cfg.seed, epoch)[: cfg.max_steps], ctx)
            done = train_epoch(model, optimizer, tensors, batches, device, epoch, cfg.epochs, ctx.is_main, on_step)
            train_row = split_row(*done, tensors, ctx)
            train_seconds = time.perf_counter() - tick
            valid_row = split_row(*infer(model, tensors, valid_batches, device, "valid", ctx.is_main), tensors, ctx)
            seconds = time.perf_counter() - tick
            history += [{"epoch": epoch + 1, "split": "train", "steps": len(batches), "seconds": train_seconds, **train_row},
                        {"epoch": epoch + 1, "split": "valid", "steps": len(valid_batches),
                         "seconds": seconds - train_seconds, **valid_row}]
            if ctx.is_main:
                save_checkpoint(run / CHECKPOINT, unwrap(model), optimizer, epoch + 1, cfg.seed, history)
                write_progress(run, history, summarise(history, scheme, len(train_idx), len(valid_idx)))
                tqdm.write(epoch_line(epoch + 1, train_row, valid_row, seconds))
        summary = summarise(history, scheme, len(train_idx), len(valid_idx))
        if ctx.is_main:  # again: a run killed between its last checkpoint and these files gets them on --resume
            write_progress(run, history, summary)
        return summary
