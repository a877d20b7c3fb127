"""DDP under torchrun (popnb.train.distributed): two CPU processes give a single process's numbers.

Run as a script by torchrun (see test_torchrun_helpers_two_processes_match_one), this file is also a worker.

The parity checks run in float64. Two processes compute the same sums as one in another order (a batch of 4
vs 2 + 2 added by DDP's all-reduce), so the two runs differ by rounding only. In float32 (u = 6e-8) that
rounding leaves gradients that are zero in exact arithmetic (ViT's attention key bias) at ~1e-9, about AdamW's
eps = 1e-8, and AdamW's step lr * g / (|g| + eps) then moves such weights by up to lr in either direction: the
float32 difference between the runs has no bound worth testing (1.2e-5 in the loss, measured on another
machine, failed atol 1e-5). In float64
(u = 1.1e-16) that noise is ~1e-17, far below eps, where AdamW's step is linear in g, and every bound below
follows from u, the depth of the computation and the optimizer's slope.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from popnb.metrics import all_metrics
from popnb.train.distributed import (
    DistContext,
    all_reduce_sums,
    distributed,
    gather_rows,
    per_rank_batch_size,
    shard_batches,
    torchrun_env,
    unwrap,
    wrap_ddp,
)


# `python -m popnb.train ARGS` with float64 as torch's default dtype, for torchrun to launch: runpy.run_module
# as __main__ is what `python -m` does, so the whole CLI path runs; the model is built in float64 and
# popnb.train.loop feeds the covers in at the model's dtype (loop.input_dtype).
POPNB_TRAIN_FLOAT64 = """import runpy
import torch
torch.set_default_dtype(torch.float64)
runpy.run_module("popnb.train", run_name="__main__", alter_sys=True)
"""


@contextmanager
def float64():
    """torch's default dtype float64 inside (models built there are float64), restored after."""
    before = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        yield
    finally:
        torch.set_default_dtype(before)


class TinyFusion(nn.Module):
    """forward(images, ids, mask) -> logits [B,5], like popnb's LateFusion, without dropout
    (dropout would draw different masks per rank than in one process)."""

    def __init__(self):
        super().__init__()
        self.vision, self.emb, self.head = nn.Linear(3 * 4 * 4, 16), nn.Embedding(20, 16), nn.Linear(16, 5)

    def forward(self, images, ids, mask):
        m = mask.unsqueeze(-1).to(self.emb.weight.dtype)
        text = (self.emb(ids) * m).sum(1) / m.sum(1)
        return self.head(0.75 * torch.tanh(self.vision(images.flatten(1))) + 0.25 * text)


def synthetic(n: int, seed: int):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(n, 3, 4, 4, generator=g), torch.randint(0, 20, (n, 6), generator=g),
            torch.ones(n, 6, dtype=torch.long), torch.randint(0, 5, (n,), generator=g))


def batches(n: int, size: int, seed: int | None = None) -> list[np.ndarray]:
    """A single process's batches of one epoch: a seeded permutation (or 0..n-1) cut every `size` rows."""
    order = np.arange(n) if seed is None else np.random.default_rng(seed).permutation(n)
    return [order[i : i + size] for i in range(0, n, size)]


def tiny_run(ctx: DistContext, steps: int = 2, global_batch: int = 8) -> dict:
    """Two SGD steps on shards of global batches, then a sharded evaluation gathered on every rank; float64.

    SGD, not AdamW: its step is linear in the all-reduced gradient, so an all-reduce that sums instead of
    averaging, or leaves a rank out, shows in the weights at the size of a step (AdamW's step is nearly blind
    to the gradient's scale); the real AdamW path is test_popnb_train_under_torchrun_matches_one_process's."""
    per_rank_batch_size(global_batch, ctx.world_size)
    with float64():
        return _tiny_run(ctx, steps, global_batch)


def _tiny_run(ctx: DistContext, steps: int, global_batch: int) -> dict:
    torch.manual_seed(0)
    model = wrap_ddp(TinyFusion(), ctx)
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    train = synthetic(20, seed=1)
    losses = []
    for idx in shard_batches(batches(20, global_batch, seed=3), ctx)[:steps]:
        images, ids, mask, y = (t[idx] for t in train)
        loss = F.cross_entropy(model(images, ids, mask), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        total = all_reduce_sums({"loss": loss.item() * len(idx), "n": len(idx)}, ctx)
        losses.append(total["loss"] / total["n"])

    valid = synthetic(11, seed=2)  # 11 = 4 + 4 + 3: the last global batch splits 2/1 over two ranks
    seen, probs = [], []
    with torch.no_grad():
        for idx in shard_batches(batches(11, 4), ctx, even=False):
            probs.append(unwrap(model)(*(t[idx] for t in valid[:3])).softmax(-1).numpy())
            seen.append(idx)
    indices, y_prob = gather_rows(np.concatenate(seen), np.concatenate(probs), ctx)
    params = torch.cat([p.detach().flatten() for p in unwrap(model).parameters()])
    return {"losses": losses, "indices": indices.tolist(), "params": params.tolist(),
            "metrics": all_metrics(valid[3][indices].numpy(), y_prob)}


def torchrun(*args: str, cwd: Path) -> None:
    """`python -m torch.distributed.run --standalone --nproc_per_node 2 ARGS` on the CPU; fails the test on an error."""
    env = os.environ | {"OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", *args]
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]


def test_torchrun_helpers_two_processes_match_one(tmp_path):
    want = tiny_run(DistContext())
    torchrun(__file__, str(tmp_path), cwd=tmp_path)
    written = sorted(p.name for p in tmp_path.iterdir())
    assert written == ["rank0.json"]  # only rank 0 writes
    got = json.loads((tmp_path / "rank0.json").read_text())

    # Bound, float64: a gradient entry is a sum over the 8 videos of a global batch of products of a few
    # factors, each |.| <= ~4 (randn inputs, tanh, softmax - onehot), so the two summation orders differ in it
    # by <= ~10 operations * 8 videos * 4 * u = 3.5e-14. SGD moves the weights by lr = 0.5 times that per step
    # (1.8e-14), and a step carries an earlier difference forward multiplied by |1 - lr * curvature| <= ~3 on
    # this model, so after 2 steps the weights differ by <= ~1e-13: atol 1e-12. A loss uses those weights over
    # 48 + 16 + 16 inputs per video: <= 80 * 4 * 1e-13 = 3e-11 from the weights (x2 through cross-entropy),
    # ~1e-14 from its own sums: atol 1e-9. A real bug moves them by a step's size, ~lr * |g| ~ 1e-2 (a dropped
    # shard, a summing or a skipped all-reduce: see the issue note's mutations).
    assert len(got["losses"]) == len(want["losses"]) == 2
    np.testing.assert_allclose(got["losses"], want["losses"], rtol=0, atol=1e-9)
    assert got["indices"] == list(range(11))
    np.testing.assert_allclose(got["params"], want["params"], rtol=0, atol=1e-12)
    # Exact: each metric is a function of the argmax of the probabilities (and the labels), computed in the
    # same row order (gather_rows sorts by index); it changes only if two of a video's 5 probabilities lie
    # within ~1e-12 of each other, a tie the float64 evaluation would have to hit by chance.
    assert got["metrics"] == want["metrics"]
    assert got["world_size"] == 2 and got["same_on_every_rank"]


def test_popnb_train_under_torchrun_matches_one_process(tmp_path, monkeypatch):
    """`torchrun --nproc_per_node 2 -m popnb.train` = one process on the same global batches: 2 AdamW steps,
    then metrics over a valid set of 7 (batches of 4 shared 2+2 and 2+1 by the two ranks); float64."""
    from popnb.data.demo import make_demo_dataset
    from popnb.train.checkpoint import load_checkpoint
    from popnb.train.loop import TrainConfig, train

    monkeypatch.setenv("POPNB_CACHE", str(tmp_path / "cache"))
    data = make_demo_dataset(tmp_path / "data", n=60, seed=0, size=(64, 36))
    # vit_tiny + GRU: a real popnb model with no dropout (a rank's dropout masks cannot match one process's)
    args = dict(vision="vit_tiny_patch16_224", text="gru", image_size=32, batch_size=4, epochs=1, max_steps=2,
                lr=1e-3, max_len=16, valid_fraction=0.12, threads=1)
    with float64():
        train(TrainConfig(str(data), str(tmp_path / "one"), **args))
    main = tmp_path / "popnb_train_float64.py"
    main.write_text(POPNB_TRAIN_FLOAT64)
    torchrun(str(main), str(data), "--out", str(tmp_path / "two"),
             *(f"--{k.replace('_', '-')}={v}" for k, v in args.items()), cwd=tmp_path)

    one, two = tmp_path / "one", tmp_path / "two"
    assert sorted(p.name for p in two.iterdir()) == sorted(p.name for p in one.iterdir())
    assert json.loads((two / "config.json").read_text())["world_size"] == 2
    want, got = (pd.read_csv(run / "history.csv").drop(columns="seconds") for run in (one, two))
    assert list(want["n"]) == [8, 7] and list(got["steps"]) == [2, 2]  # 2 steps of 4; valid: 4 + 3 videos
    # Exact: counts, and metrics that are functions of each video's argmax class (spearman_expected: of the
    # ranks of its expected class) in the same row order (gather_rows sorts by index); they move only if two
    # of those values sit within rounding of a tie (~1e-7: the training pass keeps float32 probabilities).
    pd.testing.assert_frame_equal(got.drop(columns="loss"), want.drop(columns="loss"), check_exact=True)

    # Bound on the losses, float64. Both runs make the same operations in other summation orders, so every
    # value of the forward and backward passes (~1e3 operations deep) carries a relative difference
    # <= ~1e3 * u = 1e-13. AdamW's first steps, lr * g / (|g| + eps), have slope lr * eps / (|g| + eps)^2 in g:
    # <= lr / eps = 1e5 where |g| ~ eps, but g times that slope is <= lr / 4, so the loss, whose gradient is
    # g, moves by <= lr / 4 * sum |dg| ~ 2.5e-4 * (1e-13 * ||g||_1 = 2e-9) = 5e-13 through the weights, and by
    # ~1e-13 * 1.8 through its own rounding: <= ~1e-12; valid loss alike (~1e-12): atol 1e-9. Bugs move the
    # losses by 1e-6 (an all-reduce that sums instead of averaging: AdamW is nearly blind to a gradient's
    # scale) to 1 (a dropped shard, no all-reduce): see the issue note's mutations.
    np.testing.assert_allclose(got["loss"], want["loss"], rtol=0, atol=1e-9)

    a, b = load_checkpoint(one / "checkpoint.pt"), load_checkpoint(two / "checkpoint.pt")
    assert all(w.dtype == torch.float64 for w in a["model"].values() if w.is_floating_point())
    assert a["model"].keys() == b["model"].keys()
    # Bound on the weights: AdamW's slope lr / eps = 1e5 times a gradient's difference, ~1e-13 of the
    # magnitudes it is summed from (<= 1e-2 where |g| ~ eps), per step: <= 2 * 1e5 * 1e-15 = 2e-10: atol 1e-8.
    # (In float32 these are noise gradients ~eps, and the weights differ by up to lr: not comparable there.)
    for name, w in a["model"].items():
        torch.testing.assert_close(b["model"][name], w, rtol=0, atol=1e-8, msg=lambda m, name=name: f"{name}: {m}")
    # Bound on AdamW's first moment, 0.1 * (0.9 * g1 + g2): linear in the all-reduced gradients, so it checks
    # that they are the one-process mean; g1 differs by rounding (~1e-13 relative), g2 also through weights
    # that differ by <= 1e-8 (a relative change <= 1e-6 of weights ~1e-2): normwise <= ~1e-6: rtol 1e-4.
    # A summing or missing all-reduce changes it by ~100% (see the mutations).
    first_moment = [torch.cat([s[i]["exp_avg"].flatten() for i in sorted(s)])
                    for s in (a["optimizer"]["state"], b["optimizer"]["state"])]
    error = (first_moment[1] - first_moment[0]).norm() / first_moment[0].norm()
    assert error <= 1e-4, f"AdamW's first moment differs by {error:.2e} of its norm"


def test_rank_shards_of_a_step_make_up_the_single_process_batch():
    single = batches(23, 6, seed=5)  # 6 + 6 + 6 + 5
    ranks = [shard_batches(single, DistContext(rank=r, world_size=3)) for r in range(3)]
    assert [len(r) for r in ranks] == [3, 3, 3]  # the last batch (5) does not split in 3: skipped on every rank
    for step in range(3):
        assert [len(r[step]) for r in ranks] == [2, 2, 2]
        assert sorted(np.concatenate([r[step] for r in ranks])) == sorted(single[step])
    uneven = [shard_batches(single, DistContext(rank=r, world_size=3), even=False) for r in range(3)]
    assert sorted(np.concatenate(sum(uneven, []))) == list(range(23))
    assert all(np.array_equal(a, b) for a, b in zip(shard_batches(single, DistContext()), single, strict=True))


def test_bad_distributed_settings():
    with pytest.raises(ValueError, match="--batch-size 10 is the global batch.*divisible by the 4 processes"):
        per_rank_batch_size(10, 4)
    with pytest.raises(ValueError, match="MASTER_ADDR, MASTER_PORT not set"):
        torchrun_env({"RANK": "0", "WORLD_SIZE": "2", "LOCAL_RANK": "0"})
    with pytest.raises(ValueError, match="RANK=2 outside"):
        torchrun_env({"RANK": "2", "WORLD_SIZE": "2", "LOCAL_RANK": "0", "MASTER_ADDR": "x", "MASTER_PORT": "1"})
    assert torchrun_env({}) is None


def test_gpipe_and_ddp_do_not_combine():
    from popnb.train.pipeline import make_gpipe

    model = nn.Sequential(nn.Linear(4, 4), nn.Linear(4, 5))
    piped = make_gpipe(model, (torch.zeros(4, 4),), balance=[1, 1], chunks=2, devices="cpu,cpu")
    with pytest.raises(ValueError, match="cannot be combined with torchrun"):
        wrap_ddp(piped, DistContext(rank=0, world_size=2, backend="gloo"))
    assert wrap_ddp(piped, DistContext()) is piped


if __name__ == "__main__":  # the torchrun worker: python -m torch.distributed.run ... test_distributed.py OUT_DIR
    with distributed(device="cpu") as ctx:
        result = tiny_run(ctx)
        everyone = [None] * ctx.world_size
        torch.distributed.all_gather_object(everyone, result)
        if ctx.is_main:
            result |= {"world_size": ctx.world_size, "same_on_every_rank": all(r == result for r in everyone)}
            (Path(sys.argv[1]) / "rank0.json").write_text(json.dumps(result))
