"""popnb.models.tokenize: the character vocabulary and the Hugging Face wrapper share one interface."""
from __future__ import annotations

import json

import pandas as pd
import pytest
import torch

from popnb.models import CharVocab, HFTokenizer, load_tokenizer, minilm_path
from popnb.models.tokenize import SPECIALS


def test_build_orders_by_count_and_drops_rare_and_whitespace():
    vocab = CharVocab.build(["视频 视频 好", "好好 a", "视b"], min_count=2)
    # counts: 视 3, 好 3, 频 2, a 1, b 1; spaces never count; ties broken by the character itself
    assert vocab.tokens[:4] == list(SPECIALS)
    assert vocab.tokens[4:] == sorted(["视", "好"]) + ["频"]
    ids, mask = vocab.encode(["好a 频"], max_len=6)
    assert ids.tolist() == [[vocab.cls_id, vocab.index["好"], vocab.unk_id, vocab.index["频"], vocab.sep_id, 0]]
    assert mask.tolist() == [[1, 1, 1, 1, 1, 0]]


def test_encode_pads_and_truncates_to_max_len():
    vocab = CharVocab.build(["abcdefgh"])
    ids, mask = vocab.encode(["abcdefgh", "ab"], max_len=5)
    assert ids.dtype == mask.dtype == torch.long and ids.shape == mask.shape == (2, 5)
    a, b, c = (vocab.index[ch] for ch in "abc")
    assert ids[0].tolist() == [vocab.cls_id, a, b, c, vocab.sep_id]  # truncated, [SEP] kept last
    assert ids[1].tolist() == [vocab.cls_id, a, b, vocab.sep_id, vocab.pad_id]
    assert mask.sum(1).tolist() == [5, 4]
    with pytest.raises(ValueError, match="max_len must be at least 2"):
        vocab.encode(["a"], max_len=1)


def test_save_load_round_trip_and_fingerprint(tmp_path):
    vocab = CharVocab.build(["弹幕好多😀", "Hello"])
    path = vocab.save(tmp_path)
    assert path == tmp_path / "vocab.json"
    loaded = load_tokenizer(tmp_path)
    assert isinstance(loaded, CharVocab) and loaded.tokens == vocab.tokens
    assert loaded.fingerprint == vocab.fingerprint
    assert CharVocab.build(["别的标题"]).fingerprint != vocab.fingerprint
    titles = ["好多😀 Hello", "弹"]
    assert all(torch.equal(x, y) for x, y in zip(loaded.encode(titles, 12), vocab.encode(titles, 12)))


def test_bad_vocab_file_names_the_file(tmp_path):
    (tmp_path / "vocab.json").write_text(json.dumps({"kind": "char"}), encoding="utf-8")
    with pytest.raises(ValueError, match="vocab.json: not a character vocabulary"):
        CharVocab.load(tmp_path)
    (tmp_path / "vocab.json").write_text(json.dumps({"tokens": ["a", "[PAD]"]}), encoding="utf-8")
    with pytest.raises(ValueError, match="must start with"):
        CharVocab.load(tmp_path)
    with pytest.raises(FileNotFoundError, match="no tokenizer here"):
        load_tokenizer(tmp_path / "empty")


def test_real_titles_encode_losslessly(bilibili_covers_src):
    titles = pd.read_csv(bilibili_covers_src / "videos.csv")["title"].astype(str).tolist()
    vocab = CharVocab.build(titles)
    ids, mask = vocab.encode(titles, max_len=128)
    assert (ids != vocab.unk_id).all()  # every character of the training titles is in the vocabulary
    for row, title in enumerate(titles):
        tokens = [vocab.tokens[i] for i in ids[row, 1 : int(mask[row].sum()) - 1]]
        assert "".join(tokens) == "".join(ch for ch in title if not ch.isspace())[:126]


def test_hf_tokenizer_wraps_minilm_and_round_trips(tmp_path):
    tok = HFTokenizer.from_pretrained(minilm_path())
    ids, mask = tok.encode(["hello world", "a much longer title that will be cut"], max_len=6)
    assert ids.shape == mask.shape == (2, 6) and ids.dtype == mask.dtype == torch.long
    assert ids[0, 0] == tok.tokenizer.cls_token_id and mask[0].tolist() == [1, 1, 1, 1, 0, 0]
    assert ids[1, -1] == tok.tokenizer.sep_token_id and mask[1].all()
    tok.save(tmp_path)
    loaded = load_tokenizer(tmp_path)
    assert isinstance(loaded, HFTokenizer) and loaded.fingerprint == tok.fingerprint
    assert torch.equal(loaded.encode(["hello world"], 6)[0], ids[:1])
