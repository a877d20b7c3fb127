"""Presentation: the try-a-cover app (ipywidgets) that notebook 05 shows."""
from popnb.app.widget import (Debouncer, TryACover, default_run, ensure_demo_run, ensure_real_run, find_runs,
                              gaussian_beats, prob_beats, ranking)

__all__ = ["Debouncer", "TryACover", "default_run", "ensure_demo_run", "ensure_real_run", "find_runs",
           "gaussian_beats", "prob_beats", "ranking"]
