"""`import_crawl`: turn a real crawl (CSV + covers) into a dataset folder, quarantining bad rows."""
from __future__ import annotations

import hashlib
import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
from tqdm.auto import tqdm

from popnb.data.io import TABLE_NAMES, read_table, write_dataset, write_quarantine
from popnb.data.schema import (
    COUNT_COLUMNS, OPTIONAL_COLUMNS, REQUIRED_COLUMNS, SchemaError, ValidationReport, require_columns, validate,
)

SAFE_ID = re.compile(r"[A-Za-z0-9_-]{1,100}")  # ids usable as a file name as they are
ID_SOURCES = ("title", "uploader", "upload_time")  # a crawl without ids: video_id hashes those it has


@dataclass(frozen=True)
class Preset:
    """How a known crawl layout maps to our columns."""

    columns: dict[str, str] = field(default_factory=dict)  # our name -> source column
    covers: str | None = None  # covers folder, relative to the CSV's folder
    cover_name: str | None = None  # cover file name in that folder, e.g. "{video_id}.jpg"
    drop: tuple[str, ...] = ()  # source columns not worth keeping


PRESETS = {
    # EnJin-Studio/BVR_Test: views and danmaku only; likes, coins, favorites, shares stay NA.
    "bilibili-covers": Preset(
        columns={"video_id": "bvid", "title": "title", "views": "view_count", "danmaku": "danmaku_count",
                 "duration": "duration", "followers": "uploader_follower", "uploader": "uploader_name",
                 "pub_seconds_ago": "pub_seconds_ago", "cover_url": "pic"},
        covers="covers", cover_name="{video_id}.jpg", drop=("pubdate",),  # pubdate is empty in that crawl
    ),
    # RubyRose-TAT/bilibili_Data_Analysis: all five counts, no covers, no video id, Chinese headers.
    "bilibili-stats": Preset(
        columns={"uploader": "作者", "followers": "粉丝", "title": "标题", "likes": "点赞", "coins": "硬币",
                 "favorites": "收藏", "shares": "分享", "danmaku": "弹幕", "views": "播放", "replies": "评论",
                 "upload_time": "上传时间", "crawl_time": "爬取时间", "tags": "标签", "section": "分区",
                 "days_online": "时间"},
    ),
}


def derived_ids(parts: pd.DataFrame) -> pd.Series:
    """"h" + 12 hex digits of SHA-1 over the row's fields (NFC, stripped, NA as "", joined by U+001F)."""
    columns = [parts[c].astype("string").fillna("").str.normalize("NFC").str.strip() for c in parts.columns]
    digests = ["h" + hashlib.sha1("\x1f".join(fields).encode("utf-8")).hexdigest()[:12] for fields in zip(*columns)]
    return pd.Series(digests, index=parts.index, dtype="string")


def _cover_file_name(video_id: str, suffix: str) -> str:
    stem = video_id if SAFE_ID.fullmatch(video_id) else hashlib.sha1(video_id.encode("utf-8")).hexdigest()[:16]
    return stem + suffix.lower()


def _place_covers(videos: pd.DataFrame, covers_dir: Path, out_dir: Path, link: bool) -> pd.Series:
    """Copy (or hard-link, else symlink) each kept cover to out_dir/covers/<video_id>.<ext>; new `cover` values."""
    (out_dir / "covers").mkdir(parents=True, exist_ok=True)
    placed = pd.Series("", index=videos.index, dtype="string")
    with_cover = videos.index[videos["cover"] != ""]
    for i in tqdm(with_cover, desc="copying covers", leave=False, disable=len(with_cover) < 200):
        source = covers_dir / videos.at[i, "cover"]
        name = f"covers/{_cover_file_name(videos.at[i, 'video_id'], source.suffix)}"
        if not link:
            shutil.copyfile(source, out_dir / name)
        else:
            try:
                os.link(source, out_dir / name)
            except OSError:  # another file system: a symbolic link to the original
                os.symlink(source.resolve(), out_dir / name)
        placed[i] = name
    return placed


def _resolve_preset(preset: str | None) -> Preset:
    if preset is None:
        return Preset()
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; known presets: {', '.join(PRESETS)}")
    return PRESETS[preset]


def _rename(raw: pd.DataFrame, columns: dict[str, str], spec: Preset, src: Path) -> pd.DataFrame:
    """Our columns from their sources (one source may feed several), then the unmapped columns;
    SchemaError for a mapped column the file lacks or a name clash."""
    for ours, theirs in columns.items():
        if theirs not in raw.columns:
            raise SchemaError(f"{src}: missing column {theirs!r} (the source of {ours!r}); "
                              f"columns found: {', '.join(map(str, raw.columns))}")
        if ours != theirs and ours in raw.columns and ours not in columns.values():
            raise SchemaError(f"{src}: has a column {ours!r} and {theirs!r} is also mapped to it")
    mapped = pd.DataFrame({ours: raw[theirs] for ours, theirs in columns.items()}, index=raw.index)
    rest = raw.drop(columns=[*spec.drop, *columns.values()], errors="ignore")
    return pd.concat([mapped, rest], axis=1)


def _with_ids(df: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """df with a derived video_id first when no column is mapped to one, and the ID_SOURCES it hashed."""
    sources = [c for c in ID_SOURCES if c in df] if "video_id" not in df else []
    if sources:
        df = df.assign(video_id=derived_ids(df[sources]))[["video_id", *df.columns]]
    return df, sources


def _cover_paths(df: pd.DataFrame, spec: Preset, covers: str | Path | None, src: Path) -> tuple[pd.Series, Path]:
    """The crawl's cover paths ("" = no cover) and the folder they are relative to."""
    if "cover" in df:
        return df["cover"], Path(covers) if covers else src.parent
    if spec.cover_name:
        names = [spec.cover_name.format(video_id=v) if v else "" for v in df["video_id"].fillna("")]
        return pd.Series(names, index=df.index), Path(covers) if covers else src.parent / spec.covers
    if covers:
        raise SchemaError(f"{src}: --covers given but the crawl has no cover column; name it with --map cover=COLUMN")
    return pd.Series("", index=df.index), src.parent  # a stats-only crawl


def _check_output(out_dir: Path, src_dir: Path, covers_dir: Path | None) -> None:
    """Refuse an output folder that is the crawl's folder, lies in its covers, or holds a dataset already."""
    out = out_dir.resolve()
    if out == src_dir.resolve() or (covers_dir is not None and out.is_relative_to(covers_dir.resolve())):
        raise ValueError(f"output folder {out_dir} is the raw input's folder (or inside its covers); choose another")
    existing = [out_dir / name for name in TABLE_NAMES if (out_dir / name).exists()]
    if existing:
        raise ValueError(f"{existing[0]} exists: a dataset folder is written once; choose a new output folder")


def import_crawl(src_csv: str | Path, out_dir: str | Path, covers: str | Path | None = None,
                 preset: str | None = None, mapping: dict[str, str] | None = None, link: bool = False,
                 encoding: str | None = None) -> ValidationReport:
    """Convert a crawl into the dataset folder `out_dir` (videos.csv, covers/, quarantine.csv).

    `mapping`: our column name -> source column name (overrides the preset's). `covers`: the folder the
    crawl's cover paths (or the preset's `<video_id>.jpg`) are relative to; default: the CSV's folder or
    the preset's. Every cover is fully decoded once; bad rows go to out_dir/quarantine.csv. Covers are
    copied (`link`: hard-linked, else symlinked); nothing under the source is ever written.
    """
    src, out_dir = Path(src_csv), Path(out_dir)
    if not src.is_file():
        raise FileNotFoundError(f"crawl file {src} not found")
    spec = _resolve_preset(preset)
    columns = {**spec.columns, **(mapping or {})}
    raw = read_table(src, encoding, text_columns={*columns.values(), *REQUIRED_COLUMNS, *OPTIONAL_COLUMNS})
    df, id_sources = _with_ids(_rename(raw, columns, spec, src))
    require_columns(df.columns, ("video_id", "title", "views"), str(src), "; name a column with --map OURS=SOURCE")
    for column in COUNT_COLUMNS:
        if column not in df:  # not in this crawl: NA, never zero
            df[column] = pd.NA

    df["cover"], covers_dir = _cover_paths(df, spec, covers, src)
    uses_covers = bool((df["cover"].fillna("") != "").any())
    if uses_covers and not covers_dir.is_dir():
        raise FileNotFoundError(f"covers folder {covers_dir} not found; pass --covers DIR")
    _check_output(out_dir, src.parent, covers_dir if uses_covers else None)

    kept, quarantine, report = validate(df, covers_dir, str(src), check_images="full")
    if id_sources:
        report.notes.insert(0, f"no column mapped to video_id: ids derived from {', '.join(id_sources)} "
                                  "('h' + 12 hex digits of their SHA-1)")
    kept["cover"] = _place_covers(kept, covers_dir, out_dir, link)
    write_dataset(kept, out_dir)
    write_quarantine(quarantine, out_dir / "quarantine.csv")
    return report
