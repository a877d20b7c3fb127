"""--metadata: the fitted scaler, a run that saves and reloads it, statistics from the train split only, clear
errors, and the DDP path (GPipe's: tests/test_pipeline.py)."""
from __future__ import annotations

import json
import shutil
import socket
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import torch
from torch.nn.parallel import DistributedDataParallel

from popnb.cli import main
from popnb.data import load_dataset, make_demo_dataset
from popnb.models import MetadataScaler
from popnb.train.checkpoint import load_checkpoint
from popnb.train.loop import TrainConfig, fit_labels, train
from popnb.train.run import load_run, predict, run_predictions

COLUMNS = ("followers", "duration")


def variant(demo, out, change) -> str:
    """A copy of a dataset folder whose videos.csv is change(videos) (the covers copied along)."""
    shutil.copytree(demo, out)
    videos = pd.read_csv(out / "videos.csv", dtype={"video_id": str, "followers": "Int64"}, keep_default_na=False,
                         na_values={"followers": [""], "duration": [""]})
    change(videos).to_csv(out / "videos.csv", index=False)
    return str(out)


def with_unknowns(videos: pd.DataFrame) -> pd.DataFrame:
    """Row 0's followers and row 1's duration unknown (NA)."""
    videos.loc[0, "followers"], videos.loc[1, "duration"] = pd.NA, np.nan
    return videos


def tiny(data, out, **overrides) -> TrainConfig:
    """test_vit at 32 px + charbert-tiny, 2 steps of batch 8, one thread, metadata followers and duration."""
    base = TrainConfig(str(data), str(out), vision="test_vit", image_size=32, batch_size=8, epochs=1, max_steps=2,
                       lr=1e-3, max_len=24, threads=1, metadata=COLUMNS)
    return replace(base, **overrides)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    demo = make_demo_dataset(tmp_path_factory.mktemp("demo") / "d", n=40, seed=1, size=(64, 36))
    return variant(demo, tmp_path_factory.mktemp("unknowns") / "d", with_unknowns)


@pytest.fixture(scope="module")
def run(data, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "meta"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("POPNB_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))
        train(tiny(data, out))
    return out


def test_scaler_standardises_log_values_and_flags_unknowns(tmp_path):
    train_rows = pd.DataFrame({"followers": pd.array([9, 99, None], dtype="Int64"), "duration": [59.0, 59.0, 59.0]})
    scaler = MetadataScaler.fit(train_rows, COLUMNS)
    logs = np.log1p([9.0, 99.0])
    assert scaler.mean == pytest.approx((logs.mean(), np.log1p(59.0))) and scaler.std[0] == pytest.approx(logs.std())
    assert scaler.std[1] == 1.0  # constant on the train rows: std 1, so the value is 0 everywhere
    other = pd.DataFrame({"followers": pd.array([999, None], dtype="Int64"), "duration": [59.0, np.nan]})
    expected = [[(np.log1p(999) - logs.mean()) / logs.std(), 0.0, 0.0, 0.0], [0.0, 1.0, 0.0, 1.0]]
    torch.testing.assert_close(scaler.transform(other), torch.tensor(expected, dtype=torch.float32))
    assert MetadataScaler.load(scaler.save(tmp_path).parent) == scaler  # floats round-trip exactly
    with pytest.raises(ValueError, match="'followers': negative value -5.0 in the row with index 'BV2'"):
        scaler.transform(pd.DataFrame({"followers": [3, -5], "duration": [1.0, 1.0]}, index=["BV1", "BV2"]))
    with pytest.raises(ValueError, match="'duration' is unknown .NA. for every training video"):
        MetadataScaler.fit(pd.DataFrame({"duration": [np.nan, np.nan]}), ("duration",))


def test_statistics_come_from_the_train_split_only(run, data, tmp_path, monkeypatch):
    monkeypatch.setenv("POPNB_CACHE", str(tmp_path / "cache"))
    videos = load_dataset(data).videos
    _, train_idx, valid_idx = fit_labels(videos, "auto", 1 / 11, 0)  # tiny()'s labels, valid fraction, seed
    saved = json.loads((run / "metadata.json").read_text())
    followers = np.log1p(videos["followers"].iloc[train_idx].astype(float).dropna())  # row 0's NA left out
    assert saved["columns"] == list(COLUMNS) and saved["mean"][0] == pytest.approx(followers.mean(), rel=1e-12)
    assert saved["mean"][0] != pytest.approx(np.log1p(videos["followers"].astype(float)).mean(), rel=1e-6)

    row = int(valid_idx[0])
    def bigger(v):
        v.loc[row, "followers"] *= 1000
        return v
    changed = variant(data, tmp_path / "changed", bigger)
    train(tiny(changed, tmp_path / "b", max_steps=1))
    assert json.loads((tmp_path / "b" / "metadata.json").read_text()) == saved  # a valid row moves nothing


def test_a_saved_run_predicts_what_it_computed_in_training(run, data, capsys):
    loaded = load_run(run)
    videos = load_dataset(data).videos
    batch = run_predictions(loaded)  # the training pipeline: build_tensors with the saved scaler, infer
    assert (batch.video_ids == videos["video_id"]).all() and batch.probs.shape == (40, 5)
    for i in (0, 5):  # row 0: followers unknown (nan)
        meta = {c: float(videos[c].astype(float).iat[i]) for c in COLUMNS}
        one = predict(run, videos["title"].iat[i], load_dataset(data).cover_path(i), meta)
        # The same float32 function of the same inputs, in a batch of 40 or of 1: BLAS may block the sums
        # differently, ~20 layers of ~1e-7 relative rounding each, so probabilities agree to ~1e-6.
        np.testing.assert_allclose(one["probabilities"], batch.probs[i], rtol=1e-5, atol=1e-6)
        assert set(one["meta"]) == set(COLUMNS)
    far = {"followers": 1e7, "duration": 1.0}  # the metadata is read: other values, other probabilities
    moved = predict(run, videos["title"].iat[5], load_dataset(data).cover_path(5), far)["probabilities"]
    assert not np.allclose(moved, batch.probs[5], atol=1e-4)

    cover = str(load_dataset(data).cover_path(5))
    assert main(["predict", str(run), "--cover", cover, "--title", videos["title"].iat[5],
                 "--meta", f"followers={videos['followers'].iat[5]}", "--meta", f"duration={videos['duration'].iat[5]}"]) == 0
    np.testing.assert_allclose(json.loads(capsys.readouterr().out)["probabilities"], batch.probs[5], rtol=1e-5,
                               atol=1e-6)


def test_missing_metadata_is_a_clear_error(run, data, tmp_path, capsys):
    no_followers = variant(data, tmp_path / "nf", lambda v: v.drop(columns="followers"))
    with pytest.raises(ValueError, match="metadata column 'followers' is not in the data set"):
        train(tiny(no_followers, tmp_path / "r"))
    assert not (tmp_path / "r").exists()
    with pytest.raises(ValueError, match="--metadata must be one of followers, duration, got .*'likes'"):
        train(tiny(data, tmp_path / "r", metadata=("likes",)))
    video = load_dataset(data).videos.iloc[5]
    with pytest.raises(ValueError, match="trained with metadata followers, duration: give duration"):
        predict(run, video["title"], load_dataset(data).cover_path(5), {"followers": 10.0})
    with pytest.raises(SystemExit):
        main(["predict", str(run), "--cover", str(load_dataset(data).cover_path(5)), "--title", video["title"],
              "--meta", "followers"])
    assert "expected COLUMN=NUMBER" in capsys.readouterr().err


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_ddp_path_carries_the_metadata(run, data, tmp_path, monkeypatch):
    """train() inside a gloo process group of one (torchrun's variables set): the model is wrapped in DDP and
    every batch passes the metadata through it. One process: DDP's all-reduce averages one gradient (divides
    by 1) and broadcasts the weights to themselves, so the run is bit for bit the plain one."""
    monkeypatch.setenv("POPNB_CACHE", str(tmp_path / "cache"))
    inputs_seen, ddp_forward = [], DistributedDataParallel.forward
    monkeypatch.setattr(DistributedDataParallel, "forward",
                        lambda self, *inputs: inputs_seen.append(len(inputs)) or ddp_forward(self, *inputs))
    for key, value in {"RANK": "0", "WORLD_SIZE": "1", "LOCAL_RANK": "0", "MASTER_ADDR": "127.0.0.1",
                       "MASTER_PORT": str(free_port())}.items():
        monkeypatch.setenv(key, value)
    train(tiny(data, tmp_path / "ddp"))
    assert inputs_seen and set(inputs_seen) == {4}  # every batch through DDP: images, ids, mask, metadata
    want, got = (pd.read_csv(r / "history.csv").drop(columns="seconds") for r in (run, tmp_path / "ddp"))
    pd.testing.assert_frame_equal(got, want, check_exact=True)
    a, b = load_checkpoint(run / "checkpoint.pt")["model"], load_checkpoint(tmp_path / "ddp" / "checkpoint.pt")["model"]
    assert any(k.startswith("head.meta.") for k in a) and all(torch.equal(a[k], b[k]) for k in a)
