"""Why the model predicted what it did: a heatmap over the cover and an importance per title token.

The quantity explained is a *target*: "expected" (the expected class sum_k k * p_k, what the widget ranks by)
or a class index c (its probability p_c), taken as log-odds (`target_of`). Positive importance = the part
raises the target.

Cover heatmaps (float32 [S, S] >= 0 over the model's S x S input; `resize_heat` maps one onto a cover):
- "rollout" (ViT backbones): gradient-weighted attention rollout (Chefer, Gur & Wolf 2021), patch resolution;
  one backward pass. It follows the attention flow, so a model that routes evidence through background tokens
  can fool it; occlusion is the slower, causal check.
- "occlusion" (any backbone): the drop of the target when a window is painted with the mean colour
  (0 after normalisation); each pixel gets the mean drop of the windows covering it, clipped at 0.
Title importance: the target minus the target with that one token deleted (occlusion by deletion).

Pretrained-recipe runs (popnb.train.pretrained) are explained the same way, through their frozen encoders: the
"expected" target is the predicted score itself (e.g. log1p(views); the expected class rises with it), a class c
the log-odds of p_c. Heat: a grid (OCCLUSION_GRID) of grey patches over the cover as the cover encoder sees it,
all occluded covers encoded in one batch; title importance: every one-character deletion embedded in one call.
"""
from __future__ import annotations

import math
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from popnb.analysis.explore import mark_covers
from popnb.models import CharVocab
from popnb.train.pretrained import (PretrainedRun, check_title, embed, outputs, prediction_fields,
                                    video_branches)
from popnb.train.run import Run, model_inputs, prediction

METHODS = ("auto", "rollout", "occlusion")
OCCLUSION_GRID = (8, 5)  # patches across, down a pretrained run's cover: 40 occluded covers, one encoder batch
_ROLLOUT_LOCK = threading.Lock()


def target_of(probs: torch.Tensor, target) -> torch.Tensor:
    """probs [B, K] -> the target's log-odds [B]: log(E / (K-1-E)) for "expected" (E = sum_k k p_k, in 0..K-1),
    log(p_c / (1 - p_c)) for a class c. Log-odds keep moving where a confident model's probabilities have
    stopped at 1, so its explanation does not vanish; both are increasing in the target itself."""
    k = torch.arange(probs.shape[1], dtype=probs.dtype)
    if target == "expected":
        up, down = probs @ k, probs @ (k.max() - k)
    elif isinstance(target, (int, np.integer)) and not isinstance(target, bool) and 0 <= target < probs.shape[1]:
        others = torch.arange(probs.shape[1]) != int(target)
        up, down = probs[:, int(target)], probs[:, others].sum(dim=1)  # no 1 - p: it rounds to 0 near p = 1
    else:
        raise ValueError(f"target must be 'expected' or a class 0..{probs.shape[1] - 1}, got {target!r}")
    tiny = torch.finfo(probs.dtype).tiny
    return torch.log(up.clamp(min=tiny)) - torch.log(down.clamp(min=tiny))


def _probs(model, v: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Fusion head on vision outputs v [B,D] and text outputs t [B,D] -> probabilities float64 [B, 5]
    (float64: a confident model's small changes are not lost to rounding near p = 1)."""
    return torch.softmax(model.head(v, t).double(), dim=1)


def is_vit(model) -> bool:
    """True when the vision backbone is a timm ViT whose blocks' attention can be read (rollout works)."""
    blocks = getattr(model.vision.backbone, "blocks", None)
    return blocks is not None and hasattr(model.vision.backbone, "patch_embed") and all(
        hasattr(getattr(b, "attn", None), "fused_attn") and hasattr(b.attn, "attn_drop") for b in blocks)


def rollout(model, images, ids, mask, target="expected") -> np.ndarray:
    """Gradient-weighted attention rollout for a ViT (Chefer, Gur & Wolf 2021): float32 [S, S] >= 0.

    Per block, A_bar = mean over heads of relu(dTarget/dA * A) (A: attention probabilities [N, N]);
    R = I, then R <- R + A_bar @ R block by block; the heat of each patch is R[class token, patch],
    upsampled (bilinear) from the patch grid to the input. images: [1, 3, S, S].
    """
    if not is_vit(model):
        raise ValueError(f"rollout needs a ViT backbone, {model.vision.name} is not one: use method='occlusion'")
    backbone, me = model.vision.backbone, threading.get_ident()
    with _ROLLOUT_LOCK:  # one rollout at a time changes the blocks; other threads' forwards are not recorded
        attentions, hooks, fused = [], [], [b.attn.fused_attn for b in backbone.blocks]
        for block in backbone.blocks:
            block.attn.fused_attn = False  # the unfused path computes the attention matrix where a hook can see it
            hooks.append(block.attn.attn_drop.register_forward_hook(
                lambda _m, _args, out: attentions.append(out) if threading.get_ident() == me else None))
        try:
            with torch.enable_grad():
                with torch.no_grad():
                    t = model.text(ids, mask)
                value = target_of(_probs(model, model.vision(images), t), target).sum()
                grads = torch.autograd.grad(value, attentions)
        finally:
            for block, was in zip(backbone.blocks, fused):
                block.attn.fused_attn = was
            for hook in hooks:
                hook.remove()
    n = attentions[0].shape[-1]
    r = torch.eye(n)
    for a, g in zip(attentions, grads):
        r = r + (g * a).clamp(min=0).mean(dim=1)[0].detach() @ r
    heat = r[0, backbone.num_prefix_tokens:].reshape(1, 1, *backbone.patch_embed.grid_size)
    return F.interpolate(heat, size=images.shape[-2:], mode="bilinear", align_corners=False)[0, 0].numpy()


def occlusion(model, images, ids, mask, target="expected", window: int | None = None, stride: int | None = None,
              batch_size: int = 64) -> np.ndarray:
    """Occlusion heatmap float32 [S, S] >= 0. window, stride: pixels of the S x S input (default: the ViT
    patch size, else S // 7; stride window // 2, so a feature split over two patches is also hidden whole).
    Costs one vision forward per window: ((S - window) / stride + 1)^2 of them."""
    size = images.shape[-1]
    if window is None:
        patch = getattr(getattr(model.vision.backbone, "patch_embed", None), "patch_size", None)
        window = patch[0] if isinstance(patch, tuple) else (patch or max(1, size // 7))
    stride = stride or max(1, window // 2)
    starts = list(range(0, max(size - window, 0) + 1, stride))
    if starts[-1] + window < size:
        starts.append(size - window)  # the last window touches the edge
    boxes = [(y, x) for y in starts for x in starts]
    with torch.no_grad():
        t = model.text(ids, mask)
        base = target_of(_probs(model, model.vision(images), t), target)
        drops = []
        for i in range(0, len(boxes), batch_size):
            chunk = boxes[i:i + batch_size]
            batch = images.repeat(len(chunk), 1, 1, 1)
            for k, (y, x) in enumerate(chunk):
                batch[k, :, y:y + window, x:x + window] = 0
            drops.append(base - target_of(_probs(model, model.vision(batch), t.expand(len(chunk), -1)), target))
    drops = torch.cat(drops).float().numpy()
    total, count = np.zeros((size, size), np.float32), np.zeros((size, size), np.float32)
    for (y, x), drop in zip(boxes, drops):
        total[y:y + window, x:x + window] += drop
        count[y:y + window, x:x + window] += 1
    return np.clip(total / np.maximum(count, 1), 0, None)


def cover_heatmap(model, images, ids, mask, target="expected", method: str = "auto") -> np.ndarray:
    """What drove the prediction over the cover: float32 [S, S] >= 0. method: auto (rollout for a ViT, else
    occlusion), rollout, occlusion."""
    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
    if method == "auto":
        method = "rollout" if is_vit(model) else "occlusion"
    return (rollout if method == "rollout" else occlusion)(model, images, ids, mask, target)


def title_importance(model, images, ids, mask, target="expected") -> np.ndarray:
    """Importance float [n] of each title token (between [CLS] and [SEP], n = mask.sum() - 2): the target's
    log-odds minus its log-odds with that token deleted (the rest moves up; padding is id 0 in both
    tokenizers). ids, mask: [1, L]."""
    n = int(mask[0].sum())
    real = ids[0, :n]
    rows = [torch.cat([real[:i], real[i + 1:]]) for i in range(1, n - 1)]
    if not rows:
        return np.zeros(0, np.float32)
    cut = torch.zeros(len(rows), ids.shape[1], dtype=ids.dtype)
    for k, row in enumerate(rows):
        cut[k, :len(row)] = row
    with torch.no_grad():
        v = model.vision(images)
        base = target_of(_probs(model, v, model.text(ids, mask)), target)
        without = target_of(_probs(model, v.expand(len(rows), -1), model.text(cut, (cut != 0).long())), target)
    return (base - without).float().numpy()


def token_texts(tokenizer, title: str, ids: torch.Tensor, mask: torch.Tensor) -> list[str]:
    """The text of each title token that title_importance scores (characters for a CharVocab)."""
    n = int(mask[0].sum()) - 2
    if isinstance(tokenizer, CharVocab):
        return [ch for ch in title if not ch.isspace()][:n]
    return tokenizer.tokenizer.convert_ids_to_tokens(ids[0, 1:n + 1].tolist())


@dataclass
class Explanation:
    """A prediction with its reasons: predict()'s fields, heat [S, S] over the model input (None without a
    cover), title tokens and their importance [n]."""

    prediction: dict
    heat: np.ndarray | None
    tokens: list[str]
    importance: np.ndarray


def explain(run: Run | PretrainedRun, title: str, cover=None, target="expected", method: str = "auto",
            meta: dict | None = None) -> Explanation:
    """Predict one video of a loaded run and explain it (cover: a path or None). A pretrained-recipe run:
    explain_pretrained (method is ignored: occlusion; meta: its metadata {column: value})."""
    if isinstance(run, PretrainedRun):
        return explain_pretrained(run, title, cover, target, meta)
    images, ids, mask = model_inputs(run, title, cover)
    model = run.model.eval()
    with torch.no_grad():
        probs = torch.softmax(model(images, ids, mask).double(), dim=1)[0].numpy()
    heat = cover_heatmap(model, images, ids, mask, target, method) if cover is not None and run.uses_covers else None
    return Explanation(prediction(run, probs), heat, token_texts(run.tokenizer, title, ids, mask),
                       title_importance(model, images, ids, mask, target))


def pretrained_target(out: dict, target) -> np.ndarray:
    """The explained quantity [N] of a pretrained run's outputs(): the score for "expected", else class
    target's log-odds (target_of)."""
    if target == "expected":
        return out["score"]
    return target_of(torch.from_numpy(out["probabilities"]), target).numpy()


def repeated(branches: dict, name: str, x: np.ndarray) -> dict:
    """One video's branches repeated len(x) times, branch name replaced by the rows x [n, D]."""
    return {b: x if b == name else np.repeat(v, len(x), axis=0) for b, v in branches.items()}


def drops(run: PretrainedRun, branches: dict, name: str, x: np.ndarray, target) -> np.ndarray:
    """The target of one video (branches) minus its target with branch name's features swapped for each row of x."""
    base = pretrained_target(outputs(run.model, branches), target)
    return base - pretrained_target(outputs(run.model, repeated(branches, name, x)), target)


def grid_boxes(width: int, height: int, grid=OCCLUSION_GRID) -> list[tuple[int, int, int, int]]:
    """(x0, y0, x1, y1) pixel boxes of a grid (columns, rows) tiling a width x height image, row by row."""
    xs = np.linspace(0, width, grid[0] + 1).round().astype(int)
    ys = np.linspace(0, height, grid[1] + 1).round().astype(int)
    return [(xs[c], ys[r], xs[c + 1], ys[r + 1]) for r in range(grid[1]) for c in range(grid[0])]


def occluded_covers(encoder, cover, folder, grid=OCCLUSION_GRID) -> list[Path]:
    """The cover as the encoder sees it (encoder.pixels: letterboxed to its size) with each grid patch painted
    its mean colour (encoder.fill: 0 after normalisation), saved as PNGs in folder: lossless, and at the
    encoder's size, so the encoder reads back exactly these pixels."""
    from PIL import Image

    pixels = encoder.pixels([cover])[0].transpose(1, 2, 0)  # [H, W, 3] uint8
    paths = []
    for k, (x0, y0, x1, y1) in enumerate(grid_boxes(pixels.shape[1], pixels.shape[0], grid)):
        patched = pixels.copy()
        patched[y0:y1, x0:x1] = encoder.fill
        paths.append(Path(folder) / f"{k}.png")
        Image.fromarray(patched).save(paths[-1])
    return paths


def pretrained_occlusion(run: PretrainedRun, branches: dict, cover, target="expected",
                         grid=OCCLUSION_GRID) -> np.ndarray:
    """Occlusion heatmap float32 [rows, columns] >= 0 of one video of a pretrained run (branches: its
    video_branches): the drop of the target when that grid patch of the encoder's letterboxed input is grey,
    clipped at 0 (a 16:9 cover fills the input: the grid is the cover's)."""
    encoder = run.encoder("cover")
    with tempfile.TemporaryDirectory(prefix="popnb-occlusion-") as folder:
        occluded = encoder(occluded_covers(encoder, cover, folder, grid))  # one batch
    heat = drops(run, branches, "cover", occluded, target)
    return np.clip(heat, 0, None).astype(np.float32).reshape(grid[1], grid[0])


def pretrained_title_importance(run: PretrainedRun, branches: dict, title: str,
                                target="expected") -> tuple[list[str], np.ndarray]:
    """(characters, importance float32 [n]) of a title's non-space characters: the target minus the target with
    that character deleted, every deletion embedded in one call; 0 when the run has no title branch."""
    spots = [i for i, ch in enumerate(title) if not ch.isspace()]
    chars = [title[i] for i in spots]
    if "title" not in branches or not spots:
        return chars, np.zeros(len(spots), np.float32)
    without = embed(run.encoder("title"), [title[:i] + title[i + 1:] for i in spots])
    return chars, drops(run, branches, "title", without, target).astype(np.float32)


def explain_pretrained(run: PretrainedRun, title: str, cover=None, target="expected",
                       meta: dict | None = None) -> Explanation:
    """explain() of one video of a pretrained-recipe run: predict_pretrained's model fields (prediction_fields),
    pretrained_occlusion (None without a cover or when the run has no cover branch), title importance.
    meta: {column: value} of the run's metadata columns (NaN: unknown, the train median)."""
    check_title(title)
    branches = video_branches(run, [title], None if cover is None else [cover],
                              None if meta is None else pd.DataFrame([meta]))
    heat = pretrained_occlusion(run, branches, cover, target) if "cover" in branches else None
    return Explanation(prediction_fields(run, outputs(run.model, branches)), heat,
                       *pretrained_title_importance(run, branches, title, target))


def resize_heat(heat: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """heat [S, S] over the squashed model input -> [H, W] over a cover of size (W, H) (bilinear)."""
    w, h = size
    x = torch.from_numpy(np.ascontiguousarray(heat, dtype=np.float32))[None, None]
    return F.interpolate(x, size=(h, w), mode="bilinear", align_corners=False)[0, 0].numpy()


def box_heat_ratio(heat: np.ndarray, box) -> float:
    """Mean heat inside box (x0, y0, x1, y1; pixels, [x0, x1) x [y0, y1)) over mean heat outside it.
    inf when all heat is inside, nan when there is none."""
    x0, y0, x1, y1 = (int(v) for v in box)
    inside = np.zeros(heat.shape, bool)
    inside[max(y0, 0):y1, max(x0, 0):x1] = True
    a, b = float(heat[inside].mean()), float(heat[~inside].mean())
    return a / b if b > 0 else (math.inf if a > 0 else math.nan)


def overlay(cover, heat: np.ndarray, cmap: str = "jet"):
    """A PIL image: the cover (RGB PIL) dimmed where heat is low, tinted by `cmap` where it is high
    (heat: any [h, w] >= 0, resized to the cover and scaled to max 1)."""
    from matplotlib import colormaps
    from PIL import Image

    h = resize_heat(heat, cover.size)
    h = (h / h.max() if h.max() > 0 else h)[..., None]
    colour = colormaps[cmap](h[..., 0])[..., :3] * 255
    base = np.asarray(cover.convert("RGB"), dtype=np.float32) * (0.35 + 0.65 * h)  # a spotlight on the heat
    return Image.fromarray(((1 - 0.45 * h) * base + 0.45 * h * colour).round().clip(0, 255).astype(np.uint8))


def video_metadata(run: Run | PretrainedRun, video: pd.Series) -> dict | None:
    """A pretrained-recipe run's metadata inputs for one video of a data set ({column: value}, NaN where unknown);
    None for an end-to-end run."""
    if not isinstance(run, PretrainedRun):
        return None
    return {c: float(video[c]) if c in video and pd.notna(video[c]) else math.nan for c in run.params["metadata"]}


def explain_sample(run: Run | PretrainedRun, data_dir=None, n: int = 6, method: str = "auto", target="expected",
                   seed: int = 0):
    """Explain n covers of a data set (default: the run's own) -> (table, matplotlib figure).

    With a demo truth.csv beside videos.csv, the n videos are drawn from those with the face, and the table
    gives each one's face_heat_ratio (box_heat_ratio over its face box: > 1 means the heat sits on the face).
    Table columns: video_id, predicted_class, expected_class, face_heat_ratio (NaN without truth.csv).
    """
    import matplotlib.pyplot as plt

    from popnb.data import load_dataset, open_cover

    root = Path(data_dir or run.config["data_dir"])
    data = load_dataset(root, check_images="none")
    if not data.has_covers:
        raise ValueError(f"{root}: not every video has a cover: there is nothing to put a heatmap on")
    truth = pd.read_csv(root / "truth.csv").set_index("video_id") if (root / "truth.csv").is_file() else None
    pool = data.videos if truth is None else data.videos[data.videos["video_id"].map(truth["face"]).fillna(False)]
    picked = pool.sample(min(n, len(pool)), random_state=seed)
    fig, axes = plt.subplots(1, len(picked), figsize=(2.6 * len(picked), 2.0), squeeze=False)
    rows = []
    for ax, (i, video) in zip(axes[0], picked.iterrows()):
        cover = open_cover(data.cover_path(i))
        result = explain(run, video["title"], data.cover_path(i), target, method, video_metadata(run, video))
        heat = resize_heat(result.heat, cover.size)
        ratio = math.nan
        if truth is not None:
            ratio = box_heat_ratio(heat, truth.loc[video["video_id"], ["face_x0", "face_y0", "face_x1", "face_y1"]])
        rows.append({"video_id": video["video_id"], "predicted_class": result.prediction["predicted_class"],
                     "expected_class": result.prediction["expected_class"], "face_heat_ratio": ratio})
        ax.imshow(overlay(cover, heat))
        ax.set_title(f"{video['video_id']}\npredicted {rows[-1]['predicted_class']}, "
                     f"expected {rows[-1]['expected_class']:.2f}", fontsize=8)
        ax.axis("off")
    fig.suptitle(f"{run.folder.name}: heat = what raises the {target if target == 'expected' else f'class {target}'}"
                 f"{' class' if target == 'expected' else ' probability'}", fontsize=9)
    return pd.DataFrame(rows).set_index("video_id"), mark_covers(fig, root)
