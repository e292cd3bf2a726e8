# The README's quick start is `make generate` and `make test`; each creates .venv on first use.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# Tests that need neither a Verilog simulator, nor Yosys/nextpnr/SymbiYosys, nor more than seconds of training.
FAST := not rtl and not synth and not formal and not slow

.PHONY: generate test test-fast lint system-packages wheel-check bench-truncation bench-hw bench-synth bench-soak bench-rtl-speed bench-sweep clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# torch is pinned to the local CPU wheel first, so the extra deps never pull a CUDA build.
	$(PY) -m pip install --quiet "torch==2.13.0"
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

# Icarus Verilog and Fashion-MNIST, the suite's two Debian packages: installed when missing and apt can be
# used, else one line naming the command to run (tools/system-packages).
system-packages:
	@tools/system-packages

generate: system-packages $(STAMP)
	$(PY) -m hw.generate --bits 8 --array 16x16

# The full suite: lint gates first (seconds), then every test on both cores.
test: system-packages lint
	$(PY) -m pytest -q -n 2

# The inner loop: everything but the simulator, synthesis and slow tests, in well under a minute.
test-fast: lint
	$(PY) -m pytest -q -n 2 -m "$(FAST)"

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports

bench-truncation: $(STAMP)
	$(PY) bench/truncation_table.py

bench-hw: $(STAMP)
	$(PY) bench/hw_bench.py

bench-synth: $(STAMP)
	$(PY) bench/synth_table.py

bench-soak: $(STAMP)
	$(PY) bench/soak.py

bench-rtl-speed: $(STAMP)
	$(PY) bench/rtl_speed.py

bench-sweep: $(STAMP)
	$(PY) bench/sweep_speed.py

clean:
	rm -rf build

# The built wheel in a fresh venv, base install only, run from outside the source tree (CI runs it too).
wheel-check: $(STAMP)
	.ci/wheel-check
