# The two commands of the README. Everything else is a helper they call.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: up observe prometheus chromium test lint typecheck unit bench proto image chart clean

# Two installs into one venv, each redone when pyproject.toml changes: the runtime (what `make up`
# needs: fleetmatch and its dependencies) and, on top, the dev toolchain (pytest, mypy, ruff,
# grpcio-tools, the Helm SDK...), which only `make test` and the other developer targets pay for.
$(STAMP): pyproject.toml setup.py matchmaker/_matchloop.c matchmaker/_ratingloop.c
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	rm -f matchmaker/_matchloop*.so matchmaker/_ratingloop*.so  # the C loops are optional: a failed build must not leave an older one behind
	$(BIN)/pip install --quiet -e .
	touch $(STAMP)

DEV := $(VENV)/.installed-dev
$(DEV): pyproject.toml $(STAMP)
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(DEV)

# The official Agones Node.js SDK, pinned by tests/compat/package-lock.json: tests/compat runs it
# against our sidecar as a real gRPC client.
COMPAT := tests/compat/node_modules/.installed
$(COMPAT): tests/compat/package-lock.json
	npm ci --prefix tests/compat --no-audit --no-fund --loglevel=error
	touch $(COMPAT)

## make up: the whole local stack (embedded Redis, node agent, fleet controller, a demo fleet of 4
## UDP game servers, metrics). Ctrl-C stops everything.
up: $(STAMP)
	$(BIN)/fleetmatch up

## make observe: `make up` plus a local Prometheus scraping its metrics port (docs/metrics.md).
observe: $(STAMP) prometheus
	$(BIN)/fleetmatch up --observability

# The prometheus binary (Debian's package) for `up --observability` and its test, when missing. Its
# postinst may start the system service: stopped and disabled, fleetmatch runs its own.
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)
prometheus:
	@command -v prometheus >/dev/null || { \
		$(SUDO) apt-get install -y -q --no-install-recommends prometheus >/dev/null || \
		{ $(SUDO) apt-get update -q && $(SUDO) apt-get install -y -q --no-install-recommends prometheus; }; \
		{ $(SUDO) systemctl disable --now prometheus || $(SUDO) service prometheus stop; } >/dev/null 2>&1 || true; }

# Debian's chromium for tests/dashboard, when missing: Playwright (a dev dependency from PyPI) drives it
# by path; Playwright's own browser download is never used.
chromium:
	@command -v chromium >/dev/null || command -v chromium-browser >/dev/null || { \
		$(SUDO) apt-get install -y -q --no-install-recommends chromium >/dev/null || \
		{ $(SUDO) apt-get update -q && $(SUDO) apt-get install -y -q --no-install-recommends chromium; }; }

## make test: lint, types, import layers, then every test. Non-zero on any failure.
# Two workers, a test module each at a time (module-scoped stacks are started once); game ports never
# clash across workers: the node agent skips ports another process holds. TEST_WORKERS=0: one process.
TEST_WORKERS ?= 2
test: $(DEV) $(COMPAT) prometheus chromium lint typecheck
	@$(BIN)/pytest -q -n $(TEST_WORKERS) --dist loadfile; status=$$?; \
	if [ $$status -eq 5 ]; then echo "make test: pytest collected no tests" >&2; fi; exit $$status

lint: $(DEV)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

typecheck: $(DEV)
	$(BIN)/mypy

## make bench: every benchmark under loadtest/, each printing JSON (a few minutes).
bench: $(DEV)
	$(BIN)/python -m loadtest.bench_store
	$(BIN)/python -m loadtest.bench_allocate
	$(BIN)/python -m loadtest.bench_refill
	$(BIN)/python -m loadtest.bench_match
	$(BIN)/python -m loadtest.bench_sidecar
	$(BIN)/python -m loadtest.bench_faults
	$(BIN)/python -m loadtest.bench_ratings

## make proto: regenerate the gRPC SDK's Python stubs (sdk_sidecar/grpc_gen) from sdk_sidecar/protos, and the
## allocation service's (allocator/grpc_gen) from allocator/protos.
## The generated files are committed; run this after editing a .proto, then commit both.
PROTOS := $(wildcard sdk_sidecar/protos/*.proto)
ALLOCATOR_PROTOS := $(wildcard allocator/protos/*.proto)
proto: $(DEV)
	$(BIN)/python -m grpc_tools.protoc -Isdk_sidecar/grpc_gen=sdk_sidecar/protos \
		--python_out=. --grpc_python_out=. \
		--mypy_out=. --mypy_grpc_out=. --plugin=protoc-gen-mypy=$(BIN)/protoc-gen-mypy \
		--plugin=protoc-gen-mypy_grpc=$(BIN)/protoc-gen-mypy_grpc $(PROTOS)
	$(BIN)/python -m grpc_tools.protoc -Iallocator/grpc_gen=allocator/protos \
		--python_out=. --grpc_python_out=. \
		--mypy_out=. --mypy_grpc_out=. --plugin=protoc-gen-mypy=$(BIN)/protoc-gen-mypy \
		--plugin=protoc-gen-mypy_grpc=$(BIN)/protoc-gen-mypy_grpc $(ALLOCATOR_PROTOS)

## make image: the one image of every component (Dockerfile), tagged with the project's version;
## needs Docker. IMAGE=registry.example.com/games/fleetmatch:0.1.0 to name it for your registry.
VERSION := $(shell sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml)
IMAGE   ?= fleetmatch:$(VERSION)
DOCKER  ?= docker
image:
	@command -v $(DOCKER) >/dev/null 2>&1 || { \
		echo "make image: '$(DOCKER)' is not installed or not on PATH; the image needs Docker (or DOCKER=podman)." >&2; \
		echo "On a machine that has it: docker build -t $(IMAGE) ." >&2; exit 1; }
	@$(DOCKER) info >/dev/null 2>&1 || { \
		echo "make image: '$(DOCKER)' is installed but its daemon does not answer ('$(DOCKER) info' fails): start it, or build elsewhere." >&2; \
		exit 1; }
	$(DOCKER) build --build-arg VERSION=$(VERSION) -t $(IMAGE) .

## make chart: the Helm chart as a chart repository: dist/charts/fleetmatch-<version>.tgz and index.yaml
## (lint, package, index through the Helm SDK; no helm binary). CHART_URL=https://... for absolute URLs.
CHART_OUT ?= dist/charts
CHART_URL ?=
chart: $(DEV)
	$(BIN)/python deploy/helm/package.py --out $(CHART_OUT) $(if $(CHART_URL),--url $(CHART_URL))

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .import_linter_cache tests/compat/node_modules
