"""CLI: `popnb import` (a crawl -> a dataset folder) and `popnb demo-data` (a synthetic dataset folder)."""
from __future__ import annotations

import argparse
from pathlib import Path

PRESET_NAMES = ("bilibili-covers", "bilibili-stats")  # = popnb.data.importers.PRESETS, without importing pandas


def _mapping(text: str) -> dict[str, str]:
    """'views=view_count,likes=like_count' -> {'views': 'view_count', 'likes': 'like_count'}."""
    pairs = [item.split("=", 1) for item in text.split(",") if item.strip()]
    if not pairs or any(len(p) != 2 or not p[0].strip() or not p[1].strip() for p in pairs):
        raise argparse.ArgumentTypeError(f"expected OURS=SOURCE[,OURS=SOURCE...], got {text!r}")
    return {ours.strip(): source.strip() for ours, source in pairs}


def _size(text: str) -> tuple[int, int]:
    """'224x126' -> (224, 126): width x height in pixels."""
    try:
        width, height = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT, e.g. 224x126, got {text!r}") from None
    return width, height


def _import(args: argparse.Namespace) -> int:
    from popnb.data.importers import import_crawl

    mapping = {k: v for m in args.map or [] for k, v in m.items()}
    report = import_crawl(args.src, args.out, covers=args.covers, preset=args.preset, mapping=mapping or None,
                          link=args.link, encoding=args.encoding)
    print(report.summary())
    print(f"dataset: {Path(args.out)}/videos.csv ({report.n_kept} videos)")
    print(f"quarantine: {Path(args.out)}/quarantine.csv ({report.n_quarantined} rows)")
    return 0


def _demo_data(args: argparse.Namespace) -> int:
    from popnb.data.demo import make_demo_dataset

    path = make_demo_dataset(args.out, n=args.n, seed=args.seed, size=args.size)
    print(f"demo dataset: {path}")
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser("import", help="convert a crawl (CSV + covers) into a dataset folder",
                              description="Convert a crawl into OUT/ (videos.csv, covers/, quarantine.csv). "
                                          "Bad rows are quarantined with row, field and reason; the raw input "
                                          "is never written to.")
    p.add_argument("src", help="the crawl's CSV (or .parquet)")
    p.add_argument("out", help="new dataset folder")
    p.add_argument("--covers", metavar="DIR", help="folder the cover paths are relative to")
    p.add_argument("--preset", choices=PRESET_NAMES, help="a known crawl layout")
    p.add_argument("--map", type=_mapping, action="append", metavar="OURS=SOURCE,...",
                   help="our column name = the crawl's column name, e.g. views=view_count (one column may feed "
                        "two); with no video_id, ids are derived from title, uploader, upload_time")
    p.add_argument("--link", action="store_true", help="hard-link (else symlink) covers instead of copying")
    p.add_argument("--encoding", help="the CSV's text encoding (default UTF-8), e.g. gb18030")
    p.set_defaults(func=_import)

    p = subparsers.add_parser("demo-data", help="write a synthetic dataset folder",
                              description="Write a synthetic dataset folder (covers + titles + counts).")
    p.add_argument("out", help="new dataset folder")
    p.add_argument("--n", type=int, default=3000, help="number of videos")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--size", type=_size, default=(224, 126), metavar="WxH", help="cover size in pixels")
    p.set_defaults(func=_demo_data)
