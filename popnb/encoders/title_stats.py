"""Interpretable features of a title (no model): length, digits, punctuation, brackets, Latin words, emoji,
and whether it asks a question."""
from __future__ import annotations

import re

import pandas as pd

TITLE_COLUMNS = ("length", "digits", "exclamations", "questions", "brackets", "latin_words", "emoji",
                 "question_form")
QUESTION_WORDS = ("吗", "为什么", "为啥", "怎么", "如何", "是不是", "有没有", "能不能", "难道", "多少", "谁")
LATIN_WORD = re.compile(r"[A-Za-z]+")
# Pictographs: Misc Symbols and Dingbats, Misc Symbols and Arrows (stars), the emoji planes; skin-tone
# modifiers, variation selectors and zero-width joiners are parts of one emoji, not counted.
EMOJI = re.compile("[\u2600-\u27bf\u2b00-\u2bff\U0001f000-\U0001f3fa\U0001f400-\U0001faff]")


def title_stats(title: str) -> dict:
    """One title -> length (code points), digits (any script), exclamations (! and ！), questions (? and ？),
    brackets (【...】 pairs opened), latin_words (runs of A-Z/a-z), emoji (pictograph code points),
    question_form (1 when it ends with ?/？ or holds a question word such as 吗, 为什么, 怎么, 如何)."""
    stripped = title.rstrip(" !！~～.。…")
    return {"length": len(title), "digits": sum(c.isdecimal() for c in title),
            "exclamations": title.count("!") + title.count("！"), "questions": title.count("?") + title.count("？"),
            "brackets": title.count("【"), "latin_words": len(LATIN_WORD.findall(title)),
            "emoji": len(EMOJI.findall(title)),
            "question_form": int(stripped.endswith(("?", "？")) or any(w in title for w in QUESTION_WORDS))}


class TitleStats:
    """titles -> one row each of TITLE_COLUMNS (see title_stats)."""

    batch_size = 1024

    def __init__(self, name: str, size: None = None, device: str = "cpu"):
        self.name, self.size = name, size

    def __call__(self, titles: list[str]) -> pd.DataFrame:
        return pd.DataFrame([title_stats(t) for t in titles], columns=list(TITLE_COLUMNS))
