# The two commands: `make demo` (the blue-green story on a local control plane) and
# `make test` (lint, type checks, unit, chart and end-to-end tests).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: install lint unit test golden-committed demo bench bench-review cluster-build cluster-down clean

$(BIN)/configpin: pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -c requirements.lock -e '.[dev]'
	touch $@

install: $(BIN)/configpin

lint: install
	$(BIN)/ruff check app tests devkit benchmarks scripts/demo
	$(BIN)/ruff format --check app tests devkit benchmarks scripts/demo
	$(BIN)/mypy

unit: install
	$(BIN)/pytest -m "not e2e"

# Builds (or reuses) the control plane and helm, then runs everything.
test: lint cluster-build
	$(BIN)/pytest
	$(MAKE) --no-print-directory golden-committed

# A test run compares the golden files and never rewrites them (CONFIGPIN_UPDATE_GOLDEN is
# refused under CI): after the run they must still be exactly what is committed.
golden-committed:
	@if ! git diff --quiet HEAD -- tests/golden \
	    || [ -n "$$(git ls-files --others --exclude-standard -- tests/golden)" ]; then \
	  git status --short -- tests/golden; \
	  echo "tests/golden differs from what is committed"; exit 1; fi

demo: install cluster-build
	PATH="$(abspath $(BIN)):$$PATH" scripts/demo

cluster-build:
	scripts/dev-cluster build
	scripts/helm version --short >/dev/null

cluster-down:
	scripts/dev-cluster down

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis

# Admission cost against baselines measured in the same run (handler under wrk over TLS, Pod
# and Deployment creates through the dev cluster, memory under steady load): one table, and
# the same figures in benchmarks/results.json. About 10 minutes; BENCH_ARGS="--soak-seconds 60".
bench: install cluster-build
	@command -v wrk >/dev/null || { echo "make bench needs wrk, the HTTP load generator:" \
		"apt-get install -y wrk (Debian/Ubuntu)"; exit 1; }
	$(BIN)/python benchmarks/bench.py $(BENCH_ARGS)

# The review path alone (no HTTP, no network) against decoding + encoding the review.
bench-review: install
	$(BIN)/python benchmarks/admission.py
