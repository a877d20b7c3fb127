"""The notebooks' analyses, one module per notebook: explore (01), binning (02), sweep (03),
backbones (04), findings (06).

tables holds what the sweep and the backbone comparison share: summaries over seeds, the paper's table
layout beside ours, the constant baseline and the best-valid figure; predictions, the valid-split
predictions of one run; cjk_font, a font that draws the Chinese titles in figures. Analysis modules import core modules only (never the reports runner or figures).
"""
