# Every target sets up what it needs: `make demo` and `make test` work on a fresh machine.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed

.PHONY: demo test lint databases chromium bench bench-web clean

$(INSTALLED): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(INSTALLED)

demo: $(INSTALLED)
	$(BIN)/eventstore demo

databases:
	bash scripts/ensure-databases

# Debian's chromium and chromium-driver for the browser tests (tests/test_web.py); under CI=true a
# failed install fails the target.
chromium:
	bash scripts/ensure-chromium

lint: $(INSTALLED)
	$(BIN)/ruff check eventstore projections tests benchmarks
	$(BIN)/ruff format --check eventstore projections tests benchmarks
	$(BIN)/mypy
	$(BIN)/lint-imports

test: $(INSTALLED) databases chromium lint
	$(BIN)/pytest

# eventsourcing (the peer) is a bench-only dependency: its [postgres] extra brings psycopg_pool.
# BENCH_ARGS passes options through, e.g. `make bench BENCH_ARGS="--quick --db postgres"`.
bench: $(INSTALLED) databases
	$(BIN)/python -m pip install --quiet 'eventsourcing[postgres]==9.5.*'
	$(BIN)/python -m benchmarks $(BENCH_ARGS)
	$(MAKE) bench-web

# The web page with big histories (benchmarks/web.py): render times in headless Chromium, each under 1 s.
bench-web: $(INSTALLED) chromium
	$(BIN)/python -m benchmarks.web $(BENCH_WEB_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis
