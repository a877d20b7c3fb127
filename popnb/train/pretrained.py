"""The default recipe: a ridge late fusion over frozen pretrained encoders, from a dataset folder to a
self-contained run folder, and that run folder in use (evaluate, predict, score videos for the app).

Branches: cover = `vision` embeddings (tf_efficientnet_lite0: [N, 1280]), title = `text` embeddings (e5-small:
[N, 384]), metadata = log1p of the `metadata` columns (default followers; unknown -> the train median). Each is
a ridge regression of the target (popnb.targets.Target, fitted on the train split), fused by the paper's weighted
sum with fusion_weights (w_v, w_t), the metadata branch at weight 1 (popnb.models.ridge_fusion):
    score = y_mean + w_v (p_cover - y_mean) + w_t (p_title - y_mean) + (p_metadata - y_mean)
Chosen by uploader-grouped 5-fold CV x 3 repeats on the 570 real covers (issue 13).

Run folder: config.json (params, recipe, each encoder's weights and package versions, package versions),
target.json, heads.npz + heads.json, history.csv (one epoch: a train and a valid row), metrics.json (the shape of
popnb.train.loop.summarise).
"""
from __future__ import annotations

import json
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from popnb.data import load_dataset
from popnb.encoders import encode, get_encoder, get_spec
from popnb.encoders.packages import versions as package_versions
from popnb.labels import N_CLASSES, auto_kind
from popnb.metrics import score_metrics, spearman_expected
from popnb.models.fusion import check_fusion
from popnb.models.metadata import log_values
from popnb.models.ridge_fusion import RidgeLateFusion, expected_class, ordinal_decision
from popnb.splits import split, uploader_groups
from popnb.targets import Target
from popnb.versions import PACKAGES, versions
from popnb.train.runfolder import CONFIG, METRICS, check_run_dir, load_limited, summarise, write_progress

RECIPE = "pretrained-ridge-fusion"
TARGET, HEADS = "target.json", "heads.npz"
RUN_FILES = (CONFIG, TARGET, HEADS, "heads.json")
DEFAULTS = {"vision": "tf_efficientnet_lite0", "text": "e5-small", "fusion_weights": (0.25, 0.75),
            "metadata": ("followers",), "split": "random", "target": "auto", "valid_fraction": 1 / 11, "seed": 0,
            "limit": None}
ENCODER_PARAM = {"cover": "vision", "title": "text"}  # branch -> the parameter naming its encoder


def recipe_params(cfg) -> dict:
    """cfg's recipe parameters (DEFAULTS for those cfg lacks or leaves at None; a TrainConfig's `labels` is the
    target) in config.json's types; data_dir and out absolute."""
    given = {name: getattr(cfg, name, None) for name in DEFAULTS} | {"target": getattr(cfg, "labels", None)}
    # (the target is TrainConfig's --labels: one option names what is predicted, end to end or not)
    params = {name: DEFAULTS[name] if given[name] is None else given[name] for name in DEFAULTS}
    check_fusion(params["fusion_weights"], "weighted")
    params |= {"data_dir": str(Path(cfg.data_dir).resolve()), "out": str(Path(cfg.out).resolve())}
    return json.loads(json.dumps(params))


def branch_weights(params: dict) -> dict[str, float]:
    """{branch: fusion weight}: cover w_v, title w_t, metadata 1 (0 without metadata columns)."""
    w_v, w_t = params["fusion_weights"]
    return {"cover": float(w_v), "title": float(w_t), "metadata": 1.0 if params["metadata"] else 0.0}


def target_kind(videos: pd.DataFrame, kind: str) -> str:
    """kind; "auto": "paper" when every count the paper's score weighs is known (popnb.labels' auto), else log_views."""
    return auto_kind(videos)[0] if kind == "auto" else kind


def encoder_records(params: dict) -> dict[str, dict]:
    """{branch: its encoder's name, weights, package versions and input size} for the weighted cover / title."""
    weights = branch_weights(params)
    records = {}
    for branch, param in ENCODER_PARAM.items():
        if weights[branch]:
            spec = get_spec(params[param])
            records[branch] = {"encoder": spec.name, "weights": spec.weights,
                               "packages": package_versions(spec.packages), "size": spec.size}
    return json.loads(json.dumps(records))


def encoders_line(records: dict, params: dict) -> str:
    """The log line naming the encoders, their weights and packages, the metadata and the fusion weights."""
    used = [f"{branch} {r['encoder']} ({r['weights']}; {', '.join(f'{k} {v}' for k, v in r['packages'].items())})"
            for branch, r in records.items()]
    w_v, w_t = params["fusion_weights"]
    return (f"encoders: {', '.join(used)}; metadata {', '.join(params['metadata']) or 'none'}; "
            f"fusion weights {w_v:g} cover, {w_t:g} title")


def metadata_logs(videos: pd.DataFrame, columns) -> np.ndarray:
    """log1p of each metadata column, float64 [N, M], NaN where unknown; ValueError naming an absent column."""
    return np.stack([log_values(videos, c) for c in columns], axis=1)


def dataset_branches(data, params: dict) -> dict[str, np.ndarray]:
    """Each weighted branch's features for every video of data (a popnb.data.Dataset): the metadata logs (first: a
    missing column fails before any encoding), the embeddings from the feature store (computed once)."""
    weights = branch_weights(params)
    branches = {"metadata": metadata_logs(data.videos, params["metadata"])} if params["metadata"] else {}
    return branches | {b: encode(params[p], data).values for b, p in ENCODER_PARAM.items() if weights[b]}


def check_known(train: pd.DataFrame, columns) -> None:
    """ValueError naming the metadata columns unknown (NA) in every train row: no median to fill with."""
    unknown = [c for c in columns if train[c].isna().all()]
    if unknown:
        raise ValueError(f"metadata column(s) {', '.join(unknown)} unknown (NA) for every train video: nothing to "
                         "fit; leave them out of metadata")


def oof_groups(videos: pd.DataFrame) -> np.ndarray | None:
    """Uploader ids [N] (popnb.splits.uploader_groups) when the data names uploaders, else None."""
    if "uploader" not in videos.columns or videos["uploader"].isna().all():
        return None
    return uploader_groups(videos)


def fit_recipe(videos: pd.DataFrame, branches: dict, train_idx, kind: str, weights: dict[str, float],
               seed: int = 0) -> tuple[Target, RidgeLateFusion]:
    """The target and the model, both fitted on the train rows (positions train_idx) only."""
    train = videos.iloc[train_idx]
    target = Target.fit(train, kind)
    model = RidgeLateFusion(weights, seed=seed).fit({b: x[train_idx] for b, x in branches.items()},
                                                     target.score(train), target.thresholds, oof_groups(train))
    return target, model


def outputs(model: RidgeLateFusion, branches: dict) -> dict[str, np.ndarray]:
    """score [N] (the target's units), probabilities [N, 5], predicted_class [N] (the ordinal-accuracy decision),
    expected_class [N]."""
    score = model.score(branches)
    probs = model.distribution(score)
    return {"score": score, "probabilities": probs, "predicted_class": ordinal_decision(probs),
            "expected_class": expected_class(probs)}


def recipe_metrics(target: Target, model: RidgeLateFusion, videos: pd.DataFrame, branches: dict) -> dict:
    """loss (mean squared error of the score), popnb.metrics.score_metrics (Spearman and MAE against the true
    target; class metrics of the predicted classes, constant baseline included) and spearman_expected."""
    truth, out = target.score(videos), outputs(model, branches)
    return {"loss": float(np.mean((truth - out["score"]) ** 2)),
            **score_metrics(truth, out["score"], target.bin(truth), out["predicted_class"]),
            "spearman_expected": spearman_expected(out["probabilities"], truth)}


def history_rows(target, model, videos, branches, train_idx, valid_idx, fit_seconds: float) -> list[dict]:
    """history.csv's rows: epoch 1, train then valid; seconds: fitting (train), scoring (valid)."""
    rows = []
    for name, idx in (("train", train_idx), ("valid", valid_idx)):
        tick = time.perf_counter()
        metrics = recipe_metrics(target, model, videos.iloc[idx], {b: x[idx] for b, x in branches.items()})
        seconds = fit_seconds if name == "train" else time.perf_counter() - tick
        rows.append({"epoch": 1, "split": name, "steps": 1, "seconds": seconds, **metrics})
    return rows


def write_run(out: Path, params: dict, target: Target, model: RidgeLateFusion, records: dict, extra: dict) -> None:
    """target.json, heads.npz + heads.json, then config.json (last: it marks a run folder)."""
    out.mkdir(parents=True, exist_ok=True)
    target.save(out / TARGET)
    model.save(out / HEADS)
    config = {"recipe": RECIPE, "params": params, "seed": params["seed"], "data_dir": params["data_dir"],
              "label_kind": target.kind, "label_scheme": target.describe(), "encoders": records, **extra,
              "versions": versions((*PACKAGES, "scipy")),
              "created": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    (out / CONFIG).write_text(json.dumps(config, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def default_metadata(videos: pd.DataFrame, columns) -> list[str]:
    """columns; None (left to the recipe): followers when the data knows some."""
    if columns is not None:
        return list(columns)
    return ["followers"] if "followers" in videos and videos["followers"].notna().any() else []


def train_pretrained(cfg, resume: bool = False) -> dict:
    """Fit the recipe on cfg.data_dir's train split and write the run folder cfg.out; returns what metrics.json holds.

    cfg: any object with data_dir and out, and optionally DEFAULTS' names (popnb.train.TrainConfig works).
    resume: a finished run folder with the same parameters is returned as it is (the fit has no epochs).
    """
    params = recipe_params(cfg)
    out = Path(params["out"])
    if resume and (out / METRICS).is_file():
        return json.loads((out / METRICS).read_text(encoding="utf-8"))
    check_run_dir(out, cfg, resume=False)
    data = load_limited(params["data_dir"], params["limit"])
    videos = data.videos
    params["metadata"] = default_metadata(videos, getattr(cfg, "metadata", DEFAULTS["metadata"]))
    train_idx, valid_idx = split(videos, params["split"], params["valid_fraction"], params["seed"])
    records = encoder_records(params)
    print(encoders_line(records, params))
    branches = dataset_branches(data, params)
    check_known(videos.iloc[train_idx], params["metadata"])
    tick = time.perf_counter()
    target, model = fit_recipe(videos, branches, train_idx, target_kind(videos, params["target"]),
                               branch_weights(params), params["seed"])
    history = history_rows(target, model, videos, branches, train_idx, valid_idx, time.perf_counter() - tick)
    summary = summarise(history, target, len(train_idx), len(valid_idx))
    write_run(out, params, target, model, records, {"n_videos": len(videos), "n_train": len(train_idx),
                                                    "n_valid": len(valid_idx)})
    write_progress(out, history, summary)
    return summary


@dataclass
class PretrainedRun:
    """A loaded recipe run: its folder, config.json, target, model, and the encoders once made (by branch)."""

    folder: Path
    config: dict
    target: Target
    model: RidgeLateFusion
    encoders: dict = field(default_factory=dict)

    @property
    def params(self) -> dict:
        return self.config["params"]

    @property
    def uses_covers(self) -> bool:
        return "cover" in self.model.branches

    def encoder(self, branch: str):
        """The ready encoder of branch "cover" or "title" (popnb.encoders.get_encoder), made on first use."""
        if branch not in self.encoders:
            self.encoders[branch] = get_encoder(self.params[ENCODER_PARAM[branch]])
        return self.encoders[branch]


def warn_changed_encoders(records: dict) -> None:
    """A warning per encoder whose packages' installed versions differ from the run's: its features may too."""
    for branch, record in records.items():
        now = package_versions(tuple(record["packages"]))
        changed = [f"{k} {v} (now {now[k]})" for k, v in record["packages"].items() if now[k] != v]
        if changed:
            warnings.warn(f"{branch} encoder {record['encoder']} was {', '.join(changed)} when the run was trained: "
                          "its features, and so the predictions, may differ", stacklevel=3)


def load_pretrained_run(folder) -> PretrainedRun:
    """The recipe run in folder (a moved folder too); FileNotFoundError naming a missing file."""
    folder = Path(folder)
    for name in RUN_FILES:
        if not (folder / name).is_file():
            raise FileNotFoundError(f"{folder}: no {name}: not a complete {RECIPE} run folder "
                                    "(make one with popnb.train.pretrained.train_pretrained)")
    config = json.loads((folder / CONFIG).read_text(encoding="utf-8"))
    if config.get("recipe") != RECIPE:
        raise ValueError(f"{folder}: config.json is not a {RECIPE} run's (recipe {config.get('recipe')!r})")
    warn_changed_encoders(config["encoders"])
    return PretrainedRun(folder, config, Target.load(folder / TARGET), RidgeLateFusion.load(folder / HEADS))


def as_run(run) -> PretrainedRun:
    return run if isinstance(run, PretrainedRun) else load_pretrained_run(run)


def evaluate_pretrained(run_dir, data_dir) -> dict:
    """Metrics of a recipe run on a dataset folder, its target and classes from the run's train split:
    recipe_metrics (n, spearman, mae, the class metrics, constant baseline, spearman_expected, loss), the true
    class counts and what was evaluated. Features through the feature store."""
    run = as_run(run_dir)
    data = load_dataset(data_dir)
    metrics = recipe_metrics(run.target, run.model, data.videos, dataset_branches(data, run.params))
    counts = np.bincount(run.target.labels(data.videos), minlength=N_CLASSES).tolist()
    return {"run": str(run.folder), "data": str(Path(data_dir)), "label_scheme": run.target.describe(), **metrics,
            "class_counts": counts}


def embed(encoder, items: list) -> np.ndarray:
    """encoder(items) batch by batch (encoder.batch_size) -> float32 [N, dim]."""
    size = encoder.batch_size
    return np.concatenate([encoder(items[i : i + size]) for i in range(0, len(items), size)])


def video_branches(run: PretrainedRun, titles, covers=None, metadata: pd.DataFrame | None = None) -> dict:
    """run.model's features of N videos, encoded now (no feature store): titles [N]; covers [N] (paths) when the
    run uses covers; metadata: N rows with the run's metadata columns (NaN or None where unknown)."""
    branches = {}
    if "title" in run.model.branches:
        branches["title"] = embed(run.encoder("title"), list(titles))
    if run.uses_covers:
        if covers is None:
            raise ValueError(f"{run.folder} was trained with covers (vision weight "
                             f"{run.params['fusion_weights'][0]}): give the cover image")
        branches["cover"] = embed(run.encoder("cover"), [Path(c) for c in covers])
    columns = run.params["metadata"]
    missing = [c for c in columns if metadata is None or c not in metadata.columns]
    if missing:
        raise ValueError(f"{run.folder} was trained with metadata {', '.join(columns)}: give "
                         f"{', '.join(missing)} (NaN when unknown)")
    if columns:
        branches["metadata"] = metadata_logs(metadata, columns)
    return branches


def score_videos(run, titles, covers=None, metadata: pd.DataFrame | None = None) -> dict[str, np.ndarray]:
    """outputs() of N videos (video_branches' inputs), batched: for the app and the explanations."""
    run = as_run(run)
    return outputs(run.model, video_branches(run, titles, covers, metadata))


def class_ranges(thresholds) -> list[list[float | None]]:
    """[low, high) of each class's target score; None = an open end."""
    edges = [None, *thresholds, None]
    return [[edges[k], edges[k + 1]] for k in range(N_CLASSES)]


def train_scores(run: PretrainedRun) -> np.ndarray:
    """The true target [n_train] of the run's train split, rebuilt from its data_dir, limit and split as
    train_pretrained made it (what the app ranks a predicted score among)."""
    p = run.params
    videos = load_limited(p["data_dir"], p["limit"]).videos
    train_idx, _ = split(videos, p["split"], p["valid_fraction"], p["seed"])
    return run.target.score(videos.iloc[train_idx])


def check_title(title) -> None:
    """ValueError unless title is a non-blank string."""
    if not isinstance(title, str) or not title.strip():
        raise ValueError("the title is empty: give the video's title")


def prediction_fields(run: PretrainedRun, out: dict, i: int = 0) -> dict:
    """Video i of outputs() out as predict_pretrained gives it: score, probabilities, predicted_class,
    expected_class, class_score_ranges, label_scheme."""
    return {"score": float(out["score"][i]), "probabilities": [float(p) for p in out["probabilities"][i]],
            "predicted_class": int(out["predicted_class"][i]), "expected_class": float(out["expected_class"][i]),
            "class_score_ranges": class_ranges(run.target.thresholds), "label_scheme": run.target.describe()}


def predict_pretrained(run_dir, title: str, cover=None, metadata: dict | None = None) -> dict:
    """One video (title; cover path when the run uses covers; metadata {column: value} when it uses metadata):
    popnb.train.run.prediction()'s fields (predicted_class: the ordinal-accuracy decision), plus score (the
    predicted target, e.g. log1p(views)), the run, title, cover and metadata."""
    run = as_run(run_dir)
    check_title(title)
    out = score_videos(run, [title], None if cover is None else [cover],
                       None if metadata is None else pd.DataFrame([metadata]))
    return {"run": str(run.folder), "title": title, "cover": None if cover is None else str(cover),
            **({"metadata": metadata} if run.params["metadata"] else {}), **prediction_fields(run, out)}
