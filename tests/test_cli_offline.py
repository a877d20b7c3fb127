"""The `popnb` command and `python -m popnb.train` put Hugging Face offline unless the user has set it."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from popnb.cli import OFFLINE

# Runs the module named by the first argument as `python -m` does, then prints the variables as the process saw them.
PROBE = ("import atexit, os, runpy, sys; "
         f"atexit.register(lambda: print('|'.join(os.environ.get(k, '-') for k in {tuple(OFFLINE)!r}))); "
         "runpy.run_module(sys.argv.pop(1), run_name='__main__', alter_sys=True)")


@pytest.mark.parametrize("module", ["popnb", "popnb.train"])
@pytest.mark.parametrize(("user", "seen"), [({}, "1|1"), ({"HF_HUB_OFFLINE": "0"}, "0|1")])
def test_offline_unless_the_user_set_it(module, user, seen):
    env = {k: v for k, v in os.environ.items() if k not in OFFLINE} | user
    proc = subprocess.run([sys.executable, "-c", PROBE, module, "--help"], env=env, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "usage: popnb" in proc.stdout  # the command itself ran
    assert proc.stdout.splitlines()[-1] == seen
