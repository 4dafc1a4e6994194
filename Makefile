# Two commands on a fresh machine with Python 3.11:  make run   and   make test
PYTHON ?= python3.11
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: run test test-all install clean-venv bench

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP)

## Run the whole pipeline on the embedded default (model, data, training, evaluation, reports).
run: $(STAMP)
	PATH=$(abspath $(VENV))/bin:$$PATH $(VENV)/bin/dvc repro

## Run the default test suite (skips slow, gpu and pipeline tests).
test: $(STAMP)
	$(PY) -m pytest -q

## Everything, including slow and pipeline tests (gpu tests skip without CUDA).
test-all: $(STAMP)
	$(PY) -m pytest -q -m ''

bench: $(STAMP)
	$(PY) bench/render.py --out bench/results/render_cpu.json

clean-venv:
	rm -rf $(VENV)
