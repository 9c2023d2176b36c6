# Every target sets up .venv on first use; CI runs `make test` on a clean clone.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export QT_QPA_PLATFORM ?= offscreen

.PHONY: run test lint bench demo-model package package-test install-desktop clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# The CPU build of torch that lies on this machine's disk; never a CUDA build.
	$(BIN)/pip install -q "torch==2.13.0"
	$(BIN)/pip install -q -e ".[dev]"
	touch $(STAMP)

run: $(STAMP)
	env -u QT_QPA_PLATFORM $(BIN)/attention-explorer

lint: $(STAMP)
	$(BIN)/ruff check explorer tests benchmarks
	$(BIN)/ruff format --check explorer tests benchmarks
	$(BIN)/lint-imports

test: lint
	$(BIN)/python -m pytest -q

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_engine.py
	$(BIN)/python benchmarks/bench_gui.py
	test ! -f benchmarks/bench_analysis.py || $(BIN)/python benchmarks/bench_analysis.py

demo-model: $(STAMP)
	$(BIN)/python -m explorer.demo.train --out resources/demo-model

clean:
	rm -rf $(VENV) build dist .pytest_cache
