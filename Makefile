# Two entry points for a fresh machine: `make demo` (the main job) and `make test`.
VENV ?= .venv
PYTHON ?= python3
PY := $(VENV)/bin/python

$(VENV)/.installed: requirements.txt setup.py
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q -r requirements.txt
	touch $@

venv: $(VENV)/.installed

demo: $(VENV)/.installed  ## prepare the offline HAR data and print its summary
	$(PY) data/prepare_har.py

test: $(VENV)/.installed  ## the test suite, CPU only, a few minutes on 2 cores
	$(PY) -m pytest -q tests

.PHONY: venv demo test
