"""popnb.explain on a known answer: a ViT trained on demo covers whose label is exactly "has the yellow face"
must put its heat inside the face boxes of truth.csv; title importance is the effect of deleting one character."""
from __future__ import annotations

import copy
import dataclasses
import os
import threading
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch

from popnb import explain
from popnb.data import make_demo_dataset, write_dataset
from popnb.train.loop import TrainConfig, train
from popnb.train.pretrained import (embed, load_pretrained_run, outputs, predict_pretrained, train_pretrained,
                                    video_branches)
from popnb.train.run import load_run, model_inputs, predict

COVER_SIZE = (96, 54)
N_EXPLAINED = 8  # covers with a face whose heat is averaged


@pytest.fixture(scope="module")
def face_task(tmp_path_factory):
    """(demo folder, truth, run folder): a vision-only run (weights 1/0) on 200 demo covers whose views are
    high exactly when the cover has the face (so the face is the one thing that decides the class).
    (lr 5e-4, batch 8, 4 epochs: seeds 0-3 all learn it, and their heat all sits on the faces by a factor > 9.)"""
    base = tmp_path_factory.mktemp("face")
    demo = make_demo_dataset(base / "demo", n=200, seed=0, size=COVER_SIZE)
    truth = pd.read_csv(demo / "truth.csv")
    videos = pd.read_csv(demo / "videos.csv")
    videos["views"] = np.where(truth["face"], 10_000, 100)
    for column, rate in {"likes": 0.06, "coins": 0.012, "favorites": 0.015, "shares": 0.003}.items():
        videos[column] = (videos["views"] * rate).round().astype(int)
    face = base / "face"
    face.mkdir()
    os.symlink(demo / "covers", face / "covers")
    write_dataset(videos, face)
    run = base / "run"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("POPNB_CACHE", str(base / "cache"))
        summary = train(TrainConfig(str(face), str(run), vision="vit_tiny_patch16_224", fusion_weights=(1.0, 0.0),
                                    image_size=48, epochs=4, batch_size=8, lr=5e-4, max_len=8, threads=1))
    # it learned the face (a constant guess scores about 0.6), else the test means nothing
    assert summary["final"]["valid"]["exact_accuracy"] >= 0.8
    return demo, truth, run


@pytest.fixture(scope="module")
def mixed_run(face_task, tmp_path_factory):
    """A tiny cover + title run (weights 0.5/0.5, 8 steps) on the demo covers and titles: its titles matter."""
    demo, _, _ = face_task
    run = tmp_path_factory.mktemp("mixed") / "run"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("POPNB_CACHE", str(run.parent / "cache"))
        train(TrainConfig(str(demo), str(run), vision="test_vit", image_size=32, fusion_weights=(0.5, 0.5), epochs=1,
                          max_steps=8, batch_size=8, lr=3e-3, max_len=24, threads=1))
    return run


def log_odds(prediction: dict, target="expected") -> float:
    return float(explain.target_of(torch.tensor([prediction["probabilities"]], dtype=torch.float64), target)[0])


def test_targets_are_log_odds_that_survive_a_confident_model():
    probs = torch.tensor([[0.1, 0.2, 0.4, 0.2, 0.1], [1e-13, 1e-13, 1e-13, 1e-13, 1 - 4e-13]], dtype=torch.float64)
    expected = (probs @ torch.arange(5.0, dtype=torch.float64))
    np.testing.assert_allclose(explain.target_of(probs, "expected"), torch.log(expected / (4 - expected)), rtol=1e-3)
    assert explain.target_of(probs, "expected")[0] == pytest.approx(0.0)  # E = 2: as likely up as down
    np.testing.assert_allclose(explain.target_of(probs, 2)[0], np.log(0.4 / 0.6))
    sure = float(explain.target_of(probs, 4)[1])
    assert np.isfinite(sure) and sure == pytest.approx(np.log((1 - 4e-13) / 4e-13), rel=1e-6)
    surer = float(explain.target_of(torch.tensor([[1e-14] * 4 + [1 - 4e-14]], dtype=torch.float64), 4)[0])
    assert surer > sure + 2  # p = 1 - 4e-13 and 1 - 4e-14 differ by ln(10) in log-odds, not by 4e-13


def face_heat(run, demo, truth, method, target) -> tuple[float, float]:
    """(mean heat inside the face boxes, mean heat outside them) over N_EXPLAINED covers with a face.
    Heat is in the target's log-odds units, the same for every cover, so the maps are pooled as they are."""
    inside, outside = [], []
    for row in truth[truth["face"]].tail(N_EXPLAINED).itertuples():
        images, ids, mask = model_inputs(run, "标题", demo / "covers" / f"{row.video_id}.jpg")
        heat = explain.resize_heat(explain.cover_heatmap(run.model, images, ids, mask, target, method), COVER_SIZE)
        assert heat.shape == (COVER_SIZE[1], COVER_SIZE[0]) and (heat >= 0).all()
        x0, y0, x1, y1 = (int(v) for v in (row.face_x0, row.face_y0, row.face_x1, row.face_y1))
        box = np.zeros(heat.shape, bool)
        box[y0:y1, x0:x1] = True
        inside.append(heat[box].mean())
        outside.append(heat[~box].mean())
    return float(np.mean(inside)), float(np.mean(outside))


@pytest.mark.parametrize("method, target", [("rollout", "expected"), ("occlusion", 4)])
def test_heat_sits_on_the_face(face_task, method, target):
    demo, truth, run_dir = face_task
    run = load_run(run_dir)
    inside, outside = face_heat(run, demo, truth, method, target)
    assert inside > 3 * outside, f"{method}: mean heat inside the face boxes {inside:.3g}, outside {outside:.3g}"


def test_auto_picks_rollout_for_a_vit_and_heat_follows_the_target(face_task):
    demo, truth, run_dir = face_task
    run = load_run(run_dir)
    assert explain.is_vit(run.model)
    row = truth[truth["face"]].iloc[0]
    images, ids, mask = model_inputs(run, "标题", demo / "covers" / f"{row.video_id}.jpg")
    auto = explain.cover_heatmap(run.model, images, ids, mask, "expected", "auto")
    np.testing.assert_allclose(auto, explain.rollout(run.model, images, ids, mask, "expected"))
    # the probability of class 0 ("no face") falls where the face is: its heat is not the heat of class 4
    assert not np.allclose(explain.occlusion(run.model, images, ids, mask, 0),
                           explain.occlusion(run.model, images, ids, mask, 4))


def test_explain_matches_predict_and_importance_is_the_effect_of_deleting_a_character(face_task, mixed_run,
                                                                                       monkeypatch):
    demo, truth, _ = face_task
    run = load_run(mixed_run)
    cover = demo / "covers" / f"{truth['video_id'].iloc[0]}.jpg"
    title = "为什么黑洞 会这样？"
    result = explain.explain(run, title, cover)
    expected = predict(mixed_run, title, cover)
    # Bound: the same inputs and float32 model give the same logits; explain takes their softmax in float64,
    # predict in float32, whose exp, 5-term sum and division round a probability p <= 1 by <= ~8 * 2**-24 * p
    # = 5e-7: atol 1e-6.
    np.testing.assert_allclose(result.prediction["probabilities"], expected["probabilities"], rtol=0, atol=1e-6)
    assert result.prediction["predicted_class"] == expected["predicted_class"]
    assert result.prediction["class_score_ranges"] == expected["class_score_ranges"]
    assert result.heat is not None and result.heat.shape == (32, 32)

    chars = list("为什么黑洞会这样？")  # whitespace dropped
    assert result.tokens == chars and result.importance.shape == (len(chars),)
    # The definition, checked on a float64 copy of the run: in float32 the batched deletions (title_importance)
    # and the one-title forwards below round differently by ~1e-7 of log-odds ~0.4, no less than 1% of these
    # importances (~1e-5), and no bound separates the two there.
    run = dataclasses.replace(run, model=copy.deepcopy(run.model).double())
    monkeypatch.setattr(explain, "model_inputs", lambda *args: tuple(
        x.double() if x.is_floating_point() else x for x in model_inputs(*args)))
    before = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)  # rollout's identity matrix, at the attention's dtype
    try:
        result = explain.explain(run, title, cover)
        largest = float(np.abs(result.importance).max())
        assert largest > 1e-5
        for i in (0, 4, len(chars) - 1):
            without = explain.explain(run, "".join(chars[:i] + chars[i + 1:]), cover).prediction
            change = log_odds(result.prediction) - log_odds(without)
            # Bound: float64 log-odds (~0.4) computed in another batch shape differ by <= ~1e3 * 1.1e-16 * 0.4
            # = 4e-14, and title_importance returns float32, rounding |importance| <= 1e-4 by <= 6e-12:
            # atol 1e-10 (2e-6 of the largest importance; any two characters' importances are > 3e-7 apart).
            assert result.importance[i] == pytest.approx(change, abs=1e-10)
    finally:
        torch.set_default_dtype(before)


def test_a_vision_only_run_gives_no_title_character_any_importance(face_task):
    demo, truth, run_dir = face_task
    cover = demo / "covers" / f"{truth['video_id'].iloc[0]}.jpg"
    result = explain.explain(load_run(run_dir), "揭秘！10个问题", cover)
    assert len(result.tokens) == 8 - 2  # max_len 8: [CLS], 6 characters, [SEP]
    assert np.abs(result.importance).max() < 1e-6  # 0 up to float rounding


def test_bad_inputs_say_what_is_wrong(face_task, tmp_path):
    demo, truth, run_dir = face_task
    run = load_run(run_dir)
    with pytest.raises(ValueError, match="title is empty"):
        model_inputs(run, "  ", None)
    with pytest.raises(ValueError, match="trained with covers"):
        model_inputs(run, "标题", None)
    text = tmp_path / "notes.png"
    text.write_text("not an image")
    with pytest.raises(ValueError, match="notes.png"):
        model_inputs(run, "标题", text)
    images, ids, mask = model_inputs(run, "标题", demo / "covers" / f"{truth['video_id'].iloc[0]}.jpg")
    with pytest.raises(ValueError, match="method"):
        explain.cover_heatmap(run.model, images, ids, mask, "expected", "gradcam++")
    with pytest.raises(ValueError, match="target"):
        explain.cover_heatmap(run.model, images, ids, mask, 7, "occlusion")


def test_box_heat_ratio_and_overlay():
    heat = np.zeros((10, 20), np.float32)
    heat[2:6, 12:18] = 1.0
    assert explain.box_heat_ratio(heat, (12, 2, 18, 6)) == np.inf
    heat += 0.5
    assert explain.box_heat_ratio(heat, (12, 2, 18, 6)) == pytest.approx(3.0)
    from PIL import Image

    cover = Image.new("RGB", (40, 20), (0, 0, 255))
    shown = np.asarray(explain.overlay(cover, heat[:, :]))
    assert shown.shape == (20, 40, 3)
    assert shown[0, 0].tolist() != shown[8, 30].tolist()  # hot pixels are recoloured, cold ones less so


def test_rollout_beside_another_thread_using_the_same_model(face_task):
    """The app explains in a timer thread while the notebook may run the same model: no mixing up."""
    demo, truth, run_dir = face_task
    run = load_run(run_dir)
    model = run.model.double()  # float64, for the bound below
    inputs = [x.double() if x.is_floating_point() else x
              for x in model_inputs(run, "标题", demo / "covers" / f"{truth['video_id'].iloc[0]}.jpg")]
    before = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)  # rollout's identity matrix, at the attention's dtype
    try:
        alone = explain.rollout(model, *inputs)
        failures = []

        def busy():
            try:
                for _ in range(15):
                    explain.occlusion(model, *inputs)
            except Exception as err:  # noqa: BLE001 -- reported by the main thread
                failures.append(err)

        other = threading.Thread(target=busy)
        other.start()
        while other.is_alive():
            # Bound: the same operations on the same inputs, so the same numbers, except where a busy CPU makes
            # a matmul split its work over threads otherwise; that reorders sums of <= 768 terms (vit_tiny) in
            # each of 12 blocks: <= 12 * 768 * 1.1e-16 = 1e-12 relative, and the heat sums products of
            # non-negative terms (clamp(min=0)): rtol 1e-9, atol 1e-12 for entries whose terms cancel to ~0.
            # Another thread's attention recorded into this rollout changes the heat by ~100%.
            np.testing.assert_allclose(explain.rollout(model, *inputs), alone, rtol=1e-9, atol=1e-12)
        other.join()
        assert failures == []
    finally:
        torch.set_default_dtype(before)


@pytest.fixture(scope="module")
def pretrained_run(tmp_path_factory):
    """(demo folder, run): the default recipe (EfficientNet-Lite0 + e5-small + followers, ridge fusion) on 40 demo
    videos, target log views; features in the session's feature store (as tests/test_pretrained_recipe.py)."""
    base = tmp_path_factory.mktemp("pretrained")
    demo = make_demo_dataset(base / "demo", n=40, seed=0, size=(64, 36))
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("POPNB_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))
        train_pretrained(SimpleNamespace(data_dir=str(demo), out=str(base / "run"), labels="log_views"))
    return demo, load_pretrained_run(base / "run")


def test_a_pretrained_run_is_explained_by_the_drops_of_its_score(pretrained_run, tmp_path):
    from PIL import Image

    demo, run = pretrained_run
    video = pd.read_csv(demo / "videos.csv").iloc[0]
    title, cover, meta = video["title"], demo / video["cover"], {"followers": float(video["followers"])}
    result = explain.explain(run, title, cover, meta=meta)
    direct = predict_pretrained(run, title, cover, meta)
    assert result.prediction == {k: v for k, v in direct.items() if k in result.prediction}  # the same computation
    assert result.heat.shape == (5, 8) and np.isfinite(result.heat).all() and (result.heat >= 0).all()

    # each patch's drop, computed directly: the encoder's view of the cover (a PNG round trip keeps it exactly),
    # patch (row r, column c) of an 8 x 5 grid painted the encoder's fill colour, every occluded cover scored
    encoder = run.encoder("cover")
    pixels = encoder.pixels([cover])[0].transpose(1, 2, 0)
    Image.fromarray(pixels).save(tmp_path / "seen.png")
    assert (encoder.pixels([tmp_path / "seen.png"])[0].transpose(1, 2, 0) == pixels).all()
    h, w = pixels.shape[:2]
    paths = []
    for r in range(5):
        for c in range(8):
            patched = pixels.copy()
            patched[round(r * h / 5):round((r + 1) * h / 5), round(c * w / 8):round((c + 1) * w / 8)] = encoder.fill
            paths.append(tmp_path / f"{r}_{c}.png")
            Image.fromarray(patched).save(paths[-1])
    branches = video_branches(run, [title], [cover], pd.DataFrame([meta]))
    occluded = [outputs(run.model, branches | {"cover": x[None]})["score"][0] for x in embed(encoder, paths)]
    drops = np.maximum(direct["score"] - np.array(occluded), 0).reshape(5, 8)
    # Bound: the occluded covers are encoded here in batches of 32 + 8 (embed), there in one of 40; float32
    # features of the batch norm-folded net in other batch shapes differ by ~1e-6 (measured 8e-7 on features up
    # to 4.2): 1e-5 each.
    # The score moves by at most w_v * sum_j |coef_j / std_j| * 1e-5 (the cover ridge is linear in them);
    # max(., 0) does not widen a difference.
    head = run.model.heads["cover"]
    bound = run.model.weights["cover"] * np.abs(head.coef / head.std).sum() * 1e-5
    assert result.heat.max() > 100 * bound  # the check separates real drops
    np.testing.assert_allclose(result.heat, drops, rtol=0, atol=bound)

    # each character's importance, directly: the title without it, embedded alone, with the video's other branches
    chars = [ch for ch in title if not ch.isspace()]
    assert result.tokens == chars
    spots = [i for i, ch in enumerate(title) if not ch.isspace()]
    for k, i in enumerate(spots):
        without = branches | {"title": embed(run.encoder("title"), [title[:i] + title[i + 1:]])}
        change = direct["score"] - outputs(run.model, without)["score"][0]
        # Bound: e5 embeds a text the same alone or in a batch (measured bitwise); the float64 ridge sums differ
        # by ~1e-13 between a [1, D] and an [n, D] product; importance is float32: rel 6e-8 of |importance|.
        assert result.importance[k] == pytest.approx(change, rel=1e-6, abs=1e-10)
    assert np.abs(result.importance).max() > 1e-4


def test_a_pretrained_run_without_a_cover_or_title_says_so(pretrained_run):
    demo, run = pretrained_run
    with pytest.raises(ValueError, match="give the cover image"):
        explain.explain(run, "聊聊黑洞", None, meta={"followers": 10.0})
    with pytest.raises(ValueError, match="title is empty"):
        explain.explain(run, " ", None)
    with pytest.raises(ValueError, match="give followers"):
        explain.explain(run, "聊聊黑洞", next((demo / "covers").glob("*.jpg")))
