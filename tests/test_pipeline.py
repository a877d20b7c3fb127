"""GPipe (popnb.train.pipeline) on the real fused model: the plain model's numbers, clear errors before training.

The model is popnb's own ViT + char-BERT at CPU scale (vit_tiny at 32 px, charbert-tiny), 19 stages.
Pipelined and plain are compared in float64: micro-batches sum the same terms as the whole batch in another
order, so the two differ by rounding only, and in float64 (u = 1.1e-16) that rounding stays far below AdamW's
eps = 1e-8. In float32 (u = 6e-8) a gradient that is zero in exact arithmetic (BERT's attention key bias) holds
~1e-9 of noise, AdamW moves its weight by up to lr either way, and no tolerance follows from the computation.
"""
from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from popnb.models import as_sequential, build_model
from popnb.train.pipeline import make_gpipe

TITLES = ["如何学习物理", "今天吃什么？", "数学之美 第3集", "The best cat video 2024", "历史上的今天",
          "一分钟看懂GPipe"]


@pytest.fixture(scope="module")
def base():
    """(model with dropout on, batch of 8: images, ids, mask, labels)."""
    torch.manual_seed(0)
    model, tokenizer = build_model(titles=TITLES, image_size=32, hidden=32)
    ids, mask = tokenizer.encode(TITLES + TITLES[:2], 12)
    g = torch.Generator().manual_seed(1)
    batch = (torch.randn(8, 3, 32, 32, generator=g), torch.as_tensor(ids), torch.as_tensor(mask),
             torch.tensor([0, 1, 2, 3, 4, 0, 1, 2]))
    return model, batch


def in_float64(model: nn.Module, batch):
    """A float64 copy of the model and the batch with float64 images."""
    images, *rest = batch
    return copy.deepcopy(model).double(), (images.double(), *rest)


def no_dropout(model: nn.Module) -> nn.Module:
    # Plain and pipelined cannot agree with dropout on: the plain model draws one mask for the whole batch,
    # the pipeline one per micro-batch, so the random streams differ. Recomputation is not the problem:
    # test_checkpoint_recomputation_replays_dropout shows torchgpipe replays the same masks.
    # (BERT's attention dropout reads its nn.Dropout's p too, so this switches it off.)
    for m in model.modules():
        if isinstance(m, nn.Dropout):
            m.p = 0.0
    return model


def train_steps(model: nn.Module, batch, steps: int = 3) -> list[float]:
    """The loss before each of `steps` AdamW updates and after the last; gradients of the last stay in .grad."""
    images, ids, mask, y = batch
    opt = torch.optim.AdamW(model.parameters(), lr=5e-5)  # the paper's optimizer and learning rate
    losses = []
    for step in range(steps + 1):
        opt.zero_grad()
        logits = model(images, ids, mask)
        loss = F.cross_entropy(logits, y.to(logits.device))
        losses.append(loss.item())
        loss.backward()
        if step < steps:
            opt.step()
    return losses


def grads(model: nn.Module) -> dict[str, torch.Tensor]:
    return {n: p.grad.detach().clone() for n, p in model.named_parameters()}


def assert_grads_close(got: dict, want: dict, rtol: float):
    """Each gradient within rtol of its own norm. A gradient that is zero in exact arithmetic (BERT's attention
    key bias: softmax ignores a shift shared by all keys) holds only rounding noise, relative to the terms it
    is summed from rather than to itself, so norms are floored at 1e-3 of the whole gradient's norm."""
    assert got.keys() == want.keys()
    floor = 1e-3 * torch.cat([g.flatten() for g in want.values()]).norm()
    for name in want:
        err = (got[name] - want[name]).norm() / torch.maximum(want[name].norm(), floor)
        assert err <= rtol, f"{name}: relative gradient error {err:.2e}"


def test_gpipe_matches_plain_model_after_three_adamw_steps(base):
    """Default checkpointing ('except_last'): micro-batches 1-3 recomputed in backward, the last one not."""
    plain, batch = in_float64(*base)
    no_dropout(plain)
    inner = copy.deepcopy(plain)
    piped = make_gpipe(inner, batch[:3], balance=[9, 10], chunks=4, devices="cpu,cpu")
    assert piped.module is inner and piped.balance == [9, 10]

    want = train_steps(plain, batch)
    got = train_steps(piped, batch)

    # Bound, float64: every value of the forward and backward passes (~1e3 operations deep) differs between
    # micro-batches of 2 and the batch of 8 by <= ~1e3 * u = 1e-13 relative. AdamW's step lr * g / (|g| + eps)
    # has slope lr * eps / (|g| + eps)^2 in g, and g times that slope is <= lr / 4, so the loss on this same
    # batch, whose gradient is g, moves by <= lr / 4 * sum |dg| = 1.25e-5 * 1e-13 * ||g||_1 (5e3) ~ 1e-14 per
    # step, plus its own rounding ~1e-13 * 1.6: ~1e-12 after 3 steps: atol 1e-10. A skipped micro-batch moves
    # the losses by ~1e-1 (the issue note's mutations).
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-10)
    assert want[-1] < want[0] - 0.01  # the three steps did train
    # Gradients after 3 steps: ~1e-13 relative from their own rounding, plus weights that differ by AdamW's
    # slope (<= lr / eps = 5e3 where |g| ~ eps) times ~1e-13 of the (<= 1e-2) terms of such a gradient, ~5e-12,
    # a relative change ~1e-9 of weights ~1e-2: normwise ~1e-9: rtol 1e-7 (of each tensor's norm, floored at
    # 1e-3 of the whole gradient's). A skipped micro-batch leaves out a quarter of every gradient.
    assert_grads_close(grads(inner), grads(plain), rtol=1e-7)


def test_checkpoint_recomputation_replays_dropout(base):
    """Dropout on: 'always' (every stage re-run in backward) gives exactly the logits and gradients of 'never'."""
    model, batch = base
    results = []
    for mode in ("always", "never"):
        inner = copy.deepcopy(model).train()
        piped = make_gpipe(inner, batch[:3], balance=[14, 5], chunks=4, devices="cpu,cpu", checkpoint=mode)
        torch.manual_seed(123)
        logits = piped(*batch[:3])
        F.cross_entropy(logits, batch[3]).backward()
        results.append((logits.detach(), grads(inner)))
    (logits_always, grads_always), (logits_never, grads_never) = results
    assert torch.equal(logits_always, logits_never)
    assert_grads_close(grads_always, grads_never, rtol=0.0)
    torch.manual_seed(124)  # another seed draws other masks: dropout is really on, the check above is not vacuous
    assert not torch.equal(piped(*batch[:3]), logits_never)


def test_auto_balance_uses_every_device_and_keeps_the_call(base):
    inner, batch = in_float64(*base)
    inner.eval()
    with torch.no_grad():
        want = inner(*batch[:3])
        piped = make_gpipe(inner, batch[:3], balance="auto", chunks=2, devices="cpu,cpu").eval()
        got = piped(*batch[:3])
    assert len(piped.balance) == 2 and sum(piped.balance) == len(as_sequential(inner))
    stage0, stage1 = piped.describe().splitlines()
    assert stage0.startswith("stage 0 on cpu: vision_embed ..")
    assert f"({piped.balance[1]} layers" in stage1 and ".. fusion (" in stage1
    assert piped.output_device == torch.device("cpu") and got.shape == (8, 5)
    # Bound, float64: the same forward on micro-batches of 4 (and of 2 and 1 below) as on the batch of 8,
    # ~1e3 operations deep: <= ~1e3 * u = 1e-13 relative of logits |.| < 10: atol 1e-10 (a row sent through
    # the wrong stages, or dropped, is off by ~1e-1).
    torch.testing.assert_close(got, want, rtol=0, atol=1e-10)
    with torch.no_grad():  # a short last batch of an epoch: 3 videos make 2 micro-batches of chunks=2
        short = piped(*(x[:3] for x in batch[:3]))
    torch.testing.assert_close(short, want[:3], rtol=0, atol=1e-10)


def mkl_max_threads():
    """MKL's thread count for the calling thread (torch's CPU library exports MKL's symbols), or skip."""
    import ctypes
    from pathlib import Path

    lib = Path(torch.__file__).parent / "lib" / "libtorch_cpu.so"
    try:
        return ctypes.CDLL(str(lib)).mkl_get_max_threads
    except (OSError, AttributeError):
        pytest.skip("this torch build does not export MKL (no libtorch_cpu.so with mkl_get_max_threads)")


def test_partitions_run_on_the_callers_thread_count(base):
    """torchgpipe's worker threads start with MKL's default (every core); each partition applies torch's count
    before it runs (checked by a pre-hook registered after popnb's: a partition's first op may be a matmul)."""
    get_threads = mkl_max_threads()
    model, batch = base
    piped = make_gpipe(copy.deepcopy(model), batch[:3], balance=[9, 10], chunks=2, devices="cpu,cpu")
    seen = []
    for partition in piped.gpipe.partitions:
        partition.register_forward_pre_hook(lambda module, args: seen.append(get_threads()))
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with torch.no_grad():
            piped(*batch[:3])
    finally:
        torch.set_num_threads(before)
    assert seen == [1, 1, 1, 1]  # 2 micro-batches x 2 partitions, each on 1 thread


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(chunks=9), "--chunks 9: must be between 1 and the batch size (8)"),
        (dict(balance="9,9"), "--balance 9,9 must be positive layer counts summing to the model's"),
        (dict(balance="5,5,9"), "asks for 3 partitions but only 2 device(s) were given"),
        (dict(devices="cpu,cuda:7"), "'cuda:7'"),
        (dict(devices="cpu,tpu"), "'tpu' is not a device name"),
        (dict(balance="two"), "neither 'auto' nor comma-separated integers"),
        (dict(checkpoint="sometimes"), "checkpoint must be one of always, except_last, never"),
    ],
)
def test_bad_settings_fail_before_training(base, kwargs, message):
    model, batch = base
    settings = dict(balance=[9, 10], chunks=4, devices="cpu,cpu") | kwargs
    with pytest.raises(ValueError) as err:
        make_gpipe(copy.deepcopy(model), batch[:3], **settings)
    assert message in str(err.value)


def test_balance_error_names_the_layer_count_and_lists_the_layers(base):
    model, batch = base
    n_layers = len(as_sequential(model))
    with pytest.raises(ValueError) as err:
        make_gpipe(copy.deepcopy(model), batch[:3], balance=[1, 1], devices="cpu,cpu")
    message = str(err.value)
    assert f"summing to the model's {n_layers} layers" in message
    assert "  0: vision_embed (VisionStage" in message and f"  {n_layers - 1}: fusion (FusionStage" in message


def test_gpipe_run_with_metadata_matches_the_plain_run(tmp_path, monkeypatch):
    """popnb.train with --metadata followers,duration: plain, and GPipe on two stages with 2 micro-batches of 2,
    give the same history. float64, vit_tiny + GRU: no dropout (a micro-batch cannot draw a whole batch's masks)."""
    from popnb.data import make_demo_dataset
    from popnb.train.loop import TrainConfig, train

    monkeypatch.setenv("POPNB_CACHE", str(tmp_path / "cache"))
    data = make_demo_dataset(tmp_path / "data", n=40, seed=0, size=(64, 36))
    args = dict(vision="vit_tiny_patch16_224", text="gru", image_size=32, batch_size=4, epochs=1, max_steps=2,
                lr=1e-3, max_len=16, threads=1, metadata=("followers", "duration"))
    before = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        train(TrainConfig(str(data), str(tmp_path / "plain"), **args))
        train(TrainConfig(str(data), str(tmp_path / "gpipe"), **args, pipeline="gpipe", chunks=2, balance="9,8",
                          devices="cpu,cpu"))
    finally:
        torch.set_default_dtype(before)
    want, got = (pd.read_csv(tmp_path / run / "history.csv").drop(columns="seconds") for run in ("plain", "gpipe"))
    # Exact: counts, and metrics of each video's argmax class, unless two probabilities tie within ~1e-12.
    pd.testing.assert_frame_equal(got.drop(columns="loss"), want.drop(columns="loss"), check_exact=True)
    # Bound, float64 (u = 1.1e-16): GPipe runs each video through the same operations (a micro-batch of 2 only
    # blocks the matrix products differently) and sums the step's gradient over 2 + 2 videos instead of 4: the
    # same sums in other orders, so every value of the ~1e3-operation-deep forward and backward differs by
    # <= ~1e3 * u = 1e-13 relative. Through two AdamW steps this moves the losses by <= ~1e-12 (the argument of
    # test_distributed.py's torchrun parity check, the same model and optimizer): atol 1e-9. Metadata rows fed
    # to the wrong videos (each batch's reversed) move the losses by ~2e-2.
    np.testing.assert_allclose(got["loss"], want["loss"], rtol=0, atol=1e-9)
