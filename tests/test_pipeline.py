"""GPipe (popnb.train.pipeline) on the real fused model: the plain model's numbers, clear errors before training.

The model is popnb's own ViT + char-BERT at CPU scale (vit_tiny at 32 px, charbert-tiny), 19 stages.
"""
from __future__ import annotations

import copy

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
    key bias: softmax ignores a shift shared by all keys) holds only rounding noise (~1e-12), so norms are
    floored at 1e-6 of the whole gradient's norm."""
    assert got.keys() == want.keys()
    floor = 1e-6 * torch.cat([g.flatten() for g in want.values()]).norm()
    for name in want:
        err = (got[name] - want[name]).norm() / torch.maximum(want[name].norm(), floor)
        assert err <= rtol, f"{name}: relative gradient error {err:.2e}"


def test_gpipe_matches_plain_model_after_three_adamw_steps(base):
    """Default checkpointing ('except_last'): micro-batches 1-3 recomputed in backward, the last one not."""
    model, batch = base
    plain = no_dropout(copy.deepcopy(model))
    inner = copy.deepcopy(plain)
    piped = make_gpipe(inner, batch[:3], balance=[9, 10], chunks=4, devices="cpu,cpu")
    assert piped.module is inner and piped.balance == [9, 10]

    want = train_steps(plain, batch)
    got = train_steps(piped, batch)

    assert got == pytest.approx(want, abs=1e-5)
    assert want[-1] < want[0] - 0.01  # the three steps did train
    assert_grads_close(grads(inner), grads(plain), rtol=1e-5)


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
    model, batch = base
    inner = copy.deepcopy(model).eval()
    with torch.no_grad():
        want = inner(*batch[:3])
        piped = make_gpipe(inner, batch[:3], balance="auto", chunks=2, devices="cpu,cpu").eval()
        got = piped(*batch[:3])
    assert len(piped.balance) == 2 and sum(piped.balance) == len(as_sequential(inner))
    stage0, stage1 = piped.describe().splitlines()
    assert stage0.startswith("stage 0 on cpu: vision_embed ..")
    assert f"({piped.balance[1]} layers" in stage1 and ".. fusion (" in stage1
    assert piped.output_device == torch.device("cpu") and got.shape == (8, 5)
    assert torch.allclose(got, want, atol=1e-5)
    with torch.no_grad():  # a short last batch of an epoch: 3 videos make 2 micro-batches of chunks=2
        short = piped(*(x[:3] for x in batch[:3]))
    assert torch.allclose(short, want[:3], atol=1e-5)


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
