"""popnb.paths: the project root (found from the package, or $POPNB_ROOT), relative paths from it, paths shown."""
from __future__ import annotations

from pathlib import Path

from popnb import paths


def test_the_root_is_the_checkout_holding_the_package_whatever_the_working_directory(tmp_path, monkeypatch):
    checkout = Path(paths.__file__).resolve().parents[1]
    monkeypatch.delenv(paths.ROOT_ENV, raising=False)
    monkeypatch.chdir(tmp_path)
    assert paths.project_root() == checkout == paths.PROJECT_ROOT
    assert (checkout / "pyproject.toml").is_file() and (checkout / "notebooks").is_dir()
    monkeypatch.setenv(paths.ROOT_ENV, str(tmp_path / "elsewhere"))
    assert paths.project_root() == tmp_path / "elsewhere"


def test_relative_paths_are_taken_from_the_root_not_the_working_directory(tmp_path, monkeypatch):
    monkeypatch.setattr(paths, "PROJECT_ROOT", tmp_path)
    (tmp_path / "notebooks").mkdir()
    for cwd in (tmp_path / "notebooks", tmp_path, Path("/")):  # Jupyter's, papermill's, anyone's
        monkeypatch.chdir(cwd)
        assert paths.resolve("reports") == tmp_path / "reports"
    assert paths.resolve(tmp_path / "x") == tmp_path / "x"
    assert paths.resolve("~/x") == Path.home() / "x"


def test_shown_names_paths_under_the_root_relatively_and_leaves_the_rest(tmp_path):
    assert paths.shown(tmp_path / "data" / "demo", tmp_path) == "data/demo"
    assert paths.shown(f"{tmp_path}/out", tmp_path) == "out"
    assert paths.shown("/elsewhere/x", tmp_path) == "/elsewhere/x"
    assert paths.shown(3, tmp_path) == 3 and paths.shown(None, tmp_path) is None
    assert paths.shown(paths.PROJECT_ROOT / "reports") == "reports"
