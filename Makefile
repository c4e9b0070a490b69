# Quickstart: `make run` starts the service on its embedded defaults; `make test` runs the suite.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: run test rulebook browser docker-engine local-images compose-test lint format typecheck bench bench-load examples clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

# Demo mode: SQLite in the working directory, any CORS origin; see the README.
run: $(STAMP)
	OI_CDS_DEMO=true $(BIN)/oi-cds serve --host $(HOST) --port $(PORT)

# The rule book for a CDS committee: build/rulebook/rulebook.html and .pdf (docs/rulebook.md).
rulebook: $(STAMP) browser
	$(BIN)/oi-cds rulebook --out build/rulebook

# Debian's Chromium (the browser test, the rule book's PDF), Graphviz (its diagram) and
# poppler-utils (reading the PDF back), as root where missing; without them those tests skip.
browser:
	@command -v chromium >/dev/null && command -v dot >/dev/null && command -v pdftoppm >/dev/null \
	  || { [ "$$(id -u)" = 0 ] && apt-get update -qq && apt-get install -y -qq chromium graphviz poppler-utils >/dev/null; } \
	  || echo "chromium, graphviz or poppler-utils could not be installed: the browser and rule-book PDF tests will skip"

# A Docker engine for the compose test (as root, where missing: Debian's docker.io, docker-compose
# and debootstrap; dockerd started when not running). Without one, that test skips.
docker-engine:
	@command -v dockerd >/dev/null && command -v docker-compose >/dev/null && command -v debootstrap >/dev/null \
	  || { [ "$$(id -u)" = 0 ] && apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker.io docker-compose debootstrap >/dev/null; } \
	  || echo "docker.io could not be installed: the compose test will skip"
	@docker info >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v dockerd >/dev/null \
	  && { nohup dockerd >/var/log/oi-cds-dockerd.log 2>&1 & } \
	  && for i in $$(seq 60); do docker info >/dev/null 2>&1 && break; sleep 1; done; } || true
	@docker info >/dev/null 2>&1 && echo "Docker engine: running" || echo "no Docker engine: the compose test will skip"

# Offline images for docker-compose (no registry needed): see deploy/local-images.sh.
local-images:
	bash deploy/local-images.sh

# The container topology built and tested for real (also part of `make test` where an engine runs).
compose-test: $(STAMP) docker-engine
	$(BIN)/python -m pytest -q tests/test_compose.py

# The whole suite: lint, format check, strict typing, then every test.
test: $(STAMP) browser
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

typecheck: $(STAMP)
	$(BIN)/mypy

bench: $(STAMP)
	$(BIN)/python -m pytest benchmarks -q -p no:randomly --benchmark-only --benchmark-columns=min,median,mean,ops

# wrk against a real uvicorn (needs the Debian package wrk; installed here when missing, as root).
bench-load: $(STAMP)
	command -v wrk >/dev/null || (apt-get update -qq && apt-get install -y -qq wrk)
	$(BIN)/python -m benchmarks.load --duration 15

# After a knowledge or settings change: regenerate what tests compare against (examples, README table).
examples: $(STAMP)
	$(BIN)/python -m tools.regenerate_examples

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .benchmarks
