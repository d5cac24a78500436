# Two entry points: `make demo` and `make test`. Each creates .venv and installs what it needs.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test lint bench bench-check bench-stages tools

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $@

demo: $(BIN)/.installed
	$(BIN)/shopstream demo

lint: $(BIN)/.installed
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/lint-imports

# promtool (Debian's prometheus) checks the alert rules and Debian's chromium, driven by
# playwright-core from tests/browser, shows the dashboard; installed when running as root.
tools:
	@{ command -v promtool && command -v chromium; } >/dev/null || { [ "$$(id -u)" = 0 ] \
	  && apt-get update -qq \
	  && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
	     prometheus chromium >/dev/null; } \
	  || echo "promtool or chromium missing: apt-get install prometheus chromium"
	@[ -d tests/browser/node_modules/playwright-core ] \
	  || npm ci --prefix tests/browser --no-audit --no-fund --loglevel=error \
	  || echo "playwright-core missing: npm ci --prefix tests/browser"

# Two processes, each with its own broker and redis-server; a module's tests stay in one
# process, so module fixtures (a generated log, a demo run) are built once.
test: lint tools
	$(BIN)/python -m pytest -n 2 --dist loadfile

bench: $(BIN)/.installed
	$(BIN)/python bench/run.py

# Microseconds per event of each stage of the worker's pipeline (bench/result-stages.json).
bench-stages: $(BIN)/.installed
	$(BIN)/python bench/stage_costs.py

# The latest bench results (bench/result.json, bench/result-compare.json) against the best rows
# of bench/history.jsonl on this machine; fails when a figure fell by more than 25%.
bench-check: $(BIN)/.installed
	$(BIN)/python bench/history.py check
