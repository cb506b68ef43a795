# Nexus: `make run` starts it on the embedded defaults, `make test` runs every check.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test lint format check-services test-embedded test-services bench clean chromium

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

## make run: set up .venv, apply migrations, create a demo org on first start, serve on :8000
run: $(STAMP)
	$(BIN)/nexus migrate
	$(BIN)/nexus init --if-empty --org-name "Demo" --email owner@demo.example.com
	$(BIN)/nexus serve --no-migrate

## make test: ruff, then the whole suite on the embedded defaults and on PostgreSQL + NATS + Redis
test: $(STAMP) chromium lint test-embedded test-services

## chromium: Debian's Chromium for the Hub's browser tests (Playwright drives it; nothing is downloaded by Playwright)
chromium:
	@test -x /usr/bin/chromium || (apt-get update -qq && apt-get install -y -qq chromium)

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

format: $(STAMP)
	$(BIN)/ruff check --fix src tests benchmarks
	$(BIN)/ruff format src tests benchmarks

test-embedded: $(STAMP) chromium
	NEXUS_TEST_BACKEND=embedded $(BIN)/pytest -q

test-services: $(STAMP) chromium
	NEXUS_TEST_BACKEND=services $(BIN)/pytest -q

bench: $(STAMP)
	$(BIN)/python benchmarks/kernel_bus.py

clean:
	rm -rf $(VENV) var .pytest_cache .ruff_cache
