"""Reading and writing dataset folders (`DIR/videos.csv` or `.parquet` + covers/)."""
from __future__ import annotations

import codecs
import io
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from popnb.data.schema import (
    OPTIONAL_COLUMNS, QUARANTINE_COLUMNS, REQUIRED_COLUMNS, SchemaError, ValidationReport, require_columns, validate,
)

TABLE_NAMES = ("videos.csv", "videos.parquet")


def _decode(path: Path, encoding: str) -> str:
    """The file's text; SchemaError naming file and line when it is not in `encoding` (no guessing)."""
    try:
        codec = codecs.lookup(encoding).name
    except LookupError:
        raise ValueError(f"unknown encoding {encoding!r} for {path}") from None
    data = path.read_bytes()
    try:
        return data.decode("utf-8-sig" if codec == "utf-8" else codec)  # a UTF-8 BOM is dropped
    except UnicodeDecodeError as err:
        line = data.count(b"\n", 0, err.start) + 1
        raise SchemaError(
            f"{path}, line {line}: not valid {encoding} (byte {data[err.start:err.start + 1]!r}); "
            "if the file has another encoding, say which, e.g. --encoding gb18030"
        ) from None


def read_table(path: str | Path, encoding: str | None = None, text_columns=()) -> pd.DataFrame:
    """Read a CSV or Parquet table. In a CSV, `text_columns` stay verbatim strings ("" when empty, "NA"
    stays "NA"); other columns get pandas' type inference with only empty cells as NA."""
    path = Path(path)
    if path.suffix == ".parquet":
        return pd.read_parquet(path)
    text = _decode(path, encoding or "utf-8")
    try:
        header = pd.read_csv(io.StringIO(text), nrows=0).columns
        strict = [c for c in header if c in set(text_columns)]
        return pd.read_csv(io.StringIO(text), dtype={c: str for c in strict}, keep_default_na=False,
                           na_values={c: [""] for c in header if c not in strict})
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as err:
        raise SchemaError(f"{path}: cannot parse as CSV: {err}") from None


@dataclass
class Dataset:
    """A loaded dataset folder. `videos` is validated and typed (index 0..n-1); `quarantine` holds the
    rows that failed validation on load (normally none: import already quarantined them)."""

    root: Path
    videos: pd.DataFrame
    report: ValidationReport
    quarantine: pd.DataFrame = field(default_factory=pd.DataFrame)

    def __len__(self) -> int:
        return len(self.videos)

    def cover_path(self, i: int) -> Path | None:
        """Path of the cover of row `i` (position), or None for a video without a cover."""
        cover = self.videos["cover"].iat[i]
        return self.root / cover if cover else None

    @property
    def has_covers(self) -> bool:
        """True when every video has a cover (image models can use this set)."""
        return len(self.videos) > 0 and bool((self.videos["cover"] != "").all())


def load_dataset(root: str | Path, check_images: str = "header", quarantine_to: str | Path | None = None) -> Dataset:
    """Load and validate `root/videos.csv` (or `.parquet`). Never writes into `root`; bad rows are in
    `Dataset.quarantine` and, when `quarantine_to` is given, written there as CSV.
    `check_images`: "header" (open + verify, fast) | "full" (decode every cover) | "none"."""
    root = Path(root)
    table = next((root / name for name in TABLE_NAMES if (root / name).is_file()), None)
    if table is None:
        raise FileNotFoundError(f"{root}: no {' or '.join(TABLE_NAMES)}: not a dataset folder "
                                "(make one with `popnb import` or `popnb demo-data`)")
    if quarantine_to is not None and Path(quarantine_to).resolve().is_relative_to(root.resolve()):
        raise ValueError(f"quarantine_to={quarantine_to} is inside the dataset folder {root}: loading never "
                         "writes there; choose a path outside it")
    df = read_table(table, text_columns=(*REQUIRED_COLUMNS, *OPTIONAL_COLUMNS))
    videos, quarantine, report = validate(df, root, str(table), check_images)
    if quarantine_to is not None:
        write_quarantine(quarantine, quarantine_to)
    return Dataset(root, videos, report, quarantine)


def ordered_columns(columns) -> list[str]:
    """Our columns first (required, then optional), then any others in their order."""
    ours = [c for c in (*REQUIRED_COLUMNS, *OPTIONAL_COLUMNS) if c in columns]
    return ours + [c for c in columns if c not in ours]


def write_dataset(videos: pd.DataFrame, out_dir: str | Path) -> Path:
    """Write `out_dir/videos.csv` (UTF-8, our column order first); returns its path. A dataset folder is
    written once: raises FileExistsError when it already holds a table."""
    out_dir = Path(out_dir)
    require_columns(videos.columns, REQUIRED_COLUMNS, f"write_dataset({out_dir})")
    existing = [out_dir / name for name in TABLE_NAMES if (out_dir / name).exists()]
    if existing:
        raise FileExistsError(f"{existing[0]} exists: a dataset folder is written once; choose a new folder")
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "videos.csv"
    videos[ordered_columns(videos.columns)].to_csv(path, index=False, encoding="utf-8")
    return path


def write_quarantine(quarantine: pd.DataFrame, path: str | Path) -> Path:
    """Write quarantined rows as CSV (`_row, _field, _reason` first, then the row's fields)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    columns = [*QUARANTINE_COLUMNS, *(c for c in quarantine.columns if c not in QUARANTINE_COLUMNS)]
    quarantine.reindex(columns=columns).to_csv(path, index=False, encoding="utf-8")
    return path
