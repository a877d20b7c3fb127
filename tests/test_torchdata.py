"""The torch data pipeline: cover cache, normalisation, text-only data, split and batch order."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

import popnb.data.torchdata as td
from popnb.data import load_dataset, make_demo_dataset, write_dataset
from popnb.models import CharVocab


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    return load_dataset(make_demo_dataset(tmp_path_factory.mktemp("demo") / "d", n=24, seed=1, size=(48, 27)))


def solid(path, rgb, size=(40, 30)):
    Image.new("RGB", size, rgb).save(path, "PNG")
    return path


def test_cover_array_is_the_squashed_rgb_image(tmp_path):
    arr = td.cover_array(solid(tmp_path / "c.png", (200, 10, 90)), 16)
    assert arr.shape == (3, 16, 16) and arr.dtype == np.uint8
    assert arr[:, 5, 7].tolist() == [200, 10, 90]


def test_covers_are_decoded_once_then_read_from_the_cache(tmp_path, monkeypatch):
    paths = [solid(tmp_path / "a.png", (255, 0, 0)), None, solid(tmp_path / "b.png", (0, 0, 255))]
    calls = []
    real_open = td.open_cover
    monkeypatch.setattr(td, "open_cover", lambda p, **kw: calls.append(p) or real_open(p, **kw))
    monkeypatch.setenv("POPNB_CACHE", str(tmp_path / "cache"))

    first = td.cached_covers(paths, 8)
    assert len(calls) == 2
    files = list((tmp_path / "cache").glob("covers-*.npy"))
    assert len(files) == 1 and isinstance(first, np.memmap)
    assert first[0, 0].min() == 255 and first[2, 2].min() == 255 and first[1].max() == 0  # red, no cover, blue

    second = td.cached_covers(paths, 8)
    assert len(calls) == 2  # nothing decoded again
    np.testing.assert_array_equal(first, second)

    td.cached_covers(paths, 12)  # another size is another cache entry
    assert len(calls) == 4 and len(list((tmp_path / "cache").glob("covers-*.npy"))) == 2


def test_a_changed_cover_file_changes_the_cache_key(tmp_path):
    path = solid(tmp_path / "a.png", (255, 0, 0))
    before = td.covers_key([path], 8)
    solid(path, (0, 255, 0), size=(41, 30))
    assert td.covers_key([path], 8) != before


def test_items_are_normalised_with_the_given_mean_and_std(demo, tmp_path):
    vocab = CharVocab.build(demo.videos["title"])
    labels, scores = np.arange(len(demo)) % 5, np.linspace(0, 1, len(demo))
    ds = td.build_tensors(demo, vocab, labels, scores, 16, 20, True, mean=(0.5, 0.4, 0.3), std=(0.2, 0.25, 0.5),
                          cache=tmp_path)
    images, ids, mask, y = ds[np.array([3, 0])]
    assert images.shape == (2, 3, 16, 16) and images.dtype == torch.float32
    raw = torch.from_numpy(td.cover_array(demo.cover_path(3), 16)).float() / 255
    expected = (raw - torch.tensor([0.5, 0.4, 0.3]).view(3, 1, 1)) / torch.tensor([0.2, 0.25, 0.5]).view(3, 1, 1)
    torch.testing.assert_close(images[0], expected)
    want_ids, want_mask = vocab.encode([demo.videos["title"].iat[3], demo.videos["title"].iat[0]], 20)
    assert torch.equal(ids, want_ids) and torch.equal(mask, want_mask)
    assert y.tolist() == [3, 0]
    single = ds[3]
    assert single[0].shape == (3, 16, 16) and int(single[3]) == 3


def test_text_only_reads_no_image_and_feeds_zeros(tmp_path, monkeypatch):
    videos = pd.DataFrame({"video_id": ["a", "b", "c"], "title": ["一", "二", "三"], "cover": ["", "", ""],
                           "views": [1, 2, 3], "likes": [1, 1, 1], "coins": [0, 0, 0], "favorites": [0, 0, 0],
                           "shares": [0, 0, 0]})
    write_dataset(videos, tmp_path / "stats")
    data = load_dataset(tmp_path / "stats")
    vocab = CharVocab.build(videos["title"])
    with pytest.raises(ValueError, match="3 of 3 videos have no cover"):
        td.build_tensors(data, vocab, [0, 1, 2], [0.0, 1.0, 2.0], 16, 8, True, cache=tmp_path)
    monkeypatch.setattr(td, "open_cover", lambda *a, **k: pytest.fail("text-only data must not read images"))
    ds = td.build_tensors(data, vocab, [0, 1, 2], [0.0, 1.0, 2.0], 16, 8, False, cache=tmp_path)
    images, _, _, y = ds[np.arange(3)]
    assert images.shape == (3, 3, 16, 16) and not images.any() and y.tolist() == [0, 1, 2]


def test_cache_dir_follows_popnb_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("POPNB_CACHE", str(tmp_path / "x"))
    assert td.cache_dir() == tmp_path / "x"
    monkeypatch.delenv("POPNB_CACHE")
    assert td.cache_dir().parts[-2:] == (".cache", "popnb")


def test_stratified_split_keeps_class_shares_and_depends_on_the_seed():
    labels = np.repeat([0, 1, 2, 3, 4], [110, 55, 22, 11, 2])
    train, valid = td.stratified_split(labels, 1 / 11, seed=0)
    assert np.intersect1d(train, valid).size == 0 and np.union1d(train, valid).tolist() == list(range(len(labels)))
    assert np.bincount(labels[valid], minlength=5).tolist() == [10, 5, 2, 1, 0]
    again, _ = td.stratified_split(labels, 1 / 11, seed=0)
    other, _ = td.stratified_split(labels, 1 / 11, seed=1)
    assert np.array_equal(train, again) and not np.array_equal(train, other)
    with pytest.raises(ValueError, match="too few"):
        td.stratified_split(np.array([0, 1]), 1 / 11, seed=0)


def test_batch_order_is_a_function_of_seed_and_epoch():
    positions = np.arange(100, 137)
    a = td.epoch_batches(positions, 8, seed=3, epoch=1)
    assert [len(b) for b in a] == [8, 8, 8, 8, 5]
    assert sorted(np.concatenate(a).tolist()) == positions.tolist()
    assert all(np.array_equal(x, y) for x, y in zip(a, td.epoch_batches(positions, 8, seed=3, epoch=1)))
    assert not np.array_equal(np.concatenate(a), np.concatenate(td.epoch_batches(positions, 8, seed=3, epoch=2)))
    assert not np.array_equal(np.concatenate(a), np.concatenate(td.epoch_batches(positions, 8, seed=4, epoch=1)))
    assert np.concatenate(td.epoch_batches(positions, 8, seed=3, epoch=None)).tolist() == positions.tolist()
