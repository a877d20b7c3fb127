"""The fusion-weight sweep (the paper's Table 1) in two modes, its Table 1 layout, figures, and why weights absorb.

mode="finetune": every (weights, seed) is a popnb.train run, all weights fine-tuned end to end, as in the paper.
mode="frozen": each backbone's embeddings are computed once (popnb.train.frozen, cached on disk; or, for a name of
popnb.encoders.ENCODERS such as tf_efficientnet_lite0 or e5-small, the pretrained encoder's from the feature store)
and only the heads (the branch FCs and the fusion head) are trained, so the sweep takes seconds once the embeddings
exist.
Both modes derive every run from one TrainConfig (the paper recipe's backbones unless named), use the same split
(TrainConfig.split: random, stratified by class, as the paper; uploader; time), labels (popnb.train.loop.fit_labels
by seed), batches and metrics, and return the same history: one row per (weights, seed, epoch, split) with the
columns of RUN/history.csv.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from popnb.analysis import tables
from popnb.analysis.tables import beside  # noqa: F401 -- the notebook sets our Table 1 beside the paper's with it
from popnb.encoders import ENCODERS, encode
from popnb.models.fusion import check_fusion
from popnb.paper import load_table1
from popnb.paths import resolve
from popnb.train.config import resolved
from popnb.train.frozen import FrozenHeads, seeded, text_embeddings, train_heads, vision_embeddings
from popnb.train.loop import HISTORY, TrainConfig, fit_labels, load_limited, run_params, train

PAPER_GRID = ((0.3, 0.7), (0.45, 0.55), (0.6, 0.4), (0.75, 0.25), (0.9, 0.1), (1.0, 0.0), (0.0, 1.0))
MODES = ("frozen", "finetune")
DEFAULT_LR = {"finetune": 5e-5, "frozen": 1e-3}  # the paper's AdamW rate; heads alone on fixed embeddings move faster
SWEPT = ("data_dir", "out", "fusion_weights", "seed")  # TrainConfig fields the sweep sets itself
# TrainConfig fields that frozen heads ignore (they have no pipeline and no metadata branch)
FINETUNE_ONLY = ("pipeline", "chunks", "gpipe_checkpoint", "balance", "devices", "threads", "metadata")


def weight_label(w_v: float, w_t: float) -> str:
    """'0.75 / 0.25', '1.0 / 0.0': the row label of a weight pair."""
    def text(w: float) -> str:
        return f"{w:g}" if "." in f"{w:g}" else f"{w:g}.0"

    return f"{text(w_v)} / {text(w_t)}"


ROWS = tables.Rows(("vision_weight", "text_weight"), weight_label, "w_v / w_t")


def check_sweep(mode: str, weights, seeds) -> tuple[list[tuple[float, float]], list[int]]:
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
    weights = [check_fusion(w, "weighted") for w in weights]
    seeds = [int(s) for s in seeds]
    if not weights or not seeds:
        raise ValueError(f"a sweep needs at least one weight pair and one seed, got {len(weights)} and {len(seeds)}")
    for name, values in (("weight pair", weights), ("seed", seeds)):
        if len(set(values)) != len(values):
            raise ValueError(f"a {name} is listed twice: {values}")
    return weights, seeds


def sweep_config(data_dir, mode: str, lr: float | None = None, **settings) -> TrainConfig:
    """The TrainConfig every run of a sweep derives from: TrainConfig's defaults with the paper's recipe (the fields
    left at None, such as vision, text and image_size, resolved by it), lr None -> DEFAULT_LR of the mode, then
    settings (TrainConfig fields, except the ones the sweep sets: data_dir, out, fusion_weights, seed; in frozen
    mode also except those of how a whole model is trained: pipeline, devices, threads, ...)."""
    swept = [k for k in settings if k in SWEPT]
    if swept:
        raise ValueError(f"a sweep sets {', '.join(swept)} itself (from data_dir, weights and seeds)")
    unused = [k for k in settings if mode == "frozen" and k in FINETUNE_ONLY]
    if unused:
        raise ValueError(f"mode='frozen' trains heads on cached embeddings: {', '.join(unused)} only apply to "
                         "mode='finetune'")
    cfg = replace(TrainConfig(str(data_dir), "", recipe="paper"), lr=DEFAULT_LR[mode] if lr is None else lr,
                  **settings)
    return resolved(cfg)


def run_sweep(data_dir, mode: str = "frozen", weights=PAPER_GRID, seeds=(0, 1, 2),
              runs_dir: str | Path = "runs/03_fusion_sweep", cache: str | Path | None = None,
              **settings) -> pd.DataFrame:
    """Train every weight pair with every seed -> history DataFrame.

    settings: TrainConfig fields shared by every run (vision, text, image_size, epochs, batch_size, lr, labels,
    split, limit, max_steps, ...; see sweep_config); the paper recipe's otherwise, lr None: DEFAULT_LR of the mode.
    Columns: mode, vision_weight, text_weight, seed, then RUN/history.csv's (epoch, split, steps, seconds, loss,
    ordinal_accuracy, ..., constant_baseline_accuracy; frozen valid rows add vision_share). Finetune runs go to
    runs_dir/<weights>-seed<N>-<hash of the parameters> (finetune_dir), are resumed when interrupted and reused
    when complete. cache: feature and cover cache folder (default $POPNB_CACHE or ~/.cache/popnb).
    """
    weights, seeds = check_sweep(mode, weights, seeds)
    base = sweep_config(data_dir, mode, **settings)
    if mode == "finetune":
        return finetune_sweep(base, weights, seeds, resolve(runs_dir))
    return frozen_sweep(base, weights, seeds, cache)


def finetune_dir(runs_dir: Path, cfg: TrainConfig) -> Path:
    """The run folder of cfg in a finetune sweep: runs_dir/vw<w_v>-tw<w_t>-seed<N>-<hash of every other parameter>."""
    params = {k: v for k, v in run_params(cfg).items() if k != "out"}
    digest = hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()[:8]
    w_v, w_t = cfg.fusion_weights
    return runs_dir / f"vw{w_v:g}-tw{w_t:g}-seed{cfg.seed}-{digest}"


def finetune_sweep(base: TrainConfig, weights, seeds, runs_dir: Path) -> pd.DataFrame:
    """Every (weights, seed) as a popnb.train run -> the runs' history.csv, stacked."""
    frames = []
    for seed in seeds:
        for w_v, w_t in weights:
            cfg = replace(base, fusion_weights=(w_v, w_t), seed=seed)
            cfg = replace(cfg, out=str(finetune_dir(runs_dir, cfg)))
            train(cfg, resume=True)
            history = pd.read_csv(Path(cfg.out) / HISTORY)
            frames.append(history.assign(mode="finetune", vision_weight=w_v, text_weight=w_t, seed=seed))
    return _order(pd.concat(frames, ignore_index=True))


def in_store(name: str, kind: str) -> bool:
    """Whether name is an embedding encoder of popnb.encoders.ENCODERS that reads `kind` ("cover" or "title")."""
    spec = ENCODERS.get(name)
    return spec is not None and spec.kind == kind and spec.dim is not None


def stored(name: str, data, cache: str | Path | None, device: str) -> np.ndarray:
    """The feature store's pretrained embeddings of `name` for every video of data: float32 [N, D], in memory."""
    device = device if device in ENCODERS[name].devices else "cpu"
    return np.array(encode(name, data, cache=cache, device=device).values, dtype=np.float32)


def frozen_inputs(data, cfg: TrainConfig, cache: str | Path | None = None, with_covers: bool = True):
    """What the heads of cfg's seed train on: (vision embeddings [N, Dv], text embeddings [N, Dt], labels [N],
    scores [N], train positions, valid positions), split (cfg.split: random, uploader or time; with time the videos
    without a publish time are in neither) and labelled as popnb.train does for that seed.

    cfg.vision / cfg.text naming an embedding encoder of popnb.encoders (tf_efficientnet_lite0/1/2 for covers,
    e5-small for titles): its pretrained embeddings from the feature store (its own input size; image_size,
    pretrained and the checkpoints do not apply); any other name: that backbone's (popnb.train.frozen).
    Without covers the vision embeddings are zeros [N, 1] (a vision weight of 0 multiplies them away)."""
    scheme, train_idx, valid_idx = fit_labels(data.videos, cfg.labels, cfg.valid_fraction, cfg.seed, cfg.split)
    y, score = scheme.labels(data.videos), scheme.score(data.videos).to_numpy()
    titles = data.videos["title"].iloc[train_idx].tolist()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    if not with_covers:
        v = np.zeros((len(data), 1), dtype=np.float32)
    elif in_store(cfg.vision, "cover"):
        v = stored(cfg.vision, data, cache, device)
    else:
        v = vision_embeddings(data, cfg.vision, cfg.image_size, cfg.pretrained, cfg.seed, cfg.vision_checkpoint,
                              cache=cache, device=device).values
    t = (stored(cfg.text, data, cache, device) if in_store(cfg.text, "title") else
         text_embeddings(data, cfg.text, titles, cfg.pretrained, cfg.seed, cfg.text_checkpoint, cfg.max_len,
                         cache=cache, device=device).values)
    return v, t, y, score, train_idx, valid_idx


def train_frozen(inputs, cfg: TrainConfig) -> tuple[FrozenHeads, list[dict]]:
    """popnb.train.frozen.train_heads on frozen_inputs() at cfg's fusion weights, seed, epochs, rate and batches."""
    return train_heads(*inputs, cfg.fusion_weights, cfg.fusion, epochs=cfg.epochs, lr=cfg.lr,
                       weight_decay=cfg.weight_decay, batch_size=cfg.batch_size, seed=cfg.seed,
                       max_steps=cfg.max_steps, show=False)


def frozen_sweep(base: TrainConfig, weights, seeds, cache: str | Path | None = None) -> pd.DataFrame:
    """Embeddings once per seed (cached; shared by the seeds when pretrained), then heads for every weight pair."""
    data = load_limited(base.data_dir, base.limit)
    with_covers = any(w_v > 0 for w_v, _ in weights)
    rows = []
    bar = tqdm(total=len(seeds) * len(weights), desc="frozen sweep", unit="run")
    for seed in seeds:
        cfg = replace(base, seed=seed)
        inputs = frozen_inputs(data, cfg, cache, with_covers)
        for w_v, w_t in weights:
            _, history = train_frozen(inputs, replace(cfg, fusion_weights=(w_v, w_t)))
            rows += [{"mode": "frozen", "vision_weight": w_v, "text_weight": w_t, "seed": seed, **r} for r in history]
            bar.update()
    bar.close()
    return _order(pd.DataFrame(rows))


def _order(history: pd.DataFrame) -> pd.DataFrame:
    first = ["mode", "vision_weight", "text_weight", "seed", "epoch", "split"]
    return history[first + [c for c in history.columns if c not in first]]


# ---- the Table 1 layout ----

def summarise(history: pd.DataFrame, metric: str = "ordinal_accuracy") -> pd.DataFrame:
    """tables.summarise per weight pair: columns vision_weight, text_weight, split, epoch, mean, std, seeds."""
    return tables.summarise(history, ROWS, metric)


def paper_summary() -> pd.DataFrame:
    """The paper's Table 1 in the shape of summarise(): mean = the reported value, std NaN, seeds 1."""
    return tables.paper_summary(load_table1(), ROWS)


def table1(summary: pd.DataFrame, digits: int = 4) -> pd.DataFrame:
    """The paper's layout: one row per weight pair ('0.75 / 0.25'), columns 'e1 train', 'e1 valid', ... per epoch;
    cells 'mean ± std' (just the mean when std is NaN)."""
    return tables.layout(summary, ROWS, digits)


def best_valid(history: pd.DataFrame) -> pd.DataFrame:
    """Per weight pair: best and final valid ordinal accuracy (mean over seeds), ours and the paper's, our
    Spearman at our best epoch (mean and std over seeds; the paper reports none), and the constant baseline; the
    best epoch is the one with the highest mean accuracy."""
    parts = []
    for source, summary in (("ours", summarise(history)), ("paper", paper_summary())):
        valid = summary[summary["split"] == "valid"]
        best = tables.best_epochs(summary, ROWS)
        final = valid.loc[valid.groupby(list(ROWS.keys), sort=False)["epoch"].idxmax()]
        parts.append(pd.DataFrame({f"{source} best": best["mean"].to_numpy(),
                                   f"{source} best ± std": best["std"].to_numpy(),
                                   f"{source} best epoch": best["epoch"].to_numpy(),
                                   f"{source} final": final["mean"].to_numpy()}, index=ROWS.labels(best)))
    table = parts[0].join(parts[1])
    spearman = tables.at_best_epochs(history, ROWS, tables.SPEARMAN)
    table.insert(4, "ours spearman", spearman.mean().to_numpy())
    table.insert(5, "ours spearman ± std", spearman.std().to_numpy())
    table["constant baseline"] = tables.baselines(history, ROWS).to_numpy()
    epochs = [c for c in table.columns if c.endswith("best epoch")]
    return table.astype({c: "Int64" for c in epochs}).rename_axis(index=ROWS.name)


def vision_shares(history: pd.DataFrame) -> pd.DataFrame:
    """Frozen mode: the share of the logits' variance the vision branch drives after the last epoch (valid split),
    mean and std over seeds, beside the share the weights name, w_v / (w_v + w_t)."""
    valid = history[(history["split"] == "valid") & (history["epoch"] == history["epoch"].max())]
    if "vision_share" not in valid or valid["vision_share"].isna().all():
        raise ValueError("no vision_share in this history: it is measured in mode='frozen' with fusion='weighted'")
    out = valid.groupby(["vision_weight", "text_weight"], sort=False)["vision_share"].agg(["mean", "std"])
    out.insert(0, "w_v / (w_v + w_t)", [a / (a + b) for a, b in out.index])
    out.index = [weight_label(a, b) for a, b in out.index]
    return out.rename(columns={"mean": "vision share (trained)", "std": "± std"}).rename_axis(index="w_v / w_t")


# ---- figures ----

def valid_curves(history: pd.DataFrame, label: str = "", with_paper: bool = True) -> plt.Figure:
    """Valid ordinal accuracy vs epoch, one panel per weight pair: each seed (thin), the mean (thick), the
    paper's curve (dashed) and the constant baseline (dotted)."""
    pairs = list(dict.fromkeys(zip(history["vision_weight"], history["text_weight"])))
    paper = paper_summary().query("split == 'valid'")
    cols = min(4, len(pairs))
    rows = -(-len(pairs) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.4 * cols, 2.9 * rows), sharex=True, sharey=True, squeeze=False)
    valid = history[history["split"] == "valid"]
    levels = tables.baselines(history, ROWS)
    for ax, (w_v, w_t) in zip(axes.flat, pairs):
        runs = valid[(valid["vision_weight"] == w_v) & (valid["text_weight"] == w_t)]
        for _, run in runs.groupby("seed"):
            ax.plot(run["epoch"], run["ordinal_accuracy"], color="C0", alpha=0.35, lw=0.8)
        mean = runs.groupby("epoch")["ordinal_accuracy"].mean()
        ax.plot(mean.index, mean.values, color="C0", lw=2, marker="o", ms=3, label="ours (mean over seeds)")
        theirs = paper[(paper["vision_weight"] == w_v) & (paper["text_weight"] == w_t)]
        if with_paper and len(theirs):
            ax.plot(theirs["epoch"], theirs["mean"], color="C3", ls="--", marker="s", ms=3, label="paper")
        level = levels[(w_v, w_t)]
        ax.axhline(level, color="k", ls=":", lw=1.2, label=f"constant baseline {level:.3f} (this data)")
        ax.set_title(f"w_v / w_t = {weight_label(w_v, w_t)}", fontsize=9)
        ax.tick_params(labelbottom=True)  # also above an empty panel
        ax.grid(alpha=0.3)
    for ax in axes.flat[len(pairs):]:
        ax.set_visible(False)
    for ax in axes[-1]:
        ax.set_xlabel("epoch")
    for ax in axes[:, 0]:
        ax.set_ylabel("valid ordinal accuracy")
    axes.flat[0].legend(fontsize=7, loc="lower right")
    fig.suptitle(f"Fusion-weight sweep, valid accuracy per epoch ({history['mode'].iloc[0]}) - {label}")
    fig.tight_layout()
    return fig


def best_valid_figure(history: pd.DataFrame, label: str = "") -> plt.Figure:
    """tables.best_valid_figure per weight pair: ours (mean ± std over seeds, each seed), the paper's, and the
    constant baseline."""
    table = best_valid(history)
    seeds = [values.to_numpy() for _, values in tables.at_best_epochs(history, ROWS)]
    title = f"Best valid accuracy per fusion weight ({history['mode'].iloc[0]}) - {label}"
    return tables.best_valid_figure(list(table.index), table["ours best"], table["ours best ± std"], seeds,
                                    table["paper best"], table["constant baseline"], title, ROWS.name)


# ---- why a fusion weight is partly absorbed ----

def absorption_check(weights=(0.75, 0.25), dims: tuple[int, int] = (12, 8), hidden: int = 6, n: int = 64,
                     lr: float = 1e-2, weight_decay: float = 0.01, seed: int = 0) -> pd.DataFrame:
    """Heads A at weights (w_v, w_t) against heads B at (1, 1) whose vision FC is w_v x A's and text FC w_t x A's.

    Checks, on random embeddings and labels: B's logits equal A's; A's FC gradients are w x B's; after one step
    of SGD (B's per-branch rate x w^2) and of AdamW (B's rate x w, weight decay / w) the logits still agree.
    Returns one row per check: the quantity compared and the largest absolute difference.
    """
    w_v, w_t = check_fusion(weights, "weighted")
    if 0.0 in (w_v, w_t):
        raise ValueError("a weight of 0 cannot be absorbed (that branch is switched off): use two weights > 0")
    gen = torch.Generator().manual_seed(seed)
    v, t = torch.randn(n, dims[0], generator=gen), torch.randn(n, dims[1], generator=gen)
    y = torch.randint(0, 5, (n,), generator=gen)

    def pair():
        a = seeded(seed, lambda: FrozenHeads(*dims, (w_v, w_t), hidden=hidden))
        b = seeded(seed, lambda: FrozenHeads(*dims, (1.0, 1.0), hidden=hidden))
        with torch.no_grad():
            for fc, w in ((b.vision_fc, w_v), (b.text_fc, w_t)):
                fc.weight.mul_(w), fc.bias.mul_(w)
        return a, b

    def grads(model):
        model.zero_grad()
        F.cross_entropy(model(v, t), y).backward()
        return model.vision_fc.weight.grad.clone(), model.text_fc.weight.grad.clone()

    def after_step(model, optimizer, rate=(1.0, 1.0), decay=(1.0, 1.0)) -> torch.Tensor:
        """Logits after one step; rate and decay scale the (vision FC, text FC) learning rate and weight decay."""
        parts = ((model.vision_fc, rate[0], decay[0]), (model.text_fc, rate[1], decay[1]), (model.head, 1.0, 1.0))
        opt = optimizer([{"params": m.parameters(), "lr": lr * r, "weight_decay": weight_decay * d}
                         for m, r, d in parts])
        F.cross_entropy(model(v, t), y).backward()
        opt.step()
        with torch.no_grad():
            return model(v, t)

    a, b = pair()
    with torch.no_grad():
        same_logits = (a(v, t) - b(v, t)).abs().max().item()
    (ga_v, ga_t), (gb_v, gb_t) = grads(a), grads(b)
    rows = [("logits of A and B", same_logits),
            ("grad of A's vision FC - w_v x grad of B's", (ga_v - w_v * gb_v).abs().max().item()),
            ("grad of A's text FC - w_t x grad of B's", (ga_t - w_t * gb_t).abs().max().item())]
    sgd, adamw = (lambda g: torch.optim.SGD(g)), (lambda g: torch.optim.AdamW(g, eps=1e-12))
    for name, optimizer, power in (("SGD + L2 decay: B's rate x w^2, decay / w^2", sgd, 2),
                                   ("AdamW: B's rate x w, decay / w", adamw, 1)):
        a, b = pair()
        logits_a = after_step(a, optimizer)
        logits_b = after_step(b, optimizer, (w_v**power, w_t**power), (w_v**-power, w_t**-power))
        rows.append((f"logits after one step, {name}", (logits_a - logits_b).abs().max().item()))
        a, b = pair()
        logits_a, logits_b = after_step(a, optimizer), after_step(b, optimizer)
        rows.append(("  contrast: the same step, B's rate and decay not rescaled",
                     (logits_a - logits_b).abs().max().item()))
    out = pd.DataFrame(rows, columns=["check", "max abs difference"]).set_index("check")
    out.attrs["weights"] = (w_v, w_t)
    return out
