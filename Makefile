# Set-up and checks. `make demo` and `make test` work on a fresh machine: they create .venv and install into it.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=
export OMP_NUM_THREADS ?= 2

.PHONY: install sysdeps demo test test-fast lint bench clean

install: $(STAMP)

$(STAMP): pyproject.toml setup.py constraints.txt
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade "pip>=23" "setuptools>=68" wheel
	$(BIN)/python -m pip install -q -c constraints.txt -e ".[dev]"
	# lava-nc 0.10.0 declares python<3.11 and numpy<2: install it without its metadata checks;
	# its real dependencies come with the [lava] extra above. neurosynth.hardware.lava.compat patches
	# its one Python-3.11 incompatibility at import time.
	$(BIN)/python -m pip install -q -c constraints.txt --no-deps --ignore-requires-python lava-nc==0.10.0
	# NeuroBench is only the reference of an op-count cross-check test; its metadata pins heavy extras.
	$(BIN)/python -m pip install -q -c constraints.txt --no-deps neurobench==2.3.0
	touch $(STAMP)

# Real data every machine can have (Debian packages): Fashion-MNIST's IDX files and espeak-ng (spoken digits).
# Installed when apt-get is there and we are root; elsewhere the tests that need them skip with the command
# (and fail under CI=true).
SYSDEPS := dataset-fashion-mnist espeak-ng
sysdeps:
	@missing=""; \
	[ -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ] || missing="$$missing dataset-fashion-mnist"; \
	command -v espeak-ng >/dev/null 2>&1 || missing="$$missing espeak-ng"; \
	if [ -n "$$missing" ]; then \
	  if command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
	    echo "installing Debian packages:$$missing"; \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null) \
	      || echo "warning: apt-get install$$missing failed; the tests that need them will skip (fail under CI=true)"; \
	  else \
	    echo "note: missing$$missing; install with: sudo apt-get install -y$$missing"; \
	  fi; \
	fi

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/python tools/lint_imports.py

demo: $(STAMP)
	$(BIN)/neurosynth demo --out runs/demo

test: $(STAMP) sysdeps
	$(BIN)/ruff check .
	# the layering contract (.importlinter): core < datasets, hardware < snn_nas < neurosynth.apps
	$(BIN)/python tools/lint_imports.py
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

# the whole suite takes 8-12 min on 2 idle cores (AMD EPYC, Intel Xeon), slow-marked tests included; `make test-fast` skips those
test-fast: PYTEST_ARGS := -m "not slow"
test-fast: test

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_lif.py

clean:
	rm -rf $(VENV) build *.egg-info runs
