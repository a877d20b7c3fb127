"""The `popnb` command: each subcommand is registered by the module that implements it."""
from __future__ import annotations

import argparse
import importlib
import os
import sys

# Modules that define `register(subparsers)`; each adds its subcommands with a `func(args) -> int`.
# They import heavy libraries (torch, papermill) inside the handlers, so `popnb --help` stays fast.
COMMAND_MODULES = ("popnb.data.commands", "popnb.crawl.commands", "popnb.train.commands", "popnb.reports",
                   "popnb.reports.bilibili")
# Nothing is downloaded at run time: Hugging Face offline unless the user set these (notebook kernels inherit them).
OFFLINE = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="popnb", description="Predict video popularity from cover and title (Qin, Wang & Zhu 2024)."
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    for name, value in OFFLINE.items():  # before any command module can import transformers
        os.environ.setdefault(name, value)
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (ValueError, FileNotFoundError, KeyError) as err:  # user errors: one clear line, no traceback
        print(f"popnb {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
