"""reports/bilibili/README.md: the real-data page: sources, protocol, findings, Tables 1 and 2 beside the paper.

`write_bilibili_index(out)` reads what `popnb reports-bilibili` left in `out`: `sources.json` (one summary per
data set: origin, licence, crawl dates, rows read / kept / quarantined) and each data set's
`<name>/tables/NN_*.csv` (06_findings, 03_best_valid, 04_best_valid_and_cost).
A table a notebook did not write is said to be missing, never left out silently.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import pandas as pd

from popnb.analysis.tables import cell
from popnb.reports.index import INDEX
from popnb.reports.runner import markdown_table
from popnb.versions import versions

FINDING_COLUMNS = {"finding": "finding", "median_diff": "effect", "ci": "95 % interval", "n_in": "n with",
                   "n_out": "n without", "cliffs_delta": "Cliff's delta", "significant": "interval excludes 0"}


def _table(folder: Path, name: str) -> pd.DataFrame | None:
    path = folder / "tables" / f"{name}.csv"
    return pd.read_csv(path) if path.is_file() else None


def _missing(folder: Path, name: str) -> str:
    return f"*`{folder.name}/tables/{name}.csv` is missing: its notebook did not run or failed (see " \
           f"`{folder.name}/README.md`).*"


def findings_table(findings: pd.DataFrame) -> pd.DataFrame:
    """06_findings as the page shows it: effect and interval (3 decimals), group sizes, Cliff's delta, and whether
    the interval excludes 0 ('yes, higher' / 'yes, lower' / 'no' / the reason no interval was drawn)."""
    f = findings.copy()
    f["median_diff"] = f["median_diff"].map(lambda v: "" if pd.isna(v) else f"{v:+.3f}")
    f["ci"] = [("" if pd.isna(lo) else f"[{lo:+.3f}, {hi:+.3f}]") for lo, hi in zip(f["ci_low"], f["ci_high"])]
    f["cliffs_delta"] = f["cliffs_delta"].map(lambda v: "" if pd.isna(v) else f"{v:+.2f}")
    f["significant"] = [f"yes, {verdict}" if bool(excl) else ("no" if verdict == "interval includes 0" else verdict)
                        for excl, verdict in zip(f["excludes_zero"], f["verdict"])]
    return f[list(FINDING_COLUMNS)].rename(columns=FINDING_COLUMNS).set_index("finding")


def significant(findings: pd.DataFrame) -> list[str]:
    """'finding (higher|lower)' for each finding whose interval excludes 0."""
    held = findings[findings["excludes_zero"].astype(bool)]
    return [f"{row.finding} ({row.verdict})" for row in held.itertuples()]


def table1(best: pd.DataFrame) -> pd.DataFrame:
    """03_best_valid as Table 1 on real data: best valid ordinal accuracy and Spearman (mean ± std over the folds)
    beside the paper's best valid, and the constant baseline."""
    return pd.DataFrame({
        "w_v / w_t": best["w_v / w_t"],
        "ordinal accuracy (best epoch)": [cell(m, s, 3) for m, s in zip(best["ours best"], best["ours best ± std"])],
        "Spearman (best epoch)": [cell(m, s, 3) for m, s in zip(best["ours spearman"], best["ours spearman ± std"])],
        "paper: best valid": best["paper best"].map(lambda v: "" if pd.isna(v) else f"{v:.4f}"),
        "constant baseline": best["constant baseline"].map("{:.3f}".format),
    }).set_index("w_v / w_t")


def table2(best: pd.DataFrame) -> pd.DataFrame:
    """04_best_valid_and_cost as Table 2 on real data: per pair and baseline, ordinal accuracy and Spearman
    (mean ± std over the folds), the paper's best valid where it reports one, the constant baseline."""
    paper = best["paper best valid"] if "paper best valid" in best else pd.Series(float("nan"), index=best.index)
    return pd.DataFrame({
        "model": best["label"], "how": best["mode"],
        "ordinal accuracy": [cell(m, s, 3) for m, s in zip(best["best valid"], best["± std"])],
        "Spearman": [cell(m, s, 3) for m, s in zip(best["spearman"], best["spearman ± std"])],
        "paper: best valid": paper.map(lambda v: "" if pd.isna(v) else f"{v:.4f}"),
        "constant baseline": best["constant baseline"].map("{:.3f}".format),
    }).set_index("model")


def source_lines(summary: dict) -> list[str]:
    crawled = summary["crawled"]
    if summary.get("crawl_times"):
        first, last = summary["crawl_times"]
        crawled = f"{first} to {last} (its crawl-time column)"
    quarantined = "; ".join(f"{reason}: {n:,}" for reason, n in summary["by_reason"].items()) or "none"
    return [f"### {summary['name']}", "",
            f"- **source:** {summary['origin']}; **licence:** {summary['licence']}",
            f"- **crawled:** {crawled}",
            f"- **holds:** {summary['holds']}",
            f"- **size:** {summary['read']:,} rows read, {summary['kept']:,} kept, {summary['quarantined']:,} "
            f"quarantined ({quarantined}), by `popnb import --preset {summary['preset']}`", ""]


def dataset_section(out: Path, summary: dict) -> list[str]:
    """Findings, Table 1 and Table 2 of one data set."""
    folder = out / summary["name"]
    lines = [f"## {summary['name']}: {summary['kept']:,} videos", "",
             f"Every table and figure of this data set, with each notebook's parameters: "
             f"[`{summary['name']}/README.md`]({summary['name']}/README.md).", ""]
    if not summary["covers"]:
        lines += ["**No covers in this data set:** the cover findings, every fusion row with a cover weight above 0 "
                  "and every backbone pair are skipped (each notebook says so); the title and the counts remain.", ""]
    findings = _table(folder, "06_findings")
    lines += ["### What goes with more views beyond followers (notebook 06)", ""]
    if findings is None:
        lines += [_missing(folder, "06_findings"), ""]
    else:
        held, drawn = significant(findings), int(findings["ci_low"].notna().sum())
        target = findings["target"].iloc[0] if len(findings) else "?"
        meaning = ("log1p(views) minus the least-squares line on log1p(followers)" if target == "beyond_followers"
                   else "log1p(views): followers unknown")
        lines += [f"Target: `{target}` ({meaning}); effect: "
                  f"median with the feature minus median without (the top against the bottom quartile for a "
                  f"continuous feature), 95 % bootstrap interval. Associations, not causes.", "",
                  f"**Significant (interval excludes 0):** {'; '.join(held) if held else 'none'}. "
                  f"{len(held)} of {drawn} intervals exclude 0; with that many 95 % intervals about "
                  f"{drawn / 20:.1f} would by chance alone.", "",
                  markdown_table(findings_table(findings)), ""]
    best1 = _table(folder, "03_best_valid")
    lines += ["### Table 1 on real data: fusion weights (notebook 03)", ""]
    lines += ([_missing(folder, "03_best_valid"), ""] if best1 is None else
              ["EfficientNet-Lite0 cover and e5-small title embeddings (pretrained, frozen), the paper's fusion "
               "head trained on them; mean ± std over the 5 uploader-grouped folds. \"Best epoch\" is picked on the "
               "valid fold itself (as the paper's best is): optimistic for both.", "",
               markdown_table(table1(best1)), ""])
    best2 = _table(folder, "04_best_valid_and_cost")
    lines += ["### Table 2 on real data: backbones and baselines (notebook 04)", ""]
    lines += ([_missing(folder, "04_best_valid_and_cost"), ""] if best2 is None else
              ["The paper's pairs as CPU-scale stand-ins with random weights (its pretrained weights cannot be "
               "fetched offline), the pretrained EfficientNet-Lite0 + e5-small pair, and the baselines (each "
               "through uploader-grouped folds). A pair: mean ± std over the 5 folds. A baseline and the recipe: "
               "the 5-fold CV repeated with seeds 0-4 (seed 0's folds are the pairs'), mean over the 25 folds ± the "
               "spread over the folds of one repeat; so its constant baseline differs a little.", "",
               markdown_table(table2(best2)), ""])
    return lines


def write_bilibili_index(out: str | Path) -> Path:
    """Write out/README.md from out/sources.json and each data set's tables; returns its path."""
    out = Path(out)
    sources = json.loads((out / "sources.json").read_text(encoding="utf-8"))
    stack = versions()
    lines = ["# popnb on real Bilibili videos", "",
             f"Made by `make reports-bilibili` (`popnb reports-bilibili`) on {time.strftime('%Y-%m-%d')} from the "
             "two shared real data sets; notebooks 01-04 and 06 on each, with the real-data parameters of "
             "`popnb.reports.bilibili`. "
             + ", ".join(f"{name} {version}" for name, version in stack.items() if version) + ".", "",
             "**No real cover is in this folder**: the covers belong to their uploaders, so notebook 01 runs with "
             "`cover_figures=False`, notebook 05 (whose heatmaps draw covers) is not run, and every PNG here "
             "carries `popnb-covers: none` (`tests/test_reports_covers.py` checks). Real-cover figures appear "
             "only in local runs.", "",
             "## The data", ""]
    for summary in sources:
        lines += source_lines(summary)
    lines += ["## The protocol", "",
              "- **Split:** uploader-grouped 5-fold cross-validation: no uploader has videos on both sides of a "
              "fold (`split=uploader`, `valid_fraction=0.2`, seeds 0-4 are the 5 folds of one partition). "
              "Baselines and the recipe: that 5-fold CV repeated with seeds 0-4.",
              "- **Labels:** `auto`: the paper's score and fixed thresholds where all five counts are known "
              "(bilibili_stats), else five equal-count bins of log1p(views) (bilibili_covers: views only), "
              "fitted on each train fold.",
              "- **Scores:** ordinal accuracy (the paper's: 1 for the right class, 0.5 one class off, 0 further) "
              "and Spearman between the predicted and the true score (rank, threshold-free), each with its spread over folds; the "
              "constant baseline is the best constant class on each valid fold; followers-only is the audience "
              "baseline every cover or title model must beat.", ""]
    for summary in sources:
        lines += dataset_section(out, summary)
    path = out / INDEX
    path.write_text("\n".join(lines).rstrip() + "\n", encoding="utf-8")
    return path
