# The two commands of the README: `make demo` (the main job) and `make test`.
# Each creates the virtual environment in .venv on first use; only Python 3.10+ is needed.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PYTEST_WORKERS ?= 2

.PHONY: demo test lint typecheck unit docs bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# Marker files re-run the install when pyproject.toml changes.
$(VENV)/.installed-runtime: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -e '.[dev]'
	touch $@ $(VENV)/.installed-runtime

$(VENV)/.installed-docs: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -e '.[dev,docs]'
	touch $@ $(VENV)/.installed-dev $(VENV)/.installed-runtime

demo: $(VENV)/.installed-runtime
	$(BIN)/segblocks demo --out demo_out

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check segblocks tests bench docs/_ext docs/conf.py
	$(BIN)/ruff format --check segblocks tests bench docs/_ext docs/conf.py

typecheck: $(VENV)/.installed-dev
	$(BIN)/mypy segblocks

unit: $(VENV)/.installed-dev
	$(BIN)/python -m pytest -n $(PYTEST_WORKERS)

test: lint typecheck unit

docs: $(VENV)/.installed-docs
	$(BIN)/python -m sphinx -E -W --keep-going -b html docs docs/_build/html

# Each benchmark prints JSON; the results land in bench/results/, which the docs' performance page shows.
# The other bench/ scripts are analyses of a trained run (they need its path; the model cards cite them).
BENCHMARKS := metrics ops shapes_world video_memory mask2former
bench: $(VENV)/.installed-dev
	mkdir -p bench/results
	for b in $(BENCHMARKS); do $(BIN)/python bench/$$b.py > bench/results/$$b.json || exit 1; done

clean:
	rm -rf $(VENV) docs/_build demo_out .pytest_cache .mypy_cache .ruff_cache
