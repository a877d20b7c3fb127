"""Try covers and titles: an ipywidgets app over a trained run folder.

Pick a run (folders holding config.json under a runs root), then up to three candidates A/B/C, each a title
and a cover (one of the run's data set covers, or an uploaded image). Each candidate shows its class
probabilities, the predicted class with its score range, the expected class, a heatmap over the cover and the
importance of each title character (popnb.explain). The candidates are ranked by expected class, and each
pair says how sure the model is that one beats the other (`prob_beats`).

Changes are debounced (`delay` seconds of quiet, then one update in a background thread); a spinner shows while
it computes. Bad input (a non-image upload, an empty title, a run folder without a checkpoint) shows a message
in the app, never a traceback. `TryACover(..., delay=0)` updates synchronously (tests, scripts).
"""
from __future__ import annotations

import html
import io
import itertools
import re
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import torch

from popnb import explain
from popnb.data import load_dataset, open_cover
from popnb.paths import resolve
from popnb.train.loop import CHECKPOINT, CONFIG, TrainConfig, train
from popnb.train.run import load_run

NAMES = ("A", "B", "C")
TARGETS = [("expected class", "expected"), *((f"class {k}", k) for k in range(5))]
SPINNER = ('<style>.popnb-spin{display:inline-block;width:11px;height:11px;border:2px solid #bbb;'
           'border-top-color:#333;border-radius:50%;animation:popnb-spin .8s linear infinite}'
           '@keyframes popnb-spin{to{transform:rotate(360deg)}}</style><span class="popnb-spin"></span>')
CACHE_SIZE = 32


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


def find_runs(root, depth: int = 2) -> list[Path]:
    """Run folders (holding config.json) at most `depth` levels below root, sorted; [] when root is absent."""
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


def ranking(predictions: dict[str, dict]) -> tuple[list[str], list[dict]]:
    """Candidates by expected class, best first, and every pair (better, worse) with its difference in
    expected class (delta) and prob_beats(better, worse). predictions: {name: popnb.train.run.prediction dict}."""
    order = sorted(predictions, key=lambda n: -predictions[n]["expected_class"])
    pairs = [{"better": a, "worse": b,
              "delta": predictions[a]["expected_class"] - predictions[b]["expected_class"],
              "p_beats": prob_beats(predictions[a]["probabilities"], predictions[b]["probabilities"])}
             for a, b in itertools.combinations(order, 2)]
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


def ranking_html(predictions: dict[str, dict]) -> str:
    """The ranking and the pairwise comparisons as an HTML table."""
    if len(predictions) < 2:
        return ""
    order, pairs = ranking(predictions)
    ranked = " &gt; ".join(f"<b>{n}</b> ({predictions[n]['expected_class']:.2f})" for n in order)
    rows = "".join(f"<tr><td>{p['better']} vs {p['worse']}</td><td>{p['delta']:+.2f}</td>"
                   f"<td>{p['p_beats']:.2f}</td></tr>" for p in pairs)
    return (f'<div class="popnb-ranking">ranked by expected class: {ranked}'
            '<table style="font-size:12px"><tr><th>pair</th><th>Δ expected class</th>'
            f'<th>P(first beats second)</th></tr>{rows}</table></div>')


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
        self.words = w.HTML()
        for widget, cls in ((self.title, "popnb-title"), (self.cover, "popnb-cover"), (self.upload, "popnb-upload"),
                            (self.probs, "popnb-probs-box"), (self.heat, "popnb-heatmap"),
                            (self.message, "popnb-message")):
            widget.add_class(cls)
        self.box = w.VBox([self.use, self.title, self.cover, self.upload, self.source, self.message, self.probs,
                           self.heat, self.words], layout=w.Layout(width="33%", padding="4px"))
        self.box.add_class(f"popnb-candidate-{name}")
        for widget in (self.use, self.title):
            widget.observe(on_change, names="value")

    def clear(self, message: str = "") -> None:
        self.message.value = f'<span style="color:#b00">{html.escape(message)}</span>' if message else ""
        self.probs.value, self.words.value = "", ""
        self.heat.layout.display = "none"


class TryACover:
    """The app. runs_root: folder searched for run folders; run: the one picked first (a name under runs_root
    or a path; default `demo`, the run `make reports` trains); data_dir: covers to pick from (default: the
    run's own data set); delay: debounce seconds (0: synchronous); method: cover heatmap method of
    popnb.explain (auto, rollout, occlusion); max_covers: data set videos offered; threads: torch CPU threads
    while computing (1: a tiny model gains nothing from more, and more spin-wait on a busy CPU; None: torch's)."""

    def __init__(self, runs_root="runs", run="demo", data_dir=None, delay: float = 0.3, method: str = "auto",
                 max_covers: int = 200, threads: int | None = 1):
        import ipywidgets as w

        self.runs_root, self.data_dir, self.method, self.max_covers = resolve(runs_root), data_dir, method, max_covers
        self.threads = threads
        self.run, self.videos, self._data_root, self.problem, self.note = None, None, None, None, ""
        self._runs, self._cache, self._lock = {}, {}, threading.Lock()
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
        self.status = w.HTML()
        self.status.add_class("popnb-status")
        self.candidates = [Candidate(n, n == "A", self._changed) for n in NAMES]
        self.ranking = w.HTML()
        self.ranking.add_class("popnb-ranking-box")
        self.widget = w.VBox([w.HBox([self.run_picker, self.target, self.status]),
                              w.HBox([c.box for c in self.candidates]), self.ranking])
        self.widget.add_class("popnb-try-a-cover")
        for c in self.candidates:
            c.cover.observe(lambda change, c=c: self._cover_picked(c, change), names="value")
            c.upload.observe(lambda change, c=c: self._uploaded(c, change), names="value")
        self.target.observe(self._changed, names="value")
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
            self.run = self._runs.get(folder) or load_run(folder)
            self._runs[folder], self.problem = self.run, None
        except Exception as err:  # noqa: BLE001 -- any broken run folder: say why, stay usable
            self._say(f"cannot use run {Path(folder).name}: {err}")
            for c in self.candidates:
                c.clear()
            self.ranking.value = ""
            return
        self._load_covers()
        self._changed()

    def _load_covers(self) -> None:
        """Offer the first max_covers videos of data_dir (default: the run's data set) in every cover menu."""
        root = Path(self.data_dir or self.run.config.get("data_dir", ""))
        if root == self._data_root:
            return
        self._data_root, self.videos, self.note, options = root, None, "", [("(none: upload one)", None)]
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
        if change["new"] is None:
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
        c.cover.value = None  # the menu says no data set cover is in use (the upload is)
        c.uploaded, c.upload_name = path, item["name"]
        c.source.value = f"uploaded {html.escape(item['name'])}"
        self._changed()

    # ---- computing ----

    def cover_of(self, c: Candidate) -> Path | None:
        """The candidate's cover file: its upload, else its data set cover, else None."""
        if c.uploaded is not None:
            return c.uploaded
        if c.cover.value is None or self.videos is None:
            return None
        return self.videos["path"].iat[c.cover.value]

    def _explain(self, title: str, cover: Path | None) -> explain.Explanation:
        key = (str(self.run.folder), title, str(cover), self.target.value, self.method)
        if key not in self._cache:
            if len(self._cache) >= CACHE_SIZE:
                self._cache.pop(next(iter(self._cache)))
            self._cache[key] = explain.explain(self.run, title, cover, self.target.value, self.method)
        return self._cache[key]

    def _show(self, c: Candidate, cover: Path | None, result: explain.Explanation) -> None:
        c.clear()
        c.probs.value = probability_html(result.prediction)
        c.words.value = importance_html(result.tokens, result.importance)
        if result.heat is not None:
            c.heat.value = png(explain.overlay(open_cover(cover, max_side=320), result.heat))
            c.heat.layout.display = None

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
                    text = f"the upload {c.upload_name} cannot be used as a cover: {err}"
                c.clear(text)
                continue
            except Exception as err:  # noqa: BLE001 -- the app must stay usable
                c.clear(f"{type(err).__name__}: {err}")
                continue
            self._show(c, cover, result)
            predictions[c.name] = result.prediction
        self.ranking.value = ranking_html(predictions)
        self._say(f"{self.note}{self.run.folder.name}: {self.run.scheme.describe()} · "
                  f"updated in {time.perf_counter() - start:.2f} s", error=False)


def app(runs_root="runs", run="demo", data_dir=None, **kwargs):
    """The app's widget, ready to display: TryACover(...).widget."""
    return TryACover(runs_root, run, data_dir, **kwargs).widget
