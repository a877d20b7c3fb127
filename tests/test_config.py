"""TrainConfig is the one description of a run: `popnb train`'s options come from its fields, with their defaults
and allowed values, and config.json records it."""
from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from dataclasses import MISSING, fields, replace

import pytest

from popnb.cli import main
from popnb.train.commands import add_train_arguments
from popnb.train.config import TrainConfig, check_config, run_params
from popnb.train.loop import check_run_dir


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="popnb train")
    add_train_arguments(p)
    return p


def test_every_field_is_one_option_with_the_fields_default():
    actions = [a for a in parser()._actions if a.dest not in ("help", "resume")]
    assert sorted(a.dest for a in actions) == sorted(f.name for f in fields(TrainConfig))  # one each, no other
    for f, action in ((f, next(a for a in actions if a.dest == f.name)) for f in fields(TrainConfig)):
        if f.default is MISSING:
            assert action.required, f.name
        else:
            assert action.default == f.default, f.name
    flags = {a.dest: a for a in actions}
    assert flags["pretrained"].nargs == 0 and flags["max_steps"].type is int and flags["lr"].type is float
    assert flags["fusion_weights"].type("0.6,0.4") == (0.6, 0.4)
    assert flags["metadata"].type("followers,duration") == ("followers", "duration")


def test_the_defaults_help_shows_parse_back_to_the_default_config(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "1000")  # no help text is wrapped (a long flag's starts on the next line)
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    options = capsys.readouterr().out.split("options:")[1]
    shown = {}
    for block in re.split(r"\n(?=  -)", options.strip("\n")):  # one block per option
        flag, text = block.split()[0], " ".join(block.split())
        found = re.search(r"\((default: (.*?)|required)\)$", text)
        assert found or flag in ("-h,", "--resume"), f"{flag} shows no default"
        if found and found[2] is not None:
            shown[flag] = found[2]
    assert len(shown) == len(fields(TrainConfig)) - 2  # all but DATA_DIR and --out (required)
    argv = [x for flag, value in shown.items() if value not in ("none", "off") for x in (flag, value)]
    args = parser().parse_args(["DATA", "--out", "RUN", *argv])
    assert TrainConfig(**{f.name: getattr(args, f.name) for f in fields(TrainConfig)}) == TrainConfig("DATA", "RUN")


@pytest.mark.parametrize("flag, value", [("--fusion", "sum"), ("--labels", "deciles"), ("--pipeline", "pipedream"),
                                         ("--gpipe-checkpoint", "sometimes"), ("--metadata", "followers,likes")])
def test_allowed_values_are_enforced(flag, value, capsys):
    with pytest.raises(SystemExit):
        parser().parse_args(["DATA", "--out", "RUN", flag, value])
    assert f"argument {flag}: invalid choice" in capsys.readouterr().err
    name = flag.removeprefix("--").replace("-", "_")
    wrong = replace(TrainConfig("DATA", "RUN"), **{name: tuple(value.split(",")) if name == "metadata" else value})
    with pytest.raises(ValueError, match=f"{flag} must be one of"):  # the same values, for a config made in code
        check_config(wrong)


def test_building_the_options_imports_no_torch():
    """The allowed values kept in torch modules (fusion kinds, metadata columns) are read only when asked for."""
    code = ("import sys; from popnb.cli import build_parser; build_parser(); "
            "print(sorted(m for m in ('torch', 'pandas') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    assert out.stdout.strip() == "[]"


def test_a_field_added_later_keeps_older_run_folders_valid(tmp_path):
    cfg = TrainConfig("DATA", str(tmp_path))
    assert "metadata" not in run_params(cfg)  # at its default: recorded as older runs recorded it
    assert run_params(replace(cfg, metadata=("followers",)))["metadata"] == ["followers"]
    (tmp_path / "config.json").write_text(json.dumps({"params": run_params(cfg)}))
    check_run_dir(tmp_path, cfg, resume=True)  # resumable with the same (default) parameters
    with pytest.raises(ValueError, match=r"metadata=None \(now \[.followers.\]\)"):
        check_run_dir(tmp_path, replace(cfg, metadata=("followers",)), resume=True)
