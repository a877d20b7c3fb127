"""The backbone comparison (the paper's Table 2): backbone pairs from popnb.models.BACKBONES at fusion 0.75 / 0.25.

Every pair is trained by popnb.analysis.sweep.run_sweep (mode "frozen": embeddings once, heads only; "finetune":
end to end as the paper did) from one TrainConfig, with the same epochs, split, labels and seeds, so the rows
differ only in their backbones.
Beside accuracy, each pair's cost: parameters, and images per second of a full fine-tuning step, measured.
scale="cpu" uses the table's CPU-scale stand-ins, scale="paper" the paper-scale names (pretrained weights from
local paths: nothing is downloaded).
"""
from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from popnb.analysis import tables
from popnb.analysis.predictions import frozen_predictions, run_predictions
from popnb.analysis.sweep import DEFAULT_LR, finetune_dir, run_sweep, sweep_config
from popnb.models import BACKBONES, build_model
from popnb.models.summary import model_summary, n_params
from popnb.paper import load_table1, load_table2
from popnb.paths import resolve
from popnb.train.loop import CHECKPOINT, TrainConfig

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


def pair_settings(key: str, scale: str = "cpu", image_size: int | None = None,
                  checkpoints: dict | None = None) -> dict:
    """The TrainConfig fields of a pair: pair_names and the local weights of its backbones from checkpoints
    (backbone name -> a timm file for vision, a save_pretrained folder for text)."""
    n = pair_names(key, scale, image_size)
    checkpoints = checkpoints or {}
    return {**n, "vision_checkpoint": checkpoints.get(n["vision"]), "text_checkpoint": checkpoints.get(n["text"])}


def pair_config(data_dir, key: str, seed: int = 0, mode: str = "frozen", scale: str = "cpu",
                image_size: int | None = None, checkpoints: dict | None = None, **settings) -> TrainConfig:
    """The TrainConfig of one (pair, seed) run of run_comparison with these settings."""
    base = sweep_config(data_dir, mode, **settings, **pair_settings(key, scale, image_size, checkpoints))
    return replace(base, fusion_weights=WEIGHTS, seed=seed)


def run_comparison(data_dir, pairs=DEFAULT_PAIRS, scale: str = "cpu", mode: str = "frozen", seeds=(0, 1, 2),
                   image_size: int | None = None, checkpoints: dict | None = None,
                   runs_dir: str | Path = "runs/04_backbones", cache: str | Path | None = None,
                   **settings) -> pd.DataFrame:
    """Every pair at 0.75 / 0.25 with every seed -> history: one row per (pair, seed, epoch, split).

    settings: TrainConfig fields shared by every pair (epochs, batch_size, lr, pretrained, labels, limit,
    max_steps, max_len, ...), as popnb.analysis.sweep.run_sweep takes them; image_size None: each pair's own.
    Columns: pair, vision, text, image_size, then run_sweep's (mode, vision_weight, text_weight, seed, epoch,
    split, steps, seconds, loss, ordinal_accuracy, ..., constant_baseline_accuracy).
    checkpoints: backbone name -> local weights (a timm file for vision, a save_pretrained folder for text).
    """
    pairs = list(pairs)
    if not pairs or len(set(pairs)) != len(pairs):
        raise ValueError(f"pairs must name at least one pair of BACKBONES, each once, got {pairs}")
    named = {key: pair_settings(key, scale, image_size, checkpoints) for key in pairs}  # checked before training
    frames = []
    for key in tqdm(pairs, desc="backbone pairs", unit="pair"):
        history = run_sweep(data_dir, mode, [WEIGHTS], seeds, runs_dir=Path(runs_dir) / key, cache=cache,
                            **settings, **named[key])
        frames.append(history.assign(pair=key, **pair_names(key, scale, image_size)))
    history = pd.concat(frames, ignore_index=True)
    first = ["pair", "vision", "text", "image_size"]
    return history[first + [c for c in history.columns if c not in first]]


# ---- the Table 2 layout ----

ROWS = tables.Rows(("pair",), pair_label, "pair")


def summarise(history: pd.DataFrame, metric: str = "ordinal_accuracy") -> pd.DataFrame:
    """tables.summarise per pair: columns pair, split, epoch, mean, std, seeds."""
    return tables.summarise(history, ROWS, metric)


def paper_summary() -> pd.DataFrame:
    """The paper's numbers per pair in summarise()'s shape (std NaN, seeds 1): VGG+RNN and VGG+BERT from Table 2,
    ViT+BERT from Table 1's 0.75 / 0.25 row. Pairs the paper reports no numbers for are absent."""
    t1 = load_table1()
    t1 = t1[(t1["vision_weight"] == WEIGHTS[0]) & (t1["text_weight"] == WEIGHTS[1])].assign(pair="vit_bert")
    t2 = load_table2()
    t2 = t2[(t2["vision_weight"] == WEIGHTS[0]) & (t2["text_weight"] == WEIGHTS[1])]
    t2 = t2.assign(pair=t2["vision"].str.lower() + "_" + t2["text"].str.lower())
    return tables.paper_summary(pd.concat([t1, t2], ignore_index=True), ROWS)


def table2(summary: pd.DataFrame, digits: int = 4) -> pd.DataFrame:
    """The paper's layout: one row per pair ('VGG + RNN'), columns 'e1 train', 'e1 valid', ... per epoch; cells
    'mean ± std' (just the mean when std is NaN)."""
    return tables.layout(summary, ROWS, digits)


def table2_vs_paper(history: pd.DataFrame) -> pd.DataFrame:
    """Our Table 2 with the paper's value after each column ('' where the paper has none) and the constant
    baseline of the valid split (mean over seeds) as the last column."""
    ours = table2(summarise(history))
    paper = table2(paper_summary()).reindex(index=ours.index)
    both = tables.beside(ours, paper).loc[ours.index]
    baseline = tables.baselines(history, ROWS).rename(pair_label).round(4)
    return both.assign(**{"constant baseline (valid)": baseline})


# ---- cost ----

def build_pair(key: str, titles: list[str], scale: str = "cpu", image_size: int | None = None,
               pretrained: bool = False, checkpoints: dict | None = None):
    """-> (LateFusion at 0.75 / 0.25, tokenizer) of a pair; titles: the character vocabulary of charbert-*/gru/lstm."""
    s = pair_settings(key, scale, image_size, checkpoints)
    return build_model(s["vision"], s["text"], WEIGHTS, image_size=s["image_size"], pretrained=pretrained,
                       titles=titles, vision_checkpoint=s["vision_checkpoint"], text_checkpoint=s["text_checkpoint"])


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
    best = tables.best_epochs(summarise(history), ROWS).set_index("pair")
    at_best = tables.at_best_epochs(history, ROWS)
    paper = paper_summary().query("split == 'valid'").groupby("pair")["mean"].max()
    train = history[history["split"] == "train"].assign(rate=lambda d: d["n"] / d["seconds"])
    train = train.groupby("pair", sort=False)
    table = train[["vision", "text", "image_size", "mode"]].first()
    table.insert(0, "label", table.index.map(pair_label))
    table = table.assign(**{"best epoch": best["epoch"], "best valid": best["mean"], "± std": best["std"],
                            "min": at_best.min(), "max": at_best.max(), "seeds": best["seeds"],
                            "paper best valid": paper, "train s/epoch": train["seconds"].mean(),
                            "train images/s": train["rate"].mean(),
                            "constant baseline": tables.baselines(history, ROWS)})
    if cost is not None:
        table = table.join(cost[["vision layers", "text layers", "params", "finetune images/s"]])
    return table


def best_valid_figure(history: pd.DataFrame, label: str = "") -> plt.Figure:
    """tables.best_valid_figure per pair: ours (mean ± std over seeds, each seed), the paper's where it reports
    one, and the constant baseline."""
    table = best_valid(history)
    seeds = [values.to_numpy() for _, values in tables.at_best_epochs(history, ROWS)]
    ticks = [f"{row['label']}\n{row['vision']}\n{row['text']}" for _, row in table.iterrows()]
    title = f"Backbone pairs at 0.75 / 0.25 ({table['mode'].iloc[0]}) - {label}"
    return tables.best_valid_figure(ticks, table["best valid"], table["± std"], seeds, table["paper best valid"],
                                    table["constant baseline"], title)


# ---- predictions of one pair, for its confusion matrix ----

def pair_predictions(data_dir, key: str, seed: int = 0, mode: str = "frozen", scale: str = "cpu",
                     image_size: int | None = None, checkpoints: dict | None = None,
                     runs_dir: str | Path = "runs/04_backbones", cache: str | Path | None = None,
                     **settings) -> pd.DataFrame:
    """Valid-split predictions (video_id, y_true, y_pred, p0..p4) of one (pair, seed) run of run_comparison, after
    its last epoch. settings: the other arguments given to run_comparison (epochs, limit, lr, ...). Frozen mode
    retrains the heads from the cached embeddings (deterministic: the same heads); finetune mode reads the run
    folder that run_comparison trained with these settings."""
    cfg = pair_config(data_dir, key, seed, mode, scale, image_size, checkpoints, **settings)
    if mode == "frozen":
        return frozen_predictions(cfg, cache)
    run = finetune_dir(resolve(runs_dir) / key, cfg)
    if not (run / CHECKPOINT).is_file():
        raise FileNotFoundError(f"no finetune run of {key} with seed {seed} and these settings ({run.name}) in "
                                f"{run.parent}: run run_comparison(mode='finetune') with them first")
    return run_predictions(run)


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
