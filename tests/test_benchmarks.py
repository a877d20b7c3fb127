"""The benchmarks' logic (benchmarks/): summaries, pairing, FLOP counting, MFU arithmetic, rendering. No timings."""
from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from benchmarks.__main__ import parse
from benchmarks.common import Figure, Section, ratios, repeat, summarise
from benchmarks.encoders import balance, conv_flops, e5_flops
from benchmarks.memory import epoch_peaks
from benchmarks.mfu import count_flops, mfu
from benchmarks.render import figure_cells, markdown, number, pipe_table
from benchmarks.reports_time import one_run, read_records
from benchmarks.tries import verdict


def test_summary_is_median_min_max():
    s = summarise([3.0, 1.0, 2.0, 10.0])
    assert (s.median, s.min, s.max, s.n) == (2.5, 1.0, 10.0, 4)
    assert summarise([4.0]).median == 4.0
    with pytest.raises(ValueError):
        summarise([])


def test_repeat_interleaves_and_drops_warmup():
    calls, counter = [], iter(range(100))

    def fn(name):
        def call():
            calls.append(name)
            return next(counter)
        return call

    out = repeat({"a": fn("a"), "b": fn("b")}, reps=2, warmup=1)
    assert calls == ["a", "b"] * 3  # one of each per repetition, the warm-up included
    assert out == {"a": [2, 4], "b": [3, 5]}  # the warm-up pair (0, 1) dropped


def test_ratios_pair_repetitions():
    assert ratios([2.0, 9.0], [1.0, 3.0]) == [2.0, 3.0]
    with pytest.raises(ValueError):
        ratios([1.0], [1.0, 2.0])


def test_goal_met_in_either_direction():
    assert Figure("f", [0.3, 0.4, 0.5], goal=0.35).met
    assert not Figure("f", [0.3, 0.3, 0.5], goal=0.35).met
    assert Figure("f", [1.2, 1.4, 1.1], goal=1.3, higher=False).met
    assert Figure("f", [2.0], goal=None).met is None


def test_linear_flops_and_mfu_arithmetic():
    batch, d_in, d_out = 8, 32, 16
    layer, x = nn.Linear(d_in, d_out), torch.randn(batch, d_in)
    flops, per_op = count_flops(lambda: layer(x))
    assert flops == 2 * batch * d_in * d_out and sum(per_op.values()) == flops
    # 1e9 FLOPs in 0.5 s on a machine whose matmuls run at 4e9 FLOP/s: 2e9 / 4e9
    assert mfu(1e9, 0.5, 4e9) == pytest.approx(0.5)


def test_cpu_attention_is_counted_forward_and_backward():
    b, h, s, d = 2, 3, 10, 8
    q, k, v = (torch.randn(b, h, s, d, requires_grad=True) for _ in range(3))
    forward, _ = count_flops(lambda: F.scaled_dot_product_attention(q, k, v))
    assert forward == 4 * b * h * s * s * d  # q @ k^T and scores @ v
    both, _ = count_flops(lambda: F.scaled_dot_product_attention(q, k, v).sum().backward())
    assert both == forward + 5 * 2 * b * h * s * s * d  # flash backward: scores recomputed, then 4 matmuls


def test_a_try_is_faster_only_when_every_repetition_says_so():
    assert verdict([1.03, 1.06, 1.01]) == "faster in all 3 repetitions"
    assert verdict([0.9, 0.97]) == "slower in all 2 repetitions"
    assert verdict([1.2, 0.99, 1.1]) == "no clear difference"


def test_numbers_and_figure_cells():
    assert [number(x) for x in (0.68, 1.0, 55.0, 413.2, 1090.0)] == ["0.680", "1.00", "55.0", "413", "1,090"]
    cells = figure_cells(Figure("GPipe / plain", [1.4, 1.2, 1.3], goal=1.3, higher=False))
    assert cells == ["GPipe / plain", "1.30x", "1.20 - 1.40 (n=3)", "<= 1.30x", "met"]
    assert figure_cells(Figure("one run", [0.7], goal=1.0, higher=False, unit=""))[2] == "- (n=1)"
    assert figure_cells(Figure("missed", [0.2], goal=0.35, unit=""))[4] == "**missed**"


def test_pipe_table_escapes_bars():
    assert pipe_table(["a", "b"], [["x|y", "1"]]).splitlines() == ["| a | b |", "|---|---|", "| x\\|y | 1 |"]


def test_markdown_summarises_only_figures_with_goals():
    machine = {"cpu": "CPU", "cores": 2, "usable_cores": 2, "memory_gib": 8.0, "platform": "Linux", "python": "3.11",
               "torch": "2.x", "torch_parallel": "OpenMP backend", "threads": 1, "default_threads": 2,
               "load_start": [1.5, 1.0, 0.5], "load_end": [2.0, 1.0, 0.5], "shared": True}
    run = {"command": "python -m benchmarks", "started": "now", "wall_s": 60.0, "warmup": 1, "machine": machine}
    sections = [Section("a", "A", [Figure("with goal", [1.0, 2.0], goal=1.5), Figure("try", [1.1], note="n")]),
                Section("b", "B", error="RuntimeError: boom")]
    text = markdown(run, sections)
    summary = text.split("## Summary")[1].split("## A")[0]
    assert "with goal" in summary and "try" not in summary
    assert "**Shared machine:**" in text and "RuntimeError: boom" in text
    assert json.loads(json.dumps(sections[0].to_dict()))["figures"][0]["met"] is True


def test_epoch_peaks_split_samples_at_epoch_lines():
    samples = [(0.0, 1024), (1.0, 4096), (2.0, 2048), (3.0, 3072), (4.0, 1024)]
    assert epoch_peaks(samples, ends=[1.5, 3.5]) == [4.0, 3.0, 1.0]  # MiB: epoch 1, epoch 2, after the last


def test_reports_records_from_one_run(tmp_path):
    records = {"01.ipynb": {"name": "01.ipynb", "status": "ok", "seconds": 10.0, "started": 100.0},
               "02.ipynb": {"name": "02.ipynb", "status": "ok", "seconds": 5.0, "started": 111.0}}
    (tmp_path / "runs.json").write_text(json.dumps(records))
    got = read_records(tmp_path)
    assert [r["name"] for r in got] == ["01.ipynb", "02.ipynb"] and one_run(got)
    got[1]["started"] = 1000.0  # an --only run much later
    assert not one_run(got)
    assert read_records(tmp_path / "absent") == []


def test_only_refuses_unknown_benchmarks():
    assert parse(["--only", "mfu,gpipe"]).only == ("mfu", "gpipe")
    with pytest.raises(SystemExit):
        parse(["--only", "mfu,nope"])


def test_conv_flops_count_depthwise_convolutions_apart():
    class Net(nn.Module):  # timm's names: conv_dw is the depthwise convolution
        def __init__(self):
            super().__init__()
            self.conv_stem, self.conv_dw = nn.Conv2d(3, 8, 3, padding=1), nn.Conv2d(8, 8, 3, padding=1, groups=8)
            self.conv_pw = nn.Conv2d(8, 4, 1)

        def forward(self, x):
            return self.conv_pw(self.conv_dw(self.conv_stem(x)))

    pixels = 6 * 10  # every convolution keeps the 6 x 10 input's size
    stem, dw, pw = 2 * 8 * pixels * 3 * 9, 2 * 8 * pixels * 9, 2 * 4 * pixels * 8  # 2 x outputs x inputs per output
    assert conv_flops(Net(), torch.zeros(1, 3, 6, 10)) == (stem + dw + pw, dw)


def test_e5_hand_count_matches_flop_counter_on_a_small_bert():
    from transformers import BertConfig, BertModel

    config = BertConfig(vocab_size=50, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=16)
    bert = BertModel(config, add_pooling_layer=False).eval()
    for tokens in (1, 7):
        with torch.no_grad():
            counted, _ = count_flops(lambda: bert(torch.zeros(1, tokens, dtype=torch.long)))  # noqa: B023
        assert counted == e5_flops([tokens], shape=(2, 32, 64))
    assert e5_flops([1, 7], shape=(2, 32, 64)) == e5_flops([1], shape=(2, 32, 64)) + e5_flops([7], shape=(2, 32, 64))


def test_balance_is_rows_over_the_busiest_rank():
    assert balance(8, 4, 2) == 2.0  # one part each
    assert balance(10, 4, 2) == 10 / 6  # parts 4, 4, 2: rank 0 takes the first and the last
    assert balance(570, 512, 2) == 570 / 512 and balance(570, 64, 2) == 570 / (4 * 64 + 58)
    assert balance(5, 8, 2) == 1.0  # one part: the other rank idles
