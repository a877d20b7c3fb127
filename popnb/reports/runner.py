"""Reports: run the notebooks with papermill, and save their figures and tables.

`popnb reports` executes notebooks/NN_*.ipynb in order with the `popnb` kernel into
`<out>/NN_*.ipynb`. Each notebook saves its figures to `<out>/figures/NN_*.png` and its
tables to `<out>/tables/NN_*.csv` + `.md` through `save_figure` / `save_table`. The terminal gets
one line per notebook; what papermill, Jupyter and the kernels write goes to `<out>/reports.log`.
"""
from __future__ import annotations

import ast
import contextlib
import json
import os
import sys
import time
from pathlib import Path

from popnb.paths import PROJECT_ROOT, resolve, shown

NOTEBOOKS_DIR = PROJECT_ROOT / "notebooks"
KERNEL = "popnb"
RECORDS = "runs.json"  # <out>/runs.json: the runner's last record per notebook, read back by --only runs
LOG = "reports.log"  # <out>/reports.log: what papermill, Jupyter, the kernels and warnings wrote, not the terminal


def save_figure(fig, name: str, root: str | Path = "reports", dpi: int = 120) -> Path:
    """Write a matplotlib figure to `<root>/figures/<name>.png`, its PNG text field `popnb-covers` saying which
    covers it draws (none, synthetic or real: explore.mark_covers); closes it; returns the path."""
    import matplotlib.pyplot as plt

    from popnb.analysis.explore import COVERS_KEY

    path = resolve(root) / "figures" / f"{name}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi, bbox_inches="tight", metadata={COVERS_KEY: getattr(fig, "popnb_covers", "none")})
    plt.close(fig)
    return path


def save_table(df, name: str, root: str | Path = "reports") -> tuple[Path, Path]:
    """Write a DataFrame to `<root>/tables/<name>.csv` and `.md` (a pipe table); returns both paths."""
    folder = resolve(root) / "tables"
    folder.mkdir(parents=True, exist_ok=True)
    csv, md = folder / f"{name}.csv", folder / f"{name}.md"
    df.to_csv(csv)
    md.write_text(markdown_table(df) + "\n", encoding="utf-8")
    return csv, md


def markdown_table(df) -> str:
    """A GitHub pipe table of df, its index level(s) as the first column(s) (no `tabulate` dependency)."""
    flat = df.rename_axis(index=[name or "" for name in df.index.names]).reset_index()
    header = [_cell(c) for c in flat.columns]
    rows = [[_cell(v) for v in row] for row in flat.itertuples(index=False)]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def _cell(value) -> str:
    if isinstance(value, float):
        return "" if value != value else f"{value:.6g}"  # NaN -> empty: missing stays visibly missing
    return str(value).replace("|", "\\|").replace("\n", " ")


# ---- running the notebooks ----

def notebook_parameters(path: Path) -> dict[str, object]:
    """The notebook's `parameters` cell as {name: default value} (see _default)."""
    import papermill

    return {name: _default(info["default"]) for name, info in papermill.inspect_notebook(str(path)).items()}


def _default(text: str):
    """A parameter's default: a Python literal, or constant arithmetic such as `1 / 11`; else None."""
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        pass
    try:
        tree = ast.parse(text, mode="eval")
    except SyntaxError:
        return None
    arithmetic = (ast.Expression, ast.BinOp, ast.UnaryOp, ast.Constant, ast.operator, ast.unaryop)
    if not all(isinstance(node, arithmetic) for node in ast.walk(tree)):
        return None
    try:
        return eval(compile(tree, "<parameter>", "eval"), {"__builtins__": {}})  # numbers and operators only
    except ArithmeticError:
        return None


def check_parameters(path: Path, given: dict[str, object]) -> None:
    """Raise ValueError naming the notebook and parameter for an unknown name or a value whose type
    does not match the default's (int accepts no bool; float accepts int; a None default accepts anything)."""
    declared = notebook_parameters(path)
    for name, value in given.items():
        if name not in declared:
            known = ", ".join(sorted(declared)) or "none"
            raise ValueError(f"{path.name}: unknown parameter {name!r} (the notebook's parameters: {known})")
        default = declared[name]
        if default is None or value is None:
            continue
        ok = {
            bool: lambda v: isinstance(v, bool),
            int: lambda v: isinstance(v, int) and not isinstance(v, bool),
            float: lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
            tuple: lambda v: isinstance(v, (list, tuple)),
            list: lambda v: isinstance(v, (list, tuple)),
        }.get(type(default), lambda v: isinstance(v, type(default)))
        if not ok(value):
            raise ValueError(
                f"{path.name}: parameter {name!r} expects {type(default).__name__} "
                f"(default {default!r}), got {type(value).__name__} {value!r}"
            )


def select_notebooks(notebooks_dir: Path, only: str | list[str] | None) -> list[Path]:
    """notebooks_dir/NN_*.ipynb in order; `only` keeps the given NN prefixes ("02" or "01,02" or a list)."""
    paths = sorted(p for p in notebooks_dir.glob("[0-9][0-9]_*.ipynb"))
    if not paths:
        raise FileNotFoundError(f"no NN_*.ipynb notebooks in {notebooks_dir}")
    if only is None:
        return paths
    wanted = [w.strip() for w in (only.split(",") if isinstance(only, str) else only) if w.strip()]
    unknown = [w for w in wanted if not any(p.name.startswith(f"{w}_") for p in paths)]
    if unknown:
        raise ValueError(f"--only {','.join(unknown)}: no such notebook in {notebooks_dir}")
    return [p for p in paths if p.name[:2] in wanted]


def run_notebook(src: Path, dst: Path, parameters: dict[str, object], cwd: Path, kernel: str = KERNEL) -> None:
    """Execute one notebook with papermill; raises on a bad parameter or a failing cell."""
    import papermill

    check_parameters(src, parameters)
    papermill.execute_notebook(
        str(src), str(dst), parameters=parameters, kernel_name=kernel, cwd=str(cwd), progress_bar=False
    )


def run_reports(
    data_dir: str | Path | None = None,
    only: str | list[str] | None = None,
    out: str | Path = "reports",
    parameters: dict[str, object] | None = None,
    notebooks_dir: str | Path | None = None,
    kernel: str = KERNEL,
    per_notebook: dict[str, dict[str, object]] | None = None,
) -> int:
    """Run every selected notebook in order into `<out>/NN_*.ipynb`; keep going past a failure.

    Each notebook gets `reports_dir=<out>` and, when given, `data_dir` (as absolute paths, where it
    declares them) plus `parameters` and `per_notebook[NN]` (for notebook NN_*), which must all be declared in
    its parameters cell.
    Prints one line per notebook (name, status, seconds; and the error's first line), sends every other line
    (warnings, kernel messages, whole errors) to `<out>/reports.log`, records each notebook in `<out>/runs.json`
    and writes the index `<out>/README.md` (popnb.reports.index). Returns 0, or 1 naming the failed ones.
    """
    notebooks_dir = Path(notebooks_dir) if notebooks_dir is not None else NOTEBOOKS_DIR
    out = Path(out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    runner_params = {"reports_dir": str(out)}
    if data_dir is not None:
        data = Path(data_dir).resolve()
        if not data.is_dir():
            raise FileNotFoundError(f"--data {data_dir}: no such dataset folder")
        runner_params["data_dir"] = str(data)
    user_params = {k: _plain(v) for k, v in (parameters or {}).items()}

    cwd = notebooks_dir.resolve().parent  # where the notebooks run (the project root); records name paths from it
    records = _load_records(out)
    failed = []
    (out / LOG).write_text("", encoding="utf-8")
    with (out / LOG).open("a", encoding="utf-8", buffering=1) as log:
        for src in select_notebooks(notebooks_dir, only):
            own = {k: _plain(v) for k, v in (per_notebook or {}).get(src.name[:2], {}).items()}
            record = records[src.name] = _run_one(src, out, runner_params, user_params | own, cwd, kernel, log)
            print(f"{src.name:<32} {record['status']:<6} {record['seconds']:7.1f} s", flush=True)
            if record["error"]:
                failed.append(src.name)
                print(f"    {record['error']}", flush=True)
            (out / RECORDS).write_text(json.dumps(records, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
        with output_to(log):
            from popnb.reports.index import write_index

            index = write_index(out, [records[name] for name in sorted(records)], root=cwd)
    print(f"index: {index}  (warnings and kernel output: {out / LOG})", flush=True)
    if failed:
        print(f"popnb reports: {len(failed)} notebook(s) failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


def _run_one(src: Path, out: Path, runner_params: dict, user_params: dict, cwd: Path, kernel: str, log) -> dict:
    """Run one notebook into out/, everything but the runner's own lines sent to log -> its record for runs.json."""
    started, start = time.time(), time.perf_counter()
    with output_to(log):
        print(f"==== {src.name}", flush=True)
        declared = notebook_parameters(src)
        params = {k: v for k, v in runner_params.items() if k in declared} | user_params
        error = _execute(src, out / src.name, params, cwd, kernel)
    return {"name": src.name, "status": "ok" if error is None else "FAILED",
            "seconds": round(time.perf_counter() - start, 1), "error": error,
            "parameters": {k: shown(v, cwd) for k, v in {**declared, **params}.items()}, "started": started}


def _execute(src: Path, dst: Path, parameters: dict[str, object], cwd: Path, kernel: str) -> str | None:
    """run_notebook -> None, or the first line of its error (the whole error printed: into the log)."""
    try:
        run_notebook(src, dst, parameters, cwd=cwd, kernel=kernel)
        return None
    except Exception as err:  # noqa: BLE001 -- one failing notebook must not stop the others
        print(f"FAILED: {err}", flush=True)
        return _first_line(err)


@contextlib.contextmanager
def output_to(log):
    """Send what this process and the kernels it starts write to stdout and stderr (warnings, log lines, kernel
    messages) to the open file `log`: sys.stdout, sys.stderr and file descriptors 1 and 2, which kernels inherit."""
    _flush()
    saved = [os.dup(fd) for fd in (1, 2)]
    try:
        for fd in (1, 2):
            os.dup2(log.fileno(), fd)
        with contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
            yield
    finally:
        _flush()
        log.flush()
        for fd, copy in zip((1, 2), saved):
            os.dup2(copy, fd)
            os.close(copy)


def _flush() -> None:
    for stream in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__):
        if stream is not None:
            stream.flush()


def _load_records(out: Path) -> dict[str, dict]:
    """The records an earlier run left in <out>/runs.json ({} when none or unreadable), so an --only run keeps
    the other notebooks in the index."""
    try:
        return json.loads((out / RECORDS).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def _plain(value):
    """A value papermill can write into a notebook, at any depth: a Path as str, a tuple as list (papermill
    writes either as a str)."""
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return {k: _plain(v) for k, v in value.items()} if isinstance(value, dict) else value


def _first_line(err: Exception) -> str:
    """A one-line reason: papermill's exception name and value, else the error's text."""
    ename, evalue = getattr(err, "ename", None), getattr(err, "evalue", None)
    text = f"{ename}: {evalue}" if ename else f"{type(err).__name__}: {err}"
    return text.strip().splitlines()[0] if text.strip() else type(err).__name__


# ---- the command line ----

def _parse_param(text: str) -> tuple[str, object]:
    """NAME=VALUE; VALUE is a Python literal (3, 0.5, True, None, "x") or else taken as a string."""
    name, sep, raw = text.partition("=")
    if not sep or not name.isidentifier():
        raise ValueError(f"-p {text!r}: expected NAME=VALUE")
    try:
        return name, ast.literal_eval(raw)
    except (ValueError, SyntaxError):
        return name, raw


def register(subparsers) -> None:
    """Add `popnb reports [--data DIR] [--only 02] [--out reports] [-p NAME=VALUE ...]`."""
    p = subparsers.add_parser("reports", help="run the notebooks with papermill into reports/")
    p.add_argument("--data", metavar="DIR", help="dataset folder (default: each notebook's demo data)")
    p.add_argument("--only", metavar="NN", help="run only these notebooks, e.g. 02 or 01,02")
    p.add_argument("--out", default="reports", help="output folder (default: reports)")
    p.add_argument("-p", "--param", action="append", default=[], metavar="NAME=VALUE",
                   help="set a notebook parameter (repeatable); unknown names fail that notebook")
    p.set_defaults(func=_main)


def _main(args) -> int:
    parameters = dict(_parse_param(t) for t in args.param)
    return run_reports(data_dir=args.data, only=args.only, out=args.out, parameters=parameters)
