"""popnb.reports: saving figures/tables, parameter checks, and papermill runs of real and broken notebooks."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import nbformat  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from popnb.reports import runner as reports  # noqa: E402


def write_notebook(path: Path, params: str, body: str) -> Path:
    """A notebook with a `parameters` cell and one code cell, for the popnb kernel."""
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_markdown_cell("# test"),
        nbformat.v4.new_code_cell(params, metadata={"tags": ["parameters"]}),
        nbformat.v4.new_code_cell(body),
    ])
    nb.metadata["kernelspec"] = {"name": "popnb", "display_name": "popnb", "language": "python"}
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)
    return path


def test_save_table_writes_csv_and_markdown(tmp_path):
    df = pd.DataFrame({"n": [3, 1], "share": [0.75, np.nan], "note": ["a|b", "c"]},
                      index=pd.Index([0, 1], name="class"))
    csv, md = reports.save_table(df, "01_x", tmp_path / "out")
    assert csv == tmp_path / "out" / "tables" / "01_x.csv" and md.suffix == ".md"
    back = pd.read_csv(csv, index_col="class")
    pd.testing.assert_frame_equal(back, df, check_dtype=False)
    lines = md.read_text(encoding="utf-8").splitlines()
    assert lines[0] == "| class | n | share | note |"
    assert len(lines) == 2 + len(df)
    assert lines[3] == "| 1 | 1 |  | c |"  # NaN stays an empty cell, not 0 or "nan"
    assert "a\\|b" in lines[2]  # a pipe inside a cell is escaped


def test_save_figure_writes_png_and_closes(tmp_path):
    fig, ax = plt.subplots()
    ax.plot([0, 1], [1, 0])
    path = reports.save_figure(fig, "02_line", tmp_path)
    assert path == tmp_path / "figures" / "02_line.png"
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert fig.number not in plt.get_fignums()


def test_check_parameters_names_notebook_and_parameter(tmp_path):
    nb = write_notebook(tmp_path / "01_p.ipynb", 'n = 3  # paper: 27000\nw = 0.5\nname = "a"\nopt = None\nt = (1, 2)',
                        "pass")
    reports.check_parameters(nb, {"n": 4, "w": 1, "name": "b", "opt": [1], "t": [3, 4]})  # all fine
    with pytest.raises(ValueError, match=r"01_p\.ipynb: unknown parameter 'bogus'"):
        reports.check_parameters(nb, {"bogus": 1})
    with pytest.raises(ValueError, match=r"01_p\.ipynb: parameter 'n' expects int.*got str"):
        reports.check_parameters(nb, {"n": "4"})
    with pytest.raises(ValueError, match=r"parameter 'n' expects int.*got bool"):
        reports.check_parameters(nb, {"n": True})
    with pytest.raises(ValueError, match=r"parameter 'w' expects float"):
        reports.check_parameters(nb, {"w": "0.5"})


def test_select_notebooks_by_prefix(tmp_path):
    for name in ("02_b.ipynb", "01_a.ipynb", "10_c.ipynb", "notes.ipynb"):
        write_notebook(tmp_path / name, "x = 1", "pass")
    assert [p.name for p in reports.select_notebooks(tmp_path, None)] == ["01_a.ipynb", "02_b.ipynb", "10_c.ipynb"]
    assert [p.name for p in reports.select_notebooks(tmp_path, "10,01")] == ["01_a.ipynb", "10_c.ipynb"]
    assert [p.name for p in reports.select_notebooks(tmp_path, ["02"])] == ["02_b.ipynb"]
    with pytest.raises(ValueError, match="--only 07"):
        reports.select_notebooks(tmp_path, "07")
    with pytest.raises(FileNotFoundError, match="no NN_"):
        reports.select_notebooks(tmp_path / "empty", None)


def test_cli_parses_options_and_params(tmp_path):
    parser = argparse.ArgumentParser()
    reports.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["reports", "--only", "02", "--out", str(tmp_path), "-p", "demo_n=150",
                              "-p", "demo_dir=data/x", "-p", "drop_top=(1, 2)"])
    assert (args.only, args.out, args.data) == ("02", str(tmp_path), None)
    assert dict(map(reports._parse_param, args.param)) == {"demo_n": 150, "demo_dir": "data/x", "drop_top": (1, 2)}
    with pytest.raises(ValueError, match="NAME=VALUE"):
        reports._parse_param("demo_n")


def test_failing_notebook_does_not_stop_the_others(tmp_path, capsys):
    nbs = tmp_path / "nbs"
    params = 'reports_dir = "reports"'
    write_notebook(nbs / "01_broken.ipynb", params, 'raise RuntimeError("broken on purpose")')
    write_notebook(nbs / "02_ok.ipynb", params,
                   'import os\nopen(os.path.join(reports_dir, "two.txt"), "w").write(os.getcwd())')
    out = tmp_path / "out"
    assert reports.run_reports(out=out, notebooks_dir=nbs) == 1
    captured = capsys.readouterr()
    assert (out / "two.txt").read_text() == str(tmp_path)  # ran after the failure; cwd = the notebooks' parent
    assert (out / "01_broken.ipynb").exists() and (out / "02_ok.ipynb").exists()
    lines = {line.split()[0]: line.split()[1] for line in captured.out.splitlines() if line.endswith(" s")}
    assert lines == {"01_broken.ipynb": "FAILED", "02_ok.ipynb": "ok"}
    assert "    RuntimeError: broken on purpose" in captured.out.splitlines()  # the error's first line
    assert len(captured.out.splitlines()) == 4  # two notebooks, one error, the index: nothing else
    assert captured.err.splitlines() == ["popnb reports: 1 notebook(s) failed: 01_broken.ipynb"]
    log = (out / reports.LOG).read_text(encoding="utf-8")
    assert log.index("==== 01_broken.ipynb") < log.index("Traceback") < log.index("==== 02_ok.ipynb")
    assert "IPKernelApp" in log  # the kernels' own messages (ipykernel logs to its stderr): here, not the terminal
    index = (out / "README.md").read_text(encoding="utf-8")
    assert "| [01_broken](#01_broken) | **FAILED** |" in index and "RuntimeError: broken on purpose" in index
    assert "| [02_ok](#02_ok) | ok |" in index

    write_notebook(nbs / "01_broken.ipynb", params, "pass")  # fixed: rerun only 01, 02's record stays
    assert reports.run_reports(out=out, notebooks_dir=nbs, only="01") == 0
    records = json.loads((out / reports.RECORDS).read_text(encoding="utf-8"))
    assert [records[n]["status"] for n in sorted(records)] == ["ok", "ok"]
    assert records["01_broken.ipynb"]["parameters"]["reports_dir"] == "out"  # under the root: relative, no machine path
    assert "all ok" in (out / "README.md").read_text(encoding="utf-8")


def test_output_to_sends_this_process_and_its_children_to_the_log(tmp_path, capfd):
    import os
    import subprocess
    import sys

    child = "import os, sys; os.write(2, b'child fd 2\\n'); print('child stdout')"
    with (tmp_path / "x.log").open("a", encoding="utf-8", buffering=1) as log:
        with reports.output_to(log):
            print("printed")
            print("to sys.stderr", file=sys.stderr)
            os.write(2, b"fd 2\n")
            subprocess.run([sys.executable, "-c", child], check=True)
        print("after")
    assert capfd.readouterr() == ("after\n", "")
    assert sorted((tmp_path / "x.log").read_text(encoding="utf-8").splitlines()) == [
        "child fd 2", "child stdout", "fd 2", "printed", "to sys.stderr"]


def test_plain_makes_nested_tuples_and_paths_literals():
    """papermill writes a tuple or a Path as a str at any depth: [(0.75, 0.25)] would arrive as ['(0.75, 0.25)']."""
    assert reports._plain([(0.75, 0.25), (1.0, 0.0)]) == [[0.75, 0.25], [1.0, 0.0]]
    assert reports._plain({"a": (Path("/x"), 1)}) == {"a": ["/x", 1]}
    assert reports._plain(3) == 3


def test_unknown_parameter_fails_that_notebook_by_name(tmp_path, capsys):
    nbs = tmp_path / "nbs"
    write_notebook(nbs / "01_a.ipynb", 'reports_dir = "reports"\nsize = 3', "pass")
    out = tmp_path / "out"
    assert reports.run_reports(out=out, notebooks_dir=nbs, parameters={"sise": 4}) == 1
    captured = capsys.readouterr()
    assert "01_a.ipynb: unknown parameter 'sise'" in captured.out
    assert "failed: 01_a.ipynb" in captured.err
    assert not (out / "01_a.ipynb").exists()  # rejected before any kernel started
    assert reports.run_reports(out=out, notebooks_dir=nbs, parameters={"size": "big"}) == 1
    assert "parameter 'size' expects int" in capsys.readouterr().out


def test_notebooks_01_02_on_a_tiny_demo_set_through_the_command(tmp_path):
    """`popnb reports` prints one line per notebook and the index line, nothing else (measured before: ipykernel's
    'Kernel is running over TCP without encryption' warning before every line); the rest goes to reports.log."""
    import re
    import subprocess
    import sys

    from PIL import Image

    from popnb.data import load_dataset, paper_filter

    out = tmp_path / "reports"
    proc = subprocess.run([sys.executable, "-m", "popnb", "reports", "--only", "01,02", "--out", str(out),
                           "-p", f"demo_dir={tmp_path / 'demo'}", "-p", "demo_n=150"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and proc.stderr == "", proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    assert len(lines) == 3, proc.stdout
    for line, name in zip(lines, ("01_data_exploration", "02_label_binning")):
        assert re.fullmatch(rf"{name}\.ipynb +ok +\d+\.\d s", line), line
    assert lines[2] == f"index: {out / 'README.md'}  (warnings and kernel output: {out / reports.LOG})"
    log = (out / reports.LOG).read_text(encoding="utf-8")
    assert log.startswith("==== 01_data_exploration.ipynb\n") and "==== 02_label_binning.ipynb\n" in log
    assert "Kernel is running over TCP" in log
    assert (out / "01_data_exploration.ipynb").exists() and (out / "02_label_binning.ipynb").exists()
    for name in ("01_count_distributions", "01_count_correlations", "01_cover_sizes", "01_cover_grid",
                 "01_title_length", "02_class_histogram", "02_score_edges", "02_weight_sensitivity"):
        with Image.open(out / "figures" / f"{name}.png") as im:  # a real drawing, not a blank canvas
            assert im.width > 300 and im.height > 200 and np.asarray(im.convert("L")).std() > 10, name

    videos = load_dataset(tmp_path / "demo" / "n150_seed0").videos
    kept, _ = paper_filter(videos, max_followers=500_000, require_hot_list=True)
    classes = pd.read_csv(out / "tables" / "02_class_counts.csv", index_col="class")
    assert classes["paper n"].sum() == classes["quantile n"].sum() == len(kept) < 150
    counts = pd.read_csv(out / "tables" / "01_count_summary.csv", index_col="count")
    assert counts.loc["views", "known"] == 150 and counts.loc["views", "max"] == videos["views"].max()
    steps = pd.read_csv(out / "tables" / "01_filter_steps.csv")
    assert steps["rows_after"].iloc[-1] == len(kept)
    sensitivity = pd.read_csv(out / "tables" / "02_weight_sensitivity.csv", index_col=["column", "weight"])
    assert (sensitivity.sum(axis=1) == len(kept)).all()
    assert "| class | paper range |" in (out / "tables" / "02_class_counts.md").read_text(encoding="utf-8")


def test_real_notebook_rejects_an_unknown_parameter(tmp_path, capsys):
    code = reports.run_reports(only="02", out=tmp_path, parameters={"demo_size": 150})
    assert code == 1
    assert "02_label_binning.ipynb: unknown parameter 'demo_size'" in capsys.readouterr().out


@pytest.mark.parametrize("name", sorted(p.name for p in reports.NOTEBOOKS_DIR.glob("[0-9][0-9]_*.ipynb")))
def test_every_knob_of_the_real_notebooks_is_a_parameter(name):
    """papermill skips a parameters line it cannot parse (e.g. a second '=' in its comment): none may be skipped."""
    import ast

    nb = nbformat.read(reports.NOTEBOOKS_DIR / name, as_version=4)
    cell = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
    assigned = [t.id for node in ast.parse(cell.source).body for t in node.targets]
    assert list(reports.notebook_parameters(reports.NOTEBOOKS_DIR / name)) == assigned
    assert {"data_dir", "reports_dir"} <= set(assigned)
    assert all(not c.get("outputs") and c.get("execution_count") is None for c in nb.cells if c.cell_type == "code")


def test_records_and_index_name_the_data_from_where_the_notebooks_ran(tmp_path):
    from popnb.data import make_demo_dataset

    make_demo_dataset(tmp_path / "demo", n=12, seed=0, size=(48, 27))
    nbs = tmp_path / "nbs"
    write_notebook(nbs / "01_a.ipynb", 'reports_dir = "reports"\ndata_dir = None', "pass")
    out = tmp_path / "out"
    assert reports.run_reports(data_dir=tmp_path / "demo", out=out, notebooks_dir=nbs) == 0
    params = json.loads((out / reports.RECORDS).read_text(encoding="utf-8"))["01_a.ipynb"]["parameters"]
    assert params == {"reports_dir": "out", "data_dir": "demo"}  # relative to tmp_path, where the notebooks ran
    index = (out / "README.md").read_text(encoding="utf-8")
    assert "`demo`: **SYNTHETIC demo data**" in index and "not found" not in index
