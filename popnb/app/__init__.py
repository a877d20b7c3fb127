"""Presentation: the try-a-cover app (ipywidgets) that notebook 05 shows."""
from popnb.app.widget import Debouncer, TryACover, ensure_demo_run, find_runs, prob_beats, ranking

__all__ = ["Debouncer", "TryACover", "ensure_demo_run", "find_runs", "prob_beats", "ranking"]
