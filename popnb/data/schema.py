"""The dataset schema and row validation: bad rows go to quarantine with row, field and reason."""
from __future__ import annotations

import posixpath
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path, PureWindowsPath

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from popnb.data.images import CHECK_LEVELS, MAX_SIDE, CoverError, check_cover

COUNT_COLUMNS = ("views", "likes", "coins", "favorites", "shares")
REQUIRED_COLUMNS = ("video_id", "title", "cover", *COUNT_COLUMNS)
OPTIONAL_COLUMNS = ("followers", "hot_list", "duration", "section", "uploader")  # uploader: read as text, verbatim
QUARANTINE_COLUMNS = ("_row", "_field", "_reason")
LONG_TITLE_CHARS = 128  # longer titles are kept; tokenisers truncate them
NA_TOKENS = frozenset({"", "nan", "na", "n/a", "null", "none", "<na>"})  # case-insensitive, counts only
TRUE_TOKENS, FALSE_TOKENS = frozenset({"true", "1", "yes", "y", "t"}), frozenset({"false", "0", "no", "n", "f"})
LEAVES_FOLDER = "cover path leaves the dataset folder"


class SchemaError(ValueError):
    """A whole-file problem (missing required column, undecodable text); names file and column/line."""


@dataclass
class ValidationReport:
    """What validation did: counts, quarantined rows per reason, and notes on kept-but-unusual data."""

    n_read: int
    n_kept: int
    n_quarantined: int
    by_reason: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    source: str = ""

    def summary(self) -> str:
        lines = [f"{self.source}: read {self.n_read}, kept {self.n_kept}, quarantined {self.n_quarantined}"]
        lines += [f"  quarantined, {reason}: {n}" for reason, n in sorted(self.by_reason.items())]
        lines += [f"  note: {note}" for note in self.notes]
        return "\n".join(lines)


def require_columns(columns, required, source: str, hint: str = "") -> None:
    """Raise SchemaError naming the file and the first required column it lacks."""
    missing = [c for c in required if c not in columns]
    if missing:
        raise SchemaError(
            f"{source}: missing required column {missing[0]!r} (all missing: {', '.join(missing)}); "
            f"columns found: {', '.join(map(str, columns))}{hint}"
        )


def _where(mask: pd.Series, reason) -> pd.Series:
    """`reason` (a string, or one per row) where mask is True, NA elsewhere: a problem per row."""
    return pd.Series(pd.NA, index=mask.index, dtype="string").mask(mask, reason)


def _text(s: pd.Series) -> pd.Series:
    """Values as stripped strings, NA kept as NA."""
    return s.astype("string").str.strip()


def _parse_numbers(s: pd.Series, integer: bool, noun: str) -> tuple[pd.Series, pd.Series, pd.Series]:
    """-> (float values, NA mask, problem per row or NA). Problems: non-numeric, negative, non-integer."""
    text = _text(s)
    missing = text.isna() | text.str.lower().isin(NA_TOKENS).fillna(False)
    values = pd.to_numeric(text.where(~missing), errors="coerce").astype(float)
    bad = ~missing & ~np.isfinite(values)
    negative = ~missing & ~bad & (values < 0)
    fraction = ~missing & ~bad & ~negative & (values != np.floor(values)) & integer
    problem = (_where(bad, f"non-numeric {noun}: " + text[bad].map(repr))
               .fillna(_where(negative, f"negative {noun}: " + text))
               .fillna(_where(fraction, f"non-integer {noun}: " + text)))
    return values, missing, problem


def _parse_bool(s: pd.Series) -> tuple[pd.Series, pd.Series]:
    """-> (boolean values with NA, problem per row or NA)."""
    text = _text(s)
    lower = text.str.lower()
    values = pd.Series(pd.NA, index=s.index, dtype="boolean")
    values[lower.isin(TRUE_TOKENS).fillna(False)] = True
    values[lower.isin(FALSE_TOKENS).fillna(False)] = False
    bad = values.isna() & ~(text.isna() | lower.isin(NA_TOKENS).fillna(False))
    return values, _where(bad, "not a boolean: " + text[bad].map(repr))


def leaves_folder(path: str) -> bool:
    """True when the text of a relative path is absolute (/x, \\x, C:x) or climbs out with '..' once
    normalised; judged on the text alone, so nothing outside is ever looked at (symlinks inside stay valid)."""
    if PureWindowsPath(path).anchor:
        return True
    return posixpath.normpath(path.replace("\\", "/")).split("/")[0] == ".."


def _check_covers(covers: pd.Series, root: Path, level: str) -> tuple[pd.Series, list[str]]:
    """-> (problem per row or NA, notes on unusual-but-good covers)."""
    problem = pd.Series(pd.NA, index=covers.index, dtype="string")
    modes: Counter = Counter()
    n_large = 0
    for i, name in tqdm(covers.items(), total=len(covers), desc=f"checking covers ({level})", leave=False,
                        disable=len(covers) < 200):
        try:
            mode, size = check_cover(root / name, level)
        except CoverError as err:
            problem[i] = str(err)
            continue
        if mode != "RGB":
            modes[mode] += 1
        n_large += max(size) > MAX_SIDE
    notes = []
    if modes:
        listed = ", ".join(f"{mode} {n}" for mode, n in sorted(modes.items()))
        notes.append(f"covers not in RGB, kept and converted to RGB when read: {listed}")
    if n_large:
        notes.append(f"{n_large} covers larger than {MAX_SIDE} px, kept and decoded at reduced size")
    return problem, notes


def validate(df: pd.DataFrame, root: str | Path, source: str, check_images: str = "header"
             ) -> tuple[pd.DataFrame, pd.DataFrame, ValidationReport]:
    """Split `df` (one row per video, DESIGN.md columns) into kept rows and quarantined rows.

    kept: typed (video_id/title/cover str, counts and followers Int64, hot_list boolean, duration float),
    other columns untouched, index 0..n-1. quarantine: the original fields plus `_row` (1-based data row),
    `_field`, `_reason`; one row per bad video, the first problem found (ids, titles, numbers, cover,
    then duplicates among the rest: the first occurrence is kept).
    `root`: folder the `cover` paths are relative to; a path leaving it is quarantined at every level, unopened.
    `check_images`: "none" | "header" | "full".
    """
    require_columns(df.columns, REQUIRED_COLUMNS, source)
    if check_images not in CHECK_LEVELS:
        raise ValueError(f"check_images must be one of {CHECK_LEVELS}, got {check_images!r}")
    df = df.reset_index(drop=True)
    root = Path(root)
    bad_field = pd.Series(pd.NA, index=df.index, dtype="string")
    bad_reason = pd.Series(pd.NA, index=df.index, dtype="string")
    notes: list[str] = []

    def flag(problem: pd.Series, column: str) -> None:
        new = problem.notna() & bad_reason.isna()
        bad_field[new], bad_reason[new] = column, problem[new]

    ids, titles = _text(df["video_id"]), df["title"].astype("string")
    flag(_where(ids.isna() | (ids == ""), "missing video_id"), "video_id")
    flag(_where(titles.isna() | (titles.str.strip() == ""), "empty title"), "title")

    typed: dict[str, pd.Series] = {}
    absent = []
    for column in (*COUNT_COLUMNS, "followers", "duration"):
        if column not in df:
            continue
        is_count = column != "duration"
        values, missing, problem = _parse_numbers(df[column], integer=is_count,
                                                  noun="count" if is_count else "duration")
        if missing.all():
            absent.append(column)
        elif column in COUNT_COLUMNS:  # a count column that has values must have all of them
            problem = problem.mask(missing, f"missing count: {column} is empty/NaN in a column that has values")
        flag(problem, column)
        ok = ~missing & problem.isna()
        typed[column] = (values.where(ok).round().astype("Int64") if is_count else values.where(ok))
    if "hot_list" in df:
        typed["hot_list"], problem = _parse_bool(df["hot_list"])
        flag(problem, "hot_list")
    if absent:
        notes.append(f"not in the data (all NA): {', '.join(absent)}")

    covers = df["cover"].astype("string").fillna("").str.strip()
    flag(_where(covers.map(leaves_folder).astype(bool), LEAVES_FOLDER), "cover")
    has_cover = (covers != "") & bad_reason.isna()
    if check_images != "none" and has_cover.any():
        problem, cover_notes = _check_covers(covers[has_cover], root, check_images)
        flag(problem.reindex(df.index), "cover")
        notes += cover_notes

    first_row = pd.Series(df.index + 1, index=df.index).where(bad_reason.isna()).groupby(ids).transform("min")
    duplicate = bad_reason.isna() & ids.duplicated(keep=False) & (first_row != df.index + 1)
    flag(_where(duplicate, "duplicate video_id: same as row " + first_row.astype("Int64").astype("string")),
         "video_id")

    keep = bad_reason.isna()
    kept = df[keep].copy()
    kept["video_id"], kept["title"], kept["cover"] = ids[keep], titles[keep], covers[keep]
    for column, values in typed.items():
        kept[column] = values[keep]
    long_titles = int((kept["title"].str.len() > LONG_TITLE_CHARS).sum())
    if long_titles:
        notes.append(f"{long_titles} titles longer than {LONG_TITLE_CHARS} characters: kept, "
                     "truncated at tokenisation")
    quarantine = df[~keep].assign(_row=df.index[~keep] + 1, _field=bad_field[~keep], _reason=bad_reason[~keep])
    categories = Counter(reason.split(":")[0] for reason in quarantine["_reason"])
    report = ValidationReport(len(df), int(keep.sum()), int((~keep).sum()), dict(categories), notes, source)
    return kept.reset_index(drop=True), quarantine.reset_index(drop=True), report
