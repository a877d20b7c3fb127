"""popnb.data: the dataset folder (videos.csv + covers/), importing crawls, validation, filtering.

Names load lazily (PEP 562), so `popnb --help` does not import pandas or PIL.
"""
from __future__ import annotations

import importlib

_EXPORTS = {
    "COUNT_COLUMNS": "schema", "REQUIRED_COLUMNS": "schema", "OPTIONAL_COLUMNS": "schema",
    "SchemaError": "schema", "ValidationReport": "schema", "validate": "schema",
    "open_cover": "images", "check_cover": "images", "CoverError": "images",
    "Dataset": "io", "load_dataset": "io", "write_dataset": "io", "read_table": "io",
    "import_crawl": "importers", "PRESETS": "importers",
    "paper_filter": "filters",
    "make_demo_dataset": "demo",
}
__all__ = list(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
