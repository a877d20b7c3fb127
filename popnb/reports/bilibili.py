"""`popnb reports-bilibili`: notebooks 01-04 and 06 on the two shared real Bilibili data sets, into reports/bilibili/.

The shared folder (default `../shared/data`, beside the project) holds `bilibili_covers` (570 videos with their
covers, views and followers) and `bilibili_stats` (10,933 rows with all five counts, no covers). Each is imported
into `data/bilibili/<name>/` (git-ignored, made again on every run), its notebooks run with real_data_parameters'
into `reports/bilibili/<name>/` (tables, figures and that data set's index), and `reports/bilibili/README.md`
(popnb.reports.bilibili_index) gathers the sources, licences, crawl dates, sizes, the protocol, the findings and
Tables 1 and 2 beside the paper's. No figure draws a real cover: notebook 01 runs with `cover_figures=False`, and
notebook 05 (the app, whose heatmaps draw covers) is not run here.
"""
from __future__ import annotations

import json
import shutil
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

from popnb.paths import PROJECT_ROOT, resolve, shown

SHARED = PROJECT_ROOT.parent / "shared" / "data"
SOURCES_FILE = "sources.json"  # reports/bilibili/sources.json: what each import read and kept, for the index


@dataclass(frozen=True)
class Source:
    """One shared data set: its folder and crawl file, the importer preset, and where it comes from."""

    name: str  # folder under the shared data folder, under data/bilibili and under reports/bilibili
    csv: str  # the crawl file in that folder
    preset: str  # popnb import --preset
    origin: str
    licence: str
    crawled: str  # when it was crawled (the data say nothing more precise when they hold no crawl time)
    holds: str
    covers: bool  # whether its videos come with covers


SOURCES = (
    Source("bilibili_covers", "videos.csv", "bilibili-covers", "github.com/EnJin-Studio/BVR_Test (commit 21f04ac)",
           "MIT (the repository); each cover belongs to its uploader, so no cover, crop or heatmap of one is "
           "committed here", "mid-2025 (homepage feed, all sections; publish times only as seconds before the "
           "crawl)", "cover (480 px wide), title, views, danmaku, duration, uploader and followers; no likes, "
           "coins, favorites or shares", True),
    Source("bilibili_stats", "bilibili_data_analysis.csv", "bilibili-stats",
           "github.com/RubyRose-TAT/bilibili_Data_Analysis-Clout_Prediction", "MIT",
           "2021 (the crawl-time column gives the dates)", "title, all five counts (views, likes, coins, "
           "favorites, shares), followers, uploader, section, tags, upload and crawl time; no covers", False),
)

# One uploader-grouped 5-fold cross-validation: with split "uploader", seeds 0..4 at valid_fraction 0.2 are its folds
CV = {"split": "uploader", "valid_fraction": 0.2, "seeds": [0, 1, 2, 3, 4]}
ENCODERS = {"vision": "tf_efficientnet_lite0", "text": "e5-small"}  # pretrained, frozen, weights from pip packages
PAPER_PAIRS = ["vit_bert", "vgg_rnn", "vgg_bert"]  # Table 2's pairs (CPU-scale stand-ins, random weights: offline)


def real_data_parameters(notebook: str, has_covers: bool) -> dict[str, object]:
    """The parameters notebook NN runs with on a real data set (beyond data_dir and reports_dir)."""
    return {
        "01": {"cover_figures": False},  # the covers belong to their uploaders: never drawn into reports/
        "02": {},
        "03": {**ENCODERS, **CV},
        "04": {"pairs": PAPER_PAIRS, "pretrained_pair": True, "limit": None, "baseline_faces": has_covers,
               "baseline_ocr": has_covers, "baseline_k": 5, "recipe_row": True, **CV},
        "06": {},
    }[notebook]


NOTEBOOKS = ("01", "02", "03", "04", "06")


def import_source(source: Source, shared: Path, data_root: Path) -> dict:
    """Import source from the shared folder into data_root/<name> (made again) -> its summary for the index."""
    from popnb.data import import_crawl

    out = data_root / source.name
    if out.exists():
        shutil.rmtree(out)  # our own import of the shared file, never the shared file itself
    report = import_crawl(shared / source.name / source.csv, out, preset=source.preset)
    return {**asdict(source), "read": report.n_read, "kept": report.n_kept, "quarantined": report.n_quarantined,
            "by_reason": report.by_reason, "notes": report.notes, "crawl_times": crawl_times(out)}


def crawl_times(folder: Path) -> list[str] | None:
    """[first, last] crawl time in the imported videos.csv, or None when the crawl recorded none."""
    import pandas as pd

    videos = pd.read_csv(folder / "videos.csv", dtype="string")
    if "crawl_time" not in videos:
        return None
    when = pd.to_datetime(videos["crawl_time"], errors="coerce").dropna()
    return [when.min().strftime("%Y-%m-%d"), when.max().strftime("%Y-%m-%d")] if len(when) else None


def run_bilibili(shared: str | Path = SHARED, out: str | Path = "reports/bilibili",
                 data_root: str | Path = "data/bilibili", only: str | None = None) -> int:
    """Import both data sets, run their notebooks (`only`: some NN prefixes, e.g. "01,06"), write the index.
    Returns 0, 1 when a notebook failed, 2 when the shared folder is absent (one line on stderr says so)."""
    from popnb.reports.bilibili_index import write_bilibili_index
    from popnb.reports.runner import run_reports

    shared, out, data_root = Path(shared), resolve(out), resolve(data_root)
    missing = [s.name for s in SOURCES if not (shared / s.name / s.csv).is_file()]
    if missing:
        print(f"popnb reports-bilibili: the shared real data are not at {shared} (missing "
              f"{', '.join(missing)}); they live beside the project in ../shared/data, or pass --shared DIR",
              file=sys.stderr)
        return 2
    wanted = NOTEBOOKS if only is None else tuple(n.strip() for n in only.split(","))
    unknown = [n for n in wanted if n not in NOTEBOOKS]
    if unknown:
        raise ValueError(f"--only {','.join(unknown)}: reports-bilibili runs notebooks {', '.join(NOTEBOOKS)}")
    out.mkdir(parents=True, exist_ok=True)
    summaries, status = [], 0
    for source in SOURCES:
        summary = import_source(source, shared, data_root)
        summaries.append(summary)
        print(f"== {source.name}: {summary['kept']:,} videos ({shown(data_root / source.name)})", flush=True)
        status |= run_reports(data_root / source.name, only=list(wanted), out=out / source.name,
                              per_notebook={n: real_data_parameters(n, source.covers) for n in wanted})
    (out / SOURCES_FILE).write_text(json.dumps(summaries, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"index: {write_bilibili_index(out)}", flush=True)
    return status


def register(subparsers) -> None:
    """Add `popnb reports-bilibili [--shared DIR] [--out reports/bilibili] [--only 01,06]`."""
    p = subparsers.add_parser("reports-bilibili", help="the notebooks on the shared real Bilibili data, into "
                              "reports/bilibili/")
    p.add_argument("--shared", default=str(SHARED), metavar="DIR",
                   help="the shared data folder holding bilibili_covers/ and bilibili_stats/ (default: ../shared/data)")
    p.add_argument("--out", default="reports/bilibili", help="output folder (default: reports/bilibili)")
    p.add_argument("--data", default="data/bilibili", metavar="DIR",
                   help="where the imports go (default: data/bilibili, git-ignored)")
    p.add_argument("--only", metavar="NN", help="run only these notebooks, e.g. 06 or 01,06")
    p.set_defaults(func=lambda args: run_bilibili(args.shared, args.out, args.data, args.only))
