"""A font for Chinese labels in matplotlib figures, found once per process through matplotlib's font manager.

A known CJK family first (Debian's fonts-noto-cjk gives 'Noto Sans CJK JP', the first face of its .ttc),
then any font that maps 中 (`explore.cjk_font`); when none, one warning and None: callers then write
labels they can draw (`labels`), never blank boxes (tofu).
"""
from __future__ import annotations

import functools
import warnings

from popnb.analysis.explore import caption, cjk_font, font_chars

PREFERRED = ("Noto Sans CJK SC", "Noto Sans CJK JP", "Noto Sans CJK TC", "Noto Serif CJK SC", "Source Han Sans SC",
             "WenQuanYi Zen Hei", "WenQuanYi Micro Hei", "SimHei", "Microsoft YaHei", "PingFang SC",
             "AR PL UMing CN")
INSTALL = "Debian/Ubuntu: apt-get install fonts-noto-cjk, then remove matplotlib's font cache (~/.cache/matplotlib)"


@functools.cache
def find_cjk_font() -> str | None:
    """The family name of a font with CJK glyphs, or None (warned once; `find_cjk_font.cache_clear()` looks again)."""
    from matplotlib import font_manager

    names = {entry.name for entry in font_manager.fontManager.ttflist}
    found = next((name for name in PREFERRED if name in names), None) or cjk_font()
    if found is None:
        warnings.warn(f"no font with CJK glyphs found by matplotlib: Chinese labels are replaced by their rank "
                      f"and length; {INSTALL}", stacklevel=2)
    return found


def labels(texts, fallbacks, width: int = 16) -> list[str]:
    """Each text (cut to `width` chars) when the CJK font (or, without one, the default font) draws it, else
    'fallback · N chars'."""
    import matplotlib.pyplot as plt

    drawable = font_chars(find_cjk_font() or plt.rcParams["font.family"][0])
    return [caption(str(text), str(fallback), drawable, width) for text, fallback in zip(texts, fallbacks)]
