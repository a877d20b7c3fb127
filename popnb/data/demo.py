"""The synthetic demo data set: covers drawn with PIL, Bilibili-style titles, counts from a hidden popularity.

Every video gets known cover features (a face-like emoji in the right third of the cover, background
brightness and saturation) and known title features (question, Arabic number, hook phrase, 【】 bracket,
length). A hidden popularity `latent = sum(EFFECTS[f] * feature f) + NOISE_SD * N(0, 1)` orders the
videos; views are a fixed increasing function of that order, shaped so that the paper's fixed
thresholds on its mean-normalised score give classes of about DESIGN_CLASS_SHARES. Likes, coins,
favorites and shares are Poisson draws at fixed rates of views. The truth (features, latent) goes to
truth.csv, never into videos.csv. Same seed -> byte-identical files.
"""
from __future__ import annotations

import colorsys
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image, ImageDraw
from tqdm.auto import tqdm

from popnb.data.io import write_dataset
from popnb.labels import PAPER_THRESHOLDS

# Effect of each true feature on the latent popularity (units of latent per unit of feature).
# brightness and saturation run 0..1 (sd 0.29), title_len is in characters (sd about 7).
EFFECTS = {
    "face": 1.3, "brightness": 1.7, "saturation": 1.2,                          # cover
    "question": 1.0, "number": 0.8, "hook": 1.0, "bracket": 0.3, "title_len": -0.05,  # title
}
COVER_FEATURES = ("face", "brightness", "saturation")
TITLE_FEATURES = ("question", "number", "hook", "bracket", "title_len")
NOISE_SD = 0.5
FEATURE_RATES = {"face": 0.4, "question": 0.4, "number": 0.35, "hook": 0.3, "bracket": 0.4}
FACE_REGION = (2 / 3, 1.0)  # the face is always drawn inside this horizontal span (fraction of width)
MIN_SIDE = 24  # px; smaller covers cannot hold a face in the right third

# Views: classes (by latent rank) and their placement relative to the paper's thresholds.
DESIGN_CLASS_SHARES = (0.42, 0.22, 0.18, 0.12, 0.06)
MEAN_VIEWS, MIN_VIEWS = 30_000, 60
CLASS0_TOP = 0.5  # class-0 views run log-uniformly from MIN_VIEWS to CLASS0_TOP * mean
BAND_GAP = 0.25   # classes 1-3 fill the middle of their score band, leaving this share empty each side
TAIL_POWER = 3.0  # class 4: log views rise as position**TAIL_POWER, up to the maximum
RATES = {"likes": 0.06, "coins": 0.012, "favorites": 0.015, "shares": 0.003}  # per view
RATE_NOISE_SD = 0.05  # log-normal jitter of each rate per video (kept small: see README)
OUTSIDER_BLOCK = 6    # the 3rd or 4th video of each run of 6 consecutive popularity ranks is outside the paper's filter
FOLLOWER_LIMIT = 500_000

TOPICS = (
    "黑洞", "量子纠缠", "相对论", "光速", "宇宙大爆炸", "暗物质", "火星", "月球背面", "太阳风暴", "地震", "火山",
    "台风", "极光", "闪电", "深海鱼", "章鱼", "蚂蚁", "蜜蜂", "恐龙", "猛犸象", "北极熊", "企鹅", "大熊猫",
    "人类大脑", "睡眠", "梦境", "记忆", "免疫系统", "肠道菌群", "咖啡因", "近视", "疫苗", "病毒", "抗生素", "芯片",
    "光刻机", "锂电池", "核聚变", "超导体", "人工智能", "量子计算机", "互联网", "密码学", "金字塔", "长城", "古罗马",
    "丝绸之路", "甲骨文", "青铜器", "三国", "唐朝", "圆周率", "无穷大", "概率论", "博弈论", "经济危机", "通货膨胀",
    "汇率", "拖延症", "焦虑", "方言", "汉字", "颜色", "镜子", "冰", "盐", "玻璃", "钢铁", "塑料", "高铁", "飞机",
    "火箭", "卫星", "潜艇", "桥梁", "微波炉", "冰箱", "指纹", "血型", "左撇子",
)
PREDICATES = ("会这样", "这么神奇", "如此重要", "让人着迷", "越来越多", "无法被复制")
ADJECTIVES = ("可怕", "神奇", "重要", "危险", "复杂", "有用", "古老")
NUMBERS = (3, 5, 7, 8, 10, 12, 15, 20, 30, 50, 100)
# Title cores by (question, number); {t}/{u} topics, {p} predicate, {a} adjective, {n} number.
CORES = {
    (False, False): ("{t}的原理", "{t}是如何形成的", "一口气了解{t}", "{t}背后的科学", "聊聊{t}", "科普：{t}的前世今生",
                     "{t}，其实很简单", "从零开始认识{t}", "关于{t}的冷知识", "带你走进{t}的世界", "{t}与{u}的故事"),
    (True, False): ("为什么{t}{p}？", "{t}到底是什么？", "{t}是怎么来的？", "{t}真的{a}吗？", "如果没有{t}，世界会怎样？",
                    "{t}和{u}，哪个更{a}？", "{t}为什么这么{a}？", "你真的了解{t}吗？"),
    (False, True): ("{n}个关于{t}的冷知识", "{n}分钟看懂{t}", "{t}的{n}个秘密", "用{n}张图讲清楚{t}", "{t}：过去{n}年的变化",
                    "{n}个实验带你认识{t}"),
    (True, True): ("{n}分钟告诉你，为什么{t}{p}？", "{t}能撑过{n}年吗？", "{n}个问题：{t}到底是什么？",
                   "{t}的{n}个谜团，你知道几个？"),
}
HOOKS = ("揭秘！", "震惊！", "颠覆认知！", "真相来了！", "竟然是这样！", "万万没想到！")
BRACKETS = ("【科普】", "【硬核】", "【中字】", "【实验】", "【冷知识】", "【干货】")
FILLERS = ("｜一看就懂", "（完整版）", "，看完你就明白了", "——来自物理学家的解释", "（上）", "，建议收藏", "｜知识区",
           "，小白也能听懂", "（附参考资料）", "——一场跨越千年的探索")

FACE_YELLOW, FACE_EDGE = (255, 204, 0), (190, 110, 0)
YELLOW_HUES = (0.09, 0.22)  # backgrounds and shapes avoid these hues, so only the face is yellow
BANDS = (((20, 20, 20), (255, 255, 255)), ((255, 255, 255), (20, 20, 20)), ((250, 250, 250), (220, 30, 30)),
         ((200, 25, 25), (255, 255, 255)), ((20, 40, 140), (255, 255, 255)))  # (band, glyph) colours
JPEG_QUALITY = 90


def _title(rng: np.random.Generator, question: bool, number: bool, hook: bool, bracket: bool) -> str:
    """One title with exactly the requested features (question = ends a clause with ？, number = Arabic digits)."""
    def pick(options):
        return options[int(rng.integers(len(options)))]

    topic, other = rng.choice(len(TOPICS), size=2, replace=False)
    core = pick(CORES[(question, number)]).format(t=TOPICS[topic], u=TOPICS[other], p=pick(PREDICATES),
                                                  a=pick(ADJECTIVES), n=pick(NUMBERS))
    fillers = "".join(FILLERS[i] for i in rng.choice(len(FILLERS), size=int(rng.choice(3, p=[.4, .4, .2])),
                                                     replace=False))
    hook_text, bracket_text = pick(HOOKS) if hook else "", pick(BRACKETS) if bracket else ""
    hook_first, bracket_first = rng.random() < 0.6, rng.random() < 0.7
    return "".join([bracket_text if bracket_first else "", hook_text if hook_first else "", core,
                    "" if hook_first else hook_text, fillers, "" if bracket_first else bracket_text])


def _hue(u) -> np.ndarray:
    """Map u in [0, 1) onto the hue circle without the yellow band."""
    lo, hi = YELLOW_HUES
    h = (np.asarray(u) % 1.0) * (1 - (hi - lo))
    return np.where(h >= lo, h + (hi - lo), h)


def _rgb(h: float, s: float, v: float) -> tuple[int, int, int]:
    return tuple(int(round(255 * c)) for c in colorsys.hsv_to_rgb(float(h), min(s, 1.0), min(v, 1.0)))


def _draw_cover(rng: np.random.Generator, size: tuple[int, int], brightness: float, saturation: float,
                face_box: tuple[int, int, int, int] | None) -> Image.Image:
    """A cover of size (W, H): gradient background, shapes, text bands, and the face when face_box is given.

    rng draws everything that carries no signal (hue, layout, shapes, bands)."""
    w, h = size
    hue = rng.random()
    s, v = 0.05 + 0.95 * saturation, 0.2 + 0.8 * brightness
    c0 = np.array(_rgb(_hue(hue), s, v), dtype=np.float32)
    c1 = np.array(_rgb(_hue(hue + rng.uniform(-0.08, 0.08)), 0.85 * s, 0.8 * v), dtype=np.float32)
    t = np.linspace(0, 1, h if rng.random() < 0.5 else w, dtype=np.float32)
    t = t[:, None, None] if len(t) == h else t[None, :, None]
    image = Image.fromarray(np.broadcast_to(c0 + t * (c1 - c0), (h, w, 3)).round().astype(np.uint8))
    draw = ImageDraw.Draw(image)

    for _ in range(int(rng.integers(2, 6))):  # shapes
        colour = _rgb(_hue(rng.random()), s * rng.uniform(0.6, 1.0), v * rng.uniform(0.7, 1.15))
        x0, y0 = rng.uniform(-0.1 * w, w), rng.uniform(-0.1 * h, h)
        box = [x0, y0, x0 + rng.uniform(0.1, 0.45) * w, y0 + rng.uniform(0.15, 0.6) * h]
        kind = int(rng.integers(3))
        if kind == 0:
            draw.ellipse(box, fill=colour)
        elif kind == 1:
            draw.rectangle(box, fill=colour)
        else:
            draw.polygon([(box[0], box[3]), ((box[0] + box[2]) / 2, box[1]), (box[2], box[3])], fill=colour)

    for _ in range(int(rng.integers(1, 3))):  # text bands with glyph-like strokes
        band, ink = BANDS[int(rng.integers(len(BANDS)))]
        bh = rng.uniform(0.12, 0.2) * h
        y0 = rng.uniform(0, 0.08) * h if rng.random() < 0.5 else h - bh - rng.uniform(0, 0.08) * h
        x1 = rng.uniform(0.45, 1.0) * w
        draw.rectangle([0, y0, x1, y0 + bh], fill=band)
        g = 0.7 * bh
        for k in range(int((x1 - 4) // (1.15 * g))):
            gx, gy = 3 + k * 1.15 * g, y0 + 0.15 * bh
            for _ in range(int(rng.integers(2, 5))):
                a, b = rng.uniform(0, g, size=2), rng.uniform(0, g, size=2)
                end = (gx + b[0], gy + a[1]) if rng.random() < 0.5 else (gx + a[0], gy + b[1])
                draw.line([(gx + a[0], gy + a[1]), end], fill=ink, width=max(1, round(g / 8)))

    if face_box is not None:  # the face-like element: a yellow emoji face in the right third
        x0, y0, x1, y1 = face_box
        r, cx, cy = (x1 - x0) / 2, (x0 + x1) / 2, (y0 + y1) / 2
        draw.ellipse([x0, y0, x1 - 1, y1 - 1], fill=FACE_YELLOW, outline=FACE_EDGE, width=max(1, round(r / 12)))
        for ex in (cx - 0.35 * r, cx + 0.35 * r):
            draw.ellipse([ex - 0.12 * r, cy - 0.38 * r, ex + 0.12 * r, cy - 0.1 * r], fill=(0, 0, 0))
        draw.arc([cx - 0.5 * r, cy - 0.15 * r, cx + 0.5 * r, cy + 0.55 * r], 20, 160, fill=(0, 0, 0),
                 width=max(1, round(r / 10)))
    return image


def _class_positions(n: int) -> tuple[np.ndarray, np.ndarray]:
    """For ranks 0..n-1 (ascending popularity): design class [n] and position 0..1 inside that class [n]."""
    u = (np.arange(n) + 0.5) / n
    cls = np.searchsorted(np.cumsum(DESIGN_CLASS_SHARES)[:-1], u, side="right")
    counts = np.bincount(cls, minlength=5)
    first = np.concatenate([[0], np.cumsum(counts)[:-1]])
    j, m = np.arange(n) - first[cls], counts[cls]
    pos = np.where(m > 1, j / np.maximum(m - 1, 1), (cls == 4).astype(float))  # a lone class-4 video is the top
    return cls, pos


def _views_at(cls: np.ndarray, pos: np.ndarray, k: float) -> np.ndarray:
    """Views (float) for design class and position when max - min = k * MEAN_VIEWS."""
    r = k * MEAN_VIEWS
    bounds = MEAN_VIEWS + np.asarray(PAPER_THRESHOLDS) * r  # views where the paper score crosses each threshold
    lo, hi = np.concatenate([[np.nan], bounds]), np.concatenate([bounds, [np.nan]])
    band = lo[cls] + (hi[cls] - lo[cls]) * (BAND_GAP + (1 - 2 * BAND_GAP) * pos)
    tail_lo = bounds[3] + BAND_GAP * (bounds[3] - bounds[2])
    tail = tail_lo * ((MIN_VIEWS + r) / tail_lo) ** (pos ** TAIL_POWER)
    bottom = MIN_VIEWS * (CLASS0_TOP * MEAN_VIEWS / MIN_VIEWS) ** pos
    return np.select([cls == 0, cls == 4], [bottom, tail], band)


def views_by_rank(n: int) -> tuple[np.ndarray, float]:
    """Views (int64 [n]) of the videos ranked 0..n-1 by popularity, and the range ratio k = (max - min) / mean.

    Classes take DESIGN_CLASS_SHARES of the ranks; k is solved (bisection) so that the mean is MEAN_VIEWS,
    which puts each class inside its band of the paper's score.
    """
    cls, pos = _class_positions(n)
    lo, hi = 1.0, 1000.0
    for _ in range(60):
        k = (lo * hi) ** 0.5
        lo, hi = (lo, k) if _views_at(cls, pos, k).mean() > MEAN_VIEWS else (k, hi)
    return np.round(_views_at(cls, pos, k)).astype(np.int64), k


def demo_tables(n: int = 3000, seed: int = 0, size: tuple[int, int] = (224, 126)
                ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(videos [n rows, DESIGN.md columns], truth [n rows: video_id, features, face box, effects, latent]).

    Everything but the cover pixels: fast, used by make_demo_dataset and by tests at full n.
    """
    n, seed, (w, h) = _check_args(n, seed, size)
    rng = np.random.default_rng(seed)
    truth = pd.DataFrame({"video_id": [f"DEMO{i + 1:06d}" for i in range(n)]})
    truth["face"] = rng.random(n) < FEATURE_RATES["face"]
    truth["brightness"], truth["saturation"] = rng.random(n), rng.random(n)
    radius = np.minimum(rng.uniform(0.26, 0.34, n) * h, w / 6 - 1)
    cx = rng.uniform(FACE_REGION[0] * w + radius + 1, w - radius - 1)
    cy = rng.uniform(radius + 1, h - radius - 1)
    for name, value in (("face_x0", np.floor(cx - radius)), ("face_y0", np.floor(cy - radius)),
                        ("face_x1", np.ceil(cx + radius)), ("face_y1", np.ceil(cy + radius))):
        truth[name] = pd.array(np.where(truth["face"], value, np.nan), dtype="Int64")

    for name in ("question", "number", "hook", "bracket"):
        truth[name] = rng.random(n) < FEATURE_RATES[name]
    titles = [_title(rng, *flags) for flags in truth[["question", "number", "hook", "bracket"]].itertuples(index=False)]
    truth["title_len"] = [len(t) for t in titles]

    truth["cover_effect"] = sum(EFFECTS[f] * truth[f].astype(float) for f in COVER_FEATURES)
    truth["title_effect"] = sum(EFFECTS[f] * truth[f].astype(float) for f in TITLE_FEATURES)
    truth["noise"] = NOISE_SD * rng.standard_normal(n)
    truth["latent"] = truth["cover_effect"] + truth["title_effect"] + truth["noise"]

    order = np.argsort(truth["latent"].to_numpy(), kind="stable")  # order[r] = video of rank r
    views = np.empty(n, dtype=np.int64)
    views[order] = views_by_rank(n)[0]
    videos = pd.DataFrame({"video_id": truth["video_id"], "title": titles,
                           "cover": "covers/" + truth["video_id"] + ".jpg", "views": views})
    for column, rate in RATES.items():
        videos[column] = rng.poisson(views * rate * np.exp(RATE_NOISE_SD * rng.standard_normal(n)))

    outsider = np.zeros(n, dtype=bool)  # a middle video of each block of OUTSIDER_BLOCK ranks: the mean stays put
    pick = np.arange(0, n, OUTSIDER_BLOCK) + rng.integers(2, 4, size=-(-n // OUTSIDER_BLOCK))
    outsider[order[pick[pick < n]]] = True
    kind = rng.random(n)
    big, not_hot = outsider & (kind < 0.55), outsider & (kind >= 0.45)  # 10% of outsiders are both
    small_followers = 10 ** rng.triangular(2.3, 4.2, np.log10(FOLLOWER_LIMIT) - 0.01, n)
    big_followers = 10 ** rng.uniform(np.log10(FOLLOWER_LIMIT) + 0.01, 6.9, n)
    videos["followers"] = np.where(big, big_followers, small_followers).round().astype(np.int64)
    videos["hot_list"] = ~not_hot
    videos["duration"] = np.maximum(30.0, np.exp(rng.normal(np.log(420), 0.6, n)).round())
    videos["section"] = "knowledge"
    truth["latent_rank"] = np.argsort(order)
    return videos, truth


def _check_args(n, seed, size) -> tuple[int, int, tuple[int, int]]:
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n <= 0:
        raise ValueError(f"n must be a positive integer (number of videos), got {n!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    try:
        w, h = size
    except (TypeError, ValueError):
        raise ValueError(f"size must be (width, height) in pixels, got {size!r}") from None
    if not all(isinstance(x, (int, np.integer)) and not isinstance(x, bool) and x >= MIN_SIDE for x in (w, h)):
        raise ValueError(f"size must be (width, height), two integers >= {MIN_SIDE} px, got {size!r}")
    return int(n), int(seed), (int(w), int(h))


def make_demo_dataset(out_dir, n: int = 3000, seed: int = 0, size: tuple[int, int] = (224, 126)) -> Path:
    """Write the SYNTHETIC demo data set to out_dir and return it as a Path.

    out_dir/videos.csv (DESIGN.md columns), covers/<video_id>.jpg (W x H = size), truth.csv (hidden features
    and latent popularity), DATASET.json and README.md (the generating rule). out_dir must not exist or be
    empty; it is written to a temporary sibling first, so a failure leaves nothing half-written.
    """
    n, seed, size = _check_args(n, seed, size)
    out = Path(out_dir)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ValueError(f"{out} exists and is not an empty folder: a dataset folder is written once; "
                         "choose a new folder")
    videos, truth = demo_tables(n, seed, size)
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        (tmp / "covers").mkdir(parents=True)
        rows = truth[["face", "face_x0", "face_y0", "face_x1", "face_y1", "brightness", "saturation"]]
        for i, (face, *box, brightness, saturation) in enumerate(
                tqdm(rows.itertuples(index=False), total=n, desc="drawing demo covers", unit="cover", disable=n < 200)):
            cover = _draw_cover(np.random.default_rng([seed, i]), size, brightness, saturation,
                                tuple(int(x) for x in box) if face else None)
            cover.save(tmp / videos["cover"].iat[i], "JPEG", quality=JPEG_QUALITY)
        write_dataset(videos, tmp)
        truth.to_csv(tmp / "truth.csv", index=False, encoding="utf-8")
        k = views_by_rank(n)[1]
        (tmp / "DATASET.json").write_text(json.dumps(_description(n, seed, size, k), ensure_ascii=False, indent=2)
                                          + "\n", encoding="utf-8")
        (tmp / "README.md").write_text(_readme(n, seed, size, k), encoding="utf-8")
        if out.exists():
            out.rmdir()
        tmp.rename(out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def _description(n: int, seed: int, size: tuple[int, int], k: float) -> dict:
    """The DATASET.json document: what notebooks show to label this set synthetic, and the true effects."""
    return {
        "name": "popnb-demo", "synthetic": True, "n": n, "seed": seed, "size": list(size),
        "effects": EFFECTS, "effect_units": "latent per unit of feature: face, question, number, hook, bracket 0/1; "
                                            "brightness, saturation 0..1; title_len characters",
        "noise_sd": NOISE_SD, "feature_rates": FEATURE_RATES,
        "cover_features": list(COVER_FEATURES), "title_features": list(TITLE_FEATURES),
        "face_region": {"x_from": FACE_REGION[0], "x_to": FACE_REGION[1], "units": "fraction of cover width"},
        "views": {"mean": MEAN_VIEWS, "min": MIN_VIEWS, "range_over_mean": round(k, 6),
                  "design_class_shares": list(DESIGN_CLASS_SHARES), "paper_thresholds": list(PAPER_THRESHOLDS)},
        "rates_per_view": RATES, "rate_noise_sd": RATE_NOISE_SD,
        "outside_paper_filter": f"the 3rd or 4th of each {OUTSIDER_BLOCK} consecutive popularity ranks",
        "files": {"videos": "videos.csv", "covers": "covers/", "truth": "truth.csv", "readme": "README.md"},
    }


def _readme(n: int, seed: int, size: tuple[int, int], k: float) -> str:
    effects = "\n".join(f"| {f} | {'cover' if f in COVER_FEATURES else 'title'} | {EFFECTS[f]:+g} |"
                        for f in (*COVER_FEATURES, *TITLE_FEATURES))
    shares = " / ".join(f"{p:.0%}" for p in DESIGN_CLASS_SHARES)
    title_rates = ", ".join(f"{f} {p:.0%}" for f, p in FEATURE_RATES.items() if f in TITLE_FEATURES)
    return f"""# popnb demo data set: SYNTHETIC

**Every video, title, cover and count here is SYNTHETIC**, made by `popnb.data.make_demo_dataset(n={n}, seed={seed},
size={size})` (popnb/data/demo.py). It is not Bilibili data and says nothing about real videos. It exists so the
whole workbook runs offline in minutes, and so a model's findings can be checked against a known truth.

## Files
- `videos.csv`: the dataset table (DESIGN.md columns); `covers/<video_id>.jpg`: {size[0]} x {size[1]} JPEG covers.
- `truth.csv`: the hidden truth per video: the true features, the face box (pixels, [x0, x1) x [y0, y1)),
  `cover_effect`, `title_effect`, `noise`, `latent` (the hidden popularity) and `latent_rank` (0 = least popular).
- `DATASET.json`: the same facts, machine-readable, with `"synthetic": true`.

## Generating rule
latent = sum of effect x feature + noise, noise ~ Normal(0, {NOISE_SD}).

| feature | modality | effect on latent |
|---|---|---|
{effects}

Units: face, question, number, hook, bracket are 0/1; brightness and saturation run 0..1 (sd 0.29); title_len is in
characters (sd about 7).

- `face`: a yellow emoji-like face (eyes, smile) is drawn on {FEATURE_RATES['face']:.0%} of covers, always wholly
  inside the **right third** of the cover (x from {FACE_REGION[0]:.3f} W to W). Nothing else on a cover is yellow.
  It is the one spatially localised cover signal: an explanation heatmap should put its heat there.
- `brightness`, `saturation`: 0..1, uniform; the background and shapes are drawn at HSV value 0.2 + 0.8 b and
  saturation 0.05 + 0.95 s (global signals). Hue, shapes and text bands (glyph-like strokes) carry no signal.
- Titles are built from templates and vocabulary in the style of Bilibili Knowledge videos. `question`: the title
  asks (？, 为什么, 吗); `number`: it holds Arabic digits; `hook`: a hook phrase (揭秘！ 震惊！ ...); `bracket`: a 【】 tag;
  `title_len`: characters (hooks and brackets make titles longer, so length alone correlates slightly
  positively with views although its own effect is negative). Rates: {title_rates}.
- Views are a fixed increasing function of the latent's rank: the ranks are cut into design classes of
  {shares}; class 0 is spread log-uniformly from {MIN_VIEWS} to {CLASS0_TOP:g} x the mean ({MEAN_VIEWS:,} views),
  classes 1-3 fill the middle {1 - 2 * BAND_GAP:.0%} of their band of the paper's score, class 4 is a heavy tail up
  to max - min = {k:.2f} x mean. So the paper's fixed thresholds ({', '.join(map(str, PAPER_THRESHOLDS))}) on its
  mean-normalised score give about these shares. The thresholds force an odd shape: class 0 is "below the mean",
  classes 1-2 sit within a few percent of the mean; this is the paper's scheme, not a property of real views.
- likes, coins, favorites, shares ~ Poisson(views x rate x exp({RATE_NOISE_SD} x Normal)), rates
  {', '.join(f'{c} {r:g}' for c, r in RATES.items())}. The jitter is small on purpose: larger jitter moves videos
  across the narrow bands of classes 1-2.
- followers, hot_list: the 3rd or 4th video (at random) of each run of {OUTSIDER_BLOCK} consecutive popularity ranks is
  outside the paper's population ({FOLLOWER_LIMIT:,}+ followers, or never on the hot list), so the paper filter
  removes about {1 / OUTSIDER_BLOCK:.0%} of videos and barely moves the mean views the paper's score depends on.
  With n below about 1000 the filtered set's classes still shift (class 0 grows). Followers carry no signal.
- duration: log-normal, median 420 s; section: "knowledge". Seed {seed}: the same seed gives identical files.
"""
