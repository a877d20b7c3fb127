"""Where the project is: its root folder, relative paths taken from it, and paths shown relative to it.

The root is $POPNB_ROOT when set, else the checkout that holds this package (the folder above popnb/ with
pyproject.toml and notebooks/), else the working directory (an installed package outside a checkout).
Relative paths in notebooks and analyses are taken from the root, so a notebook run by Jupyter inside
notebooks/ writes where `popnb reports` (which runs it from the root) does.
"""
from __future__ import annotations

import os
from pathlib import Path

ROOT_ENV = "POPNB_ROOT"


def project_root() -> Path:
    """$POPNB_ROOT, else the checkout above this package, else the working directory."""
    if os.environ.get(ROOT_ENV):
        return Path(os.environ[ROOT_ENV]).expanduser().resolve()
    checkout = Path(__file__).resolve().parents[1]
    if (checkout / "pyproject.toml").is_file() and (checkout / "notebooks").is_dir():
        return checkout
    return Path.cwd()


PROJECT_ROOT = project_root()


def resolve(path: str | Path) -> Path:
    """An absolute path: `path` itself when absolute, else taken from PROJECT_ROOT."""
    path = Path(path).expanduser()
    return path if path.is_absolute() else PROJECT_ROOT / path


def shown(value, root: Path | None = None):
    """A path (or path string) under root (default PROJECT_ROOT) as relative to it, so committed records and
    indexes name no machine's folders; anything else as it is."""
    text = str(value)
    prefix = str(root or PROJECT_ROOT).rstrip("/") + "/"
    return text[len(prefix):] if text.startswith(prefix) else value
