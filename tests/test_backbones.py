"""popnb.analysis.backbones: real tiny runs of two pairs, the Table 2 layout beside the paper, cost, predictions;
the pretrained pair of popnb.encoders and the baselines' rows."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from popnb.analysis import backbones  # noqa: E402
from popnb.baselines import BASELINES  # noqa: E402
from popnb.data import make_demo_dataset  # noqa: E402
from popnb.models.summary import n_params  # noqa: E402
from popnb.metrics import constant_baseline, ordinal_accuracy  # noqa: E402
from popnb.models import BACKBONES  # noqa: E402

PAIRS = ["vit_bert", "coatnet_bert"]
TINY = dict(image_size=32, epochs=2, batch_size=8, valid_fraction=0.25)


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    return make_demo_dataset(tmp_path_factory.mktemp("demo") / "d", n=48, seed=4)


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="module")
def history(demo, cache):
    return backbones.run_comparison(demo, PAIRS, seeds=[0, 1], cache=cache, **TINY)


def test_every_pair_trains_on_the_same_split_with_the_registry_names(history):
    assert len(history) == 2 * 2 * 2 * 2  # pairs x seeds x epochs x splits
    assert list(history.columns[:4]) == ["pair", "vision", "text", "image_size"]
    for key in PAIRS:
        rows = history[history["pair"] == key]
        assert set(rows["vision"]) == {BACKBONES[key].vision} and set(rows["text"]) == {BACKBONES[key].text}
    assert set(history["image_size"]) == {32}
    assert set(zip(history["vision_weight"], history["text_weight"])) == {(0.75, 0.25)}
    split = history.set_index(["pair", "seed", "epoch", "split"])[["n", "constant_baseline_accuracy"]]
    np.testing.assert_array_equal(split.loc["vit_bert"].to_numpy(), split.loc["coatnet_bert"].to_numpy())


def test_table2_has_mean_std_over_seeds_beside_the_paper_and_the_baseline(history):
    table = backbones.table2_vs_paper(history)
    assert list(table.index) == ["ViT + BERT", "CoAtNet + BERT"]
    assert list(table.columns[:4]) == ["e1 train", "e1 train (paper)", "e1 valid", "e1 valid (paper)"]
    runs = history.query("pair == 'coatnet_bert' and epoch == 2 and split == 'valid'").sort_values("seed")
    values = runs["ordinal_accuracy"].to_numpy()
    assert table.loc["CoAtNet + BERT", "e2 valid"] == f"{values.mean():.4f} ± {np.std(values, ddof=1):.4f}"
    assert table.loc["ViT + BERT", "e3 valid (paper)"] == "0.6242"  # Table 1, row 0.75 / 0.25
    assert table.loc["CoAtNet + BERT", "e3 valid (paper)"] == "" and table.loc["CoAtNet + BERT", "e3 valid"] == ""
    baseline = runs["constant_baseline_accuracy"].mean()
    assert table.loc["ViT + BERT", "constant baseline (valid)"] == pytest.approx(baseline, abs=5e-5)


def test_paper_rows_come_from_table2_and_table1():
    paper = backbones.table2(backbones.paper_summary())
    assert list(paper.index) == ["ViT + BERT", "VGG + RNN", "VGG + BERT"]
    assert paper.loc["VGG + RNN", "e5 valid"] == "0.5471" and paper.loc["VGG + BERT", "e1 train"] == "0.5064"


def test_best_valid_picks_the_epoch_with_the_best_mean_and_draws_it(history):
    best = backbones.best_valid(history)
    for key in PAIRS:
        valid = history.query("pair == @key and split == 'valid'")
        means = valid.groupby("epoch")["ordinal_accuracy"].mean()
        assert best.loc[key, "best epoch"] == means.idxmax() and best.loc[key, "best valid"] == means.max()
        at_best = valid[valid["epoch"] == means.idxmax()]
        accuracy, spearman = at_best["ordinal_accuracy"], at_best["spearman_expected"]
        assert best.loc[key, "min"] == accuracy.min() and best.loc[key, "max"] == accuracy.max()
        assert best.loc[key, "spearman"] == spearman.mean() and best.loc[key, "spearman ± std"] == spearman.std()
    assert best.loc["vit_bert", "paper best valid"] == 0.6242 and np.isnan(best.loc["coatnet_bert", "paper best valid"])
    fig = backbones.best_valid_figure(history, "test")
    bars = [p.get_height() for p in fig.axes[0].patches]
    plt.close(fig)
    np.testing.assert_allclose(bars, best["best valid"])


def test_frozen_predictions_reproduce_the_run(demo, cache, history):
    preds = backbones.pair_predictions(demo, "coatnet_bert", 1, cache=cache, **TINY)
    run = history.query("pair == 'coatnet_bert' and seed == 1 and epoch == 2 and split == 'valid'").iloc[0]
    assert len(preds) == run["n"]
    assert ordinal_accuracy(preds["y_true"], preds["y_pred"]) == pytest.approx(run["ordinal_accuracy"])
    assert constant_baseline(preds["y_true"])[1] == pytest.approx(run["constant_baseline_accuracy"])
    np.testing.assert_allclose(preds[[f"p{k}" for k in range(5)]].sum(axis=1), 1.0, rtol=1e-5)


def test_finetune_mode_and_its_run_folder_predictions(demo, tmp_path):
    quick = dict(TINY, epochs=1, max_steps=1)
    tuned = backbones.run_comparison(demo, ["vit_bert"], mode="finetune", seeds=[0], runs_dir=tmp_path, **quick)
    assert (tuned["mode"] == "finetune").all() and (tmp_path / "vit_bert").is_dir()
    preds = backbones.pair_predictions(demo, "vit_bert", 0, "finetune", runs_dir=tmp_path, **quick)
    valid = tuned[tuned["split"] == "valid"].iloc[0]
    assert ordinal_accuracy(preds["y_true"], preds["y_pred"]) == pytest.approx(valid["ordinal_accuracy"])
    with pytest.raises(FileNotFoundError, match="no finetune run of vit_bert with seed 0"):
        backbones.pair_predictions(demo, "vit_bert", 0, "finetune", runs_dir=tmp_path, **dict(quick, epochs=3))


def test_pair_cost_counts_parameters_of_the_built_model():
    titles = ["为什么黑洞会这样？", "10个关于火星的冷知识"]
    cost = backbones.pair_cost("vit_bert", titles, image_size=32, batch_size=4, max_len=16, steps=1)
    model, _ = backbones.build_pair("vit_bert", titles, image_size=32)
    assert cost["params"] == n_params(model)
    assert cost["vision params"] == n_params(model.vision.backbone)
    assert cost["text params"] == n_params(model.text.encoder)
    assert cost["vision layers"] == f"{len(model.vision.backbone.blocks)} transformer blocks"
    assert cost["finetune images/s"] > 0


def test_scale_switches_to_the_paper_names_and_bad_names_fail_early(demo):
    assert backbones.pair_names("vit_bert", "paper") == {"vision": "vit_base_patch16_384",
                                                        "text": "bert-base-chinese", "image_size": 384}
    assert backbones.pair_names("vgg_rnn", "cpu", 32)["image_size"] == 32
    table = backbones.pairs_table(["vgg_rnn", "convnext_minilm"], "paper")
    assert table.loc["vgg_rnn", "vision"] == BACKBONES["vgg_rnn"].paper_vision == table.loc["vgg_rnn", "paper vision"]
    assert table.loc["convnext_minilm", "label"] == "ConvNeXt + MiniLM" and table.loc["vgg_rnn", "image_size"] == 224
    with pytest.raises(ValueError, match="unknown backbone pair 'vit'"):
        backbones.pairs_table(["vit"])
    with pytest.raises(ValueError, match="unknown backbone pair 'vgg_gpt'.*vit_bert"):
        backbones.run_comparison(demo, ["vit_bert", "vgg_gpt"])  # before any pair is trained
    with pytest.raises(ValueError, match="scale must be one of cpu, paper"):
        backbones.pair_names("vit_bert", "gpu")
    assert "RANDOM" in backbones.mode_note("frozen", False) and "RANDOM" not in backbones.mode_note("frozen", True)
    assert "minilm: weights from a local checkpoint" in backbones.mode_note("frozen", False, {"minilm": "/m"})
    assert "paper" in backbones.mode_note("finetune", True)


@pytest.fixture(scope="module")
def scores(tmp_path_factory, cache):
    """The baselines on 100 videos, 2 folds: LightGBM's leaves need 20 rows each, so 48 videos give it no split."""
    demo = make_demo_dataset(tmp_path_factory.mktemp("baselines") / "d", n=100, seed=5, size=(64, 36))
    return backbones.run_baselines(demo, seeds=[0, 1], k=2, cache=cache)


def test_table2_has_the_baselines_below_the_pairs_with_what_applies(history, scores):
    assert list(scores["baseline"]) == [*BASELINES] * 2 and list(scores["seed"]) == [0] * 4 + [1] * 4
    assert (scores["n_folds"] == 2).all()
    labels = [backbones.BASELINE_LABELS[name] for name in BASELINES]
    table = backbones.table2_vs_paper(history, scores)
    assert list(table.index) == ["ViT + BERT", "CoAtNet + BERT", *labels]
    pairs = backbones.table2_vs_paper(history)
    pd.testing.assert_frame_equal(table.loc[pairs.index], pairs)  # the pairs' rows as without baselines
    per_epoch = [c for c in table.columns if c.startswith("e")]
    assert (table.loc[labels, per_epoch] == "").all().all()  # no epochs
    assert table.loc[labels[0], "spearman (best epoch)"] == ""  # the constant ranks nothing
    best = backbones.best_valid(history, baselines=scores)
    assert list(best.index) == [*PAIRS, *BASELINES] and best["best epoch"].dtype == "Int64"
    for name in BASELINES:
        mine = scores[scores["baseline"] == name]
        assert best.loc[name, "best valid"] == mine["ordinal_accuracy"].mean()
        assert best.loc[name, "± std"] == mine["ordinal_accuracy_std"].mean()  # the spread over folds
        applies = ["best valid", "± std", "min", "max", "constant baseline"]
        applies += ["spearman", "spearman ± std"] if name != "constant" else []
        assert np.isfinite(best.loc[name, applies].astype(float)).all(), name
        assert best.loc[name, ["best epoch", "vision", "train s/epoch"]].isna().all()
        cell = table.loc[backbones.BASELINE_LABELS[name], "best valid"]
        assert cell == f"{mine['ordinal_accuracy'].mean():.4f} ± {mine['ordinal_accuracy_std'].mean():.4f}"


def test_the_pretrained_pair_trains_frozen_heads_on_the_feature_store(demo, cache):
    quick = dict(TINY, epochs=1)
    history = backbones.run_comparison(demo, ["lite0_e5"], seeds=[0], cache=cache, **quick)
    assert set(history["vision"]) == {"tf_efficientnet_lite0"} and set(history["text"]) == {"e5-small"}
    assert set(history["image_size"]) == {"256x144"}  # the encoder's own input, whatever image_size says
    assert list(backbones.table2_vs_paper(history).index) == ["EfficientNet-Lite0 + e5-small"]
    preds = backbones.pair_predictions(demo, "lite0_e5", 0, cache=cache, **quick)
    valid = history[history["split"] == "valid"].iloc[0]
    assert ordinal_accuracy(preds["y_true"], preds["y_pred"]) == pytest.approx(valid["ordinal_accuracy"])
    assert "EfficientNet-Lite0 + e5-small: pretrained" in backbones.mode_note("frozen", False, None, ["lite0_e5"])
    assert backbones.pairs_table(["lite0_e5"]).loc["lite0_e5", "source"] == "popnb.encoders"
    with pytest.raises(ValueError, match="lite0_e5: frozen encoders of popnb.encoders"):
        backbones.run_comparison(demo, ["lite0_e5"], mode="finetune")
