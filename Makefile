# The README's quick start is `make generate` and `make test`; each creates .venv on first use.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: generate test bench-truncation bench-hw bench-synth clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# torch is pinned to the local CPU wheel first, so the extra deps never pull a CUDA build.
	$(PY) -m pip install --quiet "torch==2.13.0"
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

generate: $(STAMP)
	$(PY) -m hw.generate --bits 8 --array 16x16

test: $(STAMP)
	$(PY) -m pytest -q

bench-truncation: $(STAMP)
	$(PY) bench/truncation_table.py

bench-hw: $(STAMP)
	$(PY) bench/hw_bench.py

bench-synth: $(STAMP)
	$(PY) bench/synth_table.py

clean:
	rm -rf build
