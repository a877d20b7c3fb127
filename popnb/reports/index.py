"""reports/README.md: one page with every table and figure the notebooks saved, and how they were made.

`write_index(reports_dir, results)` reads `<reports_dir>/tables/*.md` and `<reports_dir>/figures/*.png`
(grouped by their NN_ prefix under the notebook that wrote them) and `results`, one record per notebook
from the runner (popnb.reports.runner.run_reports):

    {"name": "04_backbone_comparison.ipynb", "status": "ok" | "FAILED", "seconds": 61.2,
     "error": None | "ValueError: ...", "parameters": {every parameter the notebook ran with},
     "started": 1763790000.0}   # optional: time.time() when it started; older outputs are flagged stale

The data set comes from each notebook's parameters: `data_dir`, else the demo folder
`<demo_dir>/n<demo_n>_seed<demo_seed or seed>` (the rule of popnb.analysis.explore.open_data); its DATASET.json says
whether it is synthetic. Relative paths are taken from `root` (the folder the notebooks ran in: the project root).
"""
from __future__ import annotations

import json
import time
from pathlib import Path

from popnb.paths import PROJECT_ROOT, shown
from popnb.versions import versions

INDEX = "README.md"
SEED_NAMES = ("seed", "seeds", "demo_seed")
NOT_RUN = "not run"
FOLD_ROWS = 30  # tables longer than this are folded into a <details> block


def stem(name: str) -> str:
    """'04_backbone_comparison.ipynb' -> '04_backbone_comparison'."""
    return Path(name).name.removesuffix(".ipynb")


def dataset_dir(parameters: dict, root: Path) -> Path | None:
    """The dataset folder a notebook read: data_dir, else its demo folder; None when its parameters say neither."""
    if parameters.get("data_dir"):
        path = Path(parameters["data_dir"])
    elif parameters.get("demo_dir") and parameters.get("demo_n") is not None:
        seed = parameters.get("demo_seed", parameters.get("seed", 0))  # notebooks 01-02 name it seed, 03- demo_seed
        path = Path(parameters["demo_dir"]) / f"n{parameters['demo_n']}_seed{seed}"
    else:
        return None
    return path if path.is_absolute() else root / path


def describe_dataset(folder: Path, root: Path) -> str:
    """One markdown line: SYNTHETIC demo data (with its n and seed) or a real data folder, from DATASET.json."""
    meta = folder / "DATASET.json"
    folder_text = shown(folder, root)
    if not folder.is_dir():
        return f"`{folder_text}`: **not found** (the notebook may have failed before making it)"
    if not meta.is_file():
        return f"`{folder_text}`: a data folder without DATASET.json (not the synthetic demo set)"
    doc = json.loads(meta.read_text(encoding="utf-8"))
    if doc.get("synthetic"):
        return (f"`{folder_text}`: **SYNTHETIC demo data** ({doc.get('name', '?')}, n={doc.get('n', '?'):,}, "
                f"seed {doc.get('seed', '?')}): its numbers say nothing about Bilibili")
    return f"`{folder_text}`: {doc.get('name', folder.name)} (DATASET.json: not synthetic)"


def _value(value, root: Path) -> str:
    return f"`{shown(value, root)!r}`".replace("|", "\\|")


def _outputs(reports_dir: Path, prefix: str) -> tuple[list[Path], list[Path]]:
    tables = sorted((reports_dir / "tables").glob(f"{prefix}_*.md"))
    figures = sorted((reports_dir / "figures").glob(f"{prefix}_*.png"))
    return tables, figures


def _stale(path: Path, started: float | None) -> str:
    return " *(stale: not rewritten by this run)*" if started is not None and path.stat().st_mtime < started else ""


def notebook_section(reports_dir: Path, record: dict, root: Path) -> list[str]:
    """Markdown lines for one notebook: status, data, parameters, then its tables and figures."""
    name, params = stem(record["name"]), record.get("parameters") or {}
    started = record.get("started")
    lines = [f"## {name}", ""]
    if record.get("status") == NOT_RUN:
        lines += ["*Not run this time: these outputs are from an earlier run.*", ""]
    elif record.get("status") != "ok":
        lines += [f"**FAILED** after {record.get('seconds', 0):.1f} s: `{record.get('error') or 'unknown error'}`.",
                  "What it wrote before failing (or an earlier run left) is listed below.", ""]
    data = dataset_dir(params, root)
    if data is not None:
        lines += [f"Data: {describe_dataset(data, root)}", ""]
    if params:
        lines += ["<details><summary>parameters</summary>", "", "| parameter | value |", "|---|---|"]
        lines += [f"| {k} | {_value(v, root)} |" for k, v in params.items()]
        lines += ["", "</details>", ""]
    tables, figures = _outputs(reports_dir, name[:2])
    for table in tables:
        body = table.read_text(encoding="utf-8").strip()
        rows = len(body.splitlines()) - 2
        if rows > FOLD_ROWS:  # long tables (per-epoch histories) folded, still all there
            body = f"<details><summary>{rows} rows</summary>\n\n{body}\n\n</details>"
        lines += [f"### {table.stem}{_stale(table, started)}", "", body, "", f"[csv](tables/{table.stem}.csv)", ""]
    for figure in figures:
        lines += [f"### {figure.stem}{_stale(figure, started)}", "", f"![{figure.stem}](figures/{figure.name})", ""]
    if not tables and not figures:
        lines += ["*No tables or figures.*", ""]
    return lines


def summary_table(results: list[dict]) -> list[str]:
    """Markdown lines: one row per notebook with status, wall time, seeds and error."""
    lines = ["| notebook | status | wall time (s) | seeds | error |", "|---|---|---|---|---|"]
    for r in results:
        params = r.get("parameters") or {}
        seeds = ", ".join(f"{k}={params[k]!r}" for k in SEED_NAMES if k in params) or "-"
        error = (r.get("error") or "").replace("|", "\\|").replace("\n", " ")
        status = "ok" if r.get("status") == "ok" else "**FAILED**"
        lines.append(f"| [{stem(r['name'])}](#{stem(r['name'])}) | {status} | {r.get('seconds', 0):.1f} | "
                     f"{seeds} | {error} |")
    return lines


def write_index(reports_dir: str | Path, results: list[dict], root: str | Path | None = None) -> Path:
    """Write `<reports_dir>/README.md` from the saved tables and figures and the runner's records; returns its path.

    Outputs whose NN_ prefix no record has (a notebook not run this time) are listed last under their prefix.
    """
    reports_dir = Path(reports_dir)
    root = Path(root) if root is not None else PROJECT_ROOT
    for r in results:
        missing = {"name", "status", "seconds"} - set(r)
        if missing:
            raise ValueError(f"result record {r!r} lacks {', '.join(sorted(missing))}")
    failed = [stem(r["name"]) for r in results if r["status"] != "ok"]
    total = sum(float(r["seconds"]) for r in results)
    lines = ["# popnb reports", "",
             f"Written {time.strftime('%Y-%m-%d %H:%M:%S %z')} by `popnb reports`: {len(results)} notebook(s), "
             f"{total:.0f} s in all; " + (f"**{len(failed)} FAILED: {', '.join(failed)}**." if failed else "all ok."),
             "", "Model tables put our numbers beside the paper's and the constant-prediction baseline "
             "(majority class plus half of its neighbours): a model is only worth what it adds to that.", ""]
    datasets = {d for r in results if (d := dataset_dir(r.get("parameters") or {}, root)) is not None}
    lines += ["## Data", ""] + [f"- {describe_dataset(d, root)}" for d in sorted(datasets)] + [""]
    lines += ["## Notebooks", ""] + summary_table(results) + [""]
    for record in results:
        lines += notebook_section(reports_dir, record, root)
    known = {stem(r["name"])[:2] for r in results}
    others = sorted({p.name[:2] for sub in ("tables", "figures") for p in (reports_dir / sub).glob("[0-9][0-9]_*")}
                    - known)
    for prefix in others:
        lines += notebook_section(reports_dir, {"name": f"{prefix} (not run this time)", "status": NOT_RUN}, root)
    lines += ["## Package versions", "", "| package | version |", "|---|---|"]
    lines += [f"| {k} | {v or 'not installed'} |" for k, v in versions().items()] + [""]
    path = reports_dir / INDEX
    path.write_text("\n".join(lines), encoding="utf-8")
    return path
