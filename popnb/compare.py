"""The backbone comparison (the paper's Table 2): backbone pairs from popnb.models.BACKBONES at fusion 0.75 / 0.25.

Every pair is trained by popnb.sweep.run_sweep (mode "frozen": embeddings once, heads only; "finetune": end to
end as the paper did) with the same epochs, split, labels and seeds, so the rows differ only in their backbones.
Beside accuracy, each pair's cost: parameters, and images per second of a full fine-tuning step, measured.
scale="cpu" uses the table's CPU-scale stand-ins, scale="paper" the paper-scale names (pretrained weights from
local paths: nothing is downloaded).
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from popnb.features import train_heads
from popnb.figures import model_summary, n_params, run_predictions
from popnb.models import BACKBONES, build_model
from popnb.paper import load_table1, load_table2
from popnb.reports import resolve
from popnb.sweep import DEFAULT_LR, SPLITS, beside, frozen_inputs, load_limited, run_sweep

WEIGHTS = (0.75, 0.25)  # the paper's fusion weights for Table 2
DEFAULT_PAIRS = ("vit_bert", "vgg_rnn", "vgg_bert", "coatnet_bert", "convnext_minilm")
SCALES = ("cpu", "paper")
DISPLAY = {"vit": "ViT", "vgg": "VGG", "rnn": "RNN", "bert": "BERT", "coatnet": "CoAtNet", "deit3": "DeiT III",
           "convnext": "ConvNeXt", "minilm": "MiniLM"}  # how the parts of a pair key are written in tables


def pair_names(key: str, scale: str = "cpu", image_size: int | None = None) -> dict:
    """{"vision", "text", "image_size"} of a pair of BACKBONES at a scale; image_size None: the table's own."""
    if key not in BACKBONES:
        raise ValueError(f"unknown backbone pair {key!r}; known pairs: {', '.join(BACKBONES)} (popnb.models.BACKBONES)")
    if scale not in SCALES:
        raise ValueError(f"scale must be one of {', '.join(SCALES)}, got {scale!r}")
    row = BACKBONES[key]
    if scale == "cpu":
        names = {"vision": row.vision, "text": row.text, "image_size": row.image_size}
    else:
        names = {"vision": row.paper_vision, "text": row.paper_text, "image_size": row.paper_image_size}
    return names if image_size is None else {**names, "image_size": int(image_size)}


def pair_label(key: str) -> str:
    """'ViT + BERT' from the key 'vit_bert' (an unknown part is shown as it is)."""
    return " + ".join(DISPLAY.get(part, part) for part in key.split("_"))


def pairs_table(pairs=DEFAULT_PAIRS, scale: str = "cpu", image_size: int | None = None) -> pd.DataFrame:
    """The pairs as they will run (index: pair key): label, vision, text, image_size at this scale, the paper-scale
    names, where the pair comes from and a note. Unknown keys are a ValueError listing the known ones."""
    rows = []
    for key in pairs:
        names = pair_names(key, scale, image_size)  # checks the key and the scale
        row = BACKBONES[key]
        rows.append({"pair": key, "label": pair_label(key), **names, "paper vision": row.paper_vision,
                     "paper text": row.paper_text, "source": row.source, "note": row.note})
    return pd.DataFrame(rows).set_index("pair")


def run_comparison(data_dir, pairs=DEFAULT_PAIRS, scale: str = "cpu", mode: str = "frozen", seeds=(0, 1, 2),
                   epochs: int = 5, image_size: int | None = None, batch_size: int = 16, lr: float | None = None,
                   pretrained: bool = False, checkpoints: dict | None = None, labels: str = "auto",
                   valid_fraction: float = 1 / 11, limit: int | None = None, max_steps: int | None = None,
                   max_len: int = 64, runs_dir: str | Path = "runs/04_backbones",
                   cache: str | Path | None = None) -> pd.DataFrame:
    """Every pair at 0.75 / 0.25 with every seed -> history: one row per (pair, seed, epoch, split).

    Columns: pair, vision, text, image_size, then popnb.sweep.run_sweep's (mode, vision_weight, text_weight, seed,
    epoch, split, steps, seconds, loss, ordinal_accuracy, ..., constant_baseline_accuracy).
    checkpoints: backbone name -> local weights (a timm file for vision, a save_pretrained folder for text).
    """
    checkpoints = checkpoints or {}
    pairs = list(pairs)
    if not pairs or len(set(pairs)) != len(pairs):
        raise ValueError(f"pairs must name at least one pair of BACKBONES, each once, got {pairs}")
    named = {key: pair_names(key, scale, image_size) for key in pairs}  # all names checked before any training
    frames = []
    for key in tqdm(pairs, desc="backbone pairs", unit="pair"):
        n = named[key]
        history = run_sweep(data_dir, mode, [WEIGHTS], seeds, vision=n["vision"], text=n["text"],
                            image_size=n["image_size"], epochs=epochs, batch_size=batch_size, lr=lr,
                            pretrained=pretrained, labels=labels, valid_fraction=valid_fraction, max_len=max_len,
                            limit=limit, max_steps=max_steps, vision_checkpoint=checkpoints.get(n["vision"]),
                            text_checkpoint=checkpoints.get(n["text"]), runs_dir=Path(runs_dir) / key, cache=cache)
        frames.append(history.assign(pair=key, **n))
    history = pd.concat(frames, ignore_index=True)
    first = ["pair", "vision", "text", "image_size"]
    return history[first + [c for c in history.columns if c not in first]]


# ---- the Table 2 layout ----

def summarise(history: pd.DataFrame, metric: str = "ordinal_accuracy") -> pd.DataFrame:
    """Mean and std over seeds (ddof=1; NaN for one seed) of metric per pair, split and epoch, pairs in history's order.

    Columns: pair, split, epoch, mean, std, seeds.
    """
    order = list(dict.fromkeys(history["pair"]))
    out = history.groupby(["pair", "split", "epoch"])[metric].agg(mean="mean", std="std", seeds="count").reset_index()
    out["order"] = out["pair"].map(order.index)
    return out.sort_values(["order", "split", "epoch"]).drop(columns="order").reset_index(drop=True)


def paper_summary() -> pd.DataFrame:
    """The paper's numbers per pair in summarise()'s shape (std NaN, seeds 1): VGG+RNN and VGG+BERT from Table 2,
    ViT+BERT from Table 1's 0.75 / 0.25 row. Pairs the paper reports no numbers for are absent."""
    t1 = load_table1()
    t1 = t1[(t1["vision_weight"] == WEIGHTS[0]) & (t1["text_weight"] == WEIGHTS[1])].assign(pair="vit_bert")
    t2 = load_table2()
    t2 = t2[(t2["vision_weight"] == WEIGHTS[0]) & (t2["text_weight"] == WEIGHTS[1])]
    t2 = t2.assign(pair=t2["vision"].str.lower() + "_" + t2["text"].str.lower())
    paper = pd.concat([t1, t2], ignore_index=True).rename(columns={"train_acc": "train", "valid_acc": "valid"})
    long = paper.melt(["pair", "epoch"], list(SPLITS), var_name="split", value_name="mean")
    return long.assign(std=np.nan, seeds=1)[["pair", "split", "epoch", "mean", "std", "seeds"]]


def table2(summary: pd.DataFrame, digits: int = 4) -> pd.DataFrame:
    """The paper's layout: one row per pair ('VGG + RNN'), columns 'e1 train', 'e1 valid', ... per epoch; cells
    'mean ± std' (just the mean when std is NaN)."""
    def cell(mean: float, std: float) -> str:
        return f"{mean:.{digits}f}" if np.isnan(std) else f"{mean:.{digits}f} ± {std:.{digits}f}"

    s = summary.assign(row=summary["pair"].map(pair_label),
                       column=[f"e{e} {split}" for e, split in zip(summary["epoch"], summary["split"])],
                       cell=[cell(m, d) for m, d in zip(summary["mean"], summary["std"])])
    columns = [f"e{e} {split}" for e in sorted(s["epoch"].unique()) for split in SPLITS
               if f"e{e} {split}" in set(s["column"])]
    table = s.pivot(index="row", columns="column", values="cell")
    return table.reindex(index=list(dict.fromkeys(s["row"])), columns=columns).rename_axis(index="pair", columns=None)


def table2_vs_paper(history: pd.DataFrame) -> pd.DataFrame:
    """Our Table 2 with the paper's value after each column ('' where the paper has none) and the constant
    baseline of the valid split (mean over seeds) as the last column."""
    ours = table2(summarise(history))
    paper = table2(paper_summary()).reindex(index=ours.index)
    both = beside(ours, paper).loc[ours.index]
    return both.assign(**{"constant baseline (valid)": baseline_by_pair(history).rename(pair_label).round(4)})


def baseline_by_pair(history: pd.DataFrame) -> pd.Series:
    """Per pair: the best constant prediction's ordinal accuracy on the valid split, mean over seeds."""
    valid = history[history["split"] == "valid"]
    per_seed = valid.groupby(["pair", "seed"], sort=False)["constant_baseline_accuracy"].first()
    return per_seed.groupby(level="pair", sort=False).mean()


# ---- cost ----

def build_pair(key: str, titles: list[str], scale: str = "cpu", image_size: int | None = None,
               pretrained: bool = False, checkpoints: dict | None = None):
    """-> (LateFusion at 0.75 / 0.25, tokenizer) of a pair; titles: the character vocabulary of charbert-*/gru/lstm."""
    checkpoints = checkpoints or {}
    n = pair_names(key, scale, image_size)
    return build_model(n["vision"], n["text"], WEIGHTS, image_size=n["image_size"], pretrained=pretrained,
                       titles=titles, vision_checkpoint=checkpoints.get(n["vision"]),
                       text_checkpoint=checkpoints.get(n["text"]))


def pair_cost(key: str, titles: list[str], scale: str = "cpu", image_size: int | None = None, batch_size: int = 16,
              max_len: int = 64, steps: int = 2, pretrained: bool = False, checkpoints: dict | None = None) -> dict:
    """What a pair costs: parameters per branch, its depth, and images/s of full fine-tuning steps (AdamW, forward
    and backward through both backbones), timed over `steps` steps after one warm-up step on a batch of random
    images and the first titles. titles: training titles (the character vocabulary of charbert-*/gru/lstm)."""
    if steps < 1:
        raise ValueError(f"steps must be at least 1 (timed fine-tuning steps), got {steps}")
    n = pair_names(key, scale, image_size)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model, tokenizer = build_pair(key, titles, scale, image_size, pretrained, checkpoints)
    summary = model_summary(model)
    model.to(device).train()
    ids, mask = (x.to(device) for x in tokenizer.encode((titles * batch_size)[:batch_size], max_len))
    gen = torch.Generator().manual_seed(0)
    images = torch.randn(batch_size, 3, n["image_size"], n["image_size"], generator=gen).to(device)
    y = torch.randint(0, 5, (batch_size,), generator=gen).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=DEFAULT_LR["finetune"])

    def step() -> None:
        loss = F.cross_entropy(model(images, ids, mask), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if device.type == "cuda":
            torch.cuda.synchronize()

    step()  # warm-up: lazy initialisation, optimizer state, allocator
    tick = time.perf_counter()
    for _ in range(steps):
        step()
    seconds = time.perf_counter() - tick
    return {"pair": key, **n, "vision layers": summary["vision"]["layers"], "text layers": summary["text"]["layers"],
            "vision params": summary["vision"]["params"], "text params": summary["text"]["params"],
            "params": n_params(model), "finetune images/s": steps * batch_size / seconds, "device": device.type}


def cost_table(pairs, titles: list[str], **kwargs) -> pd.DataFrame:
    """pair_cost of every pair, one row each (index: pair)."""
    rows = [pair_cost(key, titles, **kwargs) for key in tqdm(list(pairs), desc="cost per pair", unit="pair")]
    return pd.DataFrame(rows).set_index("pair")


# ---- best valid accuracy and cost per pair ----

def best_valid(history: pd.DataFrame, cost: pd.DataFrame | None = None) -> pd.DataFrame:
    """Per pair (index: pair key): the best epoch (highest mean valid accuracy over seeds) with mean, std, min and
    max over seeds there, the paper's best valid accuracy, the constant baseline; train seconds per epoch and
    images/s of this run (mean over seeds and epochs); and, given `cost` (cost_table), parameters and fine-tune
    images/s."""
    summary = summarise(history)
    paper = paper_summary().query("split == 'valid'").groupby("pair")["mean"].max()
    valid, train = history[history["split"] == "valid"], history[history["split"] == "train"]
    rows = {}
    for key, g in summary[summary["split"] == "valid"].groupby("pair", sort=False):
        best = g.loc[g["mean"].idxmax()]
        at_best = valid[(valid["pair"] == key) & (valid["epoch"] == best["epoch"])]["ordinal_accuracy"]
        runs = train[train["pair"] == key]
        rows[key] = {"label": pair_label(key), "vision": runs["vision"].iloc[0], "text": runs["text"].iloc[0],
                     "image_size": int(runs["image_size"].iloc[0]), "mode": runs["mode"].iloc[0],
                     "best epoch": int(best["epoch"]), "best valid": best["mean"], "± std": best["std"],
                     "min": at_best.min(), "max": at_best.max(), "seeds": int(best["seeds"]),
                     "paper best valid": paper.get(key, np.nan),
                     "train s/epoch": runs["seconds"].mean(), "train images/s": (runs["n"] / runs["seconds"]).mean()}
    table = pd.DataFrame.from_dict(rows, orient="index").rename_axis(index="pair")
    table["constant baseline"] = baseline_by_pair(history)
    if cost is not None:
        table = table.join(cost[["vision layers", "text layers", "params", "finetune images/s"]])
    return table


def best_valid_figure(history: pd.DataFrame, label: str = "") -> plt.Figure:
    """Bars: best valid ordinal accuracy per pair (mean over seeds at the best epoch), each seed as a dot, ± std as an
    error bar; the paper's best as a red square where it reports one; the constant baseline as a dotted line."""
    table = best_valid(history)
    valid = history[history["split"] == "valid"]
    x = np.arange(len(table))
    fig, ax = plt.subplots(figsize=(1.5 * len(table) + 2.5, 3.8))
    ax.bar(x, table["best valid"], yerr=table["± std"].fillna(0), capsize=4, color="C0", alpha=0.7,
           label="ours: best epoch, mean ± std over seeds")
    for i, (key, row) in enumerate(table.iterrows()):
        seeds = valid[(valid["pair"] == key) & (valid["epoch"] == row["best epoch"])]["ordinal_accuracy"]
        ax.plot(np.full(len(seeds), i), seeds, "o", color="k", ms=3, label="each seed" if i == 0 else None)
    ax.plot(x, table["paper best valid"], "s", color="C3", label="paper: best valid")
    level = table["constant baseline"].mean()
    ax.axhline(level, color="k", ls=":", lw=1.2, label=f"constant baseline {level:.3f}")
    ax.set_xticks(x, [f"{row['label']}\n{row['vision']}\n{row['text']}" for _, row in table.iterrows()], fontsize=7)
    ax.set_ylim(0.0, 1.0)
    ax.set_ylabel("best valid ordinal accuracy")
    ax.grid(alpha=0.3, axis="y")
    ax.legend(fontsize=7, loc="upper right")
    ax.set_title(f"Backbone pairs at 0.75 / 0.25 ({table['mode'].iloc[0]}) - {label}", fontsize=9)
    fig.tight_layout()
    return fig


# ---- predictions of one pair, for its confusion matrix ----

def frozen_predictions(data_dir, key: str, seed: int = 0, scale: str = "cpu", epochs: int = 5,
                       image_size: int | None = None, batch_size: int = 16, lr: float | None = None,
                       pretrained: bool = False, checkpoints: dict | None = None, labels: str = "auto",
                       limit: int | None = None, max_steps: int | None = None, max_len: int = 64,
                       valid_fraction: float = 1 / 11, cache: str | Path | None = None) -> pd.DataFrame:
    """Valid-split predictions of one frozen-mode run of run_comparison (same embeddings from the cache, same
    heads, seeds and batches) after its last epoch: columns video_id, y_true, y_pred, p0..p4."""
    checkpoints = checkpoints or {}
    n = pair_names(key, scale, image_size)
    data = load_limited(data_dir, limit)
    v, t, y, score, train_idx, valid_idx = frozen_inputs(
        data, seed, n["vision"], n["text"], n["image_size"], pretrained, labels, valid_fraction, max_len,
        checkpoints.get(n["vision"]), checkpoints.get(n["text"]), cache)
    heads, _ = train_heads(v, t, y, score, train_idx, valid_idx, WEIGHTS, epochs=epochs,
                           lr=DEFAULT_LR["frozen"] if lr is None else lr, batch_size=batch_size, seed=seed,
                           max_steps=max_steps, show=False)
    with torch.inference_mode():
        probs = torch.softmax(heads(torch.as_tensor(v[valid_idx]), torch.as_tensor(t[valid_idx])), dim=1).numpy()
    out = pd.DataFrame({"video_id": data.videos["video_id"].iloc[valid_idx].to_numpy(), "y_true": y[valid_idx],
                        "y_pred": probs.argmax(axis=1)})
    return out.join(pd.DataFrame(probs, columns=[f"p{k}" for k in range(probs.shape[1])]))


def finetune_run_dir(runs_dir, key: str, seed: int = 0, **expect) -> Path:
    """The run folder of (pair, seed) under runs_dir/<pair>/ that run_comparison(mode="finetune") trained.

    expect: TrainConfig parameters the run must have (vision, text, image_size, epochs, limit, ...); the folder
    whose config.json has them all, the newest when several do.
    """
    def params(folder: Path) -> dict:
        return json.loads((folder / "config.json").read_text(encoding="utf-8"))["params"]

    runs = [p for p in (Path(runs_dir) / key).glob(f"vw{WEIGHTS[0]:g}-tw{WEIGHTS[1]:g}-seed{seed}-*")
            if (p / "config.json").is_file() and (p / "checkpoint.pt").is_file()
            and all(params(p).get(k) == v for k, v in expect.items())]
    if not runs:
        raise FileNotFoundError(f"no finetune run of {key} with seed {seed} and {expect} in {Path(runs_dir) / key}: "
                                "run run_comparison(mode='finetune') with these settings first")
    return max(runs, key=lambda p: (p / "checkpoint.pt").stat().st_mtime)


def pair_predictions(data_dir, key: str, seed: int = 0, mode: str = "frozen", scale: str = "cpu",
                     image_size: int | None = None, runs_dir: str | Path = "runs/04_backbones",
                     **settings) -> pd.DataFrame:
    """Valid-split predictions (video_id, y_true, y_pred, p0..p4) of one (pair, seed) run of run_comparison, after
    its last epoch. settings: the other arguments given to run_comparison (epochs, limit, lr, ...). Frozen mode
    retrains the heads from the cached embeddings (deterministic: the same heads); finetune mode reads the run
    folder."""
    if mode == "finetune":
        expect = {**pair_names(key, scale, image_size), **{k: v for k, v in settings.items()
                                                          if k in ("epochs", "limit", "max_steps", "batch_size")}}
        return run_predictions(finetune_run_dir(resolve(runs_dir), key, seed, **expect))
    return frozen_predictions(data_dir, key, seed, scale, image_size=image_size, **settings)


def mode_note(mode: str, pretrained: bool, checkpoints: dict | None = None) -> str:
    """One sentence saying how the table's numbers were made (shown beside every table of the notebook)."""
    loaded = f" ({', '.join(sorted(checkpoints))}: weights from a local checkpoint)" if checkpoints else ""
    if mode == "finetune":
        start = "pretrained weights" if pretrained else "random initial weights"
        return f"mode finetune: every weight trained end to end from {start}{loaded}, as in the paper"
    weights = ("pretrained weights" if pretrained else
               "RANDOM initial weights, never trained: the rows compare what a trained head can read from each "
               "architecture's random features, not trained backbones")
    return f"mode frozen: backbones frozen with {weights}{loaded}; only the branch FCs and the fusion head are trained"
