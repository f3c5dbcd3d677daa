# Two entry points for a fresh machine: `make demo` (the main job) and `make test`.
VENV ?= .venv
PYTHON ?= python3
PY := $(VENV)/bin/python

$(VENV)/.installed: requirements.txt setup.py
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q -r requirements.txt
	touch $@

# Flower (the federated engine for real fleets), the test oracles and the device readers are optional extras;
# the tests use them all
$(VENV)/.flower: $(VENV)/.installed setup.py
	$(VENV)/bin/pip install -q -e ".[flower,test,baselines,devices]"
	touch $@

venv: $(VENV)/.installed

demo: $(VENV)/.installed  ## the main job: pretrain, evaluate against baselines, print the table, draw figures
	$(PY) data/prepare_har.py
	$(PY) studies/har/reproduce.py --quick 1

test: $(VENV)/.flower  ## the linter (ruff.toml), then the test suite, CPU only, a few minutes on 2 cores
	$(VENV)/bin/ruff check .
	$(PY) -m pytest -q tests

.PHONY: venv demo test

reproduce: $(VENV)/.installed  ## the full study; rewrites resources/
	$(PY) studies/har/reproduce.py

.PHONY: reproduce
