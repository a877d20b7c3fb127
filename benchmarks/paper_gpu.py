"""The paper-scale pair on a GPU: vit_base_patch16_384 + a BERT-base-shaped char-BERT, plain and through GPipe.

`python -m benchmarks.paper_gpu [--batch 32] [--chunks 4] [--steps 10] [--out DIR]` times training steps
(AdamW, cross-entropy, as popnb.train takes them) after 3 warm-up steps, for the plain model on cuda:0 in
float32 and under bf16 autocast, and for GPipe in float32 (autocast is thread-local and torchgpipe runs the
stages in worker threads, so it would not reach them) with two stages (on cuda:0 twice when there is one GPU, so it
measures GPipe's cost, not a speed-up), and records the peak GPU memory of each. Writes paper_gpu.json and
paper_gpu.md to --out. Not part of `python -m benchmarks`: it needs a CUDA device.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from benchmarks.render import pipe_table
from benchmarks.workload import PAPER, Pair, build, optimizer
from popnb.train.pipeline import make_gpipe


def titles(n: int = 512) -> list[str]:
    """Synthetic Chinese-looking titles of 8..40 characters (the cost depends on their length only)."""
    gen = torch.Generator().manual_seed(0)
    chars = [chr(0x4E00 + i) for i in range(2000)]
    out = []
    for _ in range(n):
        length = int(torch.randint(8, 41, (1,), generator=gen))
        out.append("".join(chars[int(i)] for i in torch.randint(0, len(chars), (length,), generator=gen)))
    return out


def timed_steps(model, batch, steps: int, bf16: bool) -> tuple[list[float], float, int]:
    """(seconds per step [steps], last loss, peak GPU bytes) of AdamW steps after 3 warm-up steps."""
    opt = optimizer(model)
    first = next(model.parameters()).device
    images, ids, mask, labels = (x.to(first) for x in batch)
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()
    torch.cuda.reset_peak_memory_stats()
    times, loss = [], None
    for i in range(steps + 3):
        torch.cuda.synchronize()
        start = time.perf_counter()
        with autocast:
            logits = model(images, ids, mask)
            loss = F.cross_entropy(logits.float(), labels.to(logits.device))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        torch.cuda.synchronize()
        if i >= 3:
            times.append(time.perf_counter() - start)
    return times, loss.item(), torch.cuda.max_memory_allocated()


def run(batch_size: int, chunks: int, steps: int) -> list[dict]:
    """One row per (pipeline, precision): median step s, images/s, peak GiB, final loss."""
    pair = Pair(PAPER.name, PAPER.vision, PAPER.text, PAPER.image_size, batch_size)
    devices = "cuda:0,cuda:1" if torch.cuda.device_count() > 1 else "cuda:0,cuda:0"
    rows = []
    for pipeline, bf16 in (("none", False), ("none", True), ("gpipe", False)):
        model, batch = build(pair, titles())
        if pipeline == "gpipe":
            model = make_gpipe(model, batch[:3], "auto", chunks, devices)
        else:
            model = model.cuda()
        times, loss, peak = timed_steps(model, batch, steps, bf16)
        median = statistics.median(times)
        rows.append({"pipeline": pipeline if pipeline == "none" else f"gpipe {devices}, chunks {chunks}, "
                     f"balance {model.balance}", "precision": "bf16 autocast" if bf16 else "float32",
                     "batch": batch_size, "step_s_median": median, "step_s_min": min(times),
                     "step_s_max": max(times), "images_per_s": batch_size / median,
                     "peak_gib": peak / 2**30, "loss": loss})
        del model
        torch.cuda.empty_cache()
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--chunks", type=int, default=4)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--out", default="benchmarks/_work")
    args = p.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("benchmarks.paper_gpu needs a CUDA device")
    rows = run(args.batch, args.chunks, args.steps)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    device = f"{torch.cuda.get_device_name(0)} x{torch.cuda.device_count()}, torch {torch.__version__}"
    (out / "paper_gpu.json").write_text(json.dumps({"device": device, "rows": rows}, indent=1) + "\n")
    table = pipe_table(["pipeline", "precision", "batch", "step s (median, min-max)", "images/s", "peak GPU GiB",
                        "loss"],
                       [[r["pipeline"], r["precision"], str(r["batch"]),
                         f"{r['step_s_median']:.3f} ({r['step_s_min']:.3f}-{r['step_s_max']:.3f})",
                         f"{r['images_per_s']:.1f}", f"{r['peak_gib']:.2f}", f"{r['loss']:.4f}"] for r in rows])
    text = (f"# Paper-scale pair on a GPU\n\n{device}; {PAPER.vision} at {PAPER.image_size} px + {PAPER.text}, "
            f"AdamW, {args.steps} timed steps after 3 warm-up steps.\n\n{table}\n")
    (out / "paper_gpu.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
