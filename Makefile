# kd-interp: `make setup` builds .venv (idempotent), `make demo` runs the default study (interp/studies/default.toml), `make test` lints and runs the suite.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: setup demo figures lint test test-fast bench clean

setup: $(STAMP)

# torch==2.13.0 first: it is the local CPU build; anything unpinned pulls a multi-GB CUDA build.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e ".[dev]"
	touch $(STAMP)

demo: setup
	$(BIN)/python -m interp.cli run default --out runs/demo

# the README gallery (figures/gallery_*) from `make demo`'s folder; computes the parts it lacks from the default pair
figures: setup
	$(BIN)/python analyses/gallery.py --results runs/demo --default-pair

lint: setup
	$(BIN)/ruff check interp tests analyses benchmarks
	$(BIN)/mypy interp

test: lint
	$(BIN)/python -m pytest -q

test-fast: lint
	$(BIN)/python -m pytest -q -m "not slow"

bench: setup
	$(BIN)/python benchmarks/capture.py

clean:
	rm -rf $(VENV) runs .pytest_cache
