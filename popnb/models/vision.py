"""The vision branch: any timm backbone -> pooled feature vector -> a fully connected layer (the "vision output").

The backbone is built with num_classes=0, so its ImageNet classifier is dropped and model(x) is the
pooled feature vector (for ViT: the class token after the final LayerNorm).
"""
from __future__ import annotations

import logging
from contextlib import contextmanager
from pathlib import Path

import torch
from torch import nn

from popnb.models.registry import known_vision_names, unknown_name_message


class WeightsUnavailableError(FileNotFoundError):
    """Pretrained weights were asked for but cannot be had offline."""


class VisionBranch(nn.Module):
    """images [B, 3, S, S] float (normalised with data_config's mean/std) -> vision output [B, out_dim]."""

    def __init__(self, backbone: nn.Module, name: str, image_size: int, feature_dim: int, out_dim: int = 256):
        super().__init__()
        self.backbone = backbone
        self.fc = nn.Linear(feature_dim, out_dim)
        self.name, self.image_size, self.out_dim = name, image_size, out_dim

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.fc(self.backbone(images))

    @property
    def data_config(self) -> dict:
        """What the backbone expects: size (pixels, square), mean and std (RGB in 0..1), interpolation."""
        import timm.data

        cfg = timm.data.resolve_data_config({}, model=self.backbone)
        return {"size": self.image_size, "mean": tuple(cfg["mean"]), "std": tuple(cfg["std"]),
                "interpolation": cfg["interpolation"]}


def image_transform_config(model: nn.Module) -> dict:
    """data_config of a VisionBranch, or of the vision branch of a LateFusion: {size, mean, std, interpolation}."""
    branch = model if isinstance(model, VisionBranch) else getattr(model, "vision", None)
    if not isinstance(branch, VisionBranch):
        raise TypeError(f"expected a VisionBranch or a model with a .vision branch, got {type(model).__name__}")
    return branch.data_config


def _timm_create(name: str, image_size: int, **kwargs) -> nn.Module:
    """timm.create_model, passing img_size to the architectures that take it (ViT, DeiT, CoAtNet, ...)."""
    import timm

    try:
        return timm.create_model(name, img_size=image_size, **kwargs)
    except TypeError as err:
        if "img_size" not in str(err):
            raise
        return timm.create_model(name, **kwargs)


def _load_backbone(name: str, image_size: int, pretrained: bool, checkpoint: Path | None) -> nn.Module:
    """Build the timm backbone; weights from timm's hub cache (pretrained) or a local file (checkpoint)."""
    if checkpoint is None:
        try:
            return _timm_create(name, image_size, num_classes=0, pretrained=pretrained)
        except (OSError, RuntimeError) as err:
            if not pretrained:
                raise
            raise WeightsUnavailableError(
                f"pretrained weights for vision backbone {name!r} are not available offline ({type(err).__name__}: "
                f"{str(err).splitlines()[0] if str(err) else 'not in the local cache'}). Pass a local checkpoint "
                f"(vision_checkpoint=PATH / --vision-checkpoint PATH, a timm state_dict .pth or .safetensors) "
                f"or train from scratch with pretrained=False."
            ) from err
    if not checkpoint.is_file():
        raise FileNotFoundError(f"vision checkpoint {checkpoint} does not exist")
    log = _KeyLog()
    try:
        with log.listening():
            backbone = _timm_create(name, image_size, num_classes=0, pretrained=True,
                                    pretrained_cfg_overlay=dict(file=str(checkpoint)))
    except (RuntimeError, KeyError, ValueError) as err:
        raise ValueError(f"vision checkpoint {checkpoint} does not fit {name!r}: {str(err).splitlines()[0]}") from err
    if log.missing:  # timm loads non-strictly once the classifier is dropped: a wrong file would load nothing
        raise ValueError(f"vision checkpoint {checkpoint} does not fit {name!r}: it lacks weights the model needs "
                         f"({log.missing[:300]})")
    return backbone


class _KeyLog(logging.Handler):
    """Catches timm's 'Missing keys (...)' report of a pretrained load (logged, not raised, by timm)."""

    def __init__(self):
        super().__init__(logging.INFO)
        self.missing = ""

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if message.startswith("Missing keys"):
            self.missing = message.split("(", 1)[-1].split(")", 1)[0]

    @contextmanager
    def listening(self):
        logger = logging.getLogger("timm.models._builder")
        level = logger.level
        logger.setLevel(logging.INFO)
        logger.addHandler(self)
        try:
            yield
        finally:
            logger.removeHandler(self)
            logger.setLevel(level)


def _feature_dim(backbone: nn.Module, name: str, image_size: int) -> int:
    """Width of backbone(x) at this image size; a clear ValueError when the backbone cannot take the size."""
    patch = getattr(getattr(backbone, "patch_embed", None), "patch_size", None)
    if patch is not None:
        ph, pw = (patch, patch) if isinstance(patch, int) else patch
        if image_size % ph or image_size % pw:
            raise ValueError(f"image_size {image_size} is not a multiple of {name}'s patch size {ph}x{pw}; "
                             f"use e.g. {max(ph, image_size // ph * ph)} or {(image_size // ph + 1) * ph}")
    was_training = backbone.training
    backbone.eval()
    try:
        with torch.no_grad():
            out = backbone(torch.zeros(1, 3, image_size, image_size))
    except (RuntimeError, ValueError, AssertionError) as err:
        raise ValueError(f"{name} cannot take image_size {image_size}x{image_size}: {str(err).splitlines()[0]} "
                         f"(convnets need a size that survives all their strides, e.g. a multiple of 32)") from err
    finally:
        backbone.train(was_training)
    if out.ndim != 2:
        raise ValueError(f"{name} with num_classes=0 gives features of shape {tuple(out.shape)}, not [B, D]")
    return out.shape[1]


def create_vision(name: str, pretrained: bool = False, image_size: int = 112, checkpoint: str | Path | None = None,
                  out_dim: int = 256) -> VisionBranch:
    """A timm backbone by name -> VisionBranch. checkpoint: a local timm state_dict file (implies pretrained)."""
    import timm

    if not timm.is_model(name):
        raise ValueError(unknown_name_message("vision", name, known_vision_names()))
    if image_size < 1:
        raise ValueError(f"image_size must be a positive number of pixels, got {image_size}")
    checkpoint = Path(checkpoint) if checkpoint is not None else None
    backbone = _load_backbone(name, image_size, pretrained, checkpoint)
    return VisionBranch(backbone, name, image_size, _feature_dim(backbone, name, image_size), out_dim)
