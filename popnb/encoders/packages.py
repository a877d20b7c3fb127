"""The pip packages an encoder runs on: importing them with a clear error, and their versions (its identity)."""
from __future__ import annotations

import importlib
from importlib.metadata import PackageNotFoundError, version
from types import ModuleType


class EncoderUnavailableError(ImportError):
    """An encoder's package is not installed (or has no build for this platform); the message says what to do."""


def require(module: str, encoder: str, install: str) -> ModuleType:
    """import module, or EncoderUnavailableError telling how to install it (`install`: a pip command and notes)."""
    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise EncoderUnavailableError(f"encoder {encoder!r} needs the Python module {module!r} ({err}): "
                                      f"{install}") from err


def versions(distributions: tuple[str, ...]) -> dict[str, str]:
    """{distribution: installed version, or "absent"}: the weights' and code's identity in a feature-store key."""
    found = {}
    for name in distributions:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = "absent"
    return found
