"""Data exploration (notebook 01): the five counts, their correlations, covers and titles.

Every function takes a dataset (or its videos DataFrame) and returns a DataFrame or a matplotlib
Figure; the notebook only calls them and saves the results. Missing data stays visibly missing.
"""
from __future__ import annotations

import json
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from popnb.data import COUNT_COLUMNS, load_dataset, make_demo_dataset, open_cover
from popnb.paths import resolve

ASPECTS = {"16:9": 16 / 9, "4:3": 4 / 3, "1:1": 1.0, "3:4": 3 / 4, "9:16": 9 / 16}


# ---- which data ----

def open_data(data_dir: str | Path | None = None, demo_dir: str | Path = "data/demo", demo_n: int = 3000,
              seed: int = 0, check_images: str = "header"):
    """Load `data_dir`; None -> the synthetic demo set in `demo_dir/n{demo_n}_seed{seed}` (made once, then reused)."""
    if data_dir is None:
        data_dir = resolve(demo_dir) / f"n{demo_n}_seed{seed}"
        if not (data_dir / "DATASET.json").exists():
            make_demo_dataset(data_dir, n=demo_n, seed=seed)
    return load_dataset(resolve(data_dir), check_images=check_images)


def is_synthetic(root: str | Path) -> bool:
    """True when the folder's DATASET.json marks it synthetic."""
    meta = Path(root) / "DATASET.json"
    return meta.exists() and bool(json.loads(meta.read_text(encoding="utf-8")).get("synthetic", False))


NO_COVERS = "no covers in this data set (titles and counts only): the cover sections are skipped"
COVERS_KEY = "popnb-covers"  # PNG text field save_figure writes: which covers a figure draws (none, synthetic, real)


def mark_covers(fig, root: str | Path):
    """Record on fig that it draws covers of the data set at root, 'synthetic' or 'real' (DATASET.json), so that
    save_figure writes it into the PNG (COVERS_KEY) and a check can find real covers among saved figures."""
    fig.popnb_covers = "synthetic" if is_synthetic(root) else "real"
    return fig


def data_label(ds) -> str:
    """A short name for titles: 'SYNTHETIC demo data (n=...)' or the folder name and row count."""
    n = len(ds.videos)
    return f"SYNTHETIC demo data (n={n:,})" if is_synthetic(ds.root) else f"{Path(ds.root).name} (n={n:,})"


def headline(ds, question: str) -> str:
    """A markdown headline: the question, the data it is answered on, and a warning when that is synthetic."""
    if is_synthetic(ds.root):
        return (f"## {question}: on SYNTHETIC demo data\n\n**This data set is SYNTHETIC** (`{ds.root}`, "
                f"{len(ds.videos):,} videos made by `make_demo_dataset`): its numbers say nothing about Bilibili.")
    return f"## {question}: on {Path(ds.root).name}\n\nData: `{ds.root}`, {len(ds.videos):,} videos."


# ---- the five counts ----

def count_summary(df: pd.DataFrame) -> pd.DataFrame:
    """Per count column: known/missing rows, zeros, min, median, mean, max (NaN where nothing is known)."""
    rows = {}
    for col in COUNT_COLUMNS:
        x = df[col].astype("float64") if col in df else pd.Series(np.nan, index=df.index)
        known = x.dropna()
        rows[col] = {"known": len(known), "missing": int(x.isna().sum()), "zeros": int((known == 0).sum()),
                     "min": known.min(), "median": known.median(), "mean": known.mean(), "max": known.max()}
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis("count")


def count_distributions(df: pd.DataFrame, label: str) -> plt.Figure:
    """One histogram of log10(1 + count) per count column; a column with no known values says so."""
    import seaborn as sns

    fig, axes = plt.subplots(1, len(COUNT_COLUMNS), figsize=(3.2 * len(COUNT_COLUMNS), 3), sharey=False)
    for ax, col in zip(axes, COUNT_COLUMNS):
        x = df[col].astype("float64").dropna() if col in df else pd.Series(dtype="float64")
        if x.empty:
            ax.text(0.5, 0.5, "missing:\nnot in this data set", ha="center", va="center", transform=ax.transAxes)
            ax.set_xticks([]), ax.set_yticks([])
        else:
            sns.histplot(np.log10(1 + x), bins=40, ax=ax)
        ax.set_xlabel(f"log10(1 + {col})")
    fig.suptitle(f"Count distributions (log scale) - {label}")
    fig.tight_layout()
    return fig


def count_correlations(df: pd.DataFrame) -> pd.DataFrame:
    """Spearman correlation [5, 5] of the counts over rows where both are known; NaN for a missing column."""
    counts = pd.DataFrame({c: df[c].astype("float64") if c in df else np.nan for c in COUNT_COLUMNS}, index=df.index)
    return counts.corr(method="spearman")


def correlation_heatmap(corr: pd.DataFrame, label: str) -> plt.Figure:
    """Heatmap of a correlation matrix; NaN cells are left blank and marked 'missing'."""
    import seaborn as sns

    fig, ax = plt.subplots(figsize=(5.5, 4.5))
    sns.heatmap(corr, vmin=-1, vmax=1, cmap="vlag", annot=True, fmt=".2f", square=True, ax=ax)
    for i, j in zip(*np.where(corr.isna().to_numpy())):
        ax.text(j + 0.5, i + 0.5, "missing", ha="center", va="center", fontsize=7, color="gray")
    ax.set_title(f"Spearman correlation of counts - {label}")
    fig.tight_layout()
    return fig


# ---- covers ----

def cover_sizes(ds) -> pd.DataFrame:
    """Per video with a cover: width, height (px), aspect (w/h), file bytes. Reads image headers only."""
    from PIL import Image

    rows = []
    for i, vid in enumerate(ds.videos["video_id"]):
        if not ds.videos["cover"].iloc[i]:
            continue
        path = ds.cover_path(i)
        with Image.open(path) as im:  # header only: the size as stored, no pixel decoding
            width, height = im.size
        rows.append({"video_id": vid, "width": width, "height": height, "aspect": width / height,
                     "bytes": path.stat().st_size})
    return pd.DataFrame(rows, columns=["video_id", "width", "height", "aspect", "bytes"])


def nearest_aspect(aspect: float) -> str:
    """The named ratio (16:9, 4:3, ...) within 3% of `aspect`, else 'other'."""
    name, ratio = min(ASPECTS.items(), key=lambda kv: abs(kv[1] - aspect))
    return name if abs(ratio - aspect) / ratio < 0.03 else "other"


def cover_summary(sizes: pd.DataFrame) -> pd.DataFrame:
    """Width, height (px), aspect (w/h) and file bytes of the covers: count, mean, std, quantiles."""
    return sizes[["width", "height", "aspect", "bytes"]].astype("float64").describe().T.rename_axis("field")


def aspect_shares(sizes: pd.DataFrame) -> pd.DataFrame:
    """Covers per named aspect ratio (16:9, 4:3, ..., 'other'; see `nearest_aspect`) and their share."""
    names = pd.Categorical(sizes["aspect"].map(nearest_aspect), categories=[*ASPECTS, "other"])
    counts = pd.Series(names).value_counts(sort=False)
    return pd.DataFrame({"covers": counts, "share": counts / max(len(sizes), 1)}).rename_axis("aspect")


def cover_size_figure(sizes: pd.DataFrame, label: str) -> plt.Figure:
    """Scatter of cover width x height, and a histogram of aspect ratio with 16:9 / 4:3 / 1:1 marked."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.8))
    if sizes.empty:
        for ax in (left, right):
            ax.text(0.5, 0.5, "no covers in this data set", ha="center", va="center", transform=ax.transAxes)
    else:
        left.scatter(sizes["width"], sizes["height"], s=6, alpha=0.4)
        right.hist(sizes["aspect"], bins=40)
        for name in ("16:9", "4:3", "1:1"):
            right.axvline(ASPECTS[name], color="gray", ls="--", lw=0.8)
            right.text(ASPECTS[name], right.get_ylim()[1] * 0.95, name, rotation=90, va="top", fontsize=8)
    left.set(xlabel="width (px)", ylabel="height (px)", title="cover size")
    right.set(xlabel="aspect (width / height)", ylabel="covers", title="aspect ratio")
    fig.suptitle(f"Covers - {label}")
    fig.tight_layout()
    return fig


def cjk_font() -> str | None:
    """The name of a font matplotlib knows that has CJK glyphs (it maps U+4E2D '中'), or None."""
    from matplotlib import font_manager, ft2font

    for entry in font_manager.fontManager.ttflist:
        try:
            if ord("中") in ft2font.FT2Font(entry.fname).get_charmap():
                return entry.name
        except (RuntimeError, OSError):
            continue
    return None


def font_chars(family: str) -> set[int]:
    """The code points the font matplotlib picks for `family` can draw."""
    from matplotlib import font_manager, ft2font

    path = font_manager.findfont(font_manager.FontProperties(family=[family]))
    return set(ft2font.FT2Font(path).get_charmap())


def caption(title: str, video_id: str, drawable: set[int], width: int = 16) -> str:
    """The title (cut to `width` chars) when the font draws every character, else 'video_id · N chars'
    so no glyph renders as a blank box (tofu)."""
    if all(ord(ch) in drawable or ch.isspace() for ch in title):
        return title if len(title) <= width else title[: width - 3] + "..."
    return f"{video_id} · {len(title)} chars"


def cover_grid(ds, label: str, n: int = 12, cols: int = 4, seed: int = 0) -> plt.Figure:
    """A grid of `n` random covers (decoded by open_cover) captioned by title (see `caption`)."""
    family = cjk_font() or plt.rcParams["font.family"][0]
    drawable = font_chars(family)
    with_cover = np.flatnonzero(ds.videos["cover"].fillna("").astype(bool).to_numpy())
    picks = np.random.default_rng(seed).permutation(with_cover)[:n]
    rows = max(1, -(-len(picks) // cols))
    fig, axes = plt.subplots(rows, cols, figsize=(3 * cols, 2.2 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, i in zip(axes.flat, picks):
        ax.imshow(open_cover(ds.cover_path(int(i)), max_side=320))
        row = ds.videos.iloc[int(i)]
        ax.set_title(caption(str(row["title"]), str(row["video_id"]), drawable), fontsize=8, family=family)
    if len(picks) == 0:
        ax = axes[0, 0]
        ax.text(0.5, 0.5, "no covers in this data set", ha="center", va="center", transform=ax.transAxes)
    fig.suptitle(f"Sample covers - {label}")
    fig.tight_layout()
    return mark_covers(fig, ds.root) if len(picks) else fig


# ---- titles ----

def title_lengths(df: pd.DataFrame) -> pd.Series:
    """Title length in characters (Unicode code points; emoji kept), indexed like df."""
    return df["title"].astype(str).str.len().rename("title_chars")


def title_length_figure(lengths: pd.Series, label: str) -> plt.Figure:
    """Histogram of title length in characters."""
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.hist(lengths, bins=range(0, int(lengths.max() if len(lengths) else 1) + 2))
    ax.set(xlabel="title length (characters)", ylabel="videos", title=f"Title length - {label}")
    fig.tight_layout()
    return fig
