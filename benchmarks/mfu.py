"""Model FLOPs utilisation: the training step's model FLOP/s over this machine's dense matmul FLOP/s.

FLOPs are counted with torch.utils.flop_counter.FlopCounterMode over the forward and backward of one step
(matmuls, convolutions and attention; the optimizer's elementwise work is not model FLOPs). The reference is a
large square torch.mm in the same process on the same number of threads, timed in the same repetition as the
step, so MFU per repetition = (step FLOPs / step seconds) / (2 n^3 / mm seconds).
"""
from __future__ import annotations

import statistics

import torch
from torch.utils import flop_counter
from torch.utils.flop_counter import FlopCounterMode

from benchmarks.common import (
    Figure, Options, Section, demo_data, ratios, repeat, seconds, threads_label, torch_threads,
)
from benchmarks.render import pipe_table
from benchmarks.workload import DEMO, PAPER, Pair, build, demo_titles, stepper

GOAL = 0.35
aten = torch.ops.aten


def cpu_attention_flops(query, key, value, *args, out_shape=None, **kwargs) -> int:
    """FLOPs of the CPU flash-attention forward (shapes [B, H, S, D]): FlopCounterMode 2.x counts only the
    CUDA kernels' (timm's ViT and BERT call scaled_dot_product_attention, which runs this one on CPU)."""
    return flop_counter.sdpa_flop_count(query, key, value)


def cpu_attention_backward_flops(grad_out, query, key, value, *args, out_shape=None, **kwargs) -> int:
    """FLOPs of the CPU flash-attention backward."""
    return flop_counter.sdpa_backward_flop_count(grad_out, query, key, value)


CPU_ATTENTION = {aten._scaled_dot_product_flash_attention_for_cpu: cpu_attention_flops,
                 aten._scaled_dot_product_flash_attention_for_cpu_backward: cpu_attention_backward_flops}


def count_flops(fn) -> tuple[int, dict[str, int]]:
    """Run fn once under FlopCounterMode -> (total FLOPs, FLOPs per aten op)."""
    with FlopCounterMode(display=False, custom_mapping=CPU_ATTENTION) as counter:
        fn()
    per_op = {str(op): int(n) for op, n in counter.get_flop_counts()["Global"].items()}
    return int(counter.get_total_flops()), per_op


def mfu(flops: float, step_seconds: float, peak_flops_per_second: float) -> float:
    """(flops / step_seconds) / peak: the share of the machine's dense matmul rate the step achieves."""
    return flops / step_seconds / peak_flops_per_second


def matmul(n: int):
    """-> (a function timing one n x n @ n x n float32 torch.mm in seconds, its FLOPs 2 n^3)."""
    gen = torch.Generator().manual_seed(0)
    a, b = torch.randn(n, n, generator=gen), torch.randn(n, n, generator=gen)
    return (lambda: seconds(lambda: torch.mm(a, b))), 2 * n**3


def measure(pair: Pair, titles: list[str], threads: int, reps: int, warmup: int, mm_size: int) -> dict:
    """Step FLOPs, then `reps` paired (step, matmul) timings on `threads` threads -> per-repetition MFU."""
    with torch_threads(threads):
        model, batch = build(pair, titles)
        step = stepper(model, batch)
        flops, per_op = count_flops(step)  # also the first warm-up step
        mm, mm_flops = matmul(mm_size)
        times = repeat({"step": lambda: seconds(step), "mm": mm}, reps, warmup, f"MFU {pair.name}, {threads} thr")
    peaks = [mm_flops / s for s in times["mm"]]
    return {"pair": pair.name, "vision": pair.vision, "text": pair.text, "image_size": pair.image_size,
            "batch_size": pair.batch_size, "threads": threads, "step_flops": flops, "flops_per_op": per_op,
            "step_seconds": times["step"], "matmul_n": mm_size, "matmul_flops_per_s": peaks,
            "mfu": ratios([flops / s for s in times["step"]], peaks)}


def run(opts: Options) -> Section:
    titles = demo_titles(demo_data(opts))
    mm_size = 1024 if opts.quick else 2048
    thread_counts = sorted({1, opts.default_threads})
    demo = [measure(DEMO, titles, t, opts.reps, opts.warmup, mm_size) for t in thread_counts]
    paper_pair = PAPER if not opts.quick else Pair(PAPER.name, PAPER.vision, PAPER.text, PAPER.image_size, 1)
    paper = measure(paper_pair, titles, opts.threads, 1 if opts.quick else 2, 0, mm_size)
    section = Section("mfu", "1. MFU: training-step model FLOP/s over dense matmul FLOP/s")
    for d in demo:
        default = " (torch's default)" if d["threads"] == opts.default_threads else ""
        section.figures.append(Figure(f"MFU, demo pair, {threads_label(d['threads'])}{default}", d["mfu"], GOAL,
                                      unit=""))
    section.figures.append(Figure(
        f"MFU, paper-scale pair, {threads_label(opts.threads)}", paper["mfu"], GOAL, unit="",
        note=f"{paper['batch_size']} image(s) per step, {len(paper['mfu'])} timed step(s) after the FLOP-counting "
             "step, not a median of 5: a step takes tens of seconds"))
    section.notes += [mfu_table(demo + [paper]), MFU_NOTE]
    section.data = {"demo": demo, "paper": paper}
    return section


MFU_NOTE = ("FLOPs: FlopCounterMode over forward + backward (matmuls, convolution, CPU flash attention, which "
            "torch's counter leaves out and benchmarks.mfu adds); the AdamW update and elementwise ops count as "
            "overhead, not model FLOPs. The paper-scale text model is charbert-base (BERT-base's 12 x 768 shape "
            "over a character vocabulary from the demo titles), as bert-base-chinese cannot be fetched offline.")


def mfu_table(rows: list[dict]) -> str:
    """Markdown: per measured pair, FLOPs per step, median step time, achieved and peak GFLOP/s."""
    cells = []
    for r in rows:
        step, peak = statistics.median(r["step_seconds"]), statistics.median(r["matmul_flops_per_s"])
        cells.append([f"{r['vision']} + {r['text']}", r["image_size"], r["batch_size"], r["threads"],
                      f"{r['step_flops'] / 1e9:.1f}", f"{step:.3f}", f"{r['step_flops'] / step / 1e9:.1f}",
                      f"{peak / 1e9:.1f}"])
    return pipe_table(["pair", "image px", "batch", "threads", "GFLOP / step", "step s (median)", "model GFLOP/s",
                       "matmul GFLOP/s (median)"], cells)
