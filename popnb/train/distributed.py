"""Data-parallel scale-out under torchrun: DistributedDataParallel over processes and machines.

    torchrun --nnodes N --nproc_per_node M [--node_rank R --master_addr HOST --master_port P] -m popnb.train ...

Every process holds the whole model and a 1/world share of each global batch; DDP averages the
gradients, so a step sees the same global batch and the same mean gradient as one process would.
Backends: gloo on CPU, nccl on CUDA (one GPU per process, cuda:LOCAL_RANK). Without torchrun's
environment everything here degrades to a single process (rank 0 of 1, no process group).
GPipe and DDP do not combine in this version: wrap_ddp refuses a PipelinedModel.
"""
from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from popnb.train.pipeline import PipelinedModel

TORCHRUN_VARIABLES = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")


@dataclass(frozen=True)
class DistContext:
    """Where this process stands: rank in 0..world_size-1, its device, the backend (None = single process)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")
    backend: str | None = None

    @property
    def is_main(self) -> bool:
        """Rank 0: the one process that prints, writes the run folder and saves checkpoints."""
        return self.rank == 0

    @property
    def is_distributed(self) -> bool:
        return self.backend is not None


def torchrun_env(environ: Mapping[str, str] = os.environ) -> dict[str, int | str] | None:
    """torchrun's variables (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT), or None outside torchrun."""
    if "RANK" not in environ and "WORLD_SIZE" not in environ:
        return None
    missing = [k for k in TORCHRUN_VARIABLES if k not in environ]
    if missing:
        raise ValueError(f"incomplete torchrun environment: {', '.join(missing)} not set (launch with torchrun)")
    env: dict[str, int | str] = {k: environ[k] for k in ("MASTER_ADDR", "MASTER_PORT")}
    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        try:
            env[key] = int(environ[key])
        except ValueError:
            raise ValueError(f"torchrun environment: {key}={environ[key]!r} is not an integer") from None
    if not 0 <= env["RANK"] < env["WORLD_SIZE"]:
        raise ValueError(f"torchrun environment: RANK={env['RANK']} outside 0..WORLD_SIZE-1={env['WORLD_SIZE'] - 1}")
    return env


def pick_device(device: str, local_rank: int | None = None) -> torch.device:
    """"auto" -> cuda (cuda:LOCAL_RANK under torchrun) when CUDA is there, else cpu; "cpu", "cuda", "cuda:N" force one.

    local_rank: torchrun's LOCAL_RANK, None for a single process. Under torchrun each process takes
    cuda:LOCAL_RANK, so "cuda:N" is refused there.
    """
    try:
        chosen = torch.device("cuda" if device == "auto" else device)
    except RuntimeError:
        raise ValueError(f"--devices {device!r}: use auto, cpu, cuda or cuda:N") from None
    if chosen.type == "cpu" or (device == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    if chosen.type != "cuda":
        raise ValueError(f"--devices {device!r}: use auto, cpu, cuda or cuda:N")
    count = torch.cuda.device_count()
    if count == 0:
        raise ValueError(f"--devices {device}: this machine has no CUDA device")
    if local_rank is None:
        index = chosen.index or 0
        if index >= count:
            raise ValueError(f"--devices {device}: this machine has cuda:0..cuda:{count - 1}")
        return torch.device("cuda", index)
    if chosen.index is not None:
        raise ValueError(f"--devices {device}: under torchrun each process uses cuda:LOCAL_RANK; pass cuda or auto")
    if local_rank >= count:
        raise ValueError(f"LOCAL_RANK={local_rank} but this machine has {count} CUDA device(s): "
                         f"use --nproc_per_node {count} or fewer")
    return torch.device("cuda", local_rank)


def init_distributed(device: str = "auto", timeout_s: float = 600) -> DistContext:
    """Join torchrun's process group (gloo for cpu, nccl for cuda); a single-process context outside torchrun."""
    env = torchrun_env()
    if env is None:
        return DistContext(device=pick_device(device))
    local_rank = int(env["LOCAL_RANK"])
    chosen = pick_device(device, local_rank)
    backend = "nccl" if chosen.type == "cuda" else "gloo"
    if chosen.type == "cuda":
        torch.cuda.set_device(chosen)
    dist.init_process_group(backend, timeout=timedelta(seconds=timeout_s))
    return DistContext(int(env["RANK"]), int(env["WORLD_SIZE"]), local_rank, chosen, backend)


def cleanup(ctx: DistContext) -> None:
    """Leave the process group (no-op for a single process)."""
    if ctx.is_distributed and dist.is_initialized():
        dist.destroy_process_group()


@contextmanager
def distributed(device: str = "auto") -> Iterator[DistContext]:
    """`with distributed() as ctx:` init under torchrun, and always tear down, also on an error. On success every
    rank waits at a barrier first: a rank tearing gloo's connections down while a peer still finishes its last
    collective can abort that peer ("terminate called without an active exception")."""
    ctx = init_distributed(device)
    try:
        yield ctx
        if ctx.is_distributed and dist.is_initialized():
            dist.barrier()
    finally:
        cleanup(ctx)


def wrap_ddp(model: nn.Module, ctx: DistContext) -> nn.Module:
    """Move `model` to ctx.device and wrap it in DistributedDataParallel (unchanged for a single process).

    A PipelinedModel is returned as it is (GPipe places its own stages), or refused under torchrun.
    """
    if isinstance(model, PipelinedModel):
        if ctx.is_distributed:
            raise ValueError("--pipeline gpipe cannot be combined with torchrun (DDP) in this version: "
                             "use --pipeline none under torchrun, or one process with --pipeline gpipe")
        return model
    model = model.to(ctx.device)
    if not ctx.is_distributed:
        return model
    device_ids = [ctx.device.index] if ctx.device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(model, device_ids=device_ids)


def unwrap(model: nn.Module) -> nn.Module:
    """The plain model inside a DDP or PipelinedModel wrapper (same parameter objects): the one to save, load
    and hand to the optimizer. Batches still go through the wrapper."""
    return getattr(model, "module", model)


def per_rank_batch_size(global_batch: int, world_size: int) -> int:
    """global_batch / world_size; ValueError unless it divides evenly."""
    if global_batch % world_size:
        nearest = global_batch - global_batch % world_size or world_size
        raise ValueError(f"--batch-size {global_batch} is the global batch and must be divisible by the "
                         f"{world_size} processes (WORLD_SIZE): try {nearest}")
    return global_batch // world_size


def shard_batches(batches: Iterable[np.ndarray], ctx: DistContext, even: bool = True) -> list[np.ndarray]:
    """This rank's share of each global batch (dataset row positions): the r-th of world_size slices.

    Feed it the single-process batches of an epoch (same order on every rank) and the union over ranks
    of step k is exactly the single-process batch k. even=True (training): a global batch that does not
    split into equal slices (a short last batch) is skipped on every rank, so every rank takes the same
    number of equal steps and DDP's mean of rank means is the global mean; at most world_size-1 videos
    sit out an epoch, different ones each epoch. even=False (evaluation): uneven slices, empty ones dropped.
    With world_size 1 the batches come back unchanged.
    """
    batches = [np.asarray(b) for b in batches]
    if sum(len(b) for b in batches) < ctx.world_size:
        raise ValueError(f"{sum(len(b) for b in batches)} videos cannot be shared by {ctx.world_size} processes "
                         "(WORLD_SIZE): every process needs at least one; use fewer processes or more data")
    out = []
    for batch in batches:
        if even and len(batch) % ctx.world_size:
            continue
        piece = np.array_split(batch, ctx.world_size)[ctx.rank]
        if len(piece):
            out.append(piece)
    return out


def all_reduce_sums(values: Mapping[str, float], ctx: DistContext) -> dict[str, float]:
    """Sum each value over all ranks (float64); every rank gets the same totals."""
    if not ctx.is_distributed:
        return {k: float(v) for k, v in values.items()}
    device = ctx.device if ctx.backend == "nccl" else torch.device("cpu")
    totals = torch.tensor([float(v) for v in values.values()], dtype=torch.float64, device=device)
    dist.all_reduce(totals, op=dist.ReduceOp.SUM)
    return dict(zip(values, totals.tolist()))


def gather_rows(indices: np.ndarray, rows: np.ndarray, ctx: DistContext) -> tuple[np.ndarray, np.ndarray]:
    """Collect every rank's (dataset indices, per-row results) and return them sorted by index, on every rank."""
    if ctx.is_distributed:
        parts: list = [None] * ctx.world_size
        dist.all_gather_object(parts, (np.asarray(indices), np.asarray(rows)))
        indices = np.concatenate([p[0] for p in parts])
        rows = np.concatenate([p[1] for p in parts])
    order = np.argsort(indices, kind="stable")
    return np.asarray(indices)[order], np.asarray(rows)[order]
