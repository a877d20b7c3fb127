"""Presentation: `popnb reports` runs the numbered notebooks with papermill (runner) and writes their index page
(index); notebooks save their outputs with save_figure / save_table."""
from popnb.reports.runner import NOTEBOOKS_DIR, register, run_reports, save_figure, save_table

__all__ = ["NOTEBOOKS_DIR", "register", "run_reports", "save_figure", "save_table"]
