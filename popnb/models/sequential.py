"""LateFusion as a flat nn.Sequential of stages, for torchgpipe.

Every stage takes and returns a tuple of tensors with the batch first, state = (x, t, mask[, meta]):
- x starts as the images [B,3,H,W]; vision stages replace it (ViT tokens [B,N,D], feature maps, ...)
  until the last one leaves the vision output [B, hidden].
- t starts as the token ids [B,L] (long); text stages replace it (embeddings [B,L,D], ...) until the
  last one leaves the text output [B, hidden]. mask [B,L] (long) and meta [B,M] pass through unchanged.
- the fusion stage returns the logits [B, 5], a single tensor.
So no placeholder is ever needed: each slot always holds a real tensor. The stages hold the model's own
modules and parameters (no copies). Backbones are cut as finely as their structure allows: ViT/DeiT
(embedding, each block, norm+pool+fc), VGG (each pooling block), ConvNeXt/CoAtNet (stem, each stage),
BERT (embeddings, each layer, pooler+fc), RNN (embedding, rnn+fc); any other backbone is one stage.
"""
from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from popnb.models.fusion import FusionHead, LateFusion
from popnb.models.text import CharRNN, TextBranch, pool_hidden, run_rnn
from popnb.models.vision import VisionBranch


class VisionStage(nn.Module):
    """(x, t, mask, ...) -> (layer(x), t, mask, ...)."""

    def __init__(self, layer: nn.Module):
        super().__init__()
        self.layer = layer

    def forward(self, state: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
        return (self.layer(state[0]), *state[1:])


class TextStage(nn.Module):
    """(x, t, mask, ...) -> (x, layer(t, mask), mask, ...)."""

    def __init__(self, layer: nn.Module):
        super().__init__()
        self.layer = layer

    def forward(self, state: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
        x, t, mask, *rest = state
        return (x, self.layer(t, mask), mask, *rest)


class FusionStage(nn.Module):
    """(vision output, text output, mask[, meta]) -> logits [B, n_classes]."""

    def __init__(self, head: FusionHead):
        super().__init__()
        self.head = head

    def forward(self, state: tuple[torch.Tensor, ...]) -> torch.Tensor:
        v, t, _, *meta = state
        return self.head(v, t, *meta)


class VitEmbed(nn.Module):
    """timm VisionTransformer up to the first block: patch embedding, class/register tokens, positions."""

    def __init__(self, vit: nn.Module):
        super().__init__()
        self.patch_embed, self.pos_drop, self.patch_drop, self.norm_pre = (
            vit.patch_embed, vit.pos_drop, vit.patch_drop, vit.norm_pre)
        self.cls_token, self.reg_token, self.pos_embed = vit.cls_token, vit.reg_token, vit.pos_embed
        self.no_embed_class = vit.no_embed_class

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed(images)
        prefix = [tok.expand(x.shape[0], -1, -1) for tok in (self.cls_token, self.reg_token) if tok is not None]
        if self.pos_embed is not None and self.no_embed_class:  # DeiT III: positions for patches only
            x = x + self.pos_embed
        x = torch.cat([*prefix, x], dim=1)
        if self.pos_embed is not None and not self.no_embed_class:
            x = x + self.pos_embed
        return self.norm_pre(self.patch_drop(self.pos_drop(x)))


class VitHead(nn.Module):
    """timm VisionTransformer after the last block (norm, pool, fc_norm) and the branch's fc."""

    def __init__(self, vit: nn.Module, fc: nn.Linear):
        super().__init__()
        self.norm, self.fc_norm, self.head_drop, self.head, self.fc = (
            vit.norm, vit.fc_norm, vit.head_drop, vit.head, fc)
        self.global_pool, self.num_prefix_tokens = vit.global_pool, vit.num_prefix_tokens
        self.pool_include_prefix = vit.pool_include_prefix

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        from timm.layers import global_pool_nlc

        x = global_pool_nlc(self.norm(x), pool_type=self.global_pool, num_prefix_tokens=self.num_prefix_tokens,
                            reduce_include_prefix=self.pool_include_prefix)
        return self.fc(self.head(self.head_drop(self.fc_norm(x))))


def vision_layers(branch: VisionBranch) -> list[tuple[str, nn.Module]]:
    """The vision branch as named tensor -> tensor layers whose composition is branch(images)."""
    from timm.models.convnext import ConvNeXt
    from timm.models.maxxvit import MaxxVit
    from timm.models.vgg import VGG
    from timm.models.vision_transformer import VisionTransformer

    m = branch.backbone
    if isinstance(m, VisionTransformer) and m.attn_pool is None and not m.dynamic_img_size:
        blocks = [(f"block{i}", block) for i, block in enumerate(m.blocks)]
        return [("embed", VitEmbed(m)), *blocks, ("head", VitHead(m, branch.fc))]
    if isinstance(m, VGG):
        chunks, current = [], []
        for layer in m.features:
            current.append(layer)
            if isinstance(layer, nn.MaxPool2d):
                chunks.append(current)
                current = []
        chunks[-1] += current
        features = [(f"features{i}", nn.Sequential(*chunk)) for i, chunk in enumerate(chunks)]
        return [*features, ("head", nn.Sequential(m.pre_logits, m.head, branch.fc))]
    if isinstance(m, (ConvNeXt, MaxxVit)):
        norm = m.norm_pre if isinstance(m, ConvNeXt) else m.norm
        stages = [(f"stage{i}", stage) for i, stage in enumerate(m.stages)]
        return [("stem", m.stem), *stages, ("head", nn.Sequential(norm, m.head, branch.fc))]
    return [("backbone", branch)]


class BertEmbed(nn.Module):
    def __init__(self, embeddings: nn.Module):
        super().__init__()
        self.embeddings = embeddings

    def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.embeddings(input_ids=ids)


class BertLayerStage(nn.Module):
    """One BERT encoder layer; the attention mask is rebuilt from mask [B, L] exactly as BertModel does."""

    def __init__(self, layer: nn.Module, config):
        super().__init__()
        self.layer, self.config = layer, config

    def forward(self, hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        from transformers.masking_utils import create_bidirectional_mask

        attention_mask = create_bidirectional_mask(config=self.config, inputs_embeds=hidden, attention_mask=mask)
        return self.layer(hidden, attention_mask)


class BertPoolHead(nn.Module):
    def __init__(self, pooler: nn.Module | None, pooling: str, fc: nn.Linear):
        super().__init__()
        self.pooler, self.pooling, self.fc = pooler, pooling, fc

    def forward(self, hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        pooled = self.pooler(hidden) if self.pooling == "pooler" else pool_hidden(hidden, mask, self.pooling)
        return self.fc(pooled)


class TokenEmbed(nn.Module):
    def __init__(self, embed: nn.Embedding):
        super().__init__()
        self.embed = embed

    def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.embed(ids)


class RnnHead(nn.Module):
    def __init__(self, rnn: nn.RNNBase, fc: nn.Linear):
        super().__init__()
        self.rnn, self.fc = rnn, fc

    def forward(self, embedded: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.fc(run_rnn(self.rnn, embedded, mask))


def text_layers(branch: TextBranch) -> list[tuple[str, nn.Module]]:
    """The text branch as named (t, mask) -> t layers whose composition is branch(ids, mask)."""
    from transformers import BertModel

    enc = branch.encoder
    if isinstance(enc, CharRNN):
        return [("embed", TokenEmbed(enc.embed)), ("rnn", RnnHead(enc.rnn, branch.fc))]
    if isinstance(enc, BertModel) and not enc.config.is_decoder:
        layers = [(f"layer{i}", BertLayerStage(layer, enc.config)) for i, layer in enumerate(enc.encoder.layer)]
        pool = BertPoolHead(enc.pooler, branch.pooling, branch.fc)
        return [("embed", BertEmbed(enc.embeddings)), *layers, ("pool", pool)]
    return [("encoder", branch)]


def as_sequential(model: LateFusion) -> nn.Sequential:
    """model -> nn.Sequential; seq((images, ids, mask[, meta])) == model(images, ids, mask[, meta])."""
    stages = [(f"vision_{name}", VisionStage(layer)) for name, layer in vision_layers(model.vision)]
    stages += [(f"text_{name}", TextStage(layer)) for name, layer in text_layers(model.text)]
    stages.append(("fusion", FusionStage(model.head)))
    return nn.Sequential(OrderedDict(stages))
