"""What drives popularity (notebook 06): how each interpretable cover and title feature goes with views beyond
followers, the LightGBM baseline's partial dependence, and the title words with the largest shrunken lift.

A finding compares two groups of videos on the target: median(in) - median(out) in target units, a 95 %
percentile bootstrap interval (each group resampled on its own, so its size stays fixed; the generator is seeded
by (seed, finding name), so an interval does not depend on which other findings are computed), the group sizes,
and Cliff's delta, a rank effect size. These are associations in observational data, not causes.
"""
from __future__ import annotations

import logging
import zlib

import jieba
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from scipy.stats import mannwhitneyu, spearmanr

from popnb.analysis.cjk_font import find_cjk_font, labels
from popnb.analysis.explore import is_synthetic
from popnb.baselines import lightgbm
from popnb.data.demo import EFFECTS
from popnb.encoders import encode
from popnb.encoders.cover_stats import STATS_COLUMNS, STATS_SIDE
from popnb.encoders.title_stats import TITLE_COLUMNS
from popnb.targets import Target

jieba.setLogLevel(logging.WARNING)  # no "Building prefix dict ..." lines on stderr

LEVEL = 0.95  # the bootstrap interval's coverage
MIN_GROUP = 10  # fewer videos on a side: no median difference (NaN), too few for a median and its bootstrap
RIGHT_THIRD = 2 / 3  # a face whose centre x (fraction of the cover's width) is beyond this sits in the right third
FACE_COLUMNS = ("n_faces", "face_area", "largest_face_x", "largest_face_area")
TEXT_COLUMNS = ("n_text_boxes", "text_area")
OCR_COST = "~0.5 CPU-s per cover"
COLUMNS = ("finding", "n_in", "n_out", "median_in", "median_out", "median_diff", "ci_low", "ci_high",
           "excludes_zero", "verdict", "cliffs_delta", "target")


# ---- the table of features and the target ----

def feature_table(data, ocr: bool | None = None, stats_side: int = STATS_SIDE, cache=None,
                  progress: bool = True) -> pd.DataFrame:
    """One row per video of `data` (a popnb.data.Dataset): video_id, title, views and followers (float, NaN when
    unknown), title-stats' columns and, when every video has a cover, cover-stats' columns (cover scaled to
    stats_side px), FACE_COLUMNS and, with ocr, TEXT_COLUMNS. Each from the feature store.

    ocr None: on real data, not on the synthetic demo (its text bands are glyph-like strokes that carry no signal).
    attrs["notes"]: what was left out and why.
    """
    videos = data.videos.reset_index(drop=True)
    ocr = not is_synthetic(data.root) if ocr is None else ocr
    counts = pd.DataFrame({c: videos[c].astype("float64") if c in videos else np.nan for c in ("views", "followers")})
    parts = [videos[["video_id", "title"]], counts, encode("title-stats", data, cache=cache, progress=progress).values]
    notes = []
    if not data.has_covers:
        notes.append(f"no cover features: {int((videos['cover'] == '').sum())} of {len(videos)} videos have no cover")
    else:
        parts += [encode("cover-stats", data, size=stats_side, cache=cache, progress=progress).values,
                  encode("cover-faces", data, cache=cache, progress=progress).values[list(FACE_COLUMNS)]]
        if ocr:
            parts.append(encode("cover-ocr", data, cache=cache, progress=progress).values[list(TEXT_COLUMNS)])
        else:
            notes.append(f"no text-on-cover features: OCR off (ocr=False; it costs {OCR_COST})")
    table = pd.concat(parts, axis=1)
    table.attrs["notes"] = notes
    return table


def with_target(table: pd.DataFrame, kind: str = "auto") -> tuple[pd.DataFrame, str, str]:
    """(the rows of table that have the target, with a column named `kind` holding it; kind; a one-line description).

    kind "beyond_followers": log1p(views) - (a + b log1p(followers)), the least-squares line over those rows
    (popnb.targets); "log_views": log1p(views); "auto": beyond_followers when any follower count is known.
    """
    rows = table.dropna(subset=["views"])
    if kind == "auto":
        kind = "beyond_followers" if rows["followers"].notna().any() else "log_views"
    if kind not in ("beyond_followers", "log_views"):
        raise ValueError(f"target must be 'auto', 'beyond_followers' or 'log_views', got {kind!r}")
    if kind == "beyond_followers":
        rows = rows.dropna(subset=["followers"])
    fitted = Target.fit(rows, kind)
    line = (f"log1p(views) - ({fitted.line['intercept']:.4g} + {fitted.line['slope']:.4g} log1p(followers))"
            if fitted.line else "log1p(views)")
    left, what = len(table) - len(rows), "views or followers" if kind == "beyond_followers" else "views"
    about = f"target {kind} = {line} over {len(rows):,} videos"
    if left:
        about += f" ({left:,} without {what} left out)"
    return rows.assign(**{kind: fitted.score(rows)}), kind, about


# ---- group effects ----

def _boot_medians(y: np.ndarray, n_boot: int, rng: np.random.Generator, chunk: int = 2**22) -> np.ndarray:
    """Medians of n_boot resamples of y with replacement, float64 [n_boot]; at most `chunk` draws in memory at once."""
    per = max(1, chunk // len(y))
    return np.concatenate([np.median(y[rng.integers(0, len(y), (min(per, n_boot - i), len(y)))], axis=1)
                           for i in range(0, n_boot, per)])


def median_difference(y_in: np.ndarray, y_out: np.ndarray, n_boot: int = 2000, seed=0) -> dict:
    """median(y_in) - median(y_out), its 95 % percentile bootstrap interval, whether that excludes 0, a verdict,
    and Cliff's delta P(in > out) - P(in < out) in -1..1; NaN when a side has fewer than MIN_GROUP values.
    seed: anything np.random.default_rng takes."""
    n_in, n_out = len(y_in), len(y_out)
    if min(n_in, n_out) < MIN_GROUP:
        return {"n_in": n_in, "n_out": n_out, "median_in": np.nan, "median_out": np.nan, "median_diff": np.nan,
                "ci_low": np.nan, "ci_high": np.nan, "excludes_zero": False,
                "verdict": f"too few videos (< {MIN_GROUP} on a side)", "cliffs_delta": np.nan}
    rng = np.random.default_rng(seed)
    boot = _boot_medians(y_in, n_boot, rng) - _boot_medians(y_out, n_boot, rng)
    low, high = np.quantile(boot, [(1 - LEVEL) / 2, (1 + LEVEL) / 2])
    pairs_above = mannwhitneyu(y_in, y_out).statistic  # pairs (in, out) with in > out, a tie counting half
    return {"n_in": n_in, "n_out": n_out, "median_in": np.median(y_in), "median_out": np.median(y_out),
            "median_diff": np.median(y_in) - np.median(y_out), "ci_low": low, "ci_high": high,
            "excludes_zero": bool(low > 0 or high < 0),
            "verdict": "higher" if low > 0 else "lower" if high < 0 else "interval includes 0",
            "cliffs_delta": 2 * pairs_above / (n_in * n_out) - 1}


def group_effects(df: pd.DataFrame, target: str, groups: dict, n_boot: int = 2000, seed: int = 0) -> pd.DataFrame:
    """One row per group, columns COLUMNS: the finding (its key), `median_difference` of df[target] between the
    group and the rest, and the target column's name.

    groups: finding -> mask, or callable(df) -> mask; a mask [len(df)] is True in the group, False in the
    comparison group, NA in neither. Rows whose target is NaN are in neither.
    """
    y = df[target].to_numpy(dtype=np.float64)
    known = ~np.isnan(y)
    rows = []
    for name, group in groups.items():
        mask = pd.Series(group(df) if callable(group) else group, index=df.index, dtype="boolean")
        is_in, is_out = (mask.fillna(False).to_numpy(bool) & known), ((~mask).fillna(False).to_numpy(bool) & known)
        effect = median_difference(y[is_in], y[is_out], n_boot, [seed, zlib.crc32(name.encode())])
        rows.append({"finding": name, **effect, "target": target})
    return pd.DataFrame(rows, columns=list(COLUMNS))


def either(is_in: pd.Series, is_out: pd.Series) -> pd.Series:
    """A group mask: True where is_in, else False where is_out, else NA (in neither group)."""
    return pd.Series(pd.NA, index=is_in.index, dtype="boolean").mask(is_out, False).mask(is_in, True)


def quantile_group(x: pd.Series, q: float = 0.25) -> tuple[str, pd.Series]:
    """(finding, mask): the top q of x against its bottom q, the cuts in the name; NaN in neither group, and a
    value at both cuts (heavy ties) in the bottom one."""
    low, high = x.quantile([q, 1 - q])
    return (f"{x.name}: top vs bottom {q:.0%} (>= {high:.3g} vs <= {low:.3g})",
            either((x >= high) & (x > low), x <= low))


def quantile_effect(df: pd.DataFrame, column: str, target: str, q: float = 0.25, n_boot: int = 2000,
                    seed: int = 0) -> pd.DataFrame:
    """group_effects' row for the top q of df[column] against its bottom q."""
    return group_effects(df, target, dict([quantile_group(df[column].astype("float64"), q)]), n_boot, seed)


def _positive(column: str):
    """(column, mask: column > 0)."""
    return column, lambda t: t[column] > 0


COVER_FLAGS = {  # finding -> (the column it needs, mask of the feature table)
    "face on the cover": _positive("n_faces"),
    "face in the right third (vs no face)": (
        "largest_face_x", lambda t: either(t["largest_face_x"] > RIGHT_THIRD, t["n_faces"] == 0)),
    "face in the right third (vs a face elsewhere)": (
        "largest_face_x", lambda t: either(t["largest_face_x"] > RIGHT_THIRD, t["n_faces"] > 0)),
    "text on the cover": _positive("n_text_boxes"),
}
TITLE_FLAGS = {
    "exclamation mark in the title": _positive("exclamations"),  # ! or ！
    "question mark in the title": _positive("questions"),  # ? or ？
    "question form": _positive("question_form"),  # ends with ?/？ or holds 吗, 为什么, 怎么, ...
    "digits in the title": _positive("digits"),
    "bracket tag in the title": _positive("brackets"),  # 【...】
    "Latin words in the title": _positive("latin_words"),
    "emoji in the title": _positive("emoji"),
}
PARTS = (("cover", COVER_FLAGS, STATS_COLUMNS), ("title", TITLE_FLAGS, ("length",)))  # flags, then quantile columns


def standard_findings(df: pd.DataFrame, target: str, q: float = 0.25, n_boot: int = 2000,
                      seed: int = 0) -> pd.DataFrame:
    """Every COVER_FLAGS / TITLE_FLAGS finding and top-vs-bottom-q finding whose column df has: column `part`
    ("cover" or "title"), then group_effects' columns."""
    groups, part_of = {}, {}
    for part, flags, quantiles in PARTS:
        found = {name: mask for name, (column, mask) in flags.items() if column in df}
        found |= dict(quantile_group(df[c].astype("float64"), q) for c in quantiles if c in df)
        groups |= found
        part_of |= dict.fromkeys(found, part)
    table = group_effects(df, target, groups, n_boot, seed)
    table.insert(0, "part", table["finding"].map(part_of))
    return table


def summary(effects: pd.DataFrame, about: str) -> str:
    """Markdown: the target, the findings whose interval excludes 0 (difference, interval, sizes), the others."""
    holds = effects[effects["excludes_zero"]]
    lines = [about, "", f"**Holds** (the {LEVEL:.0%} interval of the median difference excludes 0):"]
    lines += [f"- {r.finding}: {r.median_diff:+.3g} [{r.ci_low:+.3g}, {r.ci_high:+.3g}], n = {r.n_in:,} vs {r.n_out:,}"
              for r in holds.itertuples()] or ["- none"]
    rest = effects.loc[~effects["excludes_zero"], "finding"]
    return "\n".join([*lines, "", f"**Does not hold here** (interval includes 0, or too few videos): "
                                  f"{', '.join(rest) or 'none'}."])


def effects_figure(effects: pd.DataFrame, label: str) -> plt.Figure:
    """Forest plot: each finding's median difference (dot) and 95 % interval (bar), red where the interval
    excludes 0; group sizes (in / out) at the right, and a note where a side is too small."""
    f = effects.reset_index(drop=True)
    y = np.arange(len(f))
    fig, ax = plt.subplots(figsize=(9, 0.32 * len(f) + 1.6))
    for hit, colour, name in ((True, "C3", "interval excludes 0"), (False, "0.55", "interval includes 0")):
        s = f[f["excludes_zero"] == hit]
        diff, low, high = (s[c].to_numpy(dtype=np.float64) for c in ("median_diff", "ci_low", "ci_high"))
        ax.errorbar(diff, y[s.index], xerr=[diff - low, high - diff], fmt="o", color=colour, capsize=2, label=name)
    for i, (n_in, n_out, diff) in enumerate(zip(f["n_in"], f["n_out"], f["median_diff"])):
        ax.annotate(f"{n_in:,} / {n_out:,}", (1.01, i), xycoords=("axes fraction", "data"), va="center", fontsize=7)
        if np.isnan(diff):
            ax.text(0, i, f" too few videos (< {MIN_GROUP} on a side)", va="center", fontsize=7, color="0.4")
    ax.axvline(0, color="k", lw=0.8)
    ax.set_yticks(y, f["finding"], fontsize=8)
    ax.set_ylim(len(f) - 0.5, -0.5)
    target = f["target"].iloc[0] if len(f) else "target"
    ax.set(xlabel=f"median {target}: in the group - outside it ({LEVEL:.0%} bootstrap interval)",
           title=f"What goes with popularity (n in / out at right) - {label}")
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    return fig


# ---- the demo's planted effects ----

PLANTED = {  # popnb.data.demo.EFFECTS' feature -> the finding (name or name prefix) that measures it
    "face": "face in the right third (vs no face)", "brightness": "brightness:", "saturation": "saturation:",
    "question": "question mark in the title", "number": "digits in the title",
    "hook": "exclamation mark in the title", "bracket": "bracket tag in the title", "title_len": "length:",
}


def planted_recovery(effects: pd.DataFrame) -> pd.DataFrame:
    """On the synthetic demo: per planted effect (popnb.data.demo.EFFECTS, latent per unit), the finding that
    measures it, its difference and interval, and recovered (the interval excludes 0 on the planted side).
    title_len's own effect is negative, but hooks and brackets lengthen titles: its marginal may not be."""
    rows = []
    for feature, prefix in PLANTED.items():
        match = effects[effects["finding"].str.startswith(prefix)]
        if len(match):
            r, effect = match.iloc[0], EFFECTS[feature]
            rows.append({"planted": feature, "effect": effect, "finding": r["finding"],
                         "median_diff": r["median_diff"], "ci_low": r["ci_low"], "ci_high": r["ci_high"],
                         "recovered": bool(r["excludes_zero"] and np.sign(r["median_diff"]) == np.sign(effect))})
    return pd.DataFrame(rows)


# ---- partial dependence of the LightGBM baseline ----

# Not the largest face's position and area: NaN without a face, so a tree could read "a face" from them and hide a
# face's partial dependence there; where the face sits is a group effect ("face in the right third").
MODEL_COLUMNS = (*STATS_COLUMNS, "n_faces", "face_area", *TEXT_COLUMNS, *TITLE_COLUMNS)


def model_columns(df: pd.DataFrame) -> list[str]:
    """The MODEL_COLUMNS df has (cover, then title): the baseline's inputs besides followers."""
    return [c for c in MODEL_COLUMNS if c in df]


def fit_baseline(df: pd.DataFrame, target: str, columns: list[str], seed: int = 0):
    """The LightGBM baseline (popnb.baselines.lightgbm over columns + followers) fitted on every row of df."""
    return lightgbm(columns, seed).fit(df, df[target].to_numpy())


def baseline_skill(df: pd.DataFrame, target: str, columns: list[str], seed: int = 0, k: int = 5) -> float:
    """Spearman correlation of the baseline's out-of-fold predictions with the target over k random folds (videos
    of one uploader may sit on both sides): how much of the target its partial dependence speaks for."""
    from sklearn.model_selection import KFold, cross_val_predict

    folds = KFold(k, shuffle=True, random_state=seed)
    pred = cross_val_predict(lightgbm(columns, seed), df, df[target].to_numpy(), cv=folds)
    return float(spearmanr(pred, df[target]).statistic)


def pd_grid(x: pd.Series, size: int = 20) -> np.ndarray:
    """x's distinct known values when at most `size`, else `size` evenly spaced from its 5th to 95th percentile."""
    known = x.dropna()
    if known.nunique() <= size:
        return np.sort(known.unique())
    return np.unique(np.linspace(*known.quantile([0.05, 0.95]), size))


def partial_dependence_table(model, X: pd.DataFrame, columns: list[str], grid: int = 20, rows: int = 400,
                             seed: int = 0) -> pd.DataFrame:
    """Long table (feature, value, average): the model's mean prediction (target units) over `rows` rows of X (a
    seeded sample of the rows it takes, e.g. the feature table; all when fewer) with the feature set to value, at
    `pd_grid(X[feature], grid)`. Features with fewer than 2 distinct known values are left out. Each point costs
    one prediction of the sample (the LightGBM baseline: ~10 ms)."""
    from sklearn.inspection import partial_dependence

    X = X.sample(min(rows, len(X)), random_state=seed)
    X = X.astype(dict.fromkeys(columns, "float64"))  # sklearn refuses integer columns (a grid on them is rounded)
    parts = []
    for column in (c for c in columns if X[c].dropna().nunique() > 1):
        values = pd_grid(X[column], grid)
        result = partial_dependence(model, X, [column], custom_values={column: values})
        parts.append(pd.DataFrame({"feature": column, "value": values, "average": result["average"][0]}))
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=["feature", "value", "average"])


def partial_dependence_figure(table: pd.DataFrame, target: str, label: str, cols: int = 4) -> plt.Figure:
    """One panel per feature: the baseline's mean prediction of the target against the feature's value."""
    features = list(dict.fromkeys(table["feature"]))
    rows = max(1, -(-len(features) // cols))
    fig, axes = plt.subplots(rows, cols, figsize=(3 * cols, 2.3 * rows), sharey=True, squeeze=False)
    for ax in axes.flat[len(features):]:
        ax.axis("off")
    for ax, feature in zip(axes.flat, features):
        part = table[table["feature"] == feature]
        ax.plot(part["value"], part["average"], marker=".", lw=1)
        ax.set_title(feature, fontsize=9)
        ax.tick_params(labelsize=7)
    fig.supylabel(f"mean predicted {target}", fontsize=9)
    fig.suptitle(f"Partial dependence of the LightGBM baseline - {label}", fontsize=10)
    fig.tight_layout()
    return fig


# ---- title words ----

def title_words(title: str) -> list[str]:
    """jieba's words of a title that are 2+ characters long and hold a letter (any script): no punctuation,
    numbers or one-character particles."""
    return [w for w in jieba.lcut(title) if len(w) >= 2 and any(c.isalpha() for c in w)]


def word_lift(titles, target, k: float = 20, min_count: int = 5, top: int = 20) -> pd.DataFrame:
    """The `top` title words by shrunken lift: word, n (titles holding it), mean (their mean target), lift =
    n / (n + k) * (mean - overall mean), in target units. Shrinking the word's mean toward the overall mean as
    if k more titles at the overall mean held it keeps rare words from the top by luck. Words in fewer than
    min_count titles are left out. titles [N] str, target [N] float."""
    y = np.asarray(target, dtype=np.float64)
    words = pd.Series([sorted(set(title_words(str(t)))) for t in titles]).explode().dropna()
    pairs = pd.DataFrame({"word": words.to_numpy(), "y": y[words.index]})  # one row per (title, word)
    stats = pairs.groupby("word")["y"].agg(n="size", mean="mean").query("n >= @min_count")
    stats = stats.assign(lift=stats["n"] / (stats["n"] + k) * (stats["mean"] - y.mean()))
    return stats.sort_values(["lift", "n"], ascending=False).head(top).reset_index()


def word_figure(words: pd.DataFrame, target: str, label: str) -> plt.Figure:
    """Horizontal bars of each word's lift, labelled 'word (n=...)' in a CJK font (see popnb.analysis.cjk_font)."""
    fig, ax = plt.subplots(figsize=(7, 0.28 * len(words) + 1.4))
    y = np.arange(len(words))
    names = labels(words["word"], [f"word {i + 1}" for i in y])
    ax.barh(y, words["lift"], color="C0")
    ax.set_yticks(y, [f"{name} (n={n})" for name, n in zip(names, words["n"])], fontfamily=find_cjk_font(),
                  fontsize=8)
    ax.invert_yaxis()
    if words.empty:
        ax.text(0.5, 0.5, "no word in enough titles", ha="center", va="center", transform=ax.transAxes)
    ax.axvline(0, color="k", lw=0.8)
    ax.set(xlabel=f"shrunken lift of mean {target}", title=f"Title words with the largest lift - {label}")
    fig.tight_layout()
    return fig
