"""CLI: `popnb train`, `popnb evaluate`, `popnb predict` (torch is imported inside the handlers).

`popnb train`'s options are generated from TrainConfig's fields (popnb.train.config): one option per field,
its type from the field's annotation, its default, help text and allowed values from the field.
"""
from __future__ import annotations

import argparse
import json
import os
from dataclasses import MISSING, fields
from typing import get_args, get_type_hints

from popnb.train.config import TrainConfig, option


def parse_weights(text: str) -> tuple[float, float]:
    """'0.75,0.25' -> (0.75, 0.25)."""
    try:
        w_v, w_t = (float(x) for x in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected W_VISION,W_TEXT, e.g. 0.75,0.25, got {text!r}") from None
    return w_v, w_t


def parse_names(text: str) -> tuple[str, ...]:
    """'followers,duration' -> ('followers', 'duration'); '' -> ()."""
    return tuple(name.strip() for name in text.split(",") if name.strip())


def parse_meta(text: str) -> tuple[str, float]:
    """'followers=1200' -> ('followers', 1200.0); 'followers=nan': unknown."""
    name, _, value = text.partition("=")
    try:
        number = float(value)
    except ValueError:
        number = None
    if not name.strip() or number is None:
        raise argparse.ArgumentTypeError(f"expected COLUMN=NUMBER, e.g. followers=1200, got {text!r}")
    return name.strip(), number


PARSERS = {tuple[float, float]: parse_weights, tuple[str, ...]: parse_names}  # annotation -> CLI parser


def value_type(annotation):
    """The CLI parser of a field's annotation (X | None as X): PARSERS' for a tuple, else the type itself."""
    kinds = [a for a in get_args(annotation) if a is not type(None)] if type(None) in get_args(annotation) else []
    kind = kinds[0] if kinds else annotation
    return PARSERS.get(kind, kind)


def shown(value) -> str:
    """A default as it is typed on the command line: 0.75,0.25 for a tuple; none for None or an empty tuple."""
    if value is None or value == ():
        return "none"
    return ",".join(map(str, value)) if isinstance(value, tuple) else str(value)


def argument(f, annotation) -> tuple[str, dict]:
    """(flag or name, add_argument keywords) of one TrainConfig field."""
    help, metavar = f.metadata["help"], f.metadata["metavar"]
    if f.metadata["positional"]:
        return f.name, {"help": help, "metavar": metavar or f.name.upper()}
    flag, kwargs = option(f.name), {"dest": f.name}
    if f.default is MISSING:
        return flag, kwargs | {"required": True, "metavar": metavar, "help": f"{help} (required)"}
    if annotation is bool:
        return flag, kwargs | {"action": "store_true", "help": f"{help} (default: off)"}
    kwargs |= {"type": value_type(annotation), "default": f.default, "metavar": metavar}
    if f.metadata["choices"] is not None:  # with a metavar, building the parser does not list (import) them
        kwargs |= {"choices": f.metadata["choices"], "metavar": metavar or f.name.upper()}
        help += "; one of %(choices)s"
    return flag, kwargs | {"help": f"{help} (default: {shown(f.default)})"}


def add_train_arguments(p: argparse.ArgumentParser) -> None:
    """The arguments of `popnb train` (and of `python -m popnb.train`, which torchrun launches): one per
    TrainConfig field, and --resume."""
    annotations = get_type_hints(TrainConfig)
    for f in fields(TrainConfig):
        flag, kwargs = argument(f, annotations[f.name])
        p.add_argument(flag, **kwargs)
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint, with "
                   "the same arguments (a new --out just starts)")
    p.set_defaults(func=_train)


def _train(args: argparse.Namespace) -> int:
    from popnb.train.loop import train

    params = {f.name: getattr(args, f.name) for f in fields(TrainConfig)}
    summary = train(TrainConfig(**params), resume=args.resume)
    if os.environ.get("RANK", "0") == "0":
        final, best = summary["final"], summary["best"]
        print(f"run: {args.out}")
        print(f"valid ordinal accuracy {final['valid']['ordinal_accuracy']:.4f} at epoch {final['epoch']} "
              f"(best {best['valid']['ordinal_accuracy']:.4f} at epoch {best['epoch']}); "
              f"constant baseline {final['valid']['constant_baseline_accuracy']:.4f}"
              + (f"; Spearman {final['valid']['spearman']:.4f}" if "spearman" in final["valid"] else ""))
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from popnb.train.run import evaluate

    print(json.dumps(evaluate(args.run_dir, args.data_dir, args.batch_size), indent=2, ensure_ascii=False))
    return 0


def _predict(args: argparse.Namespace) -> int:
    from popnb.train.run import predict

    meta = dict(args.meta) if args.meta else None
    print(json.dumps(predict(args.run_dir, args.title, args.cover, meta), indent=2, ensure_ascii=False))
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser("train", help="train a model; writes a run folder",
                              description="Train the late-fusion model on a dataset folder. Default (--recipe pretrained): "
                                          "frozen EfficientNet-Lite0 + e5-small embeddings and followers, a ridge "
                                          "late fusion (config.json, target.json, heads.npz/json, history.csv, "
                                          "metrics.json). --recipe paper: the paper's ViT + BERT end to end "
                                          "(label_scheme.json, vocab.json, checkpoint.pt every epoch, ...).")
    add_train_arguments(p)

    p = subparsers.add_parser("evaluate", help="metrics of a trained run on a dataset (JSON)",
                              description="Evaluate RUN_DIR on DATA_DIR, labelled with the run's label scheme; "
                                          "prints JSON (all popnb.metrics, the constant baseline included).")
    p.add_argument("run_dir")
    p.add_argument("data_dir")
    p.add_argument("--batch-size", type=int, default=64)
    p.set_defaults(func=_evaluate)

    p = subparsers.add_parser("predict", help="popularity class of one video (JSON)",
                              description="Class probabilities, predicted and expected class of one cover + title.")
    p.add_argument("run_dir")
    p.add_argument("--title", required=True)
    p.add_argument("--cover", metavar="PATH", help="cover image (needed when the run uses covers)")
    p.add_argument("--meta", action="append", type=parse_meta, metavar="COLUMN=VALUE",
                   help="a metadata value of a run trained with --metadata, e.g. --meta followers=1200 "
                        "--meta duration=300 (nan: unknown); once per column")
    p.set_defaults(func=_predict)
