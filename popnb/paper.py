"""The paper's reported numbers (Qin, Wang & Zhu 2024), shipped as package data in popnb/paper_tables/."""
from __future__ import annotations

from importlib import resources

import pandas as pd

TABLE1 = "table1_fusion_weights.csv"
TABLE2 = "table2_backbones.csv"


def _read(name: str) -> pd.DataFrame:
    with resources.files("popnb").joinpath("paper_tables", name).open("r", encoding="utf-8") as f:
        return pd.read_csv(f)


def load_table1() -> pd.DataFrame:
    """Table 1, the fusion-weight sweep: vision_weight, text_weight, epoch, train_acc, valid_acc (35 rows:
    7 weight pairs x 5 epochs; accuracies are ordinal accuracy)."""
    return _read(TABLE1)


def load_table2() -> pd.DataFrame:
    """Table 2, the backbone comparison at 0.75 / 0.25: vision, text, vision_weight, text_weight, epoch,
    train_acc, valid_acc (10 rows: VGG+RNN and VGG+BERT x 5 epochs)."""
    return _read(TABLE2)
