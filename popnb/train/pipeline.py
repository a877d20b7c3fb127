"""GPipe pipeline parallelism (the paper's): the fused model split into stages over devices.

The two-branch model is first written as an nn.Sequential whose stages pass a tuple of tensors
(popnb.models.as_sequential), so both branches and the fusion head can sit on different devices.
torchgpipe.GPipe cuts that sequence into partitions (`balance` = layers per partition), splits every
batch into `chunks` micro-batches along dim 0 (every tensor of the tuple, ids and mask included)
and runs them through the partitions as a pipeline. With checkpointing, a partition keeps only its
inputs and recomputes its activations during backward; torchgpipe saves the CPU and CUDA RNG
states before the first run and restores them for the recomputation, so dropout draws the same masks
twice (tests/test_pipeline.py checks this).

Balance "auto" uses torchgpipe.balance.balance_by_time on one micro-batch of the sample batch:
balance_by_size measures CUDA memory only (it refuses CPU devices), and what a pipeline's throughput
depends on is the slowest stage's time. The paper's ViT-B + BERT-base fits a 10 GB card either way.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn
from torchgpipe import GPipe
from torchgpipe import checkpoint as gpipe_checkpoint
from torchgpipe.balance import balance_by_time

from popnb.train.config import CHECKPOINT_MODES



def _checkpoint_backward(ctx, *grad_output):
    """torchgpipe 0.0.7's Checkpoint.backward with one fix: backpropagate only the outputs that need it.

    The original passes every output of a recomputed partition to autograd.backward, which fails
    ("element 1 of tensors does not require grad") as soon as the tuple carries a tensor without a
    gradient: ids and mask (integers) and the input images. The PyTorch fork of torchgpipe
    (torch.distributed.pipeline.sync, since removed from PyTorch) made a similar fix.
    """
    output, input_leaf = ctx.recomputed.pop()
    outputs = output if isinstance(output, tuple) else (output,)
    pairs = [(y, g) for y, g in zip(outputs, grad_output) if y.requires_grad]
    if pairs:
        torch.autograd.backward([y for y, _ in pairs], [g for _, g in pairs])
    return (None,) * 5 + tuple(x.grad for x in input_leaf)


gpipe_checkpoint.Checkpoint.backward = staticmethod(_checkpoint_backward)


def _caller_threads(module: nn.Module, args) -> None:
    """Forward pre-hook of every partition: apply torch's CPU thread count in the thread that runs it.

    torchgpipe runs the partitions in worker threads it starts on every call, and torch.set_num_threads sets
    MKL's count for the calling thread only (mkl_set_num_threads_local): without this, a worker's matmuls use
    every core whatever --threads says (on a busy shared CPU, the oversubscription --threads 1 avoids).
    """
    torch.set_num_threads(torch.get_num_threads())


def parse_devices(devices: str | Sequence[str | torch.device]) -> list[torch.device]:
    """`"cpu,cpu"` or `["cuda:0", "cuda:1"]` -> devices, each checked to exist on this machine."""
    names = devices.split(",") if isinstance(devices, str) else list(devices)
    out = []
    for name in names:
        try:
            device = torch.device(name.strip() if isinstance(name, str) else name)
        except RuntimeError:
            raise ValueError(f"--devices: {name!r} is not a device name (use cpu, cuda or cuda:N)") from None
        if device.type == "cuda":
            count = torch.cuda.device_count()
            if count == 0:
                raise ValueError(f"--devices: {name!r} requested but this machine has no CUDA device")
            if device.index is not None and device.index >= count:
                raise ValueError(f"--devices: {name!r} does not exist: this machine has cuda:0..cuda:{count - 1}")
        elif device.type != "cpu":
            raise ValueError(f"--devices: {name!r}: torchgpipe runs stages on cpu or cuda devices only")
        out.append(device)
    if not out:
        raise ValueError("--devices: no device given")
    return out


def parse_balance(balance: str | Sequence[int]) -> str | list[int]:
    """`"auto"`, `"2,3"` or `[2, 3]` -> "auto" or a list of layer counts per stage."""
    if isinstance(balance, str):
        if balance.strip() == "auto":
            return "auto"
        try:
            balance = [int(x) for x in balance.split(",")]
        except ValueError:
            raise ValueError(f"--balance: {balance!r} is neither 'auto' nor comma-separated integers") from None
    return [int(x) for x in balance]


def describe_layers(stages: nn.Sequential) -> str:
    """One line per layer: index, name, class, parameter count."""
    return "\n".join(
        f"  {i}: {name} ({type(layer).__name__}, {sum(p.numel() for p in layer.parameters()):,} parameters)"
        for i, (name, layer) in enumerate(stages.named_children())
    )


def check_balance(balance: list[int], stages: nn.Sequential, n_devices: int) -> None:
    """Raise ValueError unless `balance` cuts `stages` into at most `n_devices` non-empty partitions."""
    if len(balance) > n_devices:
        raise ValueError(
            f"--balance {','.join(map(str, balance))} asks for {len(balance)} partitions "
            f"but only {n_devices} device(s) were given in --devices"
        )
    if any(x <= 0 for x in balance) or sum(balance) != len(stages):
        raise ValueError(
            f"--balance {','.join(map(str, balance))} must be positive layer counts summing to "
            f"the model's {len(stages)} layers:\n{describe_layers(stages)}"
        )


def auto_balance(stages: nn.Sequential, micro_batch: tuple[torch.Tensor, ...], partitions: int,
                 device: torch.device, profile_seconds: float = 1.0) -> list[int]:
    """Layers per partition that even out the forward+backward time of one micro-batch (torchgpipe's profiler)."""
    if partitions > len(stages):
        raise ValueError(
            f"cannot split the model's {len(stages)} layers over {partitions} devices:\n{describe_layers(stages)}"
        )
    stages.zero_grad(set_to_none=True)  # the profiler refuses parameters that already hold a gradient
    return balance_by_time(partitions, stages, micro_batch, timeout=profile_seconds, device=device)


class PipelinedModel(nn.Module):
    """A GPipe-wrapped model with the plain model's call: forward(images, ids, mask[, meta]) -> logits.

    Inputs are moved to the first stage's device; logits come out on `output_device` (the last stage's),
    where the loop must also put the targets. The parameters are the plain model's own objects:
    save and load `pipelined.module` (the plain model), never this wrapper.
    """

    def __init__(self, module: nn.Module, gpipe: GPipe):
        super().__init__()
        self.gpipe = gpipe
        self.__dict__["module"] = module  # not a registered child: its parameters are already in gpipe

    @property
    def input_device(self) -> torch.device:
        return self.gpipe.devices[0]

    @property
    def output_device(self) -> torch.device:
        return self.gpipe.devices[-1]

    @property
    def balance(self) -> list[int]:
        return list(self.gpipe.balance)

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        """The plain model's inputs: images [B,3,H,W] float, ids [B,L] long, mask [B,L] long (, meta [B,M] float)
        -> logits [B,5] on output_device."""
        return self.gpipe(tuple(x.to(self.input_device, non_blocking=True) for x in inputs))

    def describe(self) -> str:
        """One line per stage: its device, first and last layer, layer and parameter counts (for the run log)."""
        lines = []
        for i, (partition, device) in enumerate(zip(self.gpipe.partitions, self.gpipe.devices)):
            names = [name for name, _ in partition.named_children()]
            n_params = sum(p.numel() for p in partition.parameters())
            lines.append(f"stage {i} on {device}: {names[0]} .. {names[-1]} "
                         f"({len(names)} layers, {n_params:,} parameters)")
        return "\n".join(lines)

    def extra_repr(self) -> str:
        devices = ", ".join(str(d) for d in self.gpipe.devices)
        return (f"balance={self.balance}, devices=[{devices}], chunks={self.gpipe.chunks}, "
                f"checkpoint={self.gpipe.checkpoint}")


def make_gpipe(model: nn.Module, sample: tuple[torch.Tensor, ...],
               balance: str | Sequence[int] = "auto", chunks: int = 4,
               devices: str | Sequence[str | torch.device] = ("cpu", "cpu"),
               checkpoint: str = "except_last") -> PipelinedModel:
    """Wrap `model` (a LateFusion, or an nn.Sequential of tuple-passing stages) in torchgpipe.GPipe.

    sample: one training batch (images, ids, mask[, meta]); its size is the batch size `chunks` may not exceed,
    and "auto" balance profiles one micro-batch of it. `balance`: "auto", "2,3" or [2, 3]; auto uses one
    partition per device. `checkpoint`: "always", "except_last" (torchgpipe's default) or "never".
    Call before training, on a model whose parameters are still on the CPU or the first device.
    """
    if isinstance(model, nn.Sequential):
        stages = model
    else:
        from popnb.models import as_sequential
        stages = as_sequential(model)
    device_list = parse_devices(devices)
    balance = parse_balance(balance)
    if checkpoint not in CHECKPOINT_MODES:
        raise ValueError(f"checkpoint must be one of {', '.join(CHECKPOINT_MODES)}, got {checkpoint!r}")
    batch_size = len(sample[0])
    if not 1 <= chunks <= batch_size:
        raise ValueError(f"--chunks {chunks}: must be between 1 and the batch size ({batch_size})")
    if balance == "auto":
        micro = tuple(x[: math.ceil(batch_size / chunks)] for x in sample)
        balance = auto_balance(stages, micro, len(device_list), device_list[0])
    check_balance(balance, stages, len(device_list))
    gpipe = GPipe(stages, balance=balance, devices=device_list[: len(balance)], chunks=chunks, checkpoint=checkpoint)
    for partition in gpipe.partitions:
        partition.register_forward_pre_hook(_caller_threads)
    return PipelinedModel(model, gpipe)
