"""The command line: popnb train / evaluate / predict, python -m popnb.train, errors, and real Bilibili covers."""
from __future__ import annotations

import json
import runpy
import sys

import pandas as pd
import pytest

from popnb.cli import main
from popnb.data import load_dataset, make_demo_dataset

TINY = ["--vision", "test_vit", "--image-size", "32", "--batch-size", "8", "--epochs", "1", "--max-steps", "2",
        "--lr", "1e-3", "--max-len", "24", "--threads", "1"]


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    return make_demo_dataset(tmp_path_factory.mktemp("demo") / "d", n=60, seed=2, size=(48, 27))


@pytest.fixture(scope="module")
def run(demo, tmp_path_factory):
    """A run trained through `python -m popnb.train` (what torchrun launches)."""
    out = tmp_path_factory.mktemp("runs") / "r"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("POPNB_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))
        mp.setattr(sys, "argv", ["popnb.train", str(demo), "--out", str(out), *TINY])
        with pytest.raises(SystemExit) as done:
            runpy.run_module("popnb.train", run_name="__main__", alter_sys=True)
    assert done.value.code == 0
    return out


def test_train_writes_the_run_and_prints_a_summary(run, demo, capsys, tmp_path):
    assert (run / "checkpoint.pt").is_file() and (run / "metrics.json").is_file()
    assert json.loads((run / "config.json").read_text())["params"]["max_steps"] == 2
    assert main(["train", str(demo), "--out", str(tmp_path / "again"), *TINY, "--seed", "4"]) == 0
    out = capsys.readouterr().out
    assert "valid ordinal accuracy" in out and "constant baseline" in out


def test_evaluate_prints_all_metrics_as_json(run, demo, capsys):
    assert main(["evaluate", str(run), str(demo)]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["n"] == 60 and sum(result["class_counts"]) == 60
    for key in ("ordinal_accuracy", "exact_accuracy", "macro_f1", "quadratic_weighted_kappa", "spearman_expected",
                "constant_baseline_class", "constant_baseline_accuracy", "loss"):
        assert isinstance(result[key], (int, float)), key


def test_predict_prints_probabilities_and_classes(run, demo, capsys):
    data = load_dataset(demo)
    assert main(["predict", str(run), "--cover", str(data.cover_path(0)), "--title", data.videos["title"].iat[0]]) == 0
    result = json.loads(capsys.readouterr().out)
    assert len(result["probabilities"]) == 5 and sum(result["probabilities"]) == pytest.approx(1, abs=1e-5)
    assert result["predicted_class"] == max(range(5), key=result["probabilities"].__getitem__)
    assert 0 <= result["expected_class"] <= 4 and len(result["class_score_ranges"]) == 5


@pytest.mark.parametrize("make_args, message", [
    (lambda run, tmp: ["predict", str(run), "--cover", str(tmp / "cover.jpg"), "--title", "标题"], "cover.jpg"),
    (lambda run, tmp: ["predict", str(run), "--cover", str(tmp / "none.jpg"), "--title", "标题"], "missing cover"),
    (lambda run, tmp: ["predict", str(run), "--cover", str(tmp / "cover.jpg"), "--title", ""], "title is empty"),
    (lambda run, tmp: ["evaluate", str(tmp), str(tmp)], "not a trained popnb run"),
])
def test_bad_input_exits_non_zero_with_a_clear_error(run, tmp_path, capsys, make_args, message):
    (tmp_path / "cover.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    assert main(make_args(run, tmp_path)) == 2
    err = capsys.readouterr().err
    assert "error" in err and message in err and "Traceback" not in err


def test_train_errors_come_before_any_training(run, demo, tmp_path, capsys):
    assert main(["train", str(demo), "--out", str(run), *TINY]) == 2
    assert "pass --resume" in capsys.readouterr().err
    bad = tmp_path / "bad"
    cases = [(["--pipeline", "gpipe", "--chunks", "16", "--devices", "cpu,cpu"], "larger than the batch"),
             (["--pipeline", "gpipe", "--chunks", "2", "--balance", "3,9", "--devices", "cpu,cpu"], "summing to"),
             (["--vision", "resnet_that_is_not"], "unknown vision backbone"),
             (["--image-size", "24"], "not a multiple of")]
    for extra, message in cases:
        assert main(["train", str(demo), "--out", str(bad), *TINY, *extra]) == 2
        assert message in capsys.readouterr().err
        assert not bad.exists()
    with pytest.raises(SystemExit):
        main(["train", str(demo), "--out", str(bad), "--fusion-weights", "0.75"])
    assert "W_VISION,W_TEXT" in capsys.readouterr().err


def test_real_bilibili_covers_train_with_log_views_labels(bilibili_covers_src, tmp_path, capsys):
    head = pd.read_csv(bilibili_covers_src / "videos.csv", dtype=str, keep_default_na=False).head(90)
    head.to_csv(tmp_path / "crawl.csv", index=False)
    assert main(["import", str(tmp_path / "crawl.csv"), str(tmp_path / "covers_data"), "--preset", "bilibili-covers",
                 "--covers", str(bilibili_covers_src / "covers")]) == 0
    assert main(["train", str(tmp_path / "covers_data"), "--out", str(tmp_path / "run"), *TINY]) == 0
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["label_kind"] == "log_views"  # auto: this crawl knows views only
    capsys.readouterr()
    assert main(["evaluate", str(tmp_path / "run"), str(tmp_path / "covers_data")]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["n"] == config["n_videos"] and result["class_counts"] != [0, 0, 0, 0, 0]
