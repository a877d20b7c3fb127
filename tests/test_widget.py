"""popnb.app.widget without a browser: set the widgets' values as a person would, read what the app shows."""
from __future__ import annotations

import io
import json
import math
import re
import shutil
import tempfile
import threading
import time
from datetime import datetime, timezone

import numpy as np
import pandas as pd
import pytest
from data_factories import opened_paths, save_outside_cover
from PIL import Image

from types import SimpleNamespace

from scipy.special import ndtr

from popnb.data import make_demo_dataset
from popnb.train.loop import TrainConfig, train
from popnb.train.pretrained import PretrainedRun, predict_pretrained, train_pretrained, train_scores
from popnb.train.run import predict
from popnb.app.widget import (CLOSE, NO_COVER, Debouncer, TryACover, ensure_demo_run, find_runs, prob_beats,
                              ranking, ranking_html)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """runs/demo: a tiny trained run (test_vit at 32 px + a GRU over characters, 2 steps) on 40 demo videos;
    runs/broken: its config.json without a checkpoint (a run killed before its first epoch ended).
    (The GRU: after 2 steps its titles already move the probabilities in the 3rd decimal the app shows;
    charbert-tiny's barely do.)"""
    base = tmp_path_factory.mktemp("widget")
    demo = make_demo_dataset(base / "demo", n=40, seed=0, size=(64, 36))
    root = base / "runs"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("POPNB_CACHE", str(base / "cache"))
        train(TrainConfig(str(demo), str(root / "demo"), vision="test_vit", text="gru", image_size=32, epochs=1,
                          max_steps=2, batch_size=8, lr=1e-3, max_len=24, threads=1))
    (root / "broken").mkdir()
    for name in ("config.json", "label_scheme.json", "vocab.json"):  # what train writes before the first checkpoint
        shutil.copy(root / "demo" / name, root / "broken" / name)
    return root


def shown_probabilities(candidate) -> list[float]:
    return [float(x) for x in re.findall(r'class="popnb-p">([0-9.]+)<', candidate.probs.value)]


def png_bytes(colour=(200, 30, 30), size=(80, 45)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, format="PNG")
    return buffer.getvalue()


def upload(candidate, name: str, content: bytes) -> None:
    candidate.upload.value = ({"name": name, "type": "", "size": len(content), "content": memoryview(content),
                               "last_modified": datetime.now(timezone.utc)},)


def test_prob_beats():
    one_hot = np.eye(5)
    assert prob_beats(one_hot[3], one_hot[1]) == 1.0 and prob_beats(one_hot[1], one_hot[3]) == 0.0
    assert prob_beats(one_hot[2], one_hot[2]) == 0.5  # a sure tie splits half
    rng = np.random.default_rng(0)
    a, b = rng.dirichlet(np.ones(5)), rng.dirichlet(np.ones(5))
    assert prob_beats(a, a) == pytest.approx(0.5)
    assert prob_beats(a, b) + prob_beats(b, a) == pytest.approx(1.0)
    by_hand = sum(a[i] * b[j] * (1.0 if i > j else 0.5 if i == j else 0.0) for i in range(5) for j in range(5))
    assert prob_beats(a, b) == pytest.approx(by_hand)
    draws = rng.choice(5, size=(200_000, 2), p=None)  # uniform vs uniform by simulation: 0.5
    assert prob_beats(np.full(5, 0.2), np.full(5, 0.2)) == pytest.approx(
        np.mean((draws[:, 0] > draws[:, 1]) + 0.5 * (draws[:, 0] == draws[:, 1])), abs=0.01)


def test_ranking_orders_by_expected_class():
    p = {"A": {"expected_class": 1.0, "probabilities": [0, 1, 0, 0, 0]},
         "B": {"expected_class": 3.0, "probabilities": [0, 0, 0, 1, 0]},
         "C": {"expected_class": 2.0, "probabilities": [0, 0.5, 0, 0.5, 0]}}
    order, pairs = ranking(p)
    assert order == ["B", "C", "A"]
    assert [(q["better"], q["worse"]) for q in pairs] == [("B", "C"), ("B", "A"), ("C", "A")]
    assert pairs[0]["delta"] == 1.0 and pairs[0]["p_beats"] == pytest.approx(0.75)  # B=3 beats C=1 or ties C=3


def test_find_runs(runs, tmp_path):
    assert find_runs(runs) == [runs / "broken", runs / "demo"]
    assert find_runs(tmp_path / "absent") == []


def test_the_app_shows_what_predict_says_and_follows_the_title(runs):
    app = TryACover(runs, "demo", delay=0)
    a = app.candidates[0]
    assert app.run is not None and app.run_picker.value == str(runs / "demo")
    assert a.title.value and a.source.value.startswith("cover of DEMO")  # a data set video to start from
    cover = app.cover_of(a)
    first = shown_probabilities(a)
    assert first == pytest.approx(predict(runs / "demo", a.title.value, cover)["probabilities"], abs=5e-4)
    assert "predicted class" in a.probs.value and "expected class" in a.probs.value
    assert a.heat.layout.display is None and bytes(a.heat.value[:8]) == b"\x89PNG\r\n\x1a\n"
    assert a.words.value.count("<span") == len(a.title.value.replace(" ", "")[:22])

    a.title.value = "揭秘！为什么黑洞会这样？10个冷知识"
    second = shown_probabilities(a)
    assert second != first
    assert second == pytest.approx(predict(runs / "demo", a.title.value, cover)["probabilities"], abs=5e-4)
    assert "updated" in app.status.value


def test_three_candidates_are_ranked(runs):
    app = TryACover(runs, "demo", delay=0)
    for c in app.candidates[1:]:
        c.use.value = True
    assert all(shown_probabilities(c) for c in app.candidates)
    expected = {c.name: predict(runs / "demo", c.title.value, app.cover_of(c))["expected_class"]
                for c in app.candidates}
    best = max(expected, key=expected.get)
    assert re.search(rf"ranked by expected class: <b>{best}</b>", app.ranking.value)
    assert app.ranking.value.count("<tr><td>") == 3  # A-B, A-C, B-C
    app.candidates[2].use.value = False
    assert app.ranking.value.count("<tr><td>") == 1 and app.candidates[2].probs.value == ""


def test_uploads_good_and_bad(runs):
    app = TryACover(runs, "demo", delay=0)
    a = app.candidates[0]
    upload(a, "mine.png", png_bytes())
    assert a.source.value == "uploaded mine.png" and app.cover_of(a).read_bytes() == png_bytes()
    assert a.cover.value == NO_COVER and a.cover.label == "(none: upload one)"  # the menu says so
    assert shown_probabilities(a) == pytest.approx(
        predict(runs / "demo", a.title.value, app.cover_of(a))["probabilities"], abs=5e-4)
    assert a.message.value == "" and a.heat.layout.display is None

    upload(a, "notes.txt", b"this is not an image")
    assert "notes.txt cannot be used as a cover" in a.message.value
    assert tempfile.gettempdir() not in a.message.value  # the user's file name, never where the app stored it
    assert shown_probabilities(a) == [] and a.heat.layout.display == "none"
    a.cover.value = 3  # a data set cover replaces the upload, and the app works again
    assert a.message.value == "" and len(shown_probabilities(a)) == 5


def test_empty_title_and_missing_cover_are_messages(runs):
    app = TryACover(runs, "demo", delay=0)
    a = app.candidates[0]
    a.title.value = "   "
    assert "title is empty" in a.message.value and shown_probabilities(a) == []
    a.title.value = "聊聊黑洞"
    assert len(shown_probabilities(a)) == 5
    a.cover.value = NO_COVER
    assert "trained with covers" in a.message.value and "give its cover image" in a.message.value


def test_a_run_without_checkpoint_is_a_message_and_the_app_stays_usable(runs):
    app = TryACover(runs, "broken", delay=0)
    assert app.run is None and "no checkpoint.pt" in app.status.value
    assert all(shown_probabilities(c) == [] for c in app.candidates)
    app.run_picker.value = str(runs / "demo")
    assert app.run is not None and len(shown_probabilities(app.candidates[0])) == 5


def test_no_runs_at_all_is_a_message(tmp_path):
    app = TryACover(tmp_path / "runs", "demo", delay=0)
    assert app.run is None and "no trained run" in app.status.value


def test_covers_leaving_the_data_set_are_not_offered_nor_opened(runs, tmp_path, monkeypatch):
    data = tmp_path / "edited"
    shutil.copytree(json.loads((runs / "demo" / "config.json").read_text(encoding="utf-8"))["data_dir"], data)
    secret = save_outside_cover(tmp_path)
    videos = pd.read_csv(data / "videos.csv", dtype=str, keep_default_na=False)
    videos.loc[:1, "cover"] = ["../elsewhere/secret.jpg", str(secret)]  # the first two videos, hand-edited
    videos.to_csv(data / "videos.csv", index=False)
    opened = opened_paths(monkeypatch)
    app = TryACover(runs, "demo", data_dir=data, delay=0)
    offered = [label.split(" · ")[0] for label, _ in app.candidates[0].cover.options[1:]]
    assert offered == videos.video_id[2:].tolist()
    assert app.candidates[0].source.value == f"cover of {videos.video_id[2]}" and shown_probabilities(app.candidates[0])
    assert app.cover_of(app.candidates[0]).resolve() in opened and secret.resolve() not in opened
    assert all(p.is_relative_to(data) for p in app.videos.path)


def test_debouncer_runs_once_after_a_burst():
    calls = []
    done = threading.Event()
    debounce = Debouncer(0.2)
    for _ in range(5):
        debounce.call(lambda: (calls.append(1), done.set()))
    assert done.wait(10) and calls == [1]
    time.sleep(0.3)
    assert calls == [1]


def test_ensure_demo_run_trains_once_on_the_demo_data_then_reuses_it(tmp_path):
    run = ensure_demo_run(tmp_path / "runs" / "demo", tmp_path / "demo", demo_n=40, demo_seed=1, epochs=1, limit=30)
    assert (tmp_path / "demo" / "n40_seed1" / "DATASET.json").is_file()  # the demo set it made
    config = json.loads((run / "config.json").read_text(encoding="utf-8"))
    assert (config["params"]["limit"], config["params"]["epochs"], config["n_videos"]) == (30, 1, 30)
    stamp = (run / "checkpoint.pt").stat().st_mtime_ns
    assert ensure_demo_run(run, tmp_path / "demo", demo_n=40, demo_seed=1, epochs=1, limit=30) == run
    assert (run / "checkpoint.pt").stat().st_mtime_ns == stamp  # reused, not trained again
    cover = next((tmp_path / "demo" / "n40_seed1" / "covers").glob("*.jpg"))
    assert predict(run, "聊聊黑洞", cover)["predicted_class"] in range(5)


@pytest.fixture(scope="module")
def pretrained_runs(tmp_path_factory):
    """runs/real: the default recipe (target log views) on 40 demo videos whose followers were redrawn to follow
    their views (log followers = log views + 3 + N(0, 0.3)), so the followers branch moves the prediction; their
    DATASET.json is gone, so to the app it is real data."""
    base = tmp_path_factory.mktemp("pretrained_app")
    data = make_demo_dataset(base / "data", n=40, seed=0, size=(64, 36))
    videos = pd.read_csv(data / "videos.csv", dtype=str, keep_default_na=False)
    noise = np.random.default_rng(0).normal(0, 0.3, len(videos))
    videos["followers"] = np.round(np.expm1(np.log1p(videos["views"].astype(float)) + 3 + noise)).astype(int)
    videos.to_csv(data / "videos.csv", index=False)
    (data / "DATASET.json").unlink()
    root = base / "runs"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("POPNB_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))
        train_pretrained(SimpleNamespace(data_dir=str(data), out=str(root / "real"), labels="log_views"))
    return root


def shown_percentile(candidate) -> tuple[str, int]:
    found = re.search(r"above <b>(\d+)%</b> of the (\d+) training videos", candidate.probs.value)
    return found[1], int(found[2])


def test_a_pretrained_run_shows_a_percentile_follows_the_followers_and_ranks_by_score(pretrained_runs):
    app = TryACover(pretrained_runs, delay=0)  # the default run: the one trained on real data
    run = app.run
    assert isinstance(run, PretrainedRun) and app.run_picker.value == str(pretrained_runs / "real")
    assert app.followers.layout.display is None
    a, b = app.candidates[:2]
    cover = app.cover_of(a)
    unknown = predict_pretrained(run, a.title.value, cover, {"followers": math.nan})  # followers 0: unknown
    assert shown_probabilities(a) == pytest.approx(unknown["probabilities"], abs=5e-4)  # shown to 3 decimals
    scores = train_scores(run)
    assert shown_percentile(a) == (f"{100 * np.mean(scores < unknown['score']):.0f}", len(scores))
    assert a.heat.layout.display is None and a.words.value.count("<span") == len(a.title.value.replace(" ", ""))

    app.followers.value = 2e6
    known = predict_pretrained(run, a.title.value, cover, {"followers": 2e6})
    assert abs(known["score"] - unknown["score"]) > 0.1
    assert shown_probabilities(a) == pytest.approx(known["probabilities"], abs=5e-4)
    assert shown_percentile(a)[0] == f"{100 * np.mean(scores < known['score']):.0f}"

    b.cover.value, b.title.value = a.cover.value, a.title.value + "！"  # one character more: a close call
    b.use.value = True
    mu = {c.name: predict_pretrained(run, c.title.value, cover, {"followers": 2e6})["score"] for c in (a, b)}
    assert abs(mu["A"] - mu["B"]) < run.model.sigma and CLOSE in app.ranking.value
    p_beats = ndtr(abs(mu["A"] - mu["B"]) / (run.model.sigma * math.sqrt(2)))
    assert f"<td>{p_beats:.2f}</td>" in app.ranking.value

    a.title.value = "  "
    assert "title is empty" in a.message.value and shown_probabilities(a) == []
    app.followers.value = -5
    assert "followers cannot be negative" in b.message.value and app.ranking.value == ""


def test_ranking_by_score_uses_the_gaussian_and_notes_close_pairs():
    p = {n: {"score": s, "expected_class": 0.0, "probabilities": [1, 0, 0, 0, 0]}
         for n, s in (("A", 5.0), ("B", 5.3), ("C", 2.0))}
    order, pairs = ranking(p, sigma=0.5)
    assert order == ["B", "A", "C"] and pairs[0]["delta"] == pytest.approx(0.3)
    assert pairs[1]["p_beats"] == pytest.approx(ndtr(3.3 / (0.5 * math.sqrt(2))))
    shown = ranking_html(p, sigma=0.5)
    assert shown.count(CLOSE) == 1 and "ranked by predicted score: <b>B</b>" in shown
