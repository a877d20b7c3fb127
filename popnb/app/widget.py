"""Try covers and titles: an ipywidgets app over a trained run folder.

Pick a run (folders holding config.json under a runs root), then up to three candidates A/B/C, each a title
and a cover (one of the run's data set covers, or an uploaded image). Each candidate shows its class
probabilities, the predicted class with its score range, the expected class, a heatmap over the cover and the
importance of each title character (popnb.explain). The candidates are ranked by expected class, and each
pair says how sure the model is that one beats the other (`prob_beats`).

A pretrained-recipe run (popnb.train.pretrained, the default `popnb train`) also shows each candidate's predicted
score as a percentile among its train videos' true scores, takes the uploader's followers (0: unknown, the train
median), can draw the cover's OCR text boxes and face boxes ("show text and faces": ~0.5 s a cover), and ranks
by predicted score with P(A beats B) = Phi((mu_A - mu_B) / (sigma sqrt 2)) under the run's Gaussian predictive
distributions (sigma: its out-of-fold residual std); a pair closer than sigma is "within the model's
cross-validated error".

Changes are debounced (`delay` seconds of quiet, then one update in a background thread); a spinner shows while
it computes. Bad input (a non-image upload, an empty title, a run folder without a checkpoint) shows a message
in the app, never a traceback. `TryACover(..., delay=0)` updates synchronously (tests, scripts).
"""
from __future__ import annotations

import html
import io
import itertools
import json
import math
import re
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import torch
from scipy.special import ndtr

from popnb import explain
from popnb.data import load_dataset, open_cover
from popnb.encoders import get_encoder
from popnb.paths import resolve
from popnb.train.loop import CHECKPOINT, CONFIG, TrainConfig, train
from popnb.train.pretrained import HEADS, PretrainedRun, load_pretrained_run, train_scores
from popnb.train.run import Run, is_pretrained_run, load_run

NAMES = ("A", "B", "C")
TARGETS = [("expected class", "expected"), *((f"class {k}", k) for k in range(5))]
SPINNER = ('<style>.popnb-spin{display:inline-block;width:11px;height:11px;border:2px solid #bbb;'
           'border-top-color:#333;border-radius:50%;animation:popnb-spin .8s linear infinite}'
           '@keyframes popnb-spin{to{transform:rotate(360deg)}}</style><span class="popnb-spin"></span>')
CACHE_SIZE = 32
NO_COVER = -1  # the cover menu's "(none: upload one)": a value, since ipywidgets shows None as no selection
MARKERS = {"cover-ocr": ("text_boxes", "#ff7f0e"), "cover-faces": ("face_boxes", "#2ca02c")}  # encoder: column, colour
CLOSE = "within the model's cross-validated error"


def ensure_demo_run(run_dir, demo_dir="data/demo", demo_n: int = 3000, demo_seed: int = 0, epochs: int = 3,
                    limit: int | None = 1500) -> Path:
    """The app's default run: `run_dir` as it is when it holds a checkpoint, else trained now with the demo
    defaults (vit_tiny at 112 px + charbert-tiny, fusion 0.75/0.25) on the first `limit` videos of the synthetic
    demo set in `demo_dir` (made there when absent). Returns the run folder."""
    from popnb.analysis.explore import open_data

    run_dir = resolve(run_dir)
    if not (run_dir / CHECKPOINT).is_file():
        demo = open_data(None, demo_dir, demo_n, demo_seed)
        train(TrainConfig(str(demo.root), str(run_dir), recipe="paper", epochs=epochs, limit=limit))
    return run_dir


def ensure_real_run(shared_covers_dir, runs_root="runs") -> Path:
    """The app's real-data run: runs_root/covers as it is when trained, else the default recipe trained now on
    the crawl in shared_covers_dir (videos.csv + covers/, e.g. ../shared/data/bilibili_covers), imported into
    runs_root/data/covers when absent. Returns the run folder."""
    from popnb.data import import_crawl

    root = resolve(runs_root)
    run_dir, data_dir = root / "covers", root / "data" / "covers"
    if not (run_dir / HEADS).is_file():
        if not (data_dir / "videos.csv").is_file():
            import_crawl(Path(shared_covers_dir) / "videos.csv", data_dir, preset="bilibili-covers")
        train(TrainConfig(str(data_dir), str(run_dir)))
    return run_dir


def load_any_run(folder) -> Run | PretrainedRun:
    """The run in folder: a pretrained-recipe run (heads.npz) or an end-to-end one (checkpoint.pt)."""
    return load_pretrained_run(folder) if is_pretrained_run(folder) else load_run(folder)


def trained_on_real_data(folder: Path) -> bool:
    """Whether a trained run's data set (config.json's data_dir) is there and not marked synthetic in its
    DATASET.json (the demo set's is)."""
    if not ((folder / CHECKPOINT).is_file() or (folder / HEADS).is_file()):
        return False
    data = Path(json.loads((folder / CONFIG).read_text(encoding="utf-8")).get("data_dir", ""))
    marked = data / "DATASET.json"
    synthetic = marked.is_file() and json.loads(marked.read_text(encoding="utf-8")).get("synthetic", False)
    return (data / "videos.csv").is_file() and not synthetic


def default_run(root) -> str:
    """The run the app opens with: the first real-data run under root (find_runs order), else "demo"."""
    return next((str(f) for f in find_runs(root) if trained_on_real_data(f)), "demo")


def find_runs(root, depth: int = 2) -> list[Path]:
    """Run folders (holding config.json: end-to-end runs and pretrained-recipe runs) at most `depth` levels below
    root, sorted; [] when root is absent."""
    root = Path(root)
    found = [p.parent for d in range(1, depth + 1) for p in root.glob("/".join(["*"] * d) + f"/{CONFIG}")]
    return sorted(found)


def prob_beats(p_a, p_b) -> float:
    """How sure the model is that A beats B: P(class_A > class_B) + 0.5 * P(class_A == class_B), with
    class_A ~ p_a and class_B ~ p_b drawn independently (p_a, p_b: class probabilities [K]). Ties split
    half, so prob_beats(a, b) + prob_beats(b, a) = 1 and prob_beats(p, p) = 0.5."""
    p_a, p_b = np.asarray(p_a, dtype=np.float64), np.asarray(p_b, dtype=np.float64)
    below = np.concatenate([[0.0], np.cumsum(p_b)[:-1]])  # P(class_B < k)
    return float(p_a @ below + 0.5 * p_a @ p_b)


def gaussian_beats(mu_a: float, mu_b: float, sigma: float) -> float:
    """P(s_A > s_B) for independent s_A ~ N(mu_a, sigma^2), s_B ~ N(mu_b, sigma^2):
    Phi((mu_a - mu_b) / (sigma sqrt 2))."""
    return float(ndtr((mu_a - mu_b) / (sigma * math.sqrt(2))))


def ranking(predictions: dict[str, dict], sigma: float | None = None) -> tuple[list[str], list[dict]]:
    """Candidates best first, and every pair (better, worse) with its difference (delta) and how sure the model
    is that the first beats the second (p_beats). sigma None: by expected class, prob_beats; else by predicted
    score (a pretrained run's predictions), gaussian_beats with that sigma. predictions: {name: prediction dict}."""
    key = "expected_class" if sigma is None else "score"
    order = sorted(predictions, key=lambda n: -predictions[n][key])

    def beats(a: dict, b: dict) -> float:
        if sigma is None:
            return prob_beats(a["probabilities"], b["probabilities"])
        return gaussian_beats(a["score"], b["score"], sigma)

    pairs = [{"better": a, "worse": b, "delta": predictions[a][key] - predictions[b][key],
              "p_beats": beats(predictions[a], predictions[b])} for a, b in itertools.combinations(order, 2)]
    return order, pairs


def _range_text(low, high) -> str:
    if low is None:
        return f"score < {high:.6g}"
    return f"score ≥ {low:.6g}" if high is None else f"{low:.6g} ≤ score < {high:.6g}"


def probability_html(prediction: dict) -> str:
    """Bar chart of the class probabilities, the predicted class with its score range, the expected class."""
    rows = []
    for k, p in enumerate(prediction["probabilities"]):
        strong = "font-weight:bold;" if k == prediction["predicted_class"] else ""
        rows.append(f'<tr style="{strong}"><td>class {k}</td><td style="width:130px"><div style="background:#4c72b0;'
                    f'height:11px;width:{100 * p:.1f}%"></div></td><td class="popnb-p">{p:.3f}</td></tr>')
    k = prediction["predicted_class"]
    meaning = _range_text(*prediction["class_score_ranges"][k])
    return (f'<table class="popnb-probs" style="border-collapse:collapse;font-size:12px">{"".join(rows)}</table>'
            f'<div class="popnb-predicted">predicted class <b>{k}</b> ({meaning})</div>'
            f'<div class="popnb-expected">expected class <b>{prediction["expected_class"]:.2f}</b></div>')


def importance_html(tokens: list[str], importance) -> str:
    """The title, each character shaded by its importance (red raises the target, blue lowers it)."""
    scale = float(np.abs(importance).max()) if len(importance) else 0.0
    spans = []
    for token, value in zip(tokens, importance):
        alpha = abs(value) / scale if scale > 0 else 0.0
        colour = f"rgba(214,39,40,{alpha:.2f})" if value >= 0 else f"rgba(31,119,180,{alpha:.2f})"
        spans.append(f'<span title="{value:+.3g}" style="background:{colour}">{html.escape(token)}</span>')
    return f'<div class="popnb-title-importance" style="font-size:15px">{"".join(spans)}</div>'


def ranking_html(predictions: dict[str, dict], sigma: float | None = None) -> str:
    """The ranking and the pairwise comparisons as an HTML table (ranking's sigma; with it, a pair closer than
    sigma says so)."""
    if len(predictions) < 2:
        return ""
    order, pairs = ranking(predictions, sigma)
    what = "expected class" if sigma is None else "predicted score"
    key = "expected_class" if sigma is None else "score"
    ranked = " &gt; ".join(f"<b>{n}</b> ({predictions[n][key]:.2f})" for n in order)
    rows = "".join(f"<tr><td>{p['better']} vs {p['worse']}</td><td>{p['delta']:+.2f}</td><td>{p['p_beats']:.2f}</td>"
                   f"<td>{CLOSE if sigma is not None and abs(p['delta']) < sigma else ''}</td></tr>" for p in pairs)
    return (f'<div class="popnb-ranking">ranked by {what}: {ranked}'
            f'<table style="font-size:12px"><tr><th>pair</th><th>Δ {what}</th>'
            f'<th>P(first beats second)</th><th></th></tr>{rows}</table></div>')


def percentile_html(score: float, scores, kind: str) -> str:
    """Where a predicted score falls among the train videos' true scores (sorted [n]; a str: why there are none)."""
    if isinstance(scores, str):
        return f'<div class="popnb-percentile">no percentile: {html.escape(scores)}</div>'
    above = 100 * np.searchsorted(scores, score) / len(scores)  # % of train videos scoring below
    views = f" (≈ {math.expm1(score):,.0f} views)" if kind == "log_views" else ""
    what = html.escape(kind.replace("_", " "))
    return (f'<div class="popnb-percentile">predicted {what} score <b>{score:.2f}</b>{views}: above '
            f'<b>{above:.0f}%</b> of the {len(scores)} training videos</div>')


def draw_boxes(image, boxes: dict[str, list]):
    """A copy of a PIL image with rectangles drawn: {colour: [[x0, y0, x1, y1] in 0..1, ...]}."""
    from PIL import ImageDraw

    image = image.convert("RGB")
    draw, (w, h) = ImageDraw.Draw(image), image.size
    for colour, found in boxes.items():
        for x0, y0, x1, y1 in found:
            draw.rectangle((x0 * w, y0 * h, x1 * w, y1 * h), outline=colour, width=2)
    return image


def error_html(text: str) -> str:
    return f'<span style="color:#b00">{html.escape(text)}</span>' if text else ""


def png(image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


class Debouncer:
    """call(fn): run fn after `delay` s without another call (in a timer thread); delay 0: run it now."""

    def __init__(self, delay: float):
        self.delay, self._timer = delay, None

    def call(self, fn) -> None:
        if self._timer is not None:
            self._timer.cancel()
        if self.delay <= 0:
            fn()
            return
        self._timer = threading.Timer(self.delay, fn)
        self._timer.daemon = True
        self._timer.start()


class Candidate:
    """The widgets of one candidate: title, data set cover, upload, and where its results show."""

    def __init__(self, name: str, enabled: bool, on_change):
        import ipywidgets as w

        self.name, self.uploaded, self.upload_name = name, None, None
        self.use = w.Checkbox(value=enabled, description=f"candidate {name}", indent=False, disabled=name == "A")
        self.title = w.Text(placeholder="type a title", description="title", layout=w.Layout(width="100%"))
        self.cover = w.Dropdown(description="cover", options=[], layout=w.Layout(width="100%"))
        self.upload = w.FileUpload(accept="image/*", multiple=False, description="upload cover")
        self.source = w.HTML()
        self.message = w.HTML()
        self.probs = w.HTML()
        self.heat = w.Image(format="png", layout=w.Layout(width="240px", display="none"))
        self.marks = w.Image(format="png", layout=w.Layout(width="240px", display="none"))
        self.words = w.HTML()
        for widget, cls in ((self.title, "popnb-title"), (self.cover, "popnb-cover"), (self.upload, "popnb-upload"),
                            (self.probs, "popnb-probs-box"), (self.heat, "popnb-heatmap"),
                            (self.marks, "popnb-marks"), (self.message, "popnb-message")):
            widget.add_class(cls)
        self.box = w.VBox([self.use, self.title, self.cover, self.upload, self.source, self.message, self.probs,
                           self.heat, self.marks, self.words], layout=w.Layout(width="33%", padding="4px"))
        self.box.add_class(f"popnb-candidate-{name}")
        for widget in (self.use, self.title):
            widget.observe(on_change, names="value")

    def clear(self, message: str = "") -> None:
        self.message.value = error_html(message)
        self.probs.value, self.words.value = "", ""
        self.heat.layout.display, self.marks.layout.display = "none", "none"


class TryACover:
    """The app. runs_root: folder searched for run folders; run: the one picked first (a name under runs_root
    or a path; default: default_run, the first real-data run, else `demo`, the run `make reports` trains);
    data_dir: covers to pick from (default: the run's own data set); delay: debounce seconds (0: synchronous);
    method: cover heatmap method of popnb.explain for end-to-end runs (auto, rollout, occlusion); max_covers:
    data set videos offered; threads: torch CPU threads while computing (1: a tiny model gains nothing from more,
    and more spin-wait on a busy CPU; None: torch's)."""

    def __init__(self, runs_root="runs", run=None, data_dir=None, delay: float = 0.3, method: str = "auto",
                 max_covers: int = 200, threads: int | None = 1):
        import ipywidgets as w

        self.runs_root, self.data_dir, self.method, self.max_covers = resolve(runs_root), data_dir, method, max_covers
        run = default_run(self.runs_root) if run is None else run
        self.threads = threads
        self.run, self.videos, self._data_root, self.problem, self.note = None, None, None, None, ""
        self._runs, self._cache, self._scores, self._markers, self._lock = {}, {}, {}, {}, threading.Lock()
        self._tmp = tempfile.TemporaryDirectory(prefix="popnb-upload-")
        self._debounce = Debouncer(delay)
        self._uploads = itertools.count()

        options = [(str(p.relative_to(self.runs_root)), str(p)) for p in find_runs(self.runs_root)]
        wanted = str(run if Path(run).is_absolute() else self.runs_root / run)
        if Path(wanted).is_dir() and wanted not in dict(options).values():
            options.append((str(run), wanted))  # a folder without config.json: offered, so its error shows
        self.run_picker = w.Dropdown(description="run", options=options, layout=w.Layout(width="420px"))
        if wanted in dict(options).values():
            self.run_picker.value = wanted
        elif options:
            self.note = f"(no run {run} under {self.runs_root}: showing {options[0][0]}) "
        self.target = w.Dropdown(description="explain", options=TARGETS, value="expected")
        self.followers = w.FloatText(value=0, description="followers", layout=w.Layout(width="200px", display="none"))
        self.show_marks = w.Checkbox(value=False, description="show text and faces", indent=False)
        self.followers.add_class("popnb-followers")
        self.status = w.HTML()
        self.status.add_class("popnb-status")
        self.candidates = [Candidate(n, n == "A", self._changed) for n in NAMES]
        self.ranking = w.HTML()
        self.ranking.add_class("popnb-ranking-box")
        self.widget = w.VBox([w.HBox([self.run_picker, self.target, self.followers, self.show_marks, self.status]),
                              w.HBox([c.box for c in self.candidates]), self.ranking])
        self.widget.add_class("popnb-try-a-cover")
        for c in self.candidates:
            c.cover.observe(lambda change, c=c: self._cover_picked(c, change), names="value")
            c.upload.observe(lambda change, c=c: self._uploaded(c, change), names="value")
        for widget in (self.target, self.followers, self.show_marks):
            widget.observe(self._changed, names="value")
        self.run_picker.observe(self._run_picked, names="value")
        if not options:
            self._say(f"no trained run under {self.runs_root}: train one (`popnb train`, or `make reports` "
                      "trains runs/demo), then run this cell again")
        self._run_picked()

    def _repr_mimebundle_(self, **kwargs):
        return self.widget._repr_mimebundle_(**kwargs)

    # ---- events ----

    def _say(self, text: str, error: bool = True) -> None:
        """Show text in the status line; an error also stays in self.problem (plain text) until a run works."""
        self.problem = text if error else self.problem
        colour = "#b00" if error else "#555"
        self.status.value = f'<span style="color:{colour}">{html.escape(text)}</span>'

    def _changed(self, _change=None) -> None:
        self._debounce.call(self.update)

    def _run_picked(self, _change=None) -> None:
        self.run = None
        folder = self.run_picker.value
        if folder is None:
            return
        try:
            self.run = self._runs.get(folder) or load_any_run(folder)
            self._runs[folder], self.problem = self.run, None
        except Exception as err:  # noqa: BLE001 -- any broken run folder: say why, stay usable
            self._say(f"cannot use run {Path(folder).name}: {err}")
            for c in self.candidates:
                c.clear()
            self.ranking.value = ""
            return
        self._load_scores()  # before the covers: picking one updates
        self._load_covers()
        followers = isinstance(self.run, PretrainedRun) and "followers" in self.run.params["metadata"]
        self.followers.layout.display = None if followers else "none"
        self._changed()

    def _load_scores(self) -> None:
        """A pretrained run's train scores, sorted (for percentile_html), once per run; why not, as text."""
        folder = str(self.run.folder)
        if isinstance(self.run, PretrainedRun) and folder not in self._scores:
            try:
                self._scores[folder] = np.sort(train_scores(self.run))
            except Exception as err:  # noqa: BLE001 -- a moved or edited data set: predictions still work
                self._scores[folder] = f"the run's train data cannot be read: {err}"

    def _load_covers(self) -> None:
        """Offer the first max_covers videos of data_dir (default: the run's data set) in every cover menu."""
        root = Path(self.data_dir or self.run.config.get("data_dir", ""))
        if root == self._data_root:
            return
        self._data_root, self.videos, self.note, options = root, None, "", [("(none: upload one)", NO_COVER)]
        try:
            data = load_dataset(root, check_images="none")
            self.videos = data.videos.iloc[: self.max_covers].reset_index(drop=True)
            self.videos["path"] = [data.cover_path(i) for i in range(len(self.videos))]
            options += [(f"{v.video_id} · {v.title[:18]}", i) for i, v in enumerate(self.videos.itertuples())]
        except Exception as err:  # noqa: BLE001 -- without a data set the app still takes uploads
            self.note = f"(no covers to pick from: {err}; upload covers instead) "
        for k, c in enumerate(self.candidates):
            c.cover.options = options
            c.cover.value = options[min(k + 1, len(options) - 1)][1]

    def _cover_picked(self, c: Candidate, change) -> None:
        """A data set cover replaces an upload, and brings its video's title along."""
        if change["new"] in (None, NO_COVER):
            c.source.value = ""
        else:
            c.uploaded, c.upload_name = None, None
            video = self.videos.iloc[change["new"]]
            c.source.value = f"cover of {html.escape(video.video_id)}"
            c.title.value = video.title
        self._changed()

    def _uploaded(self, c: Candidate, change) -> None:
        if not change["new"]:
            return
        item = change["new"][0]
        suffix = re.sub(r"[^.\w]", "", Path(item["name"]).suffix)[:8]
        path = Path(self._tmp.name) / f"{c.name}-{next(self._uploads)}{suffix}"
        path.write_bytes(bytes(item["content"]))
        c.cover.value = NO_COVER  # the menu says no data set cover is in use (the upload is)
        c.uploaded, c.upload_name = path, item["name"]
        c.source.value = f"uploaded {html.escape(item['name'])}"
        self._changed()

    # ---- computing ----

    def cover_of(self, c: Candidate) -> Path | None:
        """The candidate's cover file: its upload, else its data set cover, else None."""
        if c.uploaded is not None:
            return c.uploaded
        if c.cover.value in (None, NO_COVER) or self.videos is None:
            return None
        return self.videos["path"].iat[c.cover.value]

    def _cached(self, key, make):
        """make() once per key, the CACHE_SIZE latest kept."""
        if key not in self._cache:
            if len(self._cache) >= CACHE_SIZE:
                self._cache.pop(next(iter(self._cache)))
            self._cache[key] = make()
        return self._cache[key]

    def _meta(self) -> dict | None:
        """A pretrained run's metadata {column: value} for every candidate: followers from its input (0: unknown,
        the train median), any other column unknown; None for an end-to-end run."""
        if not isinstance(self.run, PretrainedRun):
            return None
        if self.followers.value < 0:
            raise ValueError("followers cannot be negative (0: unknown)")
        followers = float(self.followers.value) or math.nan
        return {c: followers if c == "followers" else math.nan for c in self.run.params["metadata"]}

    def _explain(self, title: str, cover: Path | None) -> explain.Explanation:
        meta = self._meta()
        key = (str(self.run.folder), title, str(cover), self.target.value, self.method, str(meta))
        return self._cached(key, lambda: explain.explain(self.run, title, cover, self.target.value, self.method, meta))

    def _marked(self, cover: Path) -> bytes:
        """PNG of the cover (at most 320 px) with its OCR text boxes and face boxes drawn (MARKERS)."""
        def make() -> bytes:
            boxes = {}
            for name, (column, colour) in MARKERS.items():
                if name not in self._markers:
                    self._markers[name] = get_encoder(name)
                boxes[colour] = json.loads(self._markers[name]([cover])[column].iat[0])
            return png(draw_boxes(open_cover(cover, max_side=320), boxes))

        return self._cached(("marks", str(cover)), make)

    def _show(self, c: Candidate, cover: Path | None, result: explain.Explanation) -> None:
        c.clear()
        c.probs.value = probability_html(result.prediction)
        if isinstance(self.run, PretrainedRun):
            c.probs.value += percentile_html(result.prediction["score"], self._scores[str(self.run.folder)],
                                             self.run.target.kind)
        c.words.value = importance_html(result.tokens, result.importance)
        if result.heat is not None:
            c.heat.value = png(explain.overlay(open_cover(cover, max_side=320), result.heat))
            c.heat.layout.display = None
        if self.show_marks.value and cover is not None:
            try:
                c.marks.value, c.marks.layout.display = self._marked(cover), None
            except Exception as err:  # noqa: BLE001 -- e.g. OCR not installed: the prediction still shows
                c.message.value = error_html(f"no text and faces: {err}")

    def update(self) -> None:
        """Recompute every enabled candidate now; errors become messages in the app."""
        with self._lock:
            if self.run is None:
                return
            before = torch.get_num_threads()
            if self.threads is not None:
                torch.set_num_threads(self.threads)
            try:
                self._update()
            finally:
                torch.set_num_threads(before)

    def _update(self) -> None:
        start = time.perf_counter()
        self.status.value = f"{SPINNER} computing…"
        predictions = {}
        for c in self.candidates:
            if not c.use.value:
                c.clear()
                continue
            cover = self.cover_of(c)
            try:
                result = self._explain(c.title.value, cover)
            except ValueError as err:  # empty title, missing cover, unreadable image (CoverError)
                text = str(err)
                if c.uploaded is not None and c.uploaded == cover:
                    # the user's file name, not where the app stored the upload
                    reason = str(err).replace(f"{Path(cover).name}: ", "").replace(str(cover), c.upload_name)
                    text = f"the upload {c.upload_name} cannot be used as a cover: {reason}"
                c.clear(text)
                continue
            except Exception as err:  # noqa: BLE001 -- the app must stay usable
                c.clear(f"{type(err).__name__}: {err}")
                continue
            self._show(c, cover, result)
            predictions[c.name] = result.prediction
        pretrained = isinstance(self.run, PretrainedRun)
        self.ranking.value = ranking_html(predictions, self.run.model.sigma if pretrained else None)
        scheme = self.run.target if pretrained else self.run.scheme
        self._say(f"{self.note}{self.run.folder.name}: {scheme.describe()} · "
                  f"updated in {time.perf_counter() - start:.2f} s", error=False)


def app(runs_root="runs", run=None, data_dir=None, **kwargs):
    """The app's widget, ready to display: TryACover(...).widget."""
    return TryACover(runs_root, run, data_dir, **kwargs).widget
