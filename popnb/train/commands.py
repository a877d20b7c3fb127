"""CLI: `popnb train`, `popnb evaluate`, `popnb predict` (torch is imported inside the handlers)."""
from __future__ import annotations

import argparse
import json
import os


def _weights(text: str) -> tuple[float, float]:
    """'0.75,0.25' -> (0.75, 0.25)."""
    try:
        w_v, w_t = (float(x) for x in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected W_VISION,W_TEXT, e.g. 0.75,0.25, got {text!r}") from None
    return w_v, w_t


def add_train_arguments(p: argparse.ArgumentParser) -> None:
    """The arguments of `popnb train` (and of `python -m popnb.train`, which torchrun launches)."""
    p.add_argument("data_dir", help="dataset folder (videos.csv + covers/)")
    p.add_argument("--out", required=True, metavar="RUN_DIR", help="run folder to create (or to continue with --resume)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint, with the same arguments "
                   "(a new --out just starts)")
    p.add_argument("--vision", default="vit_tiny_patch16_224", help="timm backbone (popnb.models.BACKBONES); "
                   "paper: vit_base_patch16_384")
    p.add_argument("--text", default="charbert-tiny", help="charbert-<size>, gru, lstm, minilm, or a BERT name/folder; "
                   "paper: bert-base-chinese")
    p.add_argument("--fusion-weights", type=_weights, default=(0.75, 0.25), metavar="W_V,W_T",
                   help="late-fusion weights (default 0.75,0.25; 0,1 = text only, no covers needed)")
    p.add_argument("--fusion", default="weighted", choices=("weighted", "concat", "gate"))
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--image-size", type=int, default=112, help="covers resized to SIZE x SIZE px (paper: 384)")
    p.add_argument("--batch-size", type=int, default=16, help="global batch size")
    p.add_argument("--lr", type=float, default=5e-5, help="AdamW learning rate (default 5e-5, the paper's; "
                   "the from-scratch CPU-scale models learn the demo data with it too)")
    p.add_argument("--pipeline", default="none", choices=("none", "gpipe"))
    p.add_argument("--chunks", type=int, default=4, help="GPipe micro-batches per batch")
    p.add_argument("--gpipe-checkpoint", default="except_last", choices=("always", "except_last", "never"),
                   help="GPipe recomputes each micro-batch's forward in backward to save memory (torchgpipe's "
                   "default except_last); never: keep activations, faster where memory allows (on CPU: 1.23x "
                   "plain instead of 1.60x at 4 chunks, benchmarks/results.md)")
    p.add_argument("--balance", default="auto", help="GPipe layers per stage: auto or e.g. 2,3")
    p.add_argument("--devices", default="auto", help="auto, cpu, cuda; with gpipe one per stage: cpu,cpu or cuda:0,cuda:1")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--labels", default="auto", choices=("auto", "paper", "quantile", "log_views"),
                   help="label scheme, fitted on the train split (auto: paper, or log_views when likes etc. are missing)")
    p.add_argument("--valid-fraction", type=float, default=1 / 11, help="share of videos for valid (default 1/11: 10:1)")
    p.add_argument("--max-len", type=int, default=64, help="title tokens kept")
    p.add_argument("--max-steps", type=int, help="at most N training steps per epoch (quick runs)")
    p.add_argument("--limit", type=int, help="use only the first N videos")
    p.add_argument("--threads", type=int, help="torch CPU threads (default: torch's; 1 is fastest on a busy shared CPU)")
    p.add_argument("--pretrained", action="store_true", help="start from pretrained weights (must be available offline)")
    p.add_argument("--vision-checkpoint", metavar="PATH", help="local timm weights for --vision")
    p.add_argument("--text-checkpoint", metavar="DIR", help="local folder (save_pretrained) for --text")
    p.set_defaults(func=_train)


def _train(args: argparse.Namespace) -> int:
    from popnb.train.loop import TrainConfig, train

    params = {k: v for k, v in vars(args).items() if k not in ("command", "func", "resume")}
    summary = train(TrainConfig(**params), resume=args.resume)
    if os.environ.get("RANK", "0") == "0":
        final, best = summary["final"], summary["best"]
        print(f"run: {args.out}")
        print(f"valid ordinal accuracy {final['valid']['ordinal_accuracy']:.4f} at epoch {final['epoch']} "
              f"(best {best['valid']['ordinal_accuracy']:.4f} at epoch {best['epoch']}); "
              f"constant baseline {final['valid']['constant_baseline_accuracy']:.4f}")
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from popnb.train.run import evaluate

    print(json.dumps(evaluate(args.run_dir, args.data_dir, args.batch_size), indent=2, ensure_ascii=False))
    return 0


def _predict(args: argparse.Namespace) -> int:
    from popnb.train.run import predict

    print(json.dumps(predict(args.run_dir, args.title, args.cover), indent=2, ensure_ascii=False))
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser("train", help="train a model; writes a run folder",
                              description="Train the late-fusion model on a dataset folder. The run folder gets "
                                          "config.json, label_scheme.json, vocab.json, checkpoint.pt (every epoch), "
                                          "history.csv and metrics.json.")
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
    p.set_defaults(func=_predict)
