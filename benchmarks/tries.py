"""What was tried to make the default training step faster, each as a paired speed-up (old time / new time).

Every try times the same step (or eval forward) both ways within each repetition, from copies of one model.
"""
from __future__ import annotations

import copy
import shutil

import torch

from benchmarks.common import Figure, Options, Section, demo_data, repeat, seconds, torch_threads
from benchmarks.workload import DEMO, build, demo_titles, stepper


def verdict(speedups: list[float]) -> str:
    """'faster' / 'slower' when every paired repetition agrees (a sign test: 1 in 2^n by chance), else 'no clear
    difference'."""
    if all(x > 1 for x in speedups):
        return f"faster in all {len(speedups)} repetitions"
    if all(x < 1 for x in speedups):
        return f"slower in all {len(speedups)} repetitions"
    return "no clear difference"


def at_threads(fn, n: int):
    """fn run on n torch threads (the setting restored after)."""
    def call():
        with torch_threads(n):
            return fn()
    return call


def eval_forward(model, batch, mode):
    """-> a function timing one eval-mode forward of model on batch under mode (torch.no_grad or inference_mode)."""
    images, ids, mask, _ = batch

    def forward():
        with mode():
            model(images, ids, mask)
    return lambda: seconds(forward)


def speedup(name: str, old, new, opts: Options, note: str) -> Figure:
    """Figure of old seconds / new seconds, paired per repetition."""
    t = repeat({"old": old, "new": new}, opts.reps, opts.warmup, name)
    return Figure(name, [a / b for a, b in zip(t["old"], t["new"])], note=note)


def compile_try(model, batch, opts: Options) -> Figure:
    """torch.compile of the model: speed-up of a compiled step over an eager one; the note gives the compile time,
    from an empty inductor cache (a later run of the same model would read its kernels from the cache)."""
    from torch._inductor.runtime.cache_dir_utils import temporary_cache_dir

    cache = opts.work / "inductor"
    shutil.rmtree(cache, ignore_errors=True)
    with temporary_cache_dir(str(cache)):
        compiled = stepper(torch.compile(copy.deepcopy(model)), batch)
        compile_s = seconds(compiled)  # the first call compiles forward and backward
        eager = stepper(copy.deepcopy(model), batch)
        return speedup("torch.compile (inductor) vs eager", lambda: seconds(eager), lambda: seconds(compiled), opts,
                       f"compiling (the first step, empty inductor cache) took {compile_s:.0f} s")


def run(opts: Options) -> Section:
    model, batch = build(DEMO, demo_titles(demo_data(opts)))
    images, ids, mask, labels = batch
    section = Section("tries", "8. Make it fast: what was tried on the default step (speed-up = old time / new time)")
    with torch_threads(opts.threads):
        step = stepper(copy.deepcopy(model), batch)  # as popnb.train takes it
        looped = stepper(copy.deepcopy(model), batch, fused=False)  # AdamW's default on CPU, popnb's until now
        channels_last = stepper(copy.deepcopy(model), (images.contiguous(memory_format=torch.channels_last),
                                                       ids, mask, labels))
        figures = [
            speedup("2 threads vs 1", at_threads(lambda: seconds(step), 1), at_threads(lambda: seconds(step), 2), opts,
                    f"the same step on 1 and on 2 intra-op threads (torch's default here: {opts.default_threads}); "
                    "it depends on the machine's other load: when another process keeps a core busy, the 2 "
                    "threads wait for each other at every operator"),
            speedup("AdamW fused=True vs the for-each-parameter loop", lambda: seconds(looped),
                    lambda: seconds(step), opts, "whole training step; the fused kernel updates all parameters in one "
                                                 "pass (adopted: popnb.train.loop.make_optimizer)"),
            speedup("channels-last images", lambda: seconds(step), lambda: seconds(channels_last), opts,
                    "ViT's only convolution is the patch embedding"),
        ]
        eval_model = copy.deepcopy(model).eval()
        figures.append(speedup("eval forward: inference_mode vs no_grad",
                               eval_forward(eval_model, batch, torch.no_grad),
                               eval_forward(eval_model, batch, torch.inference_mode), opts,
                               "popnb.train's valid pass (infer) uses no_grad"))
        if opts.compile:
            figures.append(compile_try(model, batch, opts))
    for f in figures:
        f.note += f"; **{verdict(f.samples)}**"
    section.figures = figures
    if not opts.compile:
        section.notes.append("torch.compile: not timed in this run (--quick or --no-compile; compiling the step "
                             "takes over a minute on this CPU).")
    return section
