# The two commands of the README. Everything else is a helper they call.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: up test lint typecheck unit bench clean

# Create the venv and install fleetmatch with its test tools; redone when pyproject.toml changes.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

## make up: the whole local stack (embedded Redis, node agent, fleet controller, a demo fleet of 4
## UDP game servers, metrics). Ctrl-C stops everything.
up: $(STAMP)
	$(BIN)/fleetmatch up

## make test: lint, types, import layers, then every test. Non-zero on any failure.
test: $(STAMP) lint typecheck
	@$(BIN)/pytest -q; status=$$?; \
	if [ $$status -eq 5 ]; then echo "make test: pytest collected no tests" >&2; fi; exit $$status

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

typecheck: $(STAMP)
	$(BIN)/mypy

## make bench: every benchmark under loadtest/, each printing JSON (a few minutes).
bench: $(STAMP)
	$(BIN)/python -m loadtest.bench_store
	$(BIN)/python -m loadtest.bench_allocate
	$(BIN)/python -m loadtest.bench_refill
	$(BIN)/python -m loadtest.bench_match

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .import_linter_cache
