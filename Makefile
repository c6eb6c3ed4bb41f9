# Every target sets up what it needs: `make demo` and `make test` work on a fresh machine.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed

.PHONY: demo test lint databases chromium bench bench-web reliability clean airflow-venv test-airflow airflow-demo

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
	$(BIN)/ruff check eventstore projections tests benchmarks reliability examples
	$(BIN)/ruff format --check eventstore projections tests benchmarks reliability examples
	$(BIN)/mypy
	$(BIN)/lint-imports

# The suite in TEST_WORKERS processes (pytest-xdist): most tests wait on a database or a subprocess, so
# more workers than cores still pays. Each worker has its own databases (tests/databases.py), and runs
# whole modules in their order (--dist loadfile): module fixtures (a browser, a fault run) are set up once.
# The Airflow tests (and, on a fresh machine, the install of their venv) run meanwhile, beside the
# suite; their output follows the suite's, and either failing fails the target.
TEST_WORKERS ?= 3
test: $(INSTALLED) databases chromium lint
	@$(MAKE) --no-print-directory test-airflow > .test-airflow.log 2>&1 & airflow=$$!; \
	$(BIN)/pytest -n $(TEST_WORKERS) --dist loadfile; suite=$$?; \
	wait $$airflow; airflow_status=$$?; \
	cat .test-airflow.log; \
	if [ $$airflow_status -ne 0 ]; then echo "make test: the Airflow tests failed (above)" >&2; fi; \
	[ $$suite -eq 0 ] && [ $$airflow_status -eq 0 ]

# The Airflow 3.3.2 venv (cached under ~/.cache/eventstore, keyed by the pins' hash): scripts/airflow-venv.
airflow-venv:
	bash scripts/airflow-venv

# The watermark example in a real Airflow 3.3 (examples/airflow/demo.py, docs/airflow.md "Try it"): a new
# Airflow home on SQLite, kept, its path printed. Builds the Airflow venv first if needed.
airflow-demo:
	@py=$$(bash scripts/airflow-venv) && $$py examples/airflow/demo.py

# tests/airflow/ against a real Airflow, once per metadata database (Airflow's settings are per process).
# Under CI=true a venv that cannot be built fails the run; elsewhere it is skipped with a warning.
AIRFLOW_TEST_DATABASES ?= sqlite postgres
test-airflow: databases
	@py=$$(bash scripts/airflow-venv) || { \
		if [ "$$CI" = "true" ]; then echo "test-airflow: the Airflow venv could not be built" >&2; exit 1; fi; \
		echo "test-airflow: SKIPPED, the Airflow venv could not be built (CI=true makes this a failure)" >&2; \
		exit 0; }; \
	for db in $(AIRFLOW_TEST_DATABASES); do \
		echo "== tests/airflow on $$db"; \
		EVENTSTORE_AIRFLOW_TEST_DB=$$db $$py -m pytest tests/airflow -p no:cacheprovider || exit 1; \
	done

# eventsourcing (the peer) is a bench-only dependency: its [postgres] extra brings psycopg_pool.
# BENCH_ARGS passes options through, e.g. `make bench BENCH_ARGS="--quick --db postgres"`.
# Then "Inside Airflow" (benchmarks/airflow.py) in the Airflow venv: AIRFLOW_BENCH_ARGS, by default
# BENCH_ARGS (it takes --quick and --db sqlite|postgres, and skips what is not its own).
AIRFLOW_BENCH_ARGS ?= $(BENCH_ARGS)
bench: $(INSTALLED) databases
	$(BIN)/python -m pip install --quiet 'eventsourcing[postgres]==9.5.*'
	$(BIN)/python -m benchmarks $(BENCH_ARGS)
	$(MAKE) bench-web
	py=$$(bash scripts/airflow-venv) && $$py -m benchmarks.airflow $(AIRFLOW_BENCH_ARGS)

# The web page with big histories (benchmarks/web.py): render times in headless Chromium, each under 1 s.
bench-web: $(INSTALLED) chromium
	$(BIN)/python -m benchmarks.web $(BENCH_WEB_ARGS)

# The long reliability runs (reliability/, docs/reliability.md): kill -9, database restarts, load.
# `make test` runs a short version of each. RELIABILITY_ARGS picks runs and options, e.g.
# `make reliability RELIABILITY_ARGS="kill -- --db postgres"`.
reliability: $(INSTALLED) databases
	$(BIN)/python -m reliability $(RELIABILITY_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis .test-airflow.log
