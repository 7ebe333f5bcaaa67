# latticesym: every target creates and uses the local virtual environment .venv.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
export HYPOTHESIS_PROFILE ?= ci
export PYTHONHASHSEED ?= 0
export NO_MKDOCS_2_WARNING := 1

.PHONY: all venv demo test lint thorough bench mutation docs plots experiment clean fuzz

all: test

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip

# Core + demo needs (numpy, sympy, mpmath; tqdm for progress bars).
$(VENV)/.stamp-core: pyproject.toml | $(VENV)/bin/python
	$(PIP) install --quiet -e ".[cli,structure]"
	touch $@

# Everything the test suite uses: peers for cross-checks, torch (CPU, pinned), numba.
$(VENV)/.stamp-test: pyproject.toml | $(VENV)/bin/python
	$(PIP) install --quiet -e ".[test,peers,torch,fast,cli,structure,plots]"
	touch $(VENV)/.stamp-core $@

$(VENV)/.stamp-docs: pyproject.toml $(VENV)/.stamp-test
	$(PIP) install --quiet -e ".[docs]"
	touch $@

venv: $(VENV)/.stamp-test

demo: $(VENV)/.stamp-core
	$(PY) -m latticesym demo

lint: $(VENV)/.stamp-test
	$(PY) -m ruff check latticesym tests proofs benchmarks examples
	$(PY) -m mypy

# CI runs this: lint, the strict docs build, then the default test run (pytest's summary comes last).
test: $(VENV)/.stamp-docs lint
	$(PY) -m mkdocs build --strict --quiet --site-dir .site-ci
	$(PY) -m pytest -m "not slow and not benchmark" -p no:cacheprovider

thorough: $(VENV)/.stamp-test
	HYPOTHESIS_PROFILE=thorough $(PY) -m pytest -m "not benchmark" -p no:cacheprovider

bench: $(VENV)/.stamp-test
	$(PY) -m pytest benchmarks -m benchmark --benchmark-only --benchmark-columns=min,median,mean,ops -p no:cacheprovider

# mutmut on the exact oracle ([tool.mutmut] in pyproject.toml) and on the float step logic
# (scripts/run_mutation.py), each in a private copy under .mutation/; survivors in .mutation/*/survivors.txt
mutation: $(VENV)/.stamp-test
	$(PY) scripts/run_mutation.py reference
	$(PY) scripts/run_mutation.py float

# The fuzz campaign of issue 13: every public entry point, hostile inputs, >= 1e6 calls in about an
# hour on two cores (FUZZ_SECONDS, FUZZ_WORKERS); counts and findings printed, exit 1 on any finding
FUZZ_SECONDS ?= 3600
FUZZ_WORKERS ?= 2
# then the coverage-guided atheris driver of the CIF/POSCAR readers and parse_matrix (the fuzz extra)
FUZZ_ATHERIS ?= 300
fuzz: $(VENV)/.stamp-test
	$(PY) -m pip install --quiet -e ".[fuzz]"
	$(PY) scripts/fuzz.py --seconds $(FUZZ_SECONDS) --workers $(FUZZ_WORKERS) --atheris $(FUZZ_ATHERIS) --json .fuzz-results.json

plots: $(VENV)/.stamp-test
	$(PY) docs/make_plots.py

# The loss experiment (docs/experiments/mlp.md): tables under docs/_generated/, figures under docs/img/.
experiment: $(VENV)/.stamp-test
	$(PY) examples/loss_experiment.py

docs: $(VENV)/.stamp-docs
	$(PY) -m mkdocs build --strict

clean:
	rm -rf $(VENV) mutants site .site-ci .pytest_cache .mypy_cache .ruff_cache .hypothesis .benchmarks
