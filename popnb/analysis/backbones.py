"""The backbone comparison (the paper's Table 2): backbone pairs from popnb.models.BACKBONES at fusion 0.75 / 0.25,
the pretrained pair of popnb.encoders (ENCODER_PAIRS, frozen mode), and the reviewer's baselines (popnb.baselines).

Every pair is trained by popnb.analysis.sweep.run_sweep (mode "frozen": embeddings once, heads only; "finetune":
end to end as the paper did) from one TrainConfig, with the same epochs, split, labels and seeds, so the rows
differ only in their backbones. The baselines are scored by k-fold cross-validation of the same split kind, once
per seed, on the same videos, classes and score (run_baselines).
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
from popnb.baselines import evaluate_baselines, score_row
from popnb.encoders import ENCODERS, encode
from popnb.labels import LabelScheme
from popnb.models import BACKBONES, build_model
from popnb.models.summary import model_summary, n_params
from popnb.paper import load_table1, load_table2
from popnb.paths import resolve
from popnb.splits import cross_validate, summarize
from popnb.train.loop import CHECKPOINT, TrainConfig, load_limited
from popnb.train.pretrained import (DEFAULTS, branch_weights, dataset_branches, default_metadata, fit_recipe,
                                    recipe_metrics)

WEIGHTS = (0.75, 0.25)  # the paper's fusion weights for Table 2
DEFAULT_PAIRS = ("vit_bert", "vgg_rnn", "vgg_bert", "coatnet_bert", "convnext_minilm")
# Pairs of pretrained encoders of popnb.encoders: embeddings from the feature store, heads only (mode "frozen")
ENCODER_PAIRS = {"lite0_e5": ("tf_efficientnet_lite0", "e5-small")}
SCALES = ("cpu", "paper")
# How the parts of a pair key are written in tables
DISPLAY = {"vit": "ViT", "vgg": "VGG", "rnn": "RNN", "bert": "BERT", "coatnet": "CoAtNet", "deit3": "DeiT III",
           "convnext": "ConvNeXt", "minilm": "MiniLM", "lite0": "EfficientNet-Lite0", "e5": "e5-small"}
# How the rows of popnb.baselines.BASELINES are written in Table 2
BASELINE_LABELS = {"constant": "baseline: constant (train median)", "followers": "baseline: followers only",
                   "title_tfidf": "baseline: title char TF-IDF + ridge",
                   "lightgbm": "baseline: LightGBM (interpretable features + followers)",
                   "recipe": "popnb default recipe (ridge: EfficientNet-Lite0 + e5-small + followers)"}


def pair_names(key: str, scale: str = "cpu", image_size: int | None = None) -> dict:
    """{"vision", "text", "image_size"} of a pair of BACKBONES at a scale; image_size None: the table's own. A pair
    of ENCODER_PAIRS is the same at both scales, at its cover encoder's own input size ('256x144': W x H)."""
    if key not in BACKBONES and key not in ENCODER_PAIRS:
        raise ValueError(f"unknown backbone pair {key!r}; known pairs: {', '.join([*BACKBONES, *ENCODER_PAIRS])} "
                         "(popnb.models.BACKBONES, popnb.analysis.backbones.ENCODER_PAIRS)")
    if scale not in SCALES:
        raise ValueError(f"scale must be one of {', '.join(SCALES)}, got {scale!r}")
    if key in ENCODER_PAIRS:
        vision, text = ENCODER_PAIRS[key]
        width, height = ENCODERS[vision].size
        return {"vision": vision, "text": text, "image_size": f"{width}x{height}"}
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
        if key in ENCODER_PAIRS:
            about = {"paper vision": names["vision"], "paper text": names["text"], "source": "popnb.encoders",
                     "note": f"pretrained and frozen: {ENCODERS[names['vision']].weights}; "
                             f"{ENCODERS[names['text']].weights}"}
        else:
            row = BACKBONES[key]
            about = {"paper vision": row.paper_vision, "paper text": row.paper_text, "source": row.source,
                     "note": row.note}
        rows.append({"pair": key, "label": pair_label(key), **names, **about})
    return pd.DataFrame(rows).set_index("pair")


def pair_settings(key: str, scale: str = "cpu", image_size: int | None = None,
                  checkpoints: dict | None = None) -> dict:
    """The TrainConfig fields of a pair: pair_names and the local weights of its backbones from checkpoints
    (backbone name -> a timm file for vision, a save_pretrained folder for text); a pair of ENCODER_PAIRS: its
    names alone (weights and input size are the encoders' own)."""
    n = pair_names(key, scale, image_size)
    if key in ENCODER_PAIRS:
        return {"vision": n["vision"], "text": n["text"]}
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

    settings: TrainConfig fields shared by every pair (epochs, batch_size, lr, pretrained, labels, split, limit,
    max_steps, max_len, ...), as popnb.analysis.sweep.run_sweep takes them; image_size None: each pair's own.
    Columns: pair, vision, text, image_size, then run_sweep's (mode, vision_weight, text_weight, seed, epoch, split,
    steps, seconds, loss, ordinal_accuracy, ..., spearman_expected, constant_baseline_accuracy).
    checkpoints: backbone name -> local weights (a timm file for vision, a save_pretrained folder for text).
    """
    pairs = list(pairs)
    if not pairs or len(set(pairs)) != len(pairs):
        raise ValueError(f"pairs must name at least one pair of BACKBONES, each once, got {pairs}")
    named = {key: pair_settings(key, scale, image_size, checkpoints) for key in pairs}  # checked before training
    frozen_only = [key for key in pairs if key in ENCODER_PAIRS]
    if mode != "frozen" and frozen_only:
        raise ValueError(f"{', '.join(frozen_only)}: frozen encoders of popnb.encoders, trained in mode='frozen' only")
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


def table2_vs_paper(history: pd.DataFrame, baselines: pd.DataFrame | None = None) -> pd.DataFrame:
    """Our Table 2 with the paper's value after each column ('' where the paper has none), then best_valid's
    best valid accuracy and Spearman at that epoch ('mean ± std' over seeds) and the constant baseline of the
    valid split (mean over seeds). baselines (run_baselines): their rows below the pairs', per-epoch cells ''."""
    ours = table2(summarise(history))
    paper = table2(paper_summary()).reindex(index=ours.index)
    both = tables.beside(ours, paper).loc[ours.index]
    best = best_valid(history, baselines=baselines).set_index("label")
    cells = {"best valid": ("best valid", "± std"), "spearman (best epoch)": ("spearman", "spearman ± std")}
    summary = pd.DataFrame({name: [tables.cell(m, s) for m, s in zip(best[mean], best[std])]
                            for name, (mean, std) in cells.items()}, index=best.index)
    summary["constant baseline (valid)"] = best["constant baseline"].round(4)
    return both.reindex(best.index).fillna("").join(summary).rename_axis(index=ours.index.name)


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
    """pair_cost of every pair of BACKBONES, one row each (index: pair); the frozen encoders of ENCODER_PAIRS are
    not fine-tuned here, so they have no row."""
    keys = [key for key in pairs if key not in ENCODER_PAIRS]
    rows = [pair_cost(key, titles, **kwargs) for key in tqdm(keys, desc="cost per pair", unit="pair")]
    return pd.DataFrame(rows).set_index("pair")


# ---- the reviewer's baselines, through the same protocol ----

def baseline_features(data, faces: bool = False, ocr: bool = False, cache: str | Path | None = None) -> pd.DataFrame:
    """LightGBM's interpretable features (index video_id): the numeric columns of title-stats, of cover-stats when
    every video has a cover, and of cover-faces (~10 ms a cover) and cover-ocr (~0.5 s a cover) when asked; each
    computed once, in the feature store."""
    wanted = {"title-stats": True, "cover-stats": data.has_covers, "cover-faces": faces, "cover-ocr": ocr}
    parts = [encode(name, data, cache=cache).values.select_dtypes(["number", "bool"])
             for name, use in wanted.items() if use]
    return pd.concat(parts, axis=1).set_axis(pd.Index(data.videos["video_id"], name="video_id"))


def run_baselines(data_dir, seeds=(0, 1, 2), split: str = "random", k: int = 5, labels: str = "auto",
                  limit: int | None = None, faces: bool = False, ocr: bool = False,
                  cache: str | Path | None = None, recipe: bool = False) -> pd.DataFrame:
    """popnb.baselines.evaluate_baselines once per seed -> one row per (baseline, seed): baseline, seed, spearman,
    mae, ordinal_accuracy (means over the folds; their stds), constant_ordinal_accuracy, n_folds.

    The videos are the heads' (the first `limit`); the folds are k-fold CV of this split kind shuffled by the seed
    (time: the same k expanding-window folds for every seed); the target is the label scheme `labels` fitted on
    these videos, so the classes and the Spearman score are the heads' (auto: paper, or log_views). LightGBM reads
    baseline_features (faces, ocr) + followers. recipe: also popnb's default recipe (recipe_scores) on the same
    folds, as the row "recipe"."""
    data = load_limited(data_dir, limit)
    target = LabelScheme.fit(data.videos, labels).kind
    features = baseline_features(data, faces, ocr, cache)
    frames = []
    for seed in tqdm(list(seeds), desc="baselines", unit="seed"):
        frames.append(evaluate_baselines(data.videos, features, split, k, repeats=1, seed=seed, target=target)
                      .assign(seed=seed))
        if recipe:
            frames.append(recipe_scores(data, split, k, seed, target).assign(seed=seed))
    scores = pd.concat(frames, ignore_index=True)
    return scores[["baseline", "seed", *[c for c in scores.columns if c not in ("baseline", "seed")]]]


def recipe_scores(data, split: str = "random", k: int = 5, seed: int = 0, target: str = "log_views") -> pd.DataFrame:
    """popnb's default recipe (popnb.train.pretrained: ridge heads on EfficientNet-Lite0 cover and e5-small title
    embeddings and log followers, fused 0.25 / 0.75 / 1; title and followers alone without covers) fitted on each
    train fold of evaluate_baselines' folds (cv_folds(split, k, seed)) -> one row in its columns, "recipe"."""
    params = {**DEFAULTS, "metadata": default_metadata(data.videos, DEFAULTS["metadata"])}
    if not data.has_covers:
        params["fusion_weights"] = (0.0, DEFAULTS["fusion_weights"][1])
    branches, weights, videos = dataset_branches(data, params), branch_weights(params), data.videos

    def fit_evaluate(train: pd.DataFrame, valid: pd.DataFrame) -> dict:
        train_idx, valid_idx = videos.index.get_indexer(train.index), videos.index.get_indexer(valid.index)
        fitted, model = fit_recipe(videos, branches, train_idx, target, weights, seed)
        return recipe_metrics(fitted, model, valid, {b: x[valid_idx] for b, x in branches.items()})

    return pd.DataFrame([score_row("recipe", summarize(cross_validate(videos, fit_evaluate, split, k, 1, seed)))])


def baseline_rows(scores: pd.DataFrame) -> pd.DataFrame:
    """run_baselines' scores in best_valid's columns, one row per baseline (index: its name): ordinal accuracy
    mean over seeds, its std over the folds (mean over seeds: one fold is one valid split, as one seed of a pair
    is), min and max of the seeds' means, seeds, Spearman mean and std (the same way), the constant baseline."""
    by = scores.groupby("baseline", sort=False)
    accuracy, spearman, folds = by["ordinal_accuracy"], by["spearman"], by["n_folds"].first()
    return pd.DataFrame({"label": folds.index.map(BASELINE_LABELS), "mode": folds.map("{}-fold CV".format),
                         "best valid": accuracy.mean(), "± std": by["ordinal_accuracy_std"].mean(),
                         "min": accuracy.min(), "max": accuracy.max(), "seeds": accuracy.count(),
                         "spearman": spearman.mean(), "spearman ± std": by["spearman_std"].mean(),
                         "constant baseline": by["constant_ordinal_accuracy"].mean()})


# ---- best valid accuracy and cost per pair ----

def best_valid(history: pd.DataFrame, cost: pd.DataFrame | None = None,
               baselines: pd.DataFrame | None = None) -> pd.DataFrame:
    """Per pair (index: pair key): the best epoch (highest mean valid accuracy over seeds) with mean, std, min and
    max over seeds there, Spearman there (mean and std over seeds), the paper's best valid accuracy, the constant
    baseline; train seconds per epoch and images/s of this run (mean over seeds and epochs); and, given `cost`
    (cost_table), parameters and fine-tune images/s. baselines (run_baselines): one row each below the pairs,
    its scores in the same columns (no epoch: nothing picked on the valid rows), the other columns empty."""
    best = tables.best_epochs(summarise(history), ROWS).set_index("pair")
    at_best = tables.at_best_epochs(history, ROWS)
    spearman = tables.at_best_epochs(history, ROWS, tables.SPEARMAN)
    paper = paper_summary().query("split == 'valid'").groupby("pair")["mean"].max()
    train = history[history["split"] == "train"].assign(rate=lambda d: d["n"] / d["seconds"])
    train = train.groupby("pair", sort=False)
    table = train[["vision", "text", "image_size", "mode"]].first()
    table.insert(0, "label", table.index.map(pair_label))
    table = table.assign(**{"best epoch": best["epoch"], "best valid": best["mean"], "± std": best["std"],
                            "min": at_best.min(), "max": at_best.max(), "seeds": best["seeds"],
                            "spearman": spearman.mean(), "spearman ± std": spearman.std(),
                            "paper best valid": paper, "train s/epoch": train["seconds"].mean(),
                            "train images/s": train["rate"].mean(),
                            "constant baseline": tables.baselines(history, ROWS)})
    if cost is not None:
        table = table.join(cost[["vision layers", "text layers", "params", "finetune images/s"]])
    if baselines is not None:  # their empty cells keep the integer columns integers (Int64), not floats
        ints = {c: "Int64" for c in table.columns if pd.api.types.is_integer_dtype(table[c])}
        table = pd.concat([table, baseline_rows(baselines)]).astype(ints)
    return table.rename_axis(index="pair")


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


def mode_note(mode: str, pretrained: bool, checkpoints: dict | None = None, pairs=()) -> str:
    """One sentence saying how the table's numbers were made (shown beside every table of the notebook)."""
    loaded = f" ({', '.join(sorted(checkpoints))}: weights from a local checkpoint)" if checkpoints else ""
    if mode == "finetune":
        start = "pretrained weights" if pretrained else "random initial weights"
        return f"mode finetune: every weight trained end to end from {start}{loaded}, as in the paper"
    weights = ("pretrained weights" if pretrained else
               "RANDOM initial weights, never trained: the rows compare what a trained head can read from each "
               "architecture's random features, not trained backbones")
    encoders = "".join(f"; {pair_label(key)}: pretrained encoders of popnb.encoders, frozen" for key in pairs
                       if key in ENCODER_PAIRS)
    return (f"mode frozen: backbones frozen with {weights}{loaded}{encoders}; only the branch FCs and the fusion "
            "head are trained")
