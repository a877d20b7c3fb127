"""TrainConfig: every parameter of a run, with its help text and allowed values, and what RUN/config.json records.

The one description of a run: `popnb train`'s options are generated from these fields
(popnb.train.commands.add_train_arguments), check_config reads the same allowed values, and config.json saves
them (run_params) with the package versions (popnb.versions). Nothing heavy is imported here (no torch, no
pandas), so `popnb --help` stays fast: allowed values kept by another module (fusion kinds, label schemes,
metadata columns) are read from it when first asked.
"""
from __future__ import annotations

import importlib
import json
import math
from dataclasses import MISSING, dataclass, field, fields, replace
from pathlib import Path


PIPELINES = ("none", "gpipe")
# Each recipe's values of the fields left at None (RECIPES' keys are --recipe's choices).
RECIPES = {
    "pretrained": {"vision": "tf_efficientnet_lite0", "text": "e5-small", "fusion_weights": (0.25, 0.75),
                   "image_size": 112},
    "paper": {"vision": "vit_tiny_patch16_224", "text": "charbert-tiny", "fusion_weights": (0.75, 0.25),
              "image_size": 112},
    "paper-scale": {"vision": "vit_base_patch16_384", "text": "bert-base-chinese", "fusion_weights": (0.75, 0.25),
                    "image_size": 384},
}
CHECKPOINT_MODES = ("always", "except_last", "never")  # torchgpipe's: recompute activations in backward


class Choices:
    """Allowed values kept as `name` in `module`, imported on first use; `first` come before them.

    `x in choices` for a tuple or list x: every item of it is allowed (a list parameter such as metadata)."""

    def __init__(self, module: str, name: str, first: tuple[str, ...] = ()):
        self.module, self.name, self.first = module, name, first

    @property
    def values(self) -> tuple[str, ...]:
        return (*self.first, *getattr(importlib.import_module(self.module), self.name))

    def __iter__(self):
        return iter(self.values)

    def __contains__(self, value) -> bool:
        items = value if isinstance(value, (tuple, list)) else (value,)
        return all(x in self.values for x in items)


def param(default=MISSING, help: str = "", choices=None, metavar: str | None = None, positional: bool = False,
          omit_default: bool = False):
    """A TrainConfig field: its default, the CLI's help text, allowed values and metavar.

    omit_default: config.json leaves the field out while it holds its default, so run folders written before the
    field existed keep their parameters (resumable, and the same analysis.sweep.finetune_dir hash)."""
    return field(default=default, metadata={"help": help, "choices": choices, "metavar": metavar,
                                            "positional": positional, "omit_default": omit_default})


@dataclass
class TrainConfig:
    """Every parameter of a run (saved to RUN/config.json). Defaults: the paper's optimiser and schedule
    (AdamW, lr 5e-5, 5 epochs, train:valid 10:1) on the CPU-scale backbones (popnb.models.BACKBONES)."""

    data_dir: str = param(help="dataset folder (videos.csv + covers/)", positional=True)
    out: str = param(help="run folder to create (or to continue with --resume)", metavar="RUN_DIR")
    recipe: str = param("auto", "what the model is, and the defaults of --vision, --text, --fusion-weights, "
                         "--image-size and --metadata: auto = paper when --vision or --text names an end-to-end "
                         "model, else pretrained; pretrained = frozen EfficientNet-Lite0 + e5-small embeddings "
                         "from pip packages, a ridge late fusion with followers (chosen by uploader-grouped CV); "
                         "paper = the paper's ViT + BERT trained end to end, CPU scale, from scratch; paper-scale = "
                         "vit_base_patch16_384@384 + bert-base-chinese (add --pretrained with local weights)",
                         ("auto", *RECIPES), omit_default=True)
    vision: str | None = param(None, "cover encoder: a frozen one of popnb.encoders (tf_efficientnet_lite0/1/2) "
                               "or a timm backbone trained end to end (popnb.models.BACKBONES); none: the recipe's")
    text: str | None = param(None, "title encoder: e5-small (frozen, the pretrained recipe), or charbert-<size>, "
                             "gru, lstm, minilm, a BERT name/folder trained end to end (popnb.models.TEXT_ENCODERS); "
                             "none: the recipe's")
    fusion_weights: tuple[float, float] | None = param(None, "late-fusion weights of the cover and title outputs "
                                                       "(0,1 = title only, no covers needed); none: the recipe's "
                                                       "(pretrained 0.25,0.75; paper 0.75,0.25)", metavar="W_V,W_T")
    fusion: str = param("weighted", "how the branch outputs meet", Choices("popnb.models.fusion", "FUSIONS"))
    metadata: tuple[str, ...] | None = param(None, "video columns fed to the fusion head, comma-separated: "
                                             "log1p, standardised on the train split (end to end: unknown values at "
                                             "the train mean plus a missing flag, popnb.models.metadata); none: the "
                                             "recipe's (pretrained: followers when the data has them; paper: none)",
                                      Choices("popnb.models.metadata", "METADATA_COLUMNS"), "COLUMNS",
                                      omit_default=True)
    epochs: int = param(5, "passes over the train split")
    image_size: int | None = param(None, "covers resized to SIZE x SIZE px for end-to-end backbones (frozen encoders "
                                   "use their own size); none: the recipe's (paper 112, paper-scale 384)",
                                   metavar="SIZE")
    batch_size: int = param(16, "the global batch (split over the processes under torchrun)")
    lr: float = param(5e-5, "AdamW learning rate (the paper's; the from-scratch CPU-scale models learn the demo "
                      "data with it too)")
    weight_decay: float = param(0.01, "AdamW weight decay (torch's default)")
    pipeline: str = param("none", "gpipe: the paper's pipeline parallelism, one stage per --devices entry",
                          PIPELINES)
    chunks: int = param(4, "GPipe micro-batches per batch")
    gpipe_checkpoint: str = param("except_last", "GPipe recomputes each micro-batch's forward in backward to save "
                                  "memory (except_last: torchgpipe's default); never keeps the activations, faster "
                                  "where memory allows (benchmarks/results.md)", CHECKPOINT_MODES)
    balance: str = param("auto", "GPipe layers per stage: auto (timed) or e.g. 2,3")
    devices: str = param("auto", "auto, cpu, cuda; with gpipe one per stage: cpu,cpu or cuda:0,cuda:1")
    seed: int = param(0, "seeds the split, the initial weights and the batch order")
    labels: str = param("auto", "label scheme (the target, for the pretrained recipe), fitted on the train split "
                        "(auto: paper, or log_views when likes etc. are missing; beyond_followers: log views minus "
                        "a line on log followers, pretrained recipe only)",
                        Choices("popnb.targets", "KINDS", first=("auto",)))
    split: str = param("random", "how videos are split into train and valid: random (stratified by class, the "
                       "paper's), uploader (no uploader on both sides), time (valid = the latest)",
                       Choices("popnb.splits", "SPLITS"), omit_default=True)
    valid_fraction: float = param(1 / 11, "share of videos for valid (1/11: the paper's train:valid = 10:1)")
    max_len: int = param(64, "title tokens kept, [CLS] and [SEP] included")
    max_steps: int | None = param(None, "at most N training steps per epoch (quick runs)", metavar="N")
    limit: int | None = param(None, "use only the first N videos", metavar="N")
    threads: int | None = param(None, "torch CPU threads (none: torch's default; 1 is fastest on a busy shared CPU)",
                                metavar="N")
    pretrained: bool = param(False, "start from pretrained weights (must be available offline)")
    vision_checkpoint: str | None = param(None, "local timm weights for --vision", metavar="PATH")
    text_checkpoint: str | None = param(None, "local folder (save_pretrained) for --text", metavar="DIR")


def recipe_of(cfg: TrainConfig) -> str:
    """cfg.recipe; auto: "paper" when cfg names a vision or text model that is not a frozen encoder of
    popnb.encoders (so `--vision vit_tiny_patch16_224` alone trains the paper's pair), else "pretrained"."""
    if cfg.recipe != "auto":
        return cfg.recipe
    from popnb.encoders.registry import ENCODERS

    named = [name for name in (cfg.vision, cfg.text) if name is not None]
    return "paper" if any(name not in ENCODERS for name in named) else "pretrained"


def resolved(cfg: TrainConfig) -> TrainConfig:
    """cfg with every field left at None set to its recipe's value (recipe_of); metadata stays None (the pretrained
    recipe: followers when the data has them, read then; end to end: none)."""
    chosen = {k: v for k, v in RECIPES[recipe_of(cfg)].items() if getattr(cfg, k) is None}
    return replace(cfg, **chosen)


def option(name: str) -> str:
    """The CLI option of a field: max_steps -> --max-steps."""
    return f"--{name.replace('_', '-')}"


def check_config(cfg: TrainConfig) -> None:
    """ValueError naming the parameter when a value cannot work (the models module checks names and sizes)."""
    for f in fields(cfg):
        choices, value = f.metadata["choices"], getattr(cfg, f.name)
        if choices is not None and value is not None and value not in choices:
            raise ValueError(f"{option(f.name)} must be one of {', '.join(choices)}, got {value!r}")
    positive = {"epochs": cfg.epochs, "batch_size": cfg.batch_size, "chunks": cfg.chunks, "image_size": cfg.image_size}
    for name, value in positive.items():
        if value is not None and (int(value) != value or value < 1):
            raise ValueError(f"{option(name)} must be a positive integer, got {value}")
    for name, value, least in (("max_steps", cfg.max_steps, 1), ("limit", cfg.limit, 2), ("threads", cfg.threads, 1)):
        if value is not None and value < least:
            raise ValueError(f"{option(name)} must be at least {least}, got {value}")
    if not (math.isfinite(cfg.lr) and cfg.lr > 0):
        raise ValueError(f"--lr must be a positive number, got {cfg.lr}")
    if isinstance(cfg.metadata, str):
        raise ValueError(f"metadata takes a tuple of column names, e.g. ('followers',), got {cfg.metadata!r}")
    if cfg.metadata is not None and len(set(cfg.metadata)) != len(cfg.metadata):
        raise ValueError(f"--metadata lists a column twice: {','.join(cfg.metadata)}")
    if cfg.pipeline == "none" and "," in cfg.devices:
        raise ValueError(f"--devices {cfg.devices} lists several devices: only --pipeline gpipe uses more than one")
    if cfg.pipeline == "gpipe" and cfg.chunks > cfg.batch_size:
        raise ValueError(f"--chunks {cfg.chunks} is larger than the batch (--batch-size {cfg.batch_size}): "
                         "every micro-batch needs at least one video")


def run_params(cfg: TrainConfig) -> dict:
    """The parameters as saved in config.json (JSON types, data_dir and out absolute; omit_default fields only
    when set)."""
    params = {f.name: getattr(cfg, f.name) for f in fields(cfg)
              if not (f.metadata["omit_default"] and getattr(cfg, f.name) == f.default)}
    params["data_dir"] = str(Path(cfg.data_dir).resolve())
    params["out"] = str(Path(cfg.out).resolve())
    return json.loads(json.dumps(params))


def default_params() -> dict:
    """Every field's default in config.json's types (data_dir and out absent: they have none)."""
    return json.loads(json.dumps({f.name: f.default for f in fields(TrainConfig) if f.default is not MISSING}))

