"""paper_filter: followers < 500,000 and hot list, each step's rows removed in a table."""
from __future__ import annotations

import pandas as pd

from popnb.data.filters import FILTER_STEP_COLUMNS, paper_filter


def videos() -> pd.DataFrame:
    return pd.DataFrame({
        "video_id": list("abcdefg"),
        "followers": pd.array([10, 499_999, 500_000, None, 3_000_000, 42, 7], dtype="Int64"),
        "hot_list": pd.array([True, True, True, True, False, None, False], dtype="boolean"),
    }, index=range(10, 17))


def test_both_rules_with_a_table_of_rows_removed():
    kept, steps = paper_filter(videos())
    assert kept.video_id.tolist() == ["a", "b"]
    assert kept.index.tolist() == [10, 11]  # rows keep their index, to align with other frames
    assert list(steps.columns) == list(FILTER_STEP_COLUMNS)
    assert steps.values.tolist() == [
        [1, "followers < 500,000", 7, 3, 4],  # c is not below the limit; d's followers are unknown
        [2, "hot_list is true", 4, 2, 2],  # f unknown, g false
    ]


def test_rules_for_absent_columns_are_listed_as_skipped():
    df = videos().drop(columns="hot_list")
    kept, steps = paper_filter(df, max_followers=100)
    assert kept.video_id.tolist() == ["a", "f", "g"]
    assert steps.values.tolist() == [
        [1, "followers < 100", 7, 4, 3],
        [2, "hot_list is true (skipped: no hot_list column)", 3, 0, 3],
    ]
    kept, steps = paper_filter(df.drop(columns="followers"))
    assert kept.equals(df.drop(columns="followers")) and steps.rows_removed.tolist() == [0, 0]


def test_rules_can_be_switched_off():
    kept, steps = paper_filter(videos(), max_followers=None, require_hot_list=False)
    assert len(kept) == 7 and steps.empty and list(steps.columns) == list(FILTER_STEP_COLUMNS)
    kept, steps = paper_filter(videos(), max_followers=None)
    assert kept.video_id.tolist() == ["a", "b", "c", "d"] and steps.rule.tolist() == ["hot_list is true"]
