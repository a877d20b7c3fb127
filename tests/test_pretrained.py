"""Pretrained loading: weights a test saves itself load back exactly; offline without weights, a clear error."""
from __future__ import annotations

import argparse
import pickle

import huggingface_hub.constants
import pytest
import timm
import torch
from safetensors.torch import load_file, save_file
from transformers import BertConfig, BertModel

from popnb.models import (
    CharVocab, UnsafePickleError, WeightsUnavailableError, build_model, create_text, create_vision, minilm_path,
)


@pytest.fixture
def empty_hub(tmp_path, monkeypatch):
    """Offline, with an empty hub cache and torch hub folder: no weights anywhere but what a test passes."""
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))


def assert_same_tensors(loaded: dict, saved: dict, prefix: str = ""):
    assert saved, "nothing was saved"
    for key, tensor in saved.items():
        assert torch.equal(loaded[prefix + key], tensor), key


def test_timm_checkpoint_loads_exactly(tmp_path, empty_hub):
    source = timm.create_model("vit_tiny_patch16_224", img_size=32)  # with its ImageNet head, as published
    torch.save(source.state_dict(), tmp_path / "vit.pth")
    branch = create_vision("vit_tiny_patch16_224", image_size=32, checkpoint=tmp_path / "vit.pth")
    saved = {k: v for k, v in source.state_dict().items() if not k.startswith("head.")}
    assert_same_tensors(branch.backbone.state_dict(), saved)
    # at another image size the position embeddings are resampled, the rest is the same
    bigger = create_vision("vit_tiny_patch16_224", image_size=48, checkpoint=tmp_path / "vit.pth")
    assert bigger.backbone.pos_embed.shape == (1, 1 + 3 * 3, 192)
    assert torch.equal(bigger.backbone.blocks[0].attn.qkv.weight, source.blocks[0].attn.qkv.weight)


def doubled(state: dict) -> dict:
    return {k: 2 * v for k, v in state.items()}


# the files a vision checkpoint comes as -> how to write one holding `state`
CHECKPOINT_FORMS = {
    "weights.safetensors": lambda state, path: save_file(state, str(path)),
    # timm's train.py: EMA weights preferred (timm's load_state_dict does too), args in an argparse.Namespace
    "timm_train.pth.tar": lambda state, path: torch.save(
        {"state_dict": doubled(state), "state_dict_ema": state, "args": argparse.Namespace(lr=0.1), "epoch": 3}, path),
    # a DDP training loop's checkpoint: the state dict under "model", keys with DDP's "module." prefix
    "ddp.pt": lambda state, path: torch.save(
        {"model": {f"module.{k}": v for k, v in state.items()}, "optimizer": {"state": {}}, "epoch": 1}, path),
}


@pytest.mark.parametrize("filename", CHECKPOINT_FORMS)
def test_wrapped_and_safetensors_checkpoints_load_exactly(tmp_path, empty_hub, filename):
    source = timm.create_model("test_vit", img_size=32)
    CHECKPOINT_FORMS[filename](source.state_dict(), tmp_path / filename)
    branch = create_vision("test_vit", image_size=32, checkpoint=tmp_path / filename)
    assert_same_tensors(branch.backbone.state_dict(),
                        {k: v for k, v in source.state_dict().items() if not k.startswith("head.")})
    assert "state_dict" not in branch.backbone.pretrained_cfg  # timm's copy of the weights is not kept


class Touch:
    """Unpickled, it creates `path` (as a malicious weights file could do anything)."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return open, (self.path, "w")


# torch.save's zip format, and a plain pickle (protocol 2, which the weights-only unpickler reads)
@pytest.mark.parametrize("write", [torch.save, lambda obj, path: path.write_bytes(pickle.dumps(obj, protocol=2))],
                         ids=["torch.save", "plain pickle"])
def test_a_vision_checkpoint_that_would_run_code_is_refused(tmp_path, empty_hub, write):
    marker = tmp_path / "ran"
    write({"args": Touch(marker), "state_dict": {"pos_embed": torch.zeros(1)}}, tmp_path / "vit.pth")
    with pytest.raises(UnsafePickleError) as err:
        create_vision("test_vit", image_size=32, checkpoint=tmp_path / "vit.pth")
    assert not marker.exists()
    message = str(err.value)
    assert f"{tmp_path / 'vit.pth'} was refused: unpickling it would call io.open" in message
    assert "nothing in it was run" in message
    assert "re-save its state dict as .safetensors" in message


def test_timm_checkpoint_errors(tmp_path, empty_hub):
    torch.save(timm.create_model("convnext_atto").state_dict(), tmp_path / "convnext.pth")
    with pytest.raises(ValueError, match="convnext.pth does not fit 'vit_tiny_patch16_224'"):
        create_vision("vit_tiny_patch16_224", image_size=32, checkpoint=tmp_path / "convnext.pth")
    with pytest.raises(FileNotFoundError, match="missing.pth does not exist"):
        create_vision("vit_tiny_patch16_224", image_size=32, checkpoint=tmp_path / "missing.pth")
    torch.save({"epoch": 3, "model": None}, tmp_path / "no_weights.pth")
    with pytest.raises(ValueError, match="no_weights.pth holds no state dict: expected a dict of tensors"):
        create_vision("vit_tiny_patch16_224", image_size=32, checkpoint=tmp_path / "no_weights.pth")
    (tmp_path / "text.safetensors").write_text("not weights")
    with pytest.raises(ValueError, match="text.safetensors: not a readable .safetensors file"):
        create_vision("vit_tiny_patch16_224", image_size=32, checkpoint=tmp_path / "text.safetensors")


def test_offline_vision_pretrained_says_what_to_do(empty_hub):
    with pytest.raises(WeightsUnavailableError) as err:
        create_vision("vit_tiny_patch16_224", pretrained=True, image_size=32)
    message = str(err.value)
    assert "not available offline" in message and "vision_checkpoint=PATH" in message and "pretrained=False" in message


def save_tiny_bert(folder, vocab_tokens) -> BertModel:
    (folder / "vocab.txt").parent.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.txt").write_text("\n".join(vocab_tokens) + "\n", encoding="utf-8")
    config = BertConfig(vocab_size=len(vocab_tokens), hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=64)
    model = BertModel(config)
    model.save_pretrained(folder)  # config.json + model.safetensors + vocab.txt: a bert-base-chinese download's files
    return model


def test_hf_folder_loads_exactly_by_path_and_as_checkpoint(tmp_path, empty_hub):
    tokens = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "视", "频", "好"]
    source = save_tiny_bert(tmp_path / "bert", tokens)
    by_path = create_text(str(tmp_path / "bert"), pretrained=True, out_dim=8)
    assert by_path.pooling == "pooler"
    assert_same_tensors(by_path.encoder.state_dict(), source.state_dict())
    ids, mask = by_path.tokenizer.encode(["视频好"], 6)
    assert ids[0, :5].tolist() == [2, 5, 6, 7, 3]  # the folder's own vocabulary, per character
    named = create_text("bert-base-chinese", checkpoint=tmp_path / "bert", out_dim=8)  # the name, weights local
    assert_same_tensors(named.encoder.state_dict(), source.state_dict())


def test_a_bert_folder_that_would_run_code_is_refused(tmp_path, empty_hub):
    tokens = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "视", "频", "好"]
    state = save_tiny_bert(tmp_path / "bert", tokens).state_dict()
    (tmp_path / "bert" / "model.safetensors").unlink()  # the older format instead: a pickle, here one with a payload
    marker = tmp_path / "ran"
    torch.save({**state, "extra": Touch(marker)}, tmp_path / "bert" / "pytorch_model.bin")
    for build in (lambda: create_text(str(tmp_path / "bert"), pretrained=True),
                  lambda: create_text("charbert-tiny", vocab=CharVocab(tokens[:4]), checkpoint=tmp_path / "bert")):
        with pytest.raises(UnsafePickleError) as err:
            build()
        assert not marker.exists()
        assert f"{tmp_path / 'bert'} was refused: unpickling it would call io.open" in str(err.value)
        assert "re-save its weights as model.safetensors" in str(err.value)


def test_offline_hf_name_says_what_to_do(empty_hub):
    with pytest.raises(WeightsUnavailableError) as err:
        create_text("bert-base-chinese", pretrained=True)
    message = str(err.value)
    assert "'bert-base-chinese' could not be loaded" in message and "text_checkpoint=PATH" in message
    assert "pretrained=False" in message and "charbert-base" in message
    with pytest.raises(WeightsUnavailableError, match=r"'grux' \(did you mean gru\?\)"):
        create_text("grux")
    with pytest.raises(WeightsUnavailableError, match="vision_checkpoint=PATH"):  # pretrained vision, scratch text
        build_model("vit_tiny_patch16_224", "gru", image_size=32, pretrained=(True, False), titles=["视频"])


def test_charbert_checkpoint_round_trip(tmp_path):
    vocab = CharVocab.build(["视频很好看", "标题"])
    trained = create_text("charbert-tiny", vocab=vocab)
    trained.encoder.save_pretrained(tmp_path / "charbert")
    loaded = create_text("charbert-tiny", vocab=vocab, checkpoint=tmp_path / "charbert")
    assert_same_tensors(loaded.encoder.state_dict(), trained.encoder.state_dict())
    with pytest.raises(ValueError, match="vocabulary of 11 tokens, the character vocabulary has 5"):
        create_text("charbert-tiny", vocab=CharVocab.build(["a"]), checkpoint=tmp_path / "charbert")
    with pytest.raises(ValueError, match="no published weights"):
        create_text("charbert-tiny", vocab=vocab, pretrained=True)


def test_minilm_loads_the_packaged_weights():
    branch = create_text("minilm", pretrained=True)
    saved = load_file(str(minilm_path() / "model.safetensors"))
    # every weight but the pooler (dropped: MiniLM pools by the mean) and the position_ids buffer
    weights = {k: v for k, v in saved.items() if not k.startswith("pooler.") and k != "embeddings.position_ids"}
    assert set(weights) == set(branch.encoder.state_dict())
    assert_same_tensors(branch.encoder.state_dict(), weights)
