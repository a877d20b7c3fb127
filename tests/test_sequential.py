"""as_sequential: the same model, as a flat sequence of tuple-passing stages, on the same parameters."""
from __future__ import annotations

import pandas as pd
import pytest
import torch
from torchgpipe import GPipe

from popnb.models import BACKBONES, CharVocab, LateFusion, MetadataScaler, as_sequential, create_text, create_vision

TITLES = ["【教程】三分钟学会做饭", "猫咪的一天😺", "Python 入门 第1集", "今天的视频很好看"]


@pytest.fixture(autouse=True)
def seeded():
    torch.manual_seed(0)


def make(vision: str, text: str, size: int, **kwargs) -> tuple[LateFusion, tuple[torch.Tensor, ...]]:
    branch = create_text(text, vocab=CharVocab.build(TITLES), out_dim=16)
    model = LateFusion(create_vision(vision, image_size=size, out_dim=16), branch, hidden=16, **kwargs)
    ids, mask = branch.tokenizer.encode(TITLES, 16)
    return model, (torch.randn(4, 3, size, size), ids, mask)


# the CPU-scale rows of the backbone table at test image sizes, and the least number of stages each must give
# (ViT/DeiT: embed + 12 blocks + head; VGG: 5 pooling blocks + head; ConvNeXt/CoAtNet: stem + 4 stages + head;
# BERT: embeddings + layers + pool; RNN: embed + rnn; + 1 fusion stage)
CASES = {
    "vit_bert": (32, 14 + 4 + 1),
    "vgg_rnn": (32, 6 + 2 + 1),
    "coatnet_bert": (64, 6 + 4 + 1),
    "deit3_minilm": (32, 14 + 8 + 1),
    "convnext_minilm": (64, 6 + 8 + 1),
}


@pytest.mark.parametrize("key", CASES)
def test_sequential_equals_model_on_the_same_parameters(key):
    size, n_stages = CASES[key]
    model, inputs = make(BACKBONES[key].vision, BACKBONES[key].text, size)
    model.eval()
    seq = as_sequential(model)
    assert len(seq) == n_stages
    own = {id(p) for p in model.parameters()}
    per_stage = [id(p) for stage in seq for p in stage.parameters()]
    assert len(per_stage) == len(own) and set(per_stage) == own  # every parameter in exactly one stage, no copies
    state = inputs
    for stage in seq[:-1]:
        state = stage(state)
        assert isinstance(state, tuple) and all(isinstance(x, torch.Tensor) and len(x) == 4 for x in state)
    with torch.no_grad():
        # Exact: the stages call the model's own modules on the same tensors, with the same operations in the
        # same order as its forward (the same batch, the same kernels), so not even rounding can differ.
        torch.testing.assert_close(seq(inputs), model(*inputs), rtol=0, atol=0)
    model(*inputs).sum().backward()
    unused = [name for name, p in model.named_parameters() if p.grad is None]
    assert not unused, f"parameters without a gradient (DDP would refuse them): {unused}"


def test_metadata_travels_in_the_tuple():
    videos = pd.DataFrame({"followers": [1, 10, 100, None], "duration": [5.0, 50.0, 500.0, 5000.0]})
    scaler = MetadataScaler.fit(videos, ("followers", "duration"))
    model, inputs = make("vit_tiny_patch16_224", "lstm", 32, metadata=scaler.width)
    model.eval()
    meta = scaler.transform(videos)
    with torch.no_grad():  # exact, as in test_sequential_equals_model_on_the_same_parameters
        torch.testing.assert_close(as_sequential(model)((*inputs, meta)), model(*inputs, meta), rtol=0, atol=0)


def test_gpipe_micro_batches_give_the_models_output_and_gradients():
    model, inputs = make("vit_tiny_patch16_224", "charbert-tiny", 32, fusion="gate")
    model = model.double().eval()  # no dropout, so the two runs are comparable; float64 for the bound below
    inputs = (inputs[0].double(), *inputs[1:])
    seq = as_sequential(model)
    pipe = GPipe(seq, balance=[8, len(seq) - 8], devices=["cpu", "cpu"], chunks=2, checkpoint="never")
    labels = torch.tensor([0, 1, 3, 4])
    loss = torch.nn.functional.cross_entropy(pipe(inputs), labels)
    loss.backward()
    piped = {name: p.grad.clone() for name, p in model.named_parameters()}
    model.zero_grad()
    expected = torch.nn.functional.cross_entropy(model(*inputs), labels)
    expected.backward()
    # Bound, float64 (u = 1.1e-16): two micro-batches of 2 sum the same terms as the batch of 4 in another
    # order, so every value of the forward and backward passes (~1e3 operations deep) differs by <= ~1e3 * u
    # = 1e-13 of the magnitudes it is computed from. The loss (~1.6): atol 1e-11. A gradient entry: of the
    # terms summed into it (|.| <= ~1: per-video gradients of a cross-entropy, through layer norms), even where
    # they cancel to 0 (BERT's attention key bias): atol 1e-11. A micro-batch left out, or its gradient, is
    # off by ~1e-2 or more.
    torch.testing.assert_close(loss, expected, rtol=0, atol=1e-11)
    assert piped.keys() == dict(model.named_parameters()).keys()
    for name, p in model.named_parameters():
        torch.testing.assert_close(piped[name], p.grad, rtol=0, atol=1e-11, msg=lambda m: f"{name}: {m}")
