"""The names popnb builds models from: the table of backbone pairs, the text encoders, and clear errors for
unknown names (vision names are timm's own registry).

BACKBONES: each row pairs a vision and a text backbone twice: `vision`/`text`/`image_size` is a CPU-scale
stand-in that trains from scratch in minutes on the demo data; `paper_vision`/`paper_text`/`paper_image_size` is
the full-scale setting (the paper's own where it has one), which needs pretrained weights from a local path.

TEXT_ENCODERS: each text encoder name or name pattern, its builder, and whether it reads a character vocabulary
built from the training titles. popnb.models.text registers them (register_text), as timm's models register
themselves; importing anything from popnb.models imports it.
"""
from __future__ import annotations

import difflib
from collections.abc import Callable
from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class Backbone:
    key: str
    vision: str
    text: str
    image_size: int
    paper_vision: str
    paper_text: str
    paper_image_size: int
    source: str
    note: str


BACKBONES: dict[str, Backbone] = {row.key: row for row in (
    Backbone("vit_bert", "vit_tiny_patch16_224", "charbert-tiny", 112,
             "vit_base_patch16_384", "bert-base-chinese", 384, "paper Table 1",
             "The paper's model: ViT-B/16 (ImageNet-21k then 1k weights) + bert-base-chinese."),
    Backbone("vgg_rnn", "vgg11", "gru", 64, "vgg16", "gru", 224, "paper Table 2",
             "The paper says only 'VGG' and 'RNN'; VGG-16 and a bidirectional GRU over characters are our reading."),
    Backbone("vgg_bert", "vgg11", "charbert-tiny", 64, "vgg16", "bert-base-chinese", 224, "paper Table 2",
             "VGG (which depth the paper does not say) + BERT."),
    Backbone("coatnet_bert", "coatnet_nano_rw_224", "charbert-tiny", 64,
             "coatnet_0_rw_224", "bert-base-chinese", 224, "paper, first try",
             "The authors' first vision model; it did not reach a good accuracy on their data."),
    Backbone("deit3_minilm", "deit3_small_patch16_224", "minilm", 112,
             "deit3_base_patch16_384", "minilm", 384, "beyond the paper",
             "DeiT III + the offline MiniLM (English vocabulary: most Chinese characters become [UNK])."),
    Backbone("convnext_minilm", "convnext_atto", "minilm", 64, "convnext_base", "minilm", 224, "beyond the paper",
             "A modern convnet + the offline MiniLM."),
)}


def backbone_table():
    """BACKBONES as a pandas DataFrame, one row per pair (for notebooks and reports)."""
    import pandas as pd

    return pd.DataFrame([asdict(row) for row in BACKBONES.values()])


def close_matches(name: str, candidates) -> list[str]:
    """Up to 5 candidates that look like name (difflib), best first."""
    return difflib.get_close_matches(name, list(candidates), n=5, cutoff=0.6)


def unknown_name_message(kind: str, name: str, candidates) -> str:
    """'unknown vision backbone 'x': close matches: a, b' (or a hint where nothing is close)."""
    matches = close_matches(name, candidates)
    hint = f"close matches: {', '.join(matches)}" if matches else "no close match"
    return f"unknown {kind} backbone {name!r}; {hint}. Known pairs: {', '.join(BACKBONES)} (popnb.models.BACKBONES)"


def known_vision_names() -> list[str]:
    """Every timm architecture name plus the table's vision names."""
    import timm

    table = {n for row in BACKBONES.values() for n in (row.vision, row.paper_vision)}
    return sorted(set(timm.list_models()) | table)


ANY_NAME = "*"  # the pattern of the encoder that takes any other name: a Hugging Face BERT name or folder


@dataclass(frozen=True)
class TextEncoder:
    """A text encoder name or pattern ("charbert-<size>": a family; "*": any other name) and the names it stands
    for. build(name, vocab, pretrained, checkpoint) -> (encoder module, tokenizer). needs_vocab: it reads a
    CharVocab built from the training titles (else it brings its own tokenizer). pooling: its default pooling,
    None for the pooler where the encoder has one, else [CLS]."""

    pattern: str
    names: tuple[str, ...]
    needs_vocab: bool
    build: Callable
    note: str
    pooling: str | None = None


TEXT_ENCODERS: dict[str, TextEncoder] = {}  # pattern -> TextEncoder, filled by popnb.models.text


def register_text(*encoders: TextEncoder) -> None:
    """Add encoders to TEXT_ENCODERS; text_encoder tries them in this order, the "*" one last."""
    for encoder in encoders:
        TEXT_ENCODERS[encoder.pattern] = encoder


def text_names() -> tuple[str, ...]:
    """Every text encoder name popnb knows (the "*" encoder's: its examples)."""
    return tuple(name for encoder in TEXT_ENCODERS.values() for name in encoder.names)


def text_encoder(name: str) -> TextEncoder:
    """The encoder of a text backbone name: the one listing it, else ValueError for an unknown member of a family
    (charbert-huge), else the "*" one (a Hugging Face BERT name or folder)."""
    for encoder in TEXT_ENCODERS.values():
        family = encoder.pattern.split("<")[0] if "<" in encoder.pattern else None
        if name in encoder.names:
            return encoder
        if family and name.startswith(family):
            raise ValueError(unknown_name_message("text", name, encoder.names))
    return TEXT_ENCODERS[ANY_NAME]


def needs_vocab(name: str) -> bool:
    """Whether text backbone `name` reads a character vocabulary built from the training titles (CharVocab)."""
    return text_encoder(name).needs_vocab
