"""`python -m popnb.train ARGS` = `popnb train ARGS` (the form torchrun launches: torchrun ... -m popnb.train ...)."""
import sys

from popnb.cli import main

sys.exit(main(["train", *sys.argv[1:]]))
