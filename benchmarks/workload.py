"""The training step being measured: popnb.models.build_model and one AdamW step as popnb.train takes it.

DEMO is the default pair of `popnb train` (vit_tiny_patch16_224 at 112 px + charbert-tiny, batch 16, titles of
64 tokens); PAPER is the paper's scale (vit_base_patch16_384 at 384 px + a BERT-base-shaped char-BERT, from
scratch, so nothing is downloaded) on a small batch. Images are random: the cost does not depend on them.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from popnb.models import build_model
from popnb.train.config import resolved
from popnb.train.loop import TrainConfig, make_optimizer

DEFAULTS = resolved(TrainConfig(data_dir="", out="", recipe="paper"))  # the end-to-end step


@dataclass(frozen=True)
class Pair:
    """A vision + text pair at an image size and batch size."""

    name: str
    vision: str
    text: str
    image_size: int
    batch_size: int


DEMO = Pair("demo default", DEFAULTS.vision, DEFAULTS.text, DEFAULTS.image_size, DEFAULTS.batch_size)
PAPER = Pair("paper scale", "vit_base_patch16_384", "charbert-base", 384, 2)


def make_batch(tokenizer, titles: list[str], pair: Pair, seed: int = 0) -> tuple[torch.Tensor, ...]:
    """(images float [B,3,S,S], ids long [B,L], mask long [B,L], labels long [B]) for the first B titles."""
    gen = torch.Generator().manual_seed(seed)
    ids, mask = tokenizer.encode(titles[: pair.batch_size], DEFAULTS.max_len)
    images = torch.randn(len(ids), 3, pair.image_size, pair.image_size, generator=gen)
    labels = torch.randint(0, 5, (len(ids),), generator=gen)
    return images, ids, mask, labels


def build(pair: Pair, titles: list[str], seed: int = 0) -> tuple[nn.Module, tuple[torch.Tensor, ...]]:
    """(LateFusion of the pair, seeded, its vocabulary from titles; one batch)."""
    torch.manual_seed(seed)
    model, tokenizer = build_model(pair.vision, pair.text, DEFAULTS.fusion_weights, DEFAULTS.fusion, pair.image_size,
                                   titles=titles)
    return model, make_batch(tokenizer, titles, pair, seed)


def optimizer(model: nn.Module, **kwargs) -> torch.optim.Optimizer:
    """popnb.train's AdamW (make_optimizer); with kwargs, AdamW with its lr and weight decay and these (fused=False)."""
    if not kwargs:
        return make_optimizer(model, DEFAULTS)
    return torch.optim.AdamW(model.parameters(), lr=DEFAULTS.lr, weight_decay=DEFAULTS.weight_decay, **kwargs)


def train_step(model: nn.Module, opt: torch.optim.Optimizer, batch) -> float:
    """One step as popnb.train.loop.train_epoch takes it -> the loss. The logits may sit on another device."""
    images, ids, mask, labels = batch
    logits = model(images, ids, mask)
    loss = F.cross_entropy(logits, labels.to(logits.device))
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return loss.item()


def stepper(model: nn.Module, batch, **opt_kwargs):
    """-> a function taking one training step of model on batch (its own AdamW) and returning the loss."""
    opt = optimizer(model, **opt_kwargs)
    model.train()
    return lambda: train_step(model, opt, batch)


def demo_titles(data_dir) -> list[str]:
    """The titles of a dataset folder (the demo set's are Chinese, of 4 to 46 characters)."""
    from popnb.data import load_dataset

    return load_dataset(data_dir).videos["title"].tolist()
