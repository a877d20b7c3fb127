"""Where the default training step's time goes: torch.profiler's top operators by self CPU time."""
from __future__ import annotations

from torch.profiler import ProfilerActivity, profile

from benchmarks.common import Options, Section, demo_data, threads_label, torch_threads
from benchmarks.render import pipe_table
from benchmarks.workload import DEMO, build, demo_titles, stepper

MATMUL_OPS = ("aten::mm", "aten::addmm", "aten::bmm", "aten::baddbmm")
OPTIMIZER = "Optimizer.step#AdamW.step"


def profile_steps(step, steps: int):
    """torch.profiler (CPU) over `steps` calls of step -> its key_averages()."""
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(steps):
            step()
    return prof.key_averages()


def top_ops(averages, steps: int, n: int = 12) -> list[dict]:
    """The n operators with the most self CPU time: name, ms per step, share of all self time, calls per step."""
    total = sum(e.self_cpu_time_total for e in averages)
    rows = sorted(averages, key=lambda e: e.self_cpu_time_total, reverse=True)[:n]
    return [{"op": e.key, "ms_per_step": e.self_cpu_time_total / 1e3 / steps,
             "share": e.self_cpu_time_total / total, "calls_per_step": e.count / steps} for e in rows]


def shares(averages) -> dict[str, float]:
    """Shares of all self CPU time: matmul kernels, attention kernels, and everything under AdamW's step."""
    total = sum(e.self_cpu_time_total for e in averages)
    by_key = {e.key: e for e in averages}
    matmul = sum(by_key[k].self_cpu_time_total for k in MATMUL_OPS if k in by_key)
    attention = sum(e.self_cpu_time_total for e in averages if "scaled_dot_product" in e.key)
    optimizer = by_key[OPTIMIZER].cpu_time_total if OPTIMIZER in by_key else 0.0
    return {"matmul": matmul / total, "attention": attention / total, "optimizer_step": optimizer / total}


def ops_table(rows: list[dict]) -> str:
    return pipe_table(["operator", "self ms / step", "share of self CPU time", "calls / step"],
                      [[f"`{r['op']}`", f"{r['ms_per_step']:.1f}", f"{r['share']:.1%}", f"{r['calls_per_step']:g}"]
                       for r in rows])


def run(opts: Options) -> Section:
    steps = 2 if opts.quick else 5
    with torch_threads(opts.threads):
        model, batch = build(DEMO, demo_titles(demo_data(opts)))
        step = stepper(model, batch)
        for _ in range(2):  # warm-up: allocator, AdamW state, oneDNN primitives
            step()
        averages = profile_steps(step, steps)
    rows, split = top_ops(averages, steps), shares(averages)
    section = Section("step_profile", f"7. Profile of the default training step ({DEMO.vision} at {DEMO.image_size} "
                                      f"px + {DEMO.text}, batch {DEMO.batch_size}, {threads_label(opts.threads)}, "
                                      f"{steps} steps)")
    section.notes += [ops_table(rows),
                      f"Matmul kernels (`{'`, `'.join(MATMUL_OPS[:3])}`) take {split['matmul']:.0%} of the self CPU "
                      f"time, attention kernels {split['attention']:.0%}, and AdamW's step (all its ops) "
                      f"{split['optimizer_step']:.0%}." + (" The step is bound by dense matmuls, as it should be."
                                                           if split["matmul"] > 0.5 else "")]
    section.data = {"top_ops": rows, "shares": split, "steps": steps, "threads": opts.threads}
    return section
