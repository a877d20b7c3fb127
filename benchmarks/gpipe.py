"""GPipe vs the plain model: time per training step on the same model, batch and weights; 2 stages on CPU.

Both stages sit on the CPU, so there is no pipelining to gain, only the pipeline's costs, which the run
separates at the default 4 chunks by timing three steps beside the plain one: the plain model on 4 micro-batches
(gradients accumulated: smaller matmuls, more operator calls), GPipe without checkpointing (adds torchgpipe's
scatter/gather, worker thread and dependencies), and GPipe as popnb trains it (checkpoint="except_last": every
micro-batch but the last recomputes its forward, in both stages, during backward). One balance, found once by
"auto" (torchgpipe's balance_by_time), serves every variant.
"""
from __future__ import annotations

import copy

import torch.nn.functional as F

from benchmarks.common import (
    Figure, Options, Section, demo_data, ratios, repeat, seconds, summarise, threads_label, torch_threads,
)
from benchmarks.render import pipe_table
from benchmarks.step_profile import profile_steps
from benchmarks.workload import DEMO, build, demo_titles, optimizer, stepper
from popnb.train.pipeline import make_gpipe

GOAL = 1.3
CHUNKS = (1, 2, 4, 8)
SPLIT_CHUNKS = 4  # popnb's default --chunks: where the overhead is taken apart
DEVICES = "cpu,cpu"


def no_dropout(model):
    """model with every dropout's p set to 0: plain and pipelined draw different masks (one per micro-batch)."""
    from torch import nn

    for m in model.modules():
        if isinstance(m, nn.Dropout):
            m.p = 0.0
    return model


def loss_difference(model, batch, balance, chunks: int, steps: int = 3) -> float:
    """Largest |plain loss - GPipe loss| over `steps` AdamW steps from the same weights, dropout off."""
    plain = stepper(no_dropout(copy.deepcopy(model)), batch)
    piped = stepper(make_gpipe(no_dropout(copy.deepcopy(model)), batch[:3], balance, chunks, DEVICES), batch)
    return max(abs(plain() - piped()) for _ in range(steps))


def micro_batched(model, batch, chunks: int):
    """-> a step of the plain model over `chunks` micro-batches (gradients accumulated, then one AdamW step)."""
    opt = optimizer(model)
    model.train()

    def step():
        opt.zero_grad(set_to_none=True)
        for images, ids, mask, labels in zip(*(x.chunk(chunks) for x in batch)):
            loss = F.cross_entropy(model(images, ids, mask), labels, reduction="sum") / len(batch[0])
            loss.backward()
        opt.step()
    return step


def image_grad_flags(piped, step) -> list[bool]:
    """Whether the images entering the first stage require grad, per micro-batch, during one step's forward."""
    flags = []
    first = piped.gpipe.partitions[0][0]
    hook = first.register_forward_pre_hook(lambda module, args: flags.append(args[0][0].requires_grad))
    try:
        step()
    finally:
        hook.remove()
    return flags[: piped.gpipe.chunks]  # later calls are the recomputations during backward


def op_times(averages, steps: int) -> dict[str, tuple[float, float]]:
    """{operator: (self CPU ms per step, calls per step)}."""
    return {e.key: (e.self_cpu_time_total / 1e3 / steps, e.count / steps) for e in averages}


def overhead_rows(plain: dict, piped: dict, n: int = 10) -> list[dict]:
    """The n operators whose self time grew most from plain to GPipe: ms and calls per step on both sides."""
    rows = []
    for op in set(plain) | set(piped):
        (p_ms, p_calls), (g_ms, g_calls) = plain.get(op, (0.0, 0)), piped.get(op, (0.0, 0))
        rows.append({"op": op, "plain_ms": p_ms, "gpipe_ms": g_ms, "added_ms": g_ms - p_ms,
                     "plain_calls": p_calls, "gpipe_calls": g_calls})
    return sorted(rows, key=lambda r: r["added_ms"], reverse=True)[:n]


def overhead_table(rows: list[dict]) -> str:
    return pipe_table(["operator", "plain ms / step", "GPipe ms / step", "added ms / step", "calls plain -> GPipe"],
                      [[f"`{r['op']}`", f"{r['plain_ms']:.1f}", f"{r['gpipe_ms']:.1f}", f"{r['added_ms']:+.1f}",
                        f"{r['plain_calls']:g} -> {r['gpipe_calls']:g}"] for r in rows])


def variants(model, batch, balance) -> tuple[dict, dict]:
    """-> (the steps timed: plain, GPipe as popnb trains it per chunk count, and the two steps that split GPipe's
    overhead at SPLIT_CHUNKS; the GPipe models by chunk count)."""
    sample = batch[:3]
    piped = {c: make_gpipe(copy.deepcopy(model), sample, balance, c, DEVICES) for c in CHUNKS}
    steps = {"plain": stepper(copy.deepcopy(model), batch), **{c: stepper(m, batch) for c, m in piped.items()}}
    steps["micro-batched"] = micro_batched(copy.deepcopy(model), batch, SPLIT_CHUNKS)
    never = make_gpipe(copy.deepcopy(model), sample, balance, SPLIT_CHUNKS, DEVICES, checkpoint="never")
    steps["no checkpoint"] = stepper(never, batch)
    return steps, piped


def split_table(r: dict) -> str:
    """Markdown: GPipe's overhead at SPLIT_CHUNKS chunks, cumulative, as medians of the per-repetition ratios."""
    m, added = {k: summarise(v).median for k, v in r.items()}, list(parts(r).values())
    rows = [[f"plain model on {SPLIT_CHUNKS} micro-batches (gradient accumulation)", m["micro-batched"], added[0],
             f"smaller matmuls, {SPLIT_CHUNKS}x the operator calls"],
            ["GPipe, checkpoint='never'", m["no checkpoint"], added[1],
             "torchgpipe: scatter/gather, worker thread, fork/join dependencies"],
            ["GPipe, checkpoint='except_last' (popnb's)", m[SPLIT_CHUNKS], added[2],
             f"recomputing the forward of {SPLIT_CHUNKS - 1} of {SPLIT_CHUNKS} micro-batches in both stages "
             "during backward"]]
    return pipe_table(["step", "time / plain (median)", "added", "what it adds"],
                      [[name, f"{total:.3f}", f"{add:+.3f}", what] for name, total, add, what in rows])


def parts(r: dict) -> dict[str, float]:
    """GPipe's overhead at SPLIT_CHUNKS, in plain-step units: micro-batching, torchgpipe, recomputation."""
    m = {k: summarise(v).median for k, v in r.items()}
    return {"micro-batching": m["micro-batched"] - 1, "torchgpipe's machinery": m["no checkpoint"] - m["micro-batched"],
            "checkpoint recomputation": m[SPLIT_CHUNKS] - m["no checkpoint"]}


def verdict(r: dict, best: int) -> str:
    """One sentence: the largest part of the overhead in this run, and the fastest chunk count."""
    split = parts(r)
    largest = max(split, key=split.get)
    return (f"In this run the largest part of the overhead at {SPLIT_CHUNKS} chunks is {largest} "
            f"({split[largest]:+.2f} of a plain step); the fastest chunk count is {best}. Micro-batching and "
            "recomputation are what GPipe is (smaller steps to pipeline, activations traded for compute); with both "
            "stages on one CPU there is no parallelism to pay for them.")


def run(opts: Options) -> Section:
    model, batch = build(DEMO, demo_titles(demo_data(opts)))
    with torch_threads(opts.threads):
        balance = make_gpipe(copy.deepcopy(model), batch[:3], "auto", SPLIT_CHUNKS, DEVICES).balance
        steps, piped = variants(model, batch, balance)
        t = repeat({k: (lambda s=s: seconds(s)) for k, s in steps.items()}, opts.reps, opts.warmup, "GPipe vs plain")
        r = {k: ratios(v, t["plain"]) for k, v in t.items() if k != "plain"}
        best = min(CHUNKS, key=lambda c: summarise(r[c]).median)
        losses = {c: loss_difference(model, batch, balance, c) for c in CHUNKS}
        n_prof = 2 if opts.quick else 3
        profiled = [op_times(profile_steps(steps[k], n_prof), n_prof) for k in ("plain", SPLIT_CHUNKS)]
        flags = image_grad_flags(piped[SPLIT_CHUNKS], steps[SPLIT_CHUNKS])
    section = Section("gpipe", f"2. GPipe vs plain: {DEMO.vision} + {DEMO.text}, batch {DEMO.batch_size}, "
                               f"2 stages on CPU (balance {balance}), {threads_label(opts.threads)}")
    section.figures.append(Figure(f"GPipe / plain step time, best chunk count ({best})", r[best], GOAL, higher=False,
                                  note=f"largest loss difference over 3 steps (dropout off): {losses[best]:.1e}"))
    section.figures += [Figure(f"GPipe / plain step time, {c} chunk(s)", r[c], GOAL, higher=False)
                        for c in CHUNKS if c != best]
    section.figures.append(Figure(f"GPipe / plain step time, {SPLIT_CHUNKS} chunks, `--gpipe-checkpoint never`",
                                  r["no checkpoint"], GOAL, higher=False,
                                  note="activations kept instead of recomputed: the CPU choice where memory allows"))
    section.notes += [
        pipe_table(["chunks", "GPipe / plain (median)", "largest abs loss difference over 3 steps (dropout off)"],
                   [[str(c), f"{summarise(r[c]).median:.3f}", f"{losses[c]:.1e}"] for c in CHUNKS]),
        f"What the overhead at {SPLIT_CHUNKS} chunks (the default) is made of, from the paired timings:",
        split_table(r),
        f"torch.profiler, {n_prof} steps each, operators by added self CPU time per step. The profiler records the "
        "calling thread only: torchgpipe runs the forward in a worker thread it starts per call, so this shows the "
        "backward side. `RecomputeBackward` and `CheckpointBackward` are torchgpipe's autograd functions around "
        "the recomputed forward; their self time is mostly the Python of the recomputed module calls.",
        overhead_table(overhead_rows(*profiled)),
        f"Images entering the first stage that require grad, per micro-batch: {flags}. torchgpipe's fork/join, "
        "which orders the micro-batches' backward, joins each micro-batch's first tensor (here the images) to the "
        "previous one's output, so from the second micro-batch on the patch embedding also computes a gradient for "
        "the images that nothing uses (`aten::convolution_backward` above).",
        verdict(r, best),
        "Added with these benchmarks: `popnb train --gpipe-checkpoint never` (TrainConfig.gpipe_checkpoint) turns "
        "the recomputation off; the same losses, and the step time of the 'no checkpoint' row above.",
        "Fixed with these benchmarks (popnb/train/pipeline.py): torchgpipe starts a worker thread per call and "
        "torch.set_num_threads sets MKL's thread count per thread, so the first matmuls of each GPipe forward ran "
        "on every core whatever `--threads` said; each partition now applies torch's count when it starts."]
    section.data = {"balance": balance, "step_seconds": {str(k): v for k, v in t.items()},
                    "ratio_to_plain": {str(k): v for k, v in r.items()}, "best_chunks": best,
                    "loss_difference": {str(c): v for c, v in losses.items()},
                    "overhead_ops": overhead_rows(*profiled), "image_requires_grad": flags,
                    "overhead_parts": parts(r)}
    return section
