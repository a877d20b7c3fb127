"""Shared fixtures: the real data in ../shared (skipped with a reason when absent)."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


def _shared(name: str) -> Path:
    path = SHARED_DATA / name
    if not path.is_dir():
        pytest.skip(f"real data {path} absent: the ../shared folder only exists beside the project checkout in CI")
    return path


@pytest.fixture
def bilibili_covers_src() -> Path:
    """../shared/data/bilibili_covers: 570 real covers, views only."""
    return _shared("bilibili_covers")


@pytest.fixture
def bilibili_stats_src() -> Path:
    """../shared/data/bilibili_stats: 10,933 real videos with all five counts, no covers."""
    return _shared("bilibili_stats")
