"""The vision branch: any timm backbone -> pooled feature vector -> a fully connected layer (the "vision output").

The backbone is built with num_classes=0, so its ImageNet classifier is dropped and model(x) is the
pooled feature vector (for ViT: the class token after the final LayerNorm).
"""
from __future__ import annotations

import argparse
import logging
import pickle
import re
from contextlib import contextmanager
from pathlib import Path

import torch
from torch import nn

from popnb.models.registry import known_vision_names, unknown_name_message


WRAPPER_KEYS = ("state_dict_ema", "model_ema", "state_dict", "model")  # as timm's load_state_dict, EMA first
VISION_ADVICE = ("If you trust the file, re-save its state dict as .safetensors "
                 "(safetensors.torch.save_file(state_dict, 'weights.safetensors')) and pass that file.")


class WeightsUnavailableError(FileNotFoundError):
    """Pretrained weights were asked for but cannot be had offline."""


class UnsafePickleError(ValueError):
    """A weights file that would run code when unpickled: refused, and nothing in it was run."""


@contextmanager
def refusing_code(path: Path | str, advice: str):
    """Turn torch's weights-only refusal of a pickle (pickle.UnpicklingError) into an UnsafePickleError naming
    path and saying what to do (advice)."""
    try:
        yield
    except pickle.UnpicklingError as err:
        raise UnsafePickleError(f"{path} was refused: {_unsafe_reason(err)}. popnb reads weights files as "
                                f"tensors and plain values only (torch.load weights_only=True), so nothing in it "
                                f"was run. {advice}") from err


def safe_torch_load(path: Path, advice: str):
    """torch.load on the CPU with weights_only=True: tensors and plain values, never code (argparse.Namespace
    allowed: timm's training checkpoints keep their args in one). advice: what to do when the file is refused."""
    try:
        with refusing_code(path, advice), torch.serialization.safe_globals([argparse.Namespace]):
            return torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, EOFError, OSError, KeyError) as err:
        raise ValueError(f"{path}: not a readable torch file ({type(err).__name__}: {err})") from err


def _unsafe_reason(err: pickle.UnpicklingError) -> str:
    """What a refused pickle holds: the function it would call, as torch's weights-only unpickler names it."""
    found = re.search(r"GLOBAL (\S+)", str(err))
    return f"unpickling it would call {found[1]}" if found else "it holds objects other than tensors and plain values"


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """A vision checkpoint's weights, read without running code: .safetensors, or a torch file (safe_torch_load).
    A state dict under one of WRAPPER_KEYS is unwrapped and DDP/torch.compile key prefixes dropped, as timm does."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file
    from timm.models import clean_state_dict

    if path.suffix == ".safetensors":
        try:
            state = load_file(str(path))
        except SafetensorError as err:
            raise ValueError(f"vision checkpoint {path}: not a readable .safetensors file ({err})") from err
    else:
        state = safe_torch_load(path, VISION_ADVICE)
    if isinstance(state, dict):
        state = next((state[k] for k in WRAPPER_KEYS if isinstance(state.get(k), dict)), state)
    if not (isinstance(state, dict) and state and all(isinstance(v, torch.Tensor) for v in state.values())):
        raise ValueError(f"vision checkpoint {path} holds no state dict: expected a dict of tensors, "
                         f"or one under {' / '.join(WRAPPER_KEYS)}")
    return clean_state_dict(state)


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
    """Build the timm backbone; weights from timm's hub cache (pretrained) or a local file (checkpoint).

    popnb reads the file itself (read_state_dict) and hands timm the state dict, so timm's own adaptation
    applies as for its published weights (classifier dropped, ViT position embeddings resampled)."""
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
    state, log = read_state_dict(checkpoint), _KeyLog()
    try:
        with log.listening():
            backbone = _timm_create(name, image_size, num_classes=0, pretrained=True,
                                    pretrained_cfg_overlay=dict(state_dict=state))
    except (RuntimeError, KeyError, ValueError) as err:
        raise ValueError(f"vision checkpoint {checkpoint} does not fit {name!r}: {str(err).splitlines()[0]}") from err
    backbone.pretrained_cfg.pop("state_dict", None)  # timm keeps a copy of the weights there
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
    """A timm backbone by name -> VisionBranch. checkpoint: a local state dict file, .safetensors or a torch file
    of tensors only (implies pretrained; a pickle that would run code is refused: UnsafePickleError)."""
    import timm

    if not timm.is_model(name):
        raise ValueError(unknown_name_message("vision", name, known_vision_names()))
    if image_size < 1:
        raise ValueError(f"image_size must be a positive number of pixels, got {image_size}")
    checkpoint = Path(checkpoint) if checkpoint is not None else None
    backbone = _load_backbone(name, image_size, pretrained, checkpoint)
    return VisionBranch(backbone, name, image_size, _feature_dim(backbone, name, image_size), out_dim)
