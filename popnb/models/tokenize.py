"""Title tokenisers with one interface: encode(titles, max_len) -> (ids, mask), save(dir), load_tokenizer(dir).

Two kinds:
- CharVocab: one token per character, built from the training titles (charbert-*, gru, lstm). Chinese
  titles need no word segmentation, and it works offline. Saved as DIR/vocab.json.
- HFTokenizer: a Hugging Face tokenizer (bert-base-chinese, MiniLM, any local BERT folder). Saved as DIR/tokenizer/.

Both pad (id 0) or truncate every title to exactly max_len tokens, [CLS] first and [SEP] last, so the
result is a pure function of (titles, max_len, tokenizer.fingerprint) that a caller may cache.
"""
from __future__ import annotations

import hashlib
import json
from collections import Counter
from pathlib import Path

import torch

SPECIALS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]")  # ids 0, 1, 2, 3
VOCAB_FILE = "vocab.json"
HF_FOLDER = "tokenizer"


def _check_max_len(max_len: int) -> None:
    if max_len < 2:
        raise ValueError(f"max_len must be at least 2 ([CLS] and [SEP]), got {max_len}")


class CharVocab:
    """Character vocabulary: [PAD]=0, [UNK]=1, [CLS]=2, [SEP]=3, then characters by falling frequency.

    Whitespace is dropped; every other character (CJK, Latin, digits, punctuation, emoji code points) is a token.
    """

    pad_id, unk_id, cls_id, sep_id = range(4)

    def __init__(self, tokens: list[str]):
        if tuple(tokens[:4]) != SPECIALS:
            raise ValueError(f"a character vocabulary must start with {list(SPECIALS)}, got {tokens[:4]}")
        if len(set(tokens)) != len(tokens):
            raise ValueError("a character vocabulary has a repeated token")
        self.tokens = list(tokens)
        self.index = {t: i for i, t in enumerate(self.tokens)}

    @classmethod
    def build(cls, titles: list[str], min_count: int = 1) -> CharVocab:
        """Vocabulary of every character seen at least min_count times in titles (ties in order of the character)."""
        if min_count < 1:
            raise ValueError(f"min_count must be >= 1, got {min_count}")
        counts = Counter(ch for title in titles for ch in str(title) if not ch.isspace())
        chars = sorted((ch for ch, n in counts.items() if n >= min_count), key=lambda ch: (-counts[ch], ch))
        return cls(list(SPECIALS) + chars)

    def __len__(self) -> int:
        return len(self.tokens)

    @property
    def fingerprint(self) -> str:
        """Short hash of the token list: equal fingerprints encode every title the same way."""
        return hashlib.sha256("\n".join(self.tokens).encode()).hexdigest()[:16]

    def encode(self, titles: list[str], max_len: int) -> tuple[torch.Tensor, torch.Tensor]:
        """titles -> ids LongTensor[B, max_len], mask LongTensor[B, max_len] (1 = token, 0 = padding)."""
        _check_max_len(max_len)
        ids = torch.zeros(len(titles), max_len, dtype=torch.long)
        for row, title in enumerate(titles):
            chars = [self.index.get(ch, self.unk_id) for ch in str(title) if not ch.isspace()]
            seq = [self.cls_id] + chars[: max_len - 2] + [self.sep_id]
            ids[row, : len(seq)] = torch.tensor(seq)
        return ids, (ids != self.pad_id).long()

    def save(self, directory: str | Path) -> Path:
        """Write DIR/vocab.json; returns its path."""
        path = Path(directory) / VOCAB_FILE
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"kind": "char", "tokens": self.tokens}, ensure_ascii=False), encoding="utf-8")
        return path

    @classmethod
    def load(cls, path: str | Path) -> CharVocab:
        """Read a vocab.json (or the DIR holding one)."""
        path = Path(path)
        if path.is_dir():
            path = path / VOCAB_FILE
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
            tokens = doc["tokens"]
        except (json.JSONDecodeError, KeyError, TypeError) as err:
            raise ValueError(f"{path}: not a character vocabulary written by CharVocab.save ({err})") from None
        return cls(tokens)


class HFTokenizer:
    """A Hugging Face tokenizer behind the CharVocab interface."""

    def __init__(self, tokenizer, name: str):
        self.tokenizer = tokenizer
        self.name = name

    @classmethod
    def from_pretrained(cls, name_or_path: str | Path) -> HFTokenizer:
        from transformers import AutoTokenizer

        return cls(AutoTokenizer.from_pretrained(str(name_or_path)), str(name_or_path))

    def __len__(self) -> int:
        return len(self.tokenizer)

    @property
    def fingerprint(self) -> str:
        vocab = sorted(self.tokenizer.get_vocab().items())
        doc = json.dumps([type(self.tokenizer).__name__, vocab, self.tokenizer.init_kwargs.get("do_lower_case")])
        return hashlib.sha256(doc.encode()).hexdigest()[:16]

    def encode(self, titles: list[str], max_len: int) -> tuple[torch.Tensor, torch.Tensor]:
        """titles -> ids LongTensor[B, max_len], mask LongTensor[B, max_len]."""
        _check_max_len(max_len)
        enc = self.tokenizer([str(t) for t in titles], padding="max_length", truncation=True,
                             max_length=max_len, return_tensors="pt")
        return enc["input_ids"].long(), enc["attention_mask"].long()

    def save(self, directory: str | Path) -> Path:
        """Write DIR/tokenizer/ (save_pretrained); returns that folder."""
        path = Path(directory) / HF_FOLDER
        self.tokenizer.save_pretrained(str(path))
        return path


def load_tokenizer(directory: str | Path) -> CharVocab | HFTokenizer:
    """The tokenizer a run folder holds: DIR/vocab.json (characters) or DIR/tokenizer/ (Hugging Face)."""
    directory = Path(directory)
    if (directory / VOCAB_FILE).is_file():
        return CharVocab.load(directory / VOCAB_FILE)
    if (directory / HF_FOLDER).is_dir():
        return HFTokenizer.from_pretrained(directory / HF_FOLDER)
    raise FileNotFoundError(f"{directory}: no tokenizer here (expected {VOCAB_FILE} or {HF_FOLDER}/)")
