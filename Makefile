# medpose: two commands do all the set-up.
#   make demo   creates .venv if missing, installs medpose, runs the demo
#   make test   same set-up, then the test suite
#   make lint   same set-up, then ruff (lint and format check) and mypy
#   make notebooks  same set-up, then JupyterLab on notebooks/
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# Without an NVIDIA GPU, pin the CPU build of torch first so that monai's
# dependency on torch is already satisfied and no CUDA wheels are downloaded.
TORCH_CPU ?= torch==2.13.0
HAS_GPU := $(shell command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1 && echo 1)

.PHONY: demo test lint venv clean bench notebooks

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
ifeq ($(HAS_GPU),)
	$(BIN)/python -m pip install --quiet $(TORCH_CPU)
endif
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/medpose demo --out demo_output

test: $(STAMP)
	$(BIN)/python -m pytest -q -n 2 --dist loadfile

lint: $(STAMP)
	$(BIN)/ruff check medpose tests benchmarks docs/figures
	$(BIN)/ruff format --check medpose tests benchmarks docs/figures
	$(BIN)/mypy

notebooks: $(STAMP)
	$(BIN)/jupyter lab notebooks/

bench: $(STAMP)
	$(BIN)/python -m pip install --quiet -e ".[dev,bench]"
	$(BIN)/python benchmarks/run_all.py

clean:
	rm -rf $(VENV) demo_output .pytest_cache
