# citeqa — `make run` and `make test` set everything up on a fresh machine.
# Until the HTTP API lands, `make run` builds the demo index if missing, then runs a demo search and question.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.citeqa-installed
INDEX ?= .citeqa/index
export HF_HUB_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: install run demo-index test test-fast lint bench clean

install: $(STAMP)

# CPU torch goes in first: an unpinned torch, pulled in by sentence-transformers, is a multi-GB CUDA build.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo-index: install
	@if [ -f $(INDEX)/index.sqlite ]; then echo "demo index: $(INDEX) exists"; \
	else $(BIN)/citeqa ingest examples/articles --index $(INDEX); fi

run: demo-index
	$(BIN)/citeqa search "How much did the Harbor Bridge repairs cost?" -k 2 --index $(INDEX)
	$(BIN)/citeqa ask "How much did the Harbor Bridge repairs cost?" --index $(INDEX)

test: install
	$(BIN)/python -m pytest

test-fast: install
	$(BIN)/python -m pytest -m "not slow"

lint: install
	$(BIN)/ruff check index qa api tests bench
	$(BIN)/mypy

bench: install
	$(BIN)/python bench/ingest.py --repeat 3

clean:
	rm -rf $(VENV) .citeqa .pytest_cache .ruff_cache .mypy_cache .hypothesis
