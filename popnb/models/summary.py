"""What a LateFusion is made of, read from the model object: per branch its name, depth, width and parameters.

Figure 1 (popnb.figures.architecture_figure) and the backbone comparison's cost table both read it, so
they always describe the model that was built, not a picture of the paper's.
"""
from __future__ import annotations

from torch import nn


def n_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def vision_layers(backbone: nn.Module) -> str:
    """How deep a timm backbone is, in its own units: transformer blocks, stages and blocks, or conv layers."""
    blocks = getattr(backbone, "blocks", None)
    if isinstance(blocks, (nn.Sequential, nn.ModuleList)):
        return f"{len(blocks)} transformer blocks"
    stages = getattr(backbone, "stages", None)
    if isinstance(stages, (nn.Sequential, nn.ModuleList)):
        depths = [len(s.blocks) if isinstance(getattr(s, "blocks", None), (nn.Sequential, nn.ModuleList)) else 1
                  for s in stages]
        return f"{len(stages)} stages, {sum(depths)} blocks ({'-'.join(map(str, depths))})"
    convs = sum(isinstance(m, nn.Conv2d) for m in backbone.modules())
    return f"{convs} conv layers"


def text_layers(encoder: nn.Module) -> str:
    """How deep a text encoder is: RNN layers and direction, or transformer layers and heads."""
    rnn = getattr(encoder, "rnn", None)
    if isinstance(rnn, nn.RNNBase):
        direction = "bidirectional " if rnn.bidirectional else ""
        plural = "s" if rnn.num_layers > 1 else ""
        return f"{rnn.num_layers} {direction}{rnn.mode} layer{plural}, hidden {rnn.hidden_size}"
    config = encoder.config
    return f"{config.num_hidden_layers} layers, {config.num_attention_heads} heads"


def model_summary(model: nn.Module) -> dict:
    """What a LateFusion is made of: per branch its name, depth, feature width and parameters; the fusion head.

    Returns {"vision": {...}, "text": {...}, "fusion": {"kind", "weights", "fused" (the classifier's input width),
    "n_classes", "metadata" (a metadata branch is added), "params"}}.
    """
    vision, text, head = model.vision, model.text, model.head
    return {
        "vision": {"name": vision.name, "layers": vision_layers(vision.backbone), "width": vision.fc.in_features,
                   "input": f"cover {vision.image_size}x{vision.image_size} RGB", "params": n_params(vision.backbone),
                   "fc": (vision.fc.in_features, vision.fc.out_features)},
        "text": {"name": text.name, "layers": text_layers(text.encoder), "width": text.fc.in_features,
                 "input": f"title, vocabulary {len(text.tokenizer):,}", "params": n_params(text.encoder),
                 "pooling": text.pooling, "fc": (text.fc.in_features, text.fc.out_features)},
        "fusion": {"kind": head.fusion, "weights": head.weights, "fused": head.classifier.in_features,
                   "n_classes": head.classifier.out_features, "metadata": head.meta is not None,
                   "params": n_params(head)},
    }
