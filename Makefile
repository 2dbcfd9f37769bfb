# Set-up and checks. `make demo` and `make test` work on a fresh machine: they create .venv and install into it.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=
export OMP_NUM_THREADS ?= 2

.PHONY: install demo test test-fast lint bench clean

install: $(STAMP)

$(STAMP): pyproject.toml setup.py constraints.txt
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade "pip>=23" "setuptools>=68" wheel
	$(BIN)/python -m pip install -q -c constraints.txt -e ".[dev]"
	# lava-nc 0.10.0 declares python<3.11 and numpy<2: install it without its metadata checks;
	# its real dependencies come with the [lava] extra above. neurosynth.hardware.lava_compat patches
	# its one Python-3.11 incompatibility at import time.
	$(BIN)/python -m pip install -q -c constraints.txt --no-deps --ignore-requires-python lava-nc==0.10.0
	# NeuroBench is only the reference of an op-count cross-check test; its metadata pins heavy extras.
	$(BIN)/python -m pip install -q -c constraints.txt --no-deps neurobench==2.3.0
	touch $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check .

demo: $(STAMP)
	$(BIN)/neurosynth demo --out runs/demo

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

# the whole suite takes ~2 min on 2 idle cores, slow-marked tests included; `make test-fast` skips those
test-fast: PYTEST_ARGS := -m "not slow"
test-fast: test

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_lif.py

clean:
	rm -rf $(VENV) build *.egg-info runs
