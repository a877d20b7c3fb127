"""Frozen backbones (popnb.train.frozen): the embedding cache (hits, misses, keys) and heads-only training."""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from popnb.data import load_dataset, make_demo_dataset
from popnb.metrics import constant_baseline
from popnb.models import build_model
from popnb.train.frozen import FrozenHeads, text_embeddings, train_heads, vision_embeddings

VIT, SIZE = "vit_tiny_patch16_224", 32


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """40 synthetic videos with covers."""
    return load_dataset(make_demo_dataset(tmp_path_factory.mktemp("demo") / "d", n=40, seed=2))


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """One cache folder for this module: a test may find what an earlier one computed."""
    return tmp_path_factory.mktemp("cache")


def test_vision_embeddings_are_cached_and_read_back_from_disk(demo, cache):
    first = vision_embeddings(demo, VIT, SIZE, seed=0, cache=cache)
    assert not first.hit and first.path.is_file() and first.path.parent == cache / "features"
    assert not [p for p in first.path.parent.iterdir() if p.name.startswith(".")]  # no temporary file left behind
    assert first.values.shape == (40, 192) and first.values.dtype == np.float32
    assert np.isfinite(first.values).all() and first.values.std(axis=0).mean() > 0

    again = vision_embeddings(demo, VIT, SIZE, seed=0, cache=cache)
    assert again.hit and again.path == first.path
    np.testing.assert_array_equal(again.values, first.values)

    np.save(first.path, first.values + 1)  # a hit returns what the file holds, not a recomputation
    np.testing.assert_array_equal(vision_embeddings(demo, VIT, SIZE, seed=0, cache=cache).values, first.values + 1)
    np.save(first.path, first.values)


def test_vision_key_changes_with_image_size_backbone_weights_and_data(demo, cache):
    base = vision_embeddings(demo, VIT, SIZE, seed=0, cache=cache)
    others = {
        "image size": vision_embeddings(demo, VIT, 48, seed=0, cache=cache),
        "backbone": vision_embeddings(demo, "convnext_atto", SIZE, seed=0, cache=cache),
        "random-init seed": vision_embeddings(demo, VIT, SIZE, seed=1, cache=cache),
        "data": vision_embeddings(replace(demo, videos=demo.videos.iloc[:30]), VIT, SIZE, seed=0, cache=cache),
    }
    for what, emb in others.items():
        assert not emb.hit and emb.path != base.path, what
    assert len({e.path for e in others.values()}) == len(others)
    assert others["data"].values.shape == (30, 192) and others["backbone"].values.shape == (40, 320)
    assert not np.allclose(others["random-init seed"].values, base.values)  # another random init, other features
    np.testing.assert_allclose(others["data"].values, base.values[:30], atol=1e-5)  # same covers, same features


def test_text_embeddings_key_on_tokens_vocabulary_and_seed(demo, cache):
    titles = demo.videos["title"].tolist()
    first = text_embeddings(demo, "charbert-tiny", titles, seed=0, cache=cache)
    assert not first.hit and first.values.shape == (40, 128)
    again = text_embeddings(demo, "charbert-tiny", titles, seed=0, cache=cache)
    assert again.hit and again.path == first.path
    np.testing.assert_array_equal(again.values, first.values)
    for other in (text_embeddings(demo, "charbert-tiny", titles[:10], seed=0, cache=cache),  # another vocabulary
                  text_embeddings(demo, "charbert-tiny", titles, seed=0, max_len=8, cache=cache),
                  text_embeddings(demo, "charbert-tiny", titles, seed=1, cache=cache),
                  text_embeddings(demo, "gru", titles, seed=0, cache=cache)):
        assert not other.hit and other.path != first.path


def test_heads_have_late_fusions_fcs_and_head():
    model, _ = build_model(VIT, "charbert-tiny", image_size=SIZE, titles=["一个标题"])
    heads = FrozenHeads(192, 128)
    assert heads.vision_fc.weight.shape == model.vision.fc.weight.shape
    assert heads.text_fc.weight.shape == model.text.fc.weight.shape
    assert [p.shape for p in heads.head.parameters()] == [p.shape for p in model.head.parameters()]


def test_heads_learn_a_rule_hidden_in_the_embeddings():
    """Labels are a linear rule of the vision embedding: trained heads beat the constant baseline by far."""
    gen = np.random.default_rng(0)
    v, t = gen.normal(size=(600, 16)).astype(np.float32), gen.normal(size=(600, 8)).astype(np.float32)
    labels = np.digitize(v[:, 0] + 0.5 * v[:, 1], [-1.0, -0.3, 0.3, 1.0])
    train_idx, valid_idx = np.arange(500), np.arange(500, 600)
    heads, history = train_heads(v, t, labels, v[:, 0], train_idx, valid_idx, (0.75, 0.25), epochs=6, seed=0,
                                 show=False)
    valid = [r for r in history if r["split"] == "valid"]
    train = [r for r in history if r["split"] == "train"]
    assert [r["epoch"] for r in valid] == [1, 2, 3, 4, 5, 6] and valid[-1]["n"] == 100 and train[-1]["n"] == 500
    assert train[-1]["loss"] < 0.7 * train[0]["loss"]
    assert valid[-1]["ordinal_accuracy"] > 0.8 > constant_baseline(labels[valid_idx])[1] + 0.3
    assert valid[-1]["vision_share"] > 0.9  # the text embedding holds nothing: the heads lean on the covers


def test_a_zero_weight_switches_its_branch_off():
    gen = np.random.default_rng(1)
    v, t = gen.normal(size=(120, 6)).astype(np.float32), gen.normal(size=(120, 5)).astype(np.float32)
    labels = gen.integers(0, 5, 120)
    def run(text):
        return train_heads(v, text, labels, labels.astype(float), np.arange(100), np.arange(100, 120), (1.0, 0.0),
                           epochs=2, seed=3, show=False)

    (heads_a, hist_a), (heads_b, hist_b) = run(t), run(-3 * t)
    assert [r["loss"] for r in hist_a] == [r["loss"] for r in hist_b]
    torch.testing.assert_close(heads_a.head.classifier.weight, heads_b.head.classifier.weight)


def test_heads_on_real_demo_embeddings_fit_the_training_set(demo, cache):
    titles = demo.videos["title"].tolist()
    v = vision_embeddings(demo, VIT, SIZE, seed=0, cache=cache).values
    t = text_embeddings(demo, "charbert-tiny", titles, seed=0, cache=cache).values
    labels = np.arange(40) % 5  # any labels: 40 videos, 192 + 128 features, so the heads can fit them
    _, history = train_heads(v, t, labels, np.arange(40.0), np.arange(32), np.arange(32, 40), epochs=6, lr=1e-2,
                             batch_size=8, seed=0, show=False)
    train = [r for r in history if r["split"] == "train"]
    assert train[-1]["loss"] < 0.5 * train[0]["loss"] and train[-1]["exact_accuracy"] > 0.8
