"""popnb.models: branches, late fusion, build_model, the backbone table (tiny sizes, CPU)."""
from __future__ import annotations

import copy

import pytest
import timm
import torch

from popnb.models import (
    BACKBONES,
    CharVocab,
    FusionHead,
    LateFusion,
    backbone_table,
    build_model,
    create_text,
    create_vision,
    image_transform_config,
    needs_vocab,
    text_encoder,
)
from popnb.models.registry import TEXT_ENCODERS, text_names

TITLES = ["【教程】三分钟学会做饭", "猫咪的一天😺", "Python 入门 第1集", "今天的视频很好看"]


@pytest.fixture(autouse=True)
def seeded():
    torch.manual_seed(0)


@pytest.fixture(scope="module")
def vocab() -> CharVocab:
    return CharVocab.build(TITLES)


def batch(vocab, size=32, n=4, max_len=16):
    ids, mask = vocab.encode(TITLES[:n], max_len)
    return torch.randn(n, 3, size, size), ids, mask


def test_vision_branch_shapes_and_data_config():
    vit = create_vision("vit_tiny_patch16_224", image_size=32, out_dim=24)
    assert vit(torch.randn(2, 3, 32, 32)).shape == (2, 24)
    assert vit.backbone.patch_embed.img_size == (32, 32)  # image size passed to the ViT, not 224
    cfg = image_transform_config(vit)
    assert cfg["size"] == 32 and cfg["mean"] == (0.5, 0.5, 0.5)  # augreg ViT normalisation
    conv = create_vision("convnext_atto", image_size=64, out_dim=24)
    assert conv(torch.randn(2, 3, 64, 64)).shape == (2, 24)
    assert image_transform_config(conv)["mean"] == pytest.approx((0.485, 0.456, 0.406))


def test_unknown_vision_name_lists_close_matches():
    with pytest.raises(ValueError, match="unknown vision backbone 'vit_tiny_patch16_22'.*vit_tiny_patch16_224"):
        create_vision("vit_tiny_patch16_22")


def test_image_size_the_backbone_cannot_take():
    with pytest.raises(ValueError, match="image_size 100 is not a multiple of .*patch size 16x16.*96 or 112"):
        create_vision("vit_tiny_patch16_224", image_size=100)
    with pytest.raises(ValueError, match="convnext_atto cannot take image_size 16x16"):
        create_vision("convnext_atto", image_size=16)


@pytest.mark.parametrize("name", ["charbert-tiny", "gru", "lstm", "minilm"])
def test_text_branch_shapes(name, vocab):
    branch = create_text(name, vocab=vocab, out_dim=24)
    ids, mask = branch.tokenizer.encode(TITLES, 16)
    out = branch(ids, mask)
    assert out.shape == (4, 24) and torch.isfinite(out).all()


@pytest.mark.parametrize("name", ["gru", "lstm", "charbert-tiny"])
def test_text_output_does_not_depend_on_padding(name, vocab):
    branch = create_text(name, vocab=vocab, out_dim=8).eval().double()
    short, long = (branch(*vocab.encode(TITLES, n)) for n in (24, 40))  # the same titles, more padding
    # Bound, float64 (u = 1.1e-16): padded positions are skipped (RNNs) or weighted exactly 0 (attention masks,
    # masked pooling), so only the summation order over a longer, zero-padded axis can change, <= ~1e3 * u
    # = 1e-13 of outputs |.| < 1: atol 1e-12. Padding that leaks into the output moves it by ~1e-2.
    torch.testing.assert_close(short, long, rtol=0, atol=1e-12)


def test_too_long_titles_are_a_clear_error(vocab):
    branch = create_text("charbert-tiny", vocab=vocab, out_dim=8)
    assert branch.max_len == 512
    with pytest.raises(ValueError, match="encoded to 600 tokens, charbert-tiny takes at most 512"):
        branch(*vocab.encode(TITLES, 600))


def test_minilm_uses_mean_pooling_and_drops_its_unused_pooler():
    branch = create_text("minilm", out_dim=8)
    assert branch.pooling == "mean" and branch.encoder.pooler is None
    assert create_text("minilm", pooling="pooler").encoder.pooler is not None


def test_text_errors_say_what_to_do(vocab):
    with pytest.raises(ValueError, match="needs a character vocabulary: pass vocab="):
        create_text("charbert-tiny")
    with pytest.raises(ValueError, match="unknown text backbone 'charbert-huge'.*charbert-"):
        create_text("charbert-huge", vocab=vocab)
    with pytest.raises(ValueError, match="gru has no pretrained weights"):
        create_text("gru", pretrained=True, vocab=vocab)
    with pytest.raises(ValueError, match="pooling must be one of"):
        create_text("charbert-tiny", vocab=vocab, pooling="max")


def tiny_model(vocab, weights=(0.75, 0.25), fusion="weighted", metadata=False) -> LateFusion:
    vision = create_vision("vit_tiny_patch16_224", image_size=32, out_dim=16)
    text = create_text("charbert-tiny", vocab=vocab, out_dim=16)
    return LateFusion(vision, text, weights, fusion, hidden=16, metadata=metadata)


@pytest.mark.parametrize("weights,ignored", [((1.0, 0.0), "text"), ((0.0, 1.0), "vision")])
def test_single_modality_runs_ignore_the_zero_weight_branch(vocab, weights, ignored):
    model = tiny_model(vocab, weights).eval()
    images, ids, mask = batch(vocab)
    logits = model(images, ids, mask)
    assert logits.shape == (4, 5)
    other = (images, ids.flip(0), mask.flip(0)) if ignored == "text" else (torch.randn_like(images), ids, mask)
    torch.testing.assert_close(model(*other), logits)  # changing the ignored input changes nothing
    model.train()
    model(images, ids, mask).sum().backward()
    zero_branch = model.text if ignored == "text" else model.vision
    live_branch = model.vision if ignored == "text" else model.text
    assert all(p.grad is not None and not p.grad.any() for p in zero_branch.parameters())  # ran, weight 0
    assert any(p.grad.abs().sum() > 0 for p in live_branch.parameters())


def test_weighted_fusion_is_the_papers_sum():
    head = FusionHead(16, weights=(0.75, 0.25))
    v, t = torch.randn(3, 16), torch.randn(3, 16)
    expected = (0.75 * v + 0.25 * t) @ head.classifier.weight.T + head.classifier.bias
    torch.testing.assert_close(head(v, t), expected)


def test_gate_starts_at_the_weighted_sum_and_concat_widens():
    gate, weighted = FusionHead(16, (0.6, 0.4), "gate"), FusionHead(16, (0.6, 0.4))
    gate.classifier.load_state_dict(weighted.classifier.state_dict())
    v, t = torch.randn(3, 16), torch.randn(3, 16)
    torch.testing.assert_close(gate(v, t), weighted(v, t))  # sigmoid(logit(0.6)) = 0.6 until trained
    assert FusionHead(16, (0.6, 0.4), "concat").classifier.in_features == 32
    with pytest.raises(ValueError, match="switch one off"):
        FusionHead(16, (1.0, 0.0), "gate")
    with pytest.raises(ValueError, match="fusion must be one of"):
        FusionHead(16, fusion="sum")
    with pytest.raises(ValueError, match="not both 0"):
        FusionHead(16, weights=(0, 0))


def test_tiny_model_learns_a_small_batch(vocab):
    model = tiny_model(vocab, fusion="gate")
    images, ids, mask = batch(vocab)
    labels = torch.tensor([0, 2, 4, 1])
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    losses = []
    for _ in range(10):
        loss = torch.nn.functional.cross_entropy(model(images, ids, mask), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.2 * losses[0]


def test_metadata_branch_reads_its_input(vocab):
    model = tiny_model(vocab, metadata=4).eval()
    images, ids, mask = batch(vocab, n=3)
    meta = torch.randn(3, 4)
    with pytest.raises(ValueError, match=r"pass meta \[B, 4\]"):
        model(images, ids, mask)
    assert not torch.allclose(model(images, ids, mask, meta), model(images, ids, mask, torch.zeros_like(meta)))
    assert tiny_model(vocab, fusion="concat", metadata=4).head.classifier.in_features == 3 * 16  # v, t, metadata


def test_build_model_defaults_and_errors(tmp_path):
    model, tokenizer = build_model(titles=TITLES, image_size=32)
    assert isinstance(tokenizer, CharVocab) and len(tokenizer) == len(CharVocab.build(TITLES))
    assert model.vision.name == "vit_tiny_patch16_224" and model.text.name == "charbert-tiny"
    assert model.head.weights == (0.75, 0.25) and model.head.fusion == "weighted"
    ids, mask = tokenizer.encode(TITLES, 16)
    assert model(torch.randn(4, 3, 32, 32), ids, mask).shape == (4, 5)
    # rebuilding from the saved vocabulary gives the same architecture, so a checkpoint loads into it
    again, _ = build_model(image_size=32, vocab=CharVocab.load(tokenizer.save(tmp_path)))
    again.load_state_dict(copy.deepcopy(model.state_dict()))
    with pytest.raises(ValueError, match="needs a character vocabulary"):
        build_model(image_size=32)
    with pytest.raises(ValueError, match="branch outputs must be 16 wide"):
        LateFusion(create_vision("vit_tiny_patch16_224", image_size=32), create_text("gru", vocab=tokenizer), hidden=16)


def test_backbone_table_names_are_real():
    table = backbone_table()
    assert list(table["key"]) == list(BACKBONES)
    assert {"vit_bert", "vgg_rnn", "vgg_bert", "coatnet_bert"} <= set(table["key"])
    paper = BACKBONES["vit_bert"]
    assert (paper.paper_vision, paper.paper_text) == ("vit_base_patch16_384", "bert-base-chinese")
    assert paper.paper_image_size == 384
    for row in BACKBONES.values():
        assert timm.is_model(row.vision) and timm.is_model(row.paper_vision), row.key
        assert row.text in text_names() and row.paper_text in text_names(), row.key


@pytest.mark.parametrize("name, pattern, vocab_needed", [
    ("charbert-tiny", "charbert-<size>", True), ("charbert-base", "charbert-<size>", True), ("gru", "gru", True),
    ("lstm", "lstm", True), ("minilm", "minilm", False), ("bert-base-chinese", "*", False),
    ("/models/my-bert", "*", False),
])
def test_text_names_resolve_to_one_registry_entry(name, pattern, vocab_needed):
    assert text_encoder(name).pattern == pattern and needs_vocab(name) is vocab_needed
    assert list(TEXT_ENCODERS)[-1] == "*"  # any other name: tried last


@pytest.mark.parametrize("name", ["gru", "minilm"])
def test_build_model_builds_a_character_vocabulary_when_the_registry_says(name):
    _, tokenizer = build_model(text=name, image_size=32, titles=TITLES)
    assert isinstance(tokenizer, CharVocab) is needs_vocab(name)
