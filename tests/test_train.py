"""Training in-process on tiny demo data: the run folder, determinism, early errors, GPipe, evaluate and predict."""
from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import torch

from popnb.data import load_dataset, make_demo_dataset, write_dataset
from popnb.data.torchdata import build_tensors
from popnb.labels import LabelScheme
from popnb.metrics import constant_baseline
from popnb.models import CharVocab, as_sequential
from popnb.train.checkpoint import load_checkpoint
from popnb.train.loop import TrainConfig, train
from popnb.train.run import evaluate, load_run, predict

METRIC_KEYS = {"loss", "n", "ordinal_accuracy", "exact_accuracy", "macro_f1", "quadratic_weighted_kappa",
               "spearman_expected", "constant_baseline_class", "constant_baseline_accuracy"}


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    return make_demo_dataset(tmp_path_factory.mktemp("demo") / "d", n=72, seed=0, size=(48, 27))


def tiny(data, out, **overrides) -> TrainConfig:
    """test_vit at 32 px + charbert-tiny, 2 steps of batch 8 per epoch, one thread (fastest on a busy CPU)."""
    base = TrainConfig(str(data), str(out), vision="test_vit", image_size=32, batch_size=8, epochs=1, max_steps=2,
                       lr=1e-3, max_len=24, threads=1)
    return replace(base, **overrides)


@pytest.fixture(scope="module")
def run_a(demo, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "a"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("POPNB_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))
        summary = train(tiny(demo, out, epochs=2))
    return out, summary


def history(run) -> pd.DataFrame:
    return pd.read_csv(run / "history.csv").drop(columns="seconds")


def test_a_run_folder_holds_everything(run_a, demo):
    run, summary = run_a
    assert {p.name for p in run.iterdir()} == {"config.json", "label_scheme.json", "vocab.json", "checkpoint.pt",
                                               "history.csv", "metrics.json"}
    config = json.loads((run / "config.json").read_text())
    assert config["params"]["vision"] == "test_vit" and config["params"]["lr"] == 1e-3
    assert config["seed"] == 0 and config["data_dir"] == str(demo.resolve())
    assert torch.__version__.startswith(config["versions"]["torch"])
    assert config["n_train"] + config["n_valid"] == 72 and 4 <= config["n_valid"] <= 9

    scheme = LabelScheme.load(run / "label_scheme.json")
    assert scheme.kind == "paper" and scheme.n_fit == config["n_train"]  # fitted on the train split only

    h = history(run)
    assert list(zip(h["epoch"], h["split"])) == [(1, "train"), (1, "valid"), (2, "train"), (2, "valid")]
    assert h.loc[h["split"] == "train", "n"].tolist() == [16, 16]  # 2 steps of 8
    assert h.loc[h["split"] == "valid", "n"].tolist() == [config["n_valid"]] * 2
    assert METRIC_KEYS <= set(h.columns)

    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics == json.loads(json.dumps(summary))
    assert metrics["final"]["epoch"] == 2
    best = h[h["split"] == "valid"]["ordinal_accuracy"]
    assert metrics["best"]["valid"]["ordinal_accuracy"] == best.max()

    state = load_checkpoint(run / "checkpoint.pt")
    assert state["epoch"] == 2 and len(state["history"]) == 4
    assert set(state["rng"]) == {"torch", "cuda", "numpy", "python"}
    ids, mask = CharVocab.load(run / "vocab.json").encode(list(load_dataset(demo).videos["title"]), 24)
    assert (ids[mask.bool()] == CharVocab.unk_id).float().mean() < 0.05  # built from the (train) titles


def test_same_seed_gives_identical_results_and_another_seed_does_not(run_a, demo, tmp_path):
    run, summary = run_a
    again = train(tiny(demo, tmp_path / "b", epochs=2))
    assert again == summary
    pd.testing.assert_frame_equal(history(tmp_path / "b"), history(run))
    a, b = load_checkpoint(run / "checkpoint.pt")["model"], load_checkpoint(tmp_path / "b" / "checkpoint.pt")["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)

    other = train(tiny(demo, tmp_path / "c", epochs=2, seed=1))
    assert other["final"] != summary["final"]


@pytest.mark.parametrize("overrides, message", [
    ({"vision": "vit_tnyi_patch16_224"}, "unknown vision backbone"),
    ({"image_size": 40}, "not a multiple of"),
    ({"pipeline": "gpipe", "chunks": 9, "devices": "cpu,cpu"}, "larger than the batch"),
    ({"pipeline": "gpipe", "gpipe_checkpoint": "sometimes", "devices": "cpu,cpu"}, "--gpipe-checkpoint must be one of"),
    ({"pipeline": "gpipe", "chunks": 2, "balance": "2,2", "devices": "cpu,cpu"}, "summing to the model's 6 layers"),
    ({"labels": "deciles"}, "--labels"),
    ({"fusion_weights": (0.0, 0.0)}, "fusion weights"),
])
def test_bad_parameters_fail_before_any_training(demo, tmp_path, overrides, message):
    with pytest.raises(ValueError, match=message):
        train(tiny(demo, tmp_path / "run", **overrides))
    assert not (tmp_path / "run").exists()


def test_an_existing_run_folder_needs_resume_and_the_same_parameters(run_a, demo, tmp_path):
    run, _ = run_a
    with pytest.raises(ValueError, match="pass --resume"):
        train(tiny(demo, run, epochs=2))
    with pytest.raises(ValueError, match=r"lr=0.001 \(now 0.01\)"):
        train(tiny(demo, run, epochs=2, lr=1e-2), resume=True)
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "todo.txt").write_text("mine")
    with pytest.raises(ValueError, match="not a popnb run folder"):
        train(tiny(demo, tmp_path / "notes"), resume=True)
    assert (tmp_path / "notes" / "todo.txt").read_text() == "mine"


def test_resuming_a_finished_run_trains_nothing_more_and_restores_its_files(run_a, demo):
    run, summary = run_a
    before = load_checkpoint(run / "checkpoint.pt")["model"]
    old_history = history(run)
    (run / "metrics.json").unlink()  # as if killed right after the last checkpoint
    (run / "history.csv").unlink()
    assert train(tiny(demo, run, epochs=2), resume=True) == summary
    after = load_checkpoint(run / "checkpoint.pt")["model"]
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert json.loads((run / "metrics.json").read_text()) == json.loads(json.dumps(summary))
    pd.testing.assert_frame_equal(history(run), old_history)


def test_stats_only_data_trains_text_only_and_refuses_a_vision_weight(tmp_path):
    rng = np.random.default_rng(0)
    n = 40
    views = rng.integers(10, 100_000, n)
    videos = pd.DataFrame({"video_id": [f"v{i}" for i in range(n)], "title": [f"标题{i % 7}号" for i in range(n)],
                           "cover": "", "views": views, "likes": views // 10, "coins": views // 50,
                           "favorites": views // 40, "shares": views // 100})
    write_dataset(videos, tmp_path / "stats")
    with pytest.raises(ValueError, match="40 of 40 videos have no cover"):
        train(tiny(tmp_path / "stats", tmp_path / "vision"))
    assert not (tmp_path / "vision").exists()

    summary = train(tiny(tmp_path / "stats", tmp_path / "text", fusion_weights=(0.0, 1.0), max_steps=1))
    assert summary["final"]["train"]["n"] == 8
    out = predict(tmp_path / "text", "标题3号")  # no cover needed for a text-only run
    assert out["cover"] is None and abs(sum(out["probabilities"]) - 1) < 1e-5


def test_gpipe_trains_and_records_its_balance(demo, tmp_path):
    summary = train(tiny(demo, tmp_path / "pipe", pipeline="gpipe", chunks=3, balance="2,4", devices="cpu,cpu"))
    config = json.loads((tmp_path / "pipe" / "config.json").read_text())
    assert config["balance"] == [2, 4]
    assert summary["final"]["train"]["n"] == 16
    run = load_run(tmp_path / "pipe")  # the plain model's weights were saved, not the pipeline wrapper's
    assert len(as_sequential(run.model)) == 6


def test_gpipe_without_recomputation_trains_the_same_model(demo, tmp_path):
    """--gpipe-checkpoint never keeps activations instead of recomputing them: the same losses and metrics."""
    histories = {}
    for mode in ("except_last", "never"):
        train(tiny(demo, tmp_path / mode, pipeline="gpipe", chunks=2, balance="2,4", devices="cpu,cpu",
                   gpipe_checkpoint=mode))
        config = json.loads((tmp_path / mode / "config.json").read_text())
        assert config["params"]["gpipe_checkpoint"] == mode
        histories[mode] = pd.read_csv(tmp_path / mode / "history.csv")
    a, b = (histories[mode].drop(columns="seconds") for mode in ("except_last", "never"))
    # Exact, not within a tolerance: recomputation re-runs each micro-batch's forward on the same inputs with
    # the same operations (torchgpipe replays the RNG too), and torchgpipe orders the backward alike in both
    # modes, so gradients, AdamW steps, losses and metrics are the same numbers, as in tests/test_pipeline.py's
    # test_checkpoint_recomputation_replays_dropout. (A tolerance could not be derived here: in float32, AdamW
    # turns a rounding difference in a gradient near its eps into one of up to lr in a weight.)
    pd.testing.assert_frame_equal(a, b, check_exact=True)


def test_evaluate_labels_other_data_with_the_runs_scheme(run_a, tmp_path):
    run, _ = run_a
    other = make_demo_dataset(tmp_path / "other", n=30, seed=5, size=(48, 27))
    result = evaluate(run, other)
    labels = LabelScheme.load(run / "label_scheme.json").labels(load_dataset(other).videos)
    assert result["n"] == 30 and METRIC_KEYS <= set(result)
    assert result["class_counts"] == np.bincount(labels, minlength=5).tolist()
    assert (result["constant_baseline_class"], result["constant_baseline_accuracy"]) == constant_baseline(labels)
    assert 0 <= result["ordinal_accuracy"] <= 1


def test_predict_matches_the_models_output_on_the_training_pipeline(run_a, demo):
    run_dir, _ = run_a
    run = load_run(run_dir)
    data = load_dataset(demo)
    image = run.config["image"]
    ds = build_tensors(data, run.tokenizer, np.zeros(len(data), int), np.zeros(len(data)), 32, 24, True,
                       image["mean"], image["std"])
    images, ids, mask, _ = ds[np.array([4])]
    with torch.no_grad():
        expected = torch.softmax(run.model(images, ids, mask), dim=1)[0].numpy()

    out = predict(run_dir, data.videos["title"].iat[4], data.cover_path(4))
    # Exact: predict reads the cover with the same cover_array and normalise as the training cache, encodes the
    # title with the same tokenizer and runs the same float32 model and softmax on a batch of one, so the same
    # operations give the same bits; any difference in preprocessing would show here.
    np.testing.assert_array_equal(np.asarray(out["probabilities"], dtype=np.float32), expected)
    assert out["predicted_class"] == int(np.argmax(expected))
    assert out["expected_class"] == pytest.approx(float(expected @ np.arange(5)))
    assert out["class_score_ranges"][0][0] is None and out["class_score_ranges"][4][1] is None
    assert out["class_score_ranges"][1] == [0.00025, 0.0015]


def test_predict_rejects_bad_input(run_a, tmp_path):
    run, _ = run_a
    (tmp_path / "cover.jpg").write_text("<html>404</html>")
    with pytest.raises(ValueError, match="unreadable image"):
        predict(run, "a title", tmp_path / "cover.jpg")
    with pytest.raises(ValueError, match="missing cover file"):
        predict(run, "a title", tmp_path / "nothing.jpg")
    with pytest.raises(ValueError, match="title is empty"):
        predict(run, "  ", tmp_path / "cover.jpg")
    with pytest.raises(ValueError, match="trained with covers.*give its cover image"):
        predict(run, "a title")
    with pytest.raises(FileNotFoundError, match="not a trained popnb run"):
        predict(tmp_path, "a title", tmp_path / "cover.jpg")
