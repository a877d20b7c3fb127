"""DDP under torchrun (popnb.train.distributed): two CPU processes give a single process's numbers.

Run as a script by torchrun (see test_torchrun_helpers_two_processes_match_one), this file is also a worker.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
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


class TinyFusion(nn.Module):
    """forward(images, ids, mask) -> logits [B,5], like popnb's LateFusion, without dropout
    (dropout would draw different masks per rank than in one process)."""

    def __init__(self):
        super().__init__()
        self.vision, self.emb, self.head = nn.Linear(3 * 4 * 4, 16), nn.Embedding(20, 16), nn.Linear(16, 5)

    def forward(self, images, ids, mask):
        m = mask.unsqueeze(-1).float()
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
    """Two AdamW steps on shards of global batches, then a sharded evaluation gathered on every rank."""
    per_rank_batch_size(global_batch, ctx.world_size)
    torch.manual_seed(0)
    model = wrap_ddp(TinyFusion(), ctx)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
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

    assert got["losses"] == pytest.approx(want["losses"], abs=1e-5)
    assert got["indices"] == list(range(11))
    assert np.allclose(got["params"], want["params"], atol=1e-5)
    assert got["metrics"] == pytest.approx(want["metrics"], abs=1e-5)
    assert got["world_size"] == 2 and got["same_on_every_rank"]


def test_popnb_train_under_torchrun_matches_one_process(tmp_path, monkeypatch):
    """`torchrun --nproc_per_node 2 -m popnb.train` = one process on the same global batches: 2 AdamW steps,
    then metrics over a valid set of 7 (batches of 4 shared 2+2 and 2+1 by the two ranks)."""
    from popnb.data.demo import make_demo_dataset
    from popnb.train.loop import TrainConfig, train

    monkeypatch.setenv("POPNB_CACHE", str(tmp_path / "cache"))
    data = make_demo_dataset(tmp_path / "data", n=60, seed=0, size=(64, 36))
    # vit_tiny + GRU: a real popnb model with no dropout (a rank's dropout masks cannot match one process's)
    args = dict(vision="vit_tiny_patch16_224", text="gru", image_size=32, batch_size=4, epochs=1, max_steps=2,
                lr=1e-3, max_len=16, valid_fraction=0.12, threads=1)
    train(TrainConfig(str(data), str(tmp_path / "one"), **args))
    torchrun("-m", "popnb.train", str(data), "--out", str(tmp_path / "two"),
             *(f"--{k.replace('_', '-')}={v}" for k, v in args.items()), cwd=tmp_path)

    one, two = tmp_path / "one", tmp_path / "two"
    assert sorted(p.name for p in two.iterdir()) == sorted(p.name for p in one.iterdir())
    want, got = (pd.read_csv(run / "history.csv").drop(columns="seconds") for run in (one, two))
    assert list(want["n"]) == [8, 7] and list(got["steps"]) == [2, 2]  # 2 steps of 4; valid: 4 + 3 videos
    pd.testing.assert_frame_equal(got, want, check_exact=False, rtol=0, atol=1e-5)
    assert json.loads((two / "config.json").read_text())["world_size"] == 2
    # The weights are not compared element by element: AdamW's first steps move every weight by about lr
    # times the sign of its gradient, so weights whose gradient is rounding noise (ViT's attention key bias:
    # zero in exact arithmetic) differ by up to lr between any two summation orders. The valid loss and
    # metrics above are computed with the updated weights, and they agree.


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
