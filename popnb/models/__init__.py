"""Models: a vision branch (timm) and a text branch (BERT family or RNN), fused late, as in the paper.

build_model is the one entry point the trainer uses; the rest is public for notebooks and tests.
"""
from __future__ import annotations

from pathlib import Path

from popnb.models.fusion import FUSIONS, FusionHead, LateFusion, check_fusion
from popnb.models.metadata import METADATA_COLUMNS, MetadataScaler
from popnb.models.registry import BACKBONES, TEXT_ENCODERS, Backbone, backbone_table, needs_vocab, text_encoder
from popnb.models.sequential import as_sequential
from popnb.models.text import CHARBERT_SIZES, TEXT_MODEL, TextBranch, create_text, minilm_path, save_text_model
from popnb.models.tokenize import CharVocab, HFTokenizer, load_tokenizer
from popnb.models.vision import (
    UnsafePickleError, VisionBranch, WeightsUnavailableError, create_vision, image_transform_config,
)


def build_model(vision: str = "vit_tiny_patch16_224", text: str = "charbert-tiny", weights=(0.75, 0.25),
                fusion: str = "weighted", image_size: int = 112, pretrained: bool | tuple[bool, bool] = False,
                titles: list[str] | None = None, vision_checkpoint: str | Path | None = None,
                text_checkpoint: str | Path | None = None, hidden: int = 256, metadata: int = 0,
                vocab: CharVocab | HFTokenizer | None = None, min_count: int = 1, pooling: str | None = None,
                text_config: str | Path | None = None):
    """-> (LateFusion, tokenizer). The tokenizer is a CharVocab (save it to RUN/vocab.json) or an HFTokenizer.

    pretrained: one flag for both branches, or (vision, text). A checkpoint implies pretrained for its branch.
    titles: the training titles, to build the character vocabulary of the text models that need one
    (needs_vocab: charbert-*, gru, lstm; min_count as in CharVocab.build); or pass the vocab itself
    (CharVocab.load(RUN) to rebuild a trained run). metadata: the width of the metadata input
    (MetadataScaler.width), 0 for none. text_config: a run's text_model/ folder, to rebuild its text encoder
    untrained from it alone (create_text's config; vocab is then the run's tokenizer, load_tokenizer(RUN)).
    """
    check_fusion(weights, fusion)  # before building anything large
    pretrained_vision, pretrained_text = (pretrained, pretrained) if isinstance(pretrained, bool) else pretrained
    if needs_vocab(text) and vocab is None and titles is not None:
        vocab = CharVocab.build(titles, min_count=min_count)
    text_branch = create_text(text, pretrained_text, vocab, text_checkpoint, out_dim=hidden, pooling=pooling,
                              config=text_config)
    vision_branch = create_vision(vision, pretrained_vision, image_size, vision_checkpoint, out_dim=hidden)
    model = LateFusion(vision_branch, text_branch, weights, fusion, hidden, metadata=metadata)
    return model, text_branch.tokenizer


__all__ = [
    "BACKBONES", "CHARBERT_SIZES", "FUSIONS", "METADATA_COLUMNS", "TEXT_ENCODERS", "TEXT_MODEL", "Backbone",
    "CharVocab", "FusionHead", "HFTokenizer", "LateFusion", "MetadataScaler", "TextBranch", "UnsafePickleError",
    "VisionBranch", "WeightsUnavailableError", "as_sequential", "backbone_table", "build_model", "check_fusion",
    "create_text", "create_vision", "image_transform_config", "load_tokenizer", "minilm_path", "needs_vocab",
    "save_text_model", "text_encoder",
]
