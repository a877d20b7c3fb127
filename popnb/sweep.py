"""The fusion-weight sweep (the paper's Table 1) in two modes, its Table 1 layout, figures, and why weights absorb.

mode="finetune": every (weights, seed) is a popnb.train run, all weights fine-tuned end to end, as in the paper.
mode="frozen": each backbone's embeddings are computed once (popnb.features, cached on disk) and only the heads
(the branch FCs and the fusion head) are trained, so the sweep takes seconds once the embeddings exist.
Both modes use the same split, labels (popnb.train.loop.fit_labels by seed), batches and metrics, and return
the same history: one row per (weights, seed, epoch, split) with the columns of RUN/history.csv.
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

from popnb.data import load_dataset
from popnb.features import FrozenHeads, seeded, text_embeddings, train_heads, vision_embeddings
from popnb.models.fusion import check_fusion
from popnb.paper import load_table1
from popnb.reports import resolve
from popnb.train.loop import HISTORY, TrainConfig, fit_labels, run_params, train

PAPER_GRID = ((0.3, 0.7), (0.45, 0.55), (0.6, 0.4), (0.75, 0.25), (0.9, 0.1), (1.0, 0.0), (0.0, 1.0))
MODES = ("frozen", "finetune")
DEFAULT_LR = {"finetune": 5e-5, "frozen": 1e-3}  # the paper's AdamW rate; heads alone on fixed embeddings move faster
SPLITS = ("train", "valid")


def weight_label(w_v: float, w_t: float) -> str:
    """'0.75 / 0.25', '1.0 / 0.0': the row label of a weight pair."""
    def text(w: float) -> str:
        return f"{w:g}" if "." in f"{w:g}" else f"{w:g}.0"

    return f"{text(w_v)} / {text(w_t)}"


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


def run_sweep(data_dir, mode: str = "frozen", weights=PAPER_GRID, seeds=(0, 1, 2),
              vision: str = "vit_tiny_patch16_224", text: str = "charbert-tiny", image_size: int = 112,
              epochs: int = 5, batch_size: int = 16, lr: float | None = None, pretrained: bool = False,
              labels: str = "auto", valid_fraction: float = 1 / 11, max_len: int = 64, limit: int | None = None,
              max_steps: int | None = None, vision_checkpoint: str | None = None, text_checkpoint: str | None = None,
              runs_dir: str | Path = "runs/03_fusion_sweep", cache: str | Path | None = None) -> pd.DataFrame:
    """Train every weight pair with every seed -> history DataFrame.

    Columns: mode, vision_weight, text_weight, seed, then RUN/history.csv's (epoch, split, steps, seconds, loss,
    ordinal_accuracy, ..., constant_baseline_accuracy; frozen valid rows add vision_share). lr None: DEFAULT_LR
    of the mode. Finetune runs go to runs_dir/<weights>-seed<N>-<hash of the parameters>, are resumed when
    interrupted and reused when complete. cache: feature and cover cache folder (default $POPNB_CACHE or
    ~/.cache/popnb). limit, max_steps: first N videos, steps per epoch (quick runs), as in popnb.train.
    """
    weights, seeds = check_sweep(mode, weights, seeds)
    lr = DEFAULT_LR[mode] if lr is None else lr
    settings = dict(vision=vision, text=text, image_size=image_size, epochs=epochs, batch_size=batch_size, lr=lr,
                    pretrained=pretrained, labels=labels, valid_fraction=valid_fraction, max_len=max_len,
                    limit=limit, max_steps=max_steps, vision_checkpoint=vision_checkpoint,
                    text_checkpoint=text_checkpoint)
    if mode == "finetune":
        return finetune_sweep(data_dir, weights, seeds, resolve(runs_dir), **settings)
    return frozen_sweep(data_dir, weights, seeds, cache=cache, **settings)


def finetune_sweep(data_dir, weights, seeds, runs_dir: Path, **settings) -> pd.DataFrame:
    """Every (weights, seed) as a popnb.train run -> the runs' history.csv, stacked."""
    frames = []
    for seed in seeds:
        for w_v, w_t in weights:
            cfg = TrainConfig(data_dir=str(data_dir), out="", fusion_weights=(w_v, w_t), seed=seed, **settings)
            params = {k: v for k, v in run_params(cfg).items() if k != "out"}
            digest = hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()[:8]
            cfg = replace(cfg, out=str(runs_dir / f"vw{w_v:g}-tw{w_t:g}-seed{seed}-{digest}"))
            train(cfg, resume=True)
            history = pd.read_csv(Path(cfg.out) / HISTORY)
            frames.append(history.assign(mode="finetune", vision_weight=w_v, text_weight=w_t, seed=seed))
    return _order(pd.concat(frames, ignore_index=True))


def load_limited(data_dir, limit: int | None = None):
    """The dataset folder, cut to its first `limit` videos (None: all), as popnb.train's --limit does."""
    data = load_dataset(data_dir)
    if limit is not None:
        data = replace(data, videos=data.videos.iloc[:limit].reset_index(drop=True))
    return data


def frozen_inputs(data, seed: int, vision: str, text: str, image_size: int, pretrained: bool, labels: str,
                  valid_fraction: float, max_len: int, vision_checkpoint: str | None = None,
                  text_checkpoint: str | None = None, cache: str | Path | None = None, with_covers: bool = True):
    """What the heads of one seed train on: (vision embeddings [N, Dv], text embeddings [N, Dt], labels [N],
    scores [N], train positions, valid positions), split and labelled as popnb.train does for that seed.
    Without covers the vision embeddings are zeros [N, 1] (a vision weight of 0 multiplies them away)."""
    scheme, train_idx, valid_idx = fit_labels(data.videos, labels, valid_fraction, seed)
    y, score = scheme.labels(data.videos), scheme.score(data.videos).to_numpy()
    titles = data.videos["title"].iloc[train_idx].tolist()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    v = (vision_embeddings(data, vision, image_size, pretrained, seed, vision_checkpoint, cache=cache,
                           device=device).values
         if with_covers else np.zeros((len(data), 1), dtype=np.float32))
    t = text_embeddings(data, text, titles, pretrained, seed, text_checkpoint, max_len, cache=cache,
                        device=device).values
    return v, t, y, score, train_idx, valid_idx


def frozen_sweep(data_dir, weights, seeds, vision: str, text: str, image_size: int, epochs: int, batch_size: int,
                 lr: float, pretrained: bool, labels: str, valid_fraction: float, max_len: int, limit: int | None,
                 max_steps: int | None, vision_checkpoint: str | None, text_checkpoint: str | None,
                 cache: str | Path | None = None) -> pd.DataFrame:
    """Embeddings once per seed (cached; shared by the seeds when pretrained), then heads for every weight pair."""
    data = load_limited(data_dir, limit)
    with_covers = any(w_v > 0 for w_v, _ in weights)
    rows = []
    bar = tqdm(total=len(seeds) * len(weights), desc="frozen sweep", unit="run")
    for seed in seeds:
        v, t, y, score, train_idx, valid_idx = frozen_inputs(
            data, seed, vision, text, image_size, pretrained, labels, valid_fraction, max_len, vision_checkpoint,
            text_checkpoint, cache, with_covers)
        for w_v, w_t in weights:
            _, history = train_heads(v, t, y, score, train_idx, valid_idx, (w_v, w_t), epochs=epochs, lr=lr,
                                     batch_size=batch_size, seed=seed, max_steps=max_steps, show=False)
            rows += [{"mode": "frozen", "vision_weight": w_v, "text_weight": w_t, "seed": seed, **r} for r in history]
            bar.update()
    bar.close()
    return _order(pd.DataFrame(rows))


def _order(history: pd.DataFrame) -> pd.DataFrame:
    first = ["mode", "vision_weight", "text_weight", "seed", "epoch", "split"]
    return history[first + [c for c in history.columns if c not in first]]


# ---- the Table 1 layout ----

def summarise(history: pd.DataFrame, metric: str = "ordinal_accuracy") -> pd.DataFrame:
    """Mean and std over seeds (sample std, ddof=1; NaN for one seed) of metric per weights, split and epoch.

    Columns: vision_weight, text_weight, split, epoch, mean, std, seeds; weight pairs in the order of history.
    """
    pairs = list(dict.fromkeys(zip(history["vision_weight"], history["text_weight"])))
    grouped = history.groupby(["vision_weight", "text_weight", "split", "epoch"], sort=False)[metric]
    out = grouped.agg(mean="mean", std="std", seeds="count").reset_index()
    out["order"] = [pairs.index(p) for p in zip(out["vision_weight"], out["text_weight"])]
    out = out.sort_values(["order", "split", "epoch"], kind="stable").drop(columns="order")
    return out.reset_index(drop=True)


def paper_summary() -> pd.DataFrame:
    """The paper's Table 1 in the shape of summarise(): mean = the reported value, std NaN, seeds 1."""
    paper = load_table1().rename(columns={"train_acc": "train", "valid_acc": "valid"})
    long = paper.melt(["vision_weight", "text_weight", "epoch"], list(SPLITS), var_name="split", value_name="acc")
    return summarise(long.assign(seed=0), "acc")


def table1(summary: pd.DataFrame, digits: int = 4) -> pd.DataFrame:
    """The paper's layout: one row per weight pair ('0.75 / 0.25'), columns 'e1 train', 'e1 valid', ... per epoch;
    cells 'mean ± std' (just the mean when std is NaN)."""
    def cell(mean: float, std: float) -> str:
        return f"{mean:.{digits}f}" if np.isnan(std) else f"{mean:.{digits}f} ± {std:.{digits}f}"

    s = summary.assign(row=[weight_label(a, b) for a, b in zip(summary["vision_weight"], summary["text_weight"])],
                       column=[f"e{e} {split}" for e, split in zip(summary["epoch"], summary["split"])],
                       cell=[cell(m, d) for m, d in zip(summary["mean"], summary["std"])])
    columns = [f"e{e} {split}" for e in sorted(summary["epoch"].unique()) for split in SPLITS
               if f"e{e} {split}" in set(s["column"])]
    table = s.pivot(index="row", columns="column", values="cell").reindex(index=list(dict.fromkeys(s["row"])),
                                                                          columns=columns)
    return table.rename_axis(index="w_v / w_t", columns=None)


def beside(ours: pd.DataFrame, paper: pd.DataFrame) -> pd.DataFrame:
    """Two table1() layouts merged: each of our columns followed by the paper's ('e1 train (paper)'); our rows
    first, then the paper's other rows; '' where one side has no value."""
    rows = list(dict.fromkeys([*ours.index, *paper.index]))
    columns = list(dict.fromkeys([*ours.columns, *paper.columns]))
    ours, paper = ours.reindex(index=rows, columns=columns), paper.reindex(index=rows, columns=columns)
    merged = {}
    for c in columns:
        merged[c], merged[f"{c} (paper)"] = ours[c], paper[c]
    return pd.DataFrame(merged, index=rows).fillna("").rename_axis(index=ours.index.name)


def baseline(history: pd.DataFrame) -> float:
    """The constant baseline on the valid split (best constant prediction's ordinal accuracy), mean over seeds."""
    valid = history[history["split"] == "valid"]
    return float(valid.groupby("seed")["constant_baseline_accuracy"].first().mean())


def best_valid(history: pd.DataFrame) -> pd.DataFrame:
    """Per weight pair: best and final valid ordinal accuracy (mean over seeds), ours and the paper's, and the
    constant baseline; the best epoch is the one with the highest mean."""
    rows = {}
    for source, summary in (("ours", summarise(history)), ("paper", paper_summary())):
        valid = summary[summary["split"] == "valid"]
        for (w_v, w_t), g in valid.groupby(["vision_weight", "text_weight"], sort=False):
            best = g.loc[g["mean"].idxmax()]
            final = g.loc[g["epoch"].idxmax()]
            rows.setdefault(weight_label(w_v, w_t), {}).update({
                f"{source} best": best["mean"], f"{source} best ± std": best["std"],
                f"{source} best epoch": int(best["epoch"]), f"{source} final": final["mean"]})
    ours_rows = [weight_label(a, b) for a, b in dict.fromkeys(zip(history["vision_weight"], history["text_weight"]))]
    table = pd.DataFrame.from_dict(rows, orient="index").loc[ours_rows]
    table["constant baseline"] = baseline(history)
    epochs = [c for c in table.columns if c.endswith("best epoch")]
    return table.astype({c: "Int64" for c in epochs}).rename_axis(index="w_v / w_t")


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
    level = baseline(history)
    for ax, (w_v, w_t) in zip(axes.flat, pairs):
        runs = valid[(valid["vision_weight"] == w_v) & (valid["text_weight"] == w_t)]
        for _, run in runs.groupby("seed"):
            ax.plot(run["epoch"], run["ordinal_accuracy"], color="C0", alpha=0.35, lw=0.8)
        mean = runs.groupby("epoch")["ordinal_accuracy"].mean()
        ax.plot(mean.index, mean.values, color="C0", lw=2, marker="o", ms=3, label="ours (mean over seeds)")
        theirs = paper[(paper["vision_weight"] == w_v) & (paper["text_weight"] == w_t)]
        if with_paper and len(theirs):
            ax.plot(theirs["epoch"], theirs["mean"], color="C3", ls="--", marker="s", ms=3, label="paper")
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
    """Best valid ordinal accuracy per weight pair: ours (mean ± std over seeds) and the paper's, and the
    constant baseline."""
    table = best_valid(history)
    x = np.arange(len(table))
    fig, ax = plt.subplots(figsize=(1.1 * len(table) + 3, 3.6))
    ax.errorbar(x, table["ours best"], yerr=table["ours best ± std"].fillna(0), fmt="o", color="C0", capsize=3,
                label="ours: best epoch, mean ± std over seeds")
    ax.plot(x, table["paper best"], "s", color="C3", label="paper: best epoch")
    ax.axhline(table["constant baseline"].iloc[0], color="k", ls=":", lw=1.2,
               label=f"constant baseline {table['constant baseline'].iloc[0]:.3f} (this data)")
    ax.set_xticks(x, table.index)
    ax.set_xlabel("w_v / w_t")
    ax.set_ylabel("best valid ordinal accuracy")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title(f"Best valid accuracy per fusion weight ({history['mode'].iloc[0]}) - {label}")
    fig.tight_layout()
    return fig


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
