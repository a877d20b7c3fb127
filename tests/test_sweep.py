"""The fusion-weight sweep: both modes on a tiny real run, the Table 1 layout, mean ± std, the absorption check;
frozen mode on the pretrained encoders of popnb.encoders and on uploader and time splits."""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from popnb.analysis.sweep import (
    DEFAULT_LR, absorption_check, beside, best_valid, frozen_inputs, paper_summary, run_sweep, summarise, sweep_config,
    table1, valid_curves, weight_label,
)
from popnb.data import make_demo_dataset
from popnb.encoders import encode
from popnb.train.config import RECIPES
from popnb.train.loop import TrainConfig, load_limited

WEIGHTS = [(0.75, 0.25), (0.0, 1.0)]
TINY = dict(image_size=32, epochs=2, batch_size=8, valid_fraction=0.25)


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    return make_demo_dataset(tmp_path_factory.mktemp("demo") / "d", n=48, seed=4)


@pytest.fixture(scope="module")
def frozen(demo, tmp_path_factory):
    return run_sweep(demo, "frozen", WEIGHTS, seeds=[0, 1], cache=tmp_path_factory.mktemp("cache"), **TINY)


def test_frozen_history_has_a_row_per_pair_seed_epoch_and_split(frozen):
    assert len(frozen) == 2 * 2 * 2 * 2
    assert list(frozen.columns[:6]) == ["mode", "vision_weight", "text_weight", "seed", "epoch", "split"]
    assert {"ordinal_accuracy", "loss", "constant_baseline_accuracy", "vision_share"} <= set(frozen.columns)
    per_run = frozen.groupby(["vision_weight", "text_weight", "seed", "epoch"])["n"].sum()
    assert (per_run == 48).all()  # every video in train or valid, once
    valid_n = frozen[frozen["split"] == "valid"].groupby("seed")["n"].nunique()
    assert (valid_n == 1).all()  # one split per seed, whatever the weights


def test_table1_layout_holds_mean_and_sample_std_over_seeds(frozen):
    table = table1(summarise(frozen))
    assert list(table.index) == ["0.75 / 0.25", "0.0 / 1.0"] and table.index.name == "w_v / w_t"
    assert list(table.columns) == ["e1 train", "e1 valid", "e2 train", "e2 valid"]
    for (w_v, w_t), row in zip(WEIGHTS, table.index):
        for epoch in (1, 2):
            for split in ("train", "valid"):
                runs = frozen[(frozen["vision_weight"] == w_v) & (frozen["text_weight"] == w_t)
                              & (frozen["epoch"] == epoch) & (frozen["split"] == split)]
                values = runs.sort_values("seed")["ordinal_accuracy"].to_numpy()
                assert len(values) == 2
                expected = f"{values.mean():.4f} ± {np.std(values, ddof=1):.4f}"
                assert table.loc[row, f"e{epoch} {split}"] == expected


def test_finetune_mode_uses_the_same_split_labels_batches_and_layout(demo, frozen, tmp_path):
    quick = dict(TINY, epochs=1, max_steps=1, seeds=[0])
    tuned = run_sweep(demo, "finetune", WEIGHTS, runs_dir=tmp_path, **quick)
    assert set(tuned.columns) <= set(frozen.columns) and (tuned["mode"] == "finetune").all()
    heads = run_sweep(demo, "frozen", WEIGHTS, cache=tmp_path / "cache", **quick)
    key = ["vision_weight", "text_weight", "epoch", "split"]
    left, right = (h.set_index(key)[["n", "constant_baseline_accuracy"]].sort_index() for h in (tuned, heads))
    pd.testing.assert_frame_equal(left, right)  # the same videos in each split and batch, the same labels
    ours, theirs = table1(summarise(tuned)), table1(summarise(heads))
    assert list(ours.index) == list(theirs.index) == ["0.75 / 0.25", "0.0 / 1.0"]
    assert list(ours.columns) == list(theirs.columns) == ["e1 train", "e1 valid"]
    assert "±" not in ours.iloc[0, 0]  # one seed: no std
    runs = sorted(p for p in tmp_path.iterdir() if p.name.startswith("vw"))
    assert len(runs) == 2 and all((p / "history.csv").is_file() for p in runs)  # one run folder per weight pair
    again = run_sweep(demo, "finetune", WEIGHTS, runs_dir=tmp_path, **quick)
    pd.testing.assert_frame_equal(again.drop(columns="seconds"), tuned.drop(columns="seconds"))  # complete runs reused
    assert sorted(p for p in tmp_path.iterdir() if p.name.startswith("vw")) == runs


def test_paper_table_in_the_same_layout_and_beside_ours(frozen):
    paper = table1(paper_summary())
    assert paper.shape == (7, 10) and paper.loc["0.75 / 0.25", "e3 valid"] == "0.6242"
    assert paper.loc["1.0 / 0.0", "e1 train"] == "0.5387"
    both = beside(table1(summarise(frozen)), paper)
    assert list(both.index[:2]) == ["0.75 / 0.25", "0.0 / 1.0"] and len(both) == 7
    assert list(both.columns[:4]) == ["e1 train", "e1 train (paper)", "e1 valid", "e1 valid (paper)"]
    assert both.loc["0.3 / 0.7", "e1 valid"] == "" and both.loc["0.3 / 0.7", "e1 valid (paper)"] == "0.5603"
    assert both.loc["0.0 / 1.0", "e5 valid (paper)"] == "0.4659" and both.loc["0.0 / 1.0", "e5 valid"] == ""


def test_best_valid_and_curves_show_the_constant_baseline(frozen):
    best = best_valid(frozen)
    valid = frozen[frozen["split"] == "valid"]
    level = valid.groupby("seed")["constant_baseline_accuracy"].first().mean()
    assert (best["constant baseline"] == level).all()
    mean = valid[valid["vision_weight"] == 0.75].groupby("epoch")["ordinal_accuracy"].mean()
    assert best.loc["0.75 / 0.25", "ours best"] == mean.max()
    at_best = valid[(valid["vision_weight"] == 0.75) & (valid["epoch"] == mean.idxmax())]["spearman_expected"]
    assert best.loc["0.75 / 0.25", "ours spearman"] == at_best.mean()  # the same seeds, the same epoch
    assert best.loc["0.75 / 0.25", "ours spearman ± std"] == at_best.std()
    assert best.loc["0.75 / 0.25", "paper best"] == 0.6242 and best.loc["0.75 / 0.25", "paper best epoch"] == 3
    fig = valid_curves(frozen, "test")
    panels = [ax for ax in fig.axes if ax.get_visible()]
    assert len(panels) == 2
    for ax in panels:
        assert any(line.get_label().startswith("constant baseline") and line.get_ydata()[0] == level
                   for line in ax.get_lines())


def test_absorption_check_agrees_only_with_the_rescaled_rates():
    check = absorption_check((0.3, 0.7))["max abs difference"]
    contrast = check.index.str.contains("contrast")
    assert (check[~contrast] < 1e-5).all()
    assert (check[contrast] > 1e-3).all() and contrast.sum() == 2
    with pytest.raises(ValueError, match="cannot be absorbed"):
        absorption_check((1.0, 0.0))


def test_bad_sweeps_fail_before_any_training(demo):
    with pytest.raises(ValueError, match="mode must be one of"):
        run_sweep(demo, "partial")
    with pytest.raises(ValueError, match="listed twice"):
        run_sweep(demo, "frozen", seeds=[0, 0])
    with pytest.raises(ValueError, match="fusion weights"):
        run_sweep(demo, "frozen", weights=[(0.0, 0.0)])
    with pytest.raises(ValueError, match="a sweep sets seed itself"):
        run_sweep(demo, "frozen", seed=3)
    with pytest.raises(ValueError, match="pipeline only apply to mode='finetune'"):
        run_sweep(demo, "frozen", pipeline="gpipe")
    with pytest.raises(ValueError, match="needs an 'uploader' column"):
        run_sweep(demo, "frozen", split="uploader")  # the demo data names no uploaders
    with pytest.raises(TypeError, match="epoch"):
        run_sweep(demo, "frozen", epoch=2)  # not a TrainConfig field
    assert weight_label(1.0, 0.0) == "1.0 / 0.0" and weight_label(0.45, 0.55) == "0.45 / 0.55"


def test_every_run_derives_from_one_train_config(demo):
    base = sweep_config(demo, "frozen", epochs=2, image_size=32)
    paper = TrainConfig(str(demo), "", recipe="paper", **RECIPES["paper"])  # the paper's backbones unless named
    assert base == replace(paper, lr=DEFAULT_LR["frozen"], epochs=2, image_size=32)
    assert sweep_config(demo, "frozen", vision="tf_efficientnet_lite0").text == RECIPES["paper"]["text"]
    assert sweep_config(demo, "finetune", lr=None).lr == DEFAULT_LR["finetune"] == TrainConfig("", "").lr
    assert sweep_config(demo, "finetune", lr=0.1, pipeline="gpipe").pipeline == "gpipe"


def test_encoder_names_take_their_embeddings_from_the_feature_store(tmp_path):
    demo = make_demo_dataset(tmp_path / "d", n=30, seed=0, size=(64, 36))
    cache, data = tmp_path / "cache", load_limited(demo)
    cfg = sweep_config(demo, "frozen", vision="tf_efficientnet_lite0", text="e5-small", valid_fraction=0.25)
    v, t, y, _, train_idx, valid_idx = frozen_inputs(data, cfg, cache)
    assert v.shape == (30, 1280) and t.shape == (30, 384) and len(train_idx) + len(valid_idx) == 30
    for name, values in (("tf_efficientnet_lite0", v), ("e5-small", t)):
        stored = encode(name, data, cache=cache, progress=False)
        assert stored.hit  # computed once, by frozen_inputs
        np.testing.assert_array_equal(values, stored.values)  # the very values, copied out of the store
    history = run_sweep(demo, "frozen", [(0.75, 0.25)], [0], cache=cache, vision="tf_efficientnet_lite0",
                        text="e5-small", epochs=1, batch_size=8, valid_fraction=0.25)
    assert history["ordinal_accuracy"].between(0, 1).all() and history["spearman_expected"].notna().all()


@pytest.fixture(scope="module")
def with_uploaders(tmp_path_factory):
    """A demo set with 8 uploaders (6 videos each) and an upload time per video (the demo data has neither)."""
    folder = make_demo_dataset(tmp_path_factory.mktemp("uploaders") / "d", n=48, seed=4)
    videos = pd.read_csv(folder / "videos.csv")
    videos["uploader"] = [f"up{i % 8}" for i in range(len(videos))]
    videos["upload_time"] = pd.date_range("2024-01-01", periods=len(videos), freq="D")[::-1].astype(str)
    videos.to_csv(folder / "videos.csv", index=False)
    return folder


def test_uploader_and_time_splits_keep_their_promise(with_uploaders, tmp_path):
    data = load_limited(with_uploaders)
    videos = data.videos

    def positions(split: str, seed: int):
        cfg = replace(sweep_config(with_uploaders, "frozen", valid_fraction=0.25, split=split), seed=seed)
        return frozen_inputs(data, cfg, tmp_path, with_covers=False)[-2:]

    for seed in range(4):
        train_idx, valid_idx = positions("uploader", seed)
        train, valid = set(videos["uploader"].iloc[train_idx]), set(videos["uploader"].iloc[valid_idx])
        assert train and valid and not train & valid  # no uploader on both sides
        assert len(train_idx) + len(valid_idx) == len(videos)
    train_idx, valid_idx = positions("time", 0)
    when = pd.to_datetime(videos["upload_time"])
    assert when.iloc[train_idx].max() < when.iloc[valid_idx].min() and len(valid_idx) == 12  # the latest quarter
    history = run_sweep(with_uploaders, "frozen", [(0.0, 1.0)], [0, 1], split="uploader", cache=tmp_path, **TINY)
    valid = history[history["split"] == "valid"]
    per_seed = valid.groupby("seed")["n"].first()
    assert per_seed.nunique() == 1 and per_seed.iloc[0] % 6 == 0  # whole uploaders (6 videos each) in valid
