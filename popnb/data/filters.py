"""The paper's data filter, with a table of how many rows each rule removes."""
from __future__ import annotations

import pandas as pd

FILTER_STEP_COLUMNS = ("step", "rule", "rows_before", "rows_removed", "rows_after")


def paper_filter(df: pd.DataFrame, max_followers: int | None = 500_000, require_hot_list: bool = True
                 ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Keep videos whose uploader has fewer than `max_followers` followers and has been on the hot list.

    A rule applies only when its column exists (else it is listed as skipped and removes nothing);
    rows where the column is NA are removed (not known to pass). `max_followers=None` or
    `require_hot_list=False` switches a rule off. Returns (filtered rows, original index kept;
    steps table with columns FILTER_STEP_COLUMNS).
    """
    rules = []
    if max_followers is not None:
        rules.append(("followers", f"followers < {max_followers:,}",
                      lambda d: pd.to_numeric(d["followers"], errors="coerce") < max_followers))
    if require_hot_list:
        rules.append(("hot_list", "hot_list is true", lambda d: d["hot_list"].astype("boolean")))
    steps = []
    for step, (column, rule, passes) in enumerate(rules, start=1):
        before = len(df)
        if column in df:
            df = df[passes(df).fillna(False).astype(bool)]
        else:
            rule += f" (skipped: no {column} column)"
        steps.append((step, rule, before, before - len(df), len(df)))
    return df, pd.DataFrame(steps, columns=list(FILTER_STEP_COLUMNS))
